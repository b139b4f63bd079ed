# ruff: noqa: N999 - the module is `bench.import`, as the issue names it
"""History import speed and memory on PostgreSQL.

    python -m bench.import [--members 50000] [--memberships 200000] [--visits 5000000] [--keep]

1. writes a club's history as CSV files into a temp directory, streaming (plans.csv,
   memberships.csv: consecutive memberships per member with gaps of 1–45 days, so some renew
   and some lapse; visits.csv: visits spread over each member's memberships, a few outside
   them, club-local times);
2. creates a fresh PostgreSQL database (admin URL: FITCLUB_BENCH_PG_URL), a club and its members
   (Core insert, old-system ids M000001…), then runs `import_history` on the directory in one
   transaction and commits;
3. prints rows per second for memberships and visits (each file's check and write passes
   together), the time of each pass, and the process's peak resident memory; goals: ≥ 20,000
   visit rows per second and < 300 MB peak for 5M visits. The machine's load average is printed
   too: the numbers are only as quiet as the machine.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from bench.common import fresh_database, machine, peak_rss_mb, table, verdict

VISITS_GOAL = 20_000
RSS_GOAL_MB = 300
PLANS = [("P1", "Monthly", 1, "49.90"), ("P3", "Quarterly", 3, "129.00"),
         ("P12", "Annual", 12, "449.00")]


def add_months(day: date, months: int) -> date:
    from app.memberships.rules import add_months as add

    return add(day, months)


def generate(directory: Path, *, members: int, memberships: int, visits: int,
             seed: int = 11) -> None:
    """The CSV files, written row by row (nothing held but one member's memberships)."""
    rng = random.Random(seed)
    per_member = max(memberships // members, 1)
    extra = memberships - per_member * members
    visits_per_membership = visits / max(memberships, 1)
    with (directory / "plans.csv").open("w") as f:
        f.write("plan_id,name,duration_months,price\n")
        for plan_id, name, months, price in PLANS:
            f.write(f"{plan_id},{name},{months},{price}\n")
    written_visits = 0
    first = date(2021, 1, 1)
    last_allowed = date.today() - timedelta(days=1)
    with (directory / "memberships.csv").open("w") as ms, \
            (directory / "visits.csv").open("w") as vs:
        ms.write("membership_id,member,plan,start_date,end_date,price\n")
        vs.write("member,occurred_at\n")
        n = 0
        budget = visits
        for m in range(1, members + 1):
            ref = f"M{m:06d}"
            count = per_member + (1 if m <= extra else 0)
            start = first + timedelta(days=rng.randrange(0, 365))
            for _ in range(count):
                plan_id, _name, months, price = PLANS[rng.randrange(len(PLANS))]
                end = add_months(start, months) - timedelta(days=1)
                n += 1
                ms.write(f"K{n:08d},{ref},{plan_id},{start.isoformat()},{end.isoformat()},"
                         f"{price}\n")
                k = budget if n == memberships else min(
                    budget, int(visits_per_membership * rng.uniform(0.5, 1.5)))
                span = (min(end, last_allowed) - start).days + 1
                if span > 0:
                    lines = []
                    for _ in range(k):
                        day = start + timedelta(days=rng.randrange(span))
                        at = datetime(day.year, day.month, day.day, rng.randrange(6, 22),
                                      rng.randrange(60))
                        lines.append(f"{ref},{at:%Y-%m-%d %H:%M}\n")
                    vs.write("".join(lines))
                    budget -= k
                    written_visits += k
                start = end + timedelta(days=rng.randrange(1, 46))
        print(f"  {n:,} memberships, {written_visits:,} visits written")


def create_members(url: str, count: int) -> int:
    from sqlalchemy import insert

    from app.clubs import service as clubs_service
    from app.core.db import make_engine, make_sessionmaker, transaction
    from app.members.models import Member

    engine = make_engine(url)
    with transaction(make_sessionmaker(engine)) as session:
        club = clubs_service.create_club(session, name="Bench Fitness", timezone="Europe/Berlin")
        rows = []
        for m in range(1, count + 1):
            rows.append({"club_id": club.id, "first_name": f"First{m}", "last_name": f"Last{m}",
                         "external_ref": f"M{m:06d}", "search_name": f"first{m} last{m}"})
            if len(rows) == 10_000:
                session.execute(insert(Member.__table__), rows)
                rows.clear()
        if rows:
            session.execute(insert(Member.__table__), rows)
        club_id = club.id
    engine.dispose()
    return club_id


def run_import(url: str, club_id: int, directory: Path):
    from app.core.db import make_engine, make_sessionmaker, transaction
    from app.imports.history.common import Options
    from app.imports.history.service import find_files, import_history

    engine = make_engine(url)
    files, _ignored = find_files(directory)
    shown: dict[tuple[str, str], int] = {}

    def progress(phase: str, name: str, done: int, total: int | None) -> None:
        if not total:
            return
        step = done * 10 // total
        if shown.get((phase, name), -1) < step:
            shown[(phase, name)] = step
            print(f"  {phase} {name}: {step * 10}%", flush=True)

    started = time.perf_counter()
    with transaction(make_sessionmaker(engine)) as session:
        report = import_history(session, club_id=club_id, files=files, options=Options(),
                                progress=progress)
    seconds = time.perf_counter() - started
    engine.dispose()
    return report, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--memberships", type=int, default=None, help="default 4 per member")
    parser.add_argument("--visits", type=int, default=None, help="default 100 per member")
    parser.add_argument("--keep", action="store_true", help="keep the database and files")
    args = parser.parse_args()
    memberships = args.memberships or args.members * 4
    visits = args.visits if args.visits is not None else args.members * 100
    print(machine())
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    directory = Path(tempfile.mkdtemp(prefix="fitclub-import-bench-"))
    passed = False
    try:
        started = time.perf_counter()
        print(f"writing {args.members:,} members' history into {directory} …")
        generate(directory, members=args.members, memberships=memberships, visits=visits)
        sizes = {p.name: p.stat().st_size for p in directory.iterdir()}
        print("  files: " + ", ".join(f"{k} {v / 1e6:,.1f} MB" for k, v in sizes.items())
              + f" ({time.perf_counter() - started:.1f} s)")
        with fresh_database("postgresql", "import", keep=args.keep) as url:
            club_id = create_members(url, args.members)
            print("importing …")
            report, seconds = run_import(url, club_id, directory)
            rss = peak_rss_mb()
        print(report.summary())
        rows = []
        for f in report.files.values():
            rows.append([f.file, f.rows, f.created, round(f.check_seconds, 1),
                         round(f.seconds - f.check_seconds, 1), round(f.seconds, 1),
                         round(f.rows / f.seconds) if f.seconds else 0])
        print(table(["file", "rows", "created", "check s", "write s", "total s", "rows/s"],
                    rows))
        visit_rate = report.rates.get("visits", 0.0)
        print(f"\nwhole import: {seconds:.1f} s; peak RSS {rss:.0f} MB")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"visits ≥ {VISITS_GOAL:,} rows/s: {verdict(visit_rate >= VISITS_GOAL)} "
              f"({visit_rate:,.0f})")
        print(f"peak memory < {RSS_GOAL_MB} MB: {verdict(rss < RSS_GOAL_MB)} ({rss:.0f} MB)")
        passed = visit_rate >= VISITS_GOAL and rss < RSS_GOAL_MB
    finally:
        if args.keep:
            print(f"(kept files in {directory})")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
