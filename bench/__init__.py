"""Benchmarks: `python -m bench.checkin`, `python -m bench.search` (see docs/benchmarks.md)."""
