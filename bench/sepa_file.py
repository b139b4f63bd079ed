"""The pain.008 collection file for 50,000 debits: `app.dues.sepa_file.build_file` (sepaxml's
tree, written out and validated against the pain.008.001.08 XSD with lxml). Goal: under 10 s,
peak memory under 300 MB.

    PYTHONPATH=. .venv/bin/python -m bench.sepa_file [--debits 50000] [--runs 3]

`bench/billing.py` (the daily run) can call `run(debits)` for its collection-file line.
"""
import argparse
import os
import time
from datetime import date, datetime
from decimal import Decimal

from app.dues.sepa_file import Creditor, Debit, build_file
from bench.common import machine, median, peak_rss_mb, table, verdict

GOAL_SECONDS = 10.0
IBANS = ["DE45120300001234567890", "DE12500105170648489890", "DE02100500000054540402",
         "DE02300209000106531065", "DE02200505501015871393", "DE02700202700010108669"]


def debits(count: int) -> list[Debit]:
    """Realistic debits: a sixth FRST, some names with umlauts, some BICs unknown, an amendment
    in every hundred."""
    return [Debit(end_to_end_id=f"FC1-{n}", amount=Decimal("39.90") + n % 5 * 5,
                  sequence="FRST" if n % 6 == 0 else "RCUR", mandate_reference=f"FC-{n}-1",
                  mandate_signed_on=date(2025, 1, 1) , name=("Jörg Müller" if n % 7 == 0
                                                             else f"Anna Berg {n}"),
                  iban=IBANS[n % len(IBANS)], bic=None if n % 3 == 0 else "INGDDEFFXXX",
                  description=f"Invoice 2027-{n:06d} monthly dues",
                  original_iban=IBANS[(n + 1) % len(IBANS)] if n % 100 == 50 else None,
                  same_bank=False) for n in range(count)]


def run(count: int) -> tuple[float, float, int]:
    """Seconds (wall, CPU) to build and validate the file of `count` debits, and its size."""
    creditor = Creditor("Riverside Fitness GmbH", "DE89370400440532013000", "COBADEFFXXX",
                        "DE98ZZZ09999999999")
    rows = debits(count)
    started, cpu = time.perf_counter(), time.process_time()
    xml = build_file(creditor=creditor, message_id=f"FC1-20270301-{count}",
                     created=datetime(2027, 2, 24, 9, 0), collection_date=date(2027, 3, 1),
                     debits=rows)
    return time.perf_counter() - started, time.process_time() - cpu, len(xml)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debits", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times, cpus = [], []
    for _ in range(args.runs):
        seconds, cpu, size = run(args.debits)
        times.append(seconds)
        cpus.append(cpu)
    best, mid, peak = min(times), median(times), peak_rss_mb()
    print(machine(), f"load average {os.getloadavg()[0]:.1f}")
    print(table(["debits", "file MB", "best s", "median s", "median CPU s", "peak MB", "goal"],
                [[args.debits, f"{size / 1e6:.1f}", f"{best:.2f}", f"{mid:.2f}",
                  f"{median(cpus):.2f}", f"{peak:.0f}",
                  verdict(mid < GOAL_SECONDS and peak < 300)]]))


if __name__ == "__main__":
    main()
