"""The demo club "Riverside Fitness": staff, plans, and members with a believable history.

`fitclub demo` builds it for `make run`; the benchmarks reuse the generator at 10k-100k members.
"""
