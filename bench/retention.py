"""The retention engine's daily run against the "scan floor", on PostgreSQL.

    python -m bench.retention [--members 100000] [--months 18] [--url URL] [--keep]

1. creates a fresh PostgreSQL database (admin URL: FITCLUB_BENCH_PG_URL) and builds the demo
   club in a child process (100k members, ~3M visits by default), so this process's peak memory
   is the engine's alone; `--url` reuses a database that already holds a demo club;
2. runs the engine two days before the demo's today (the first run: every member is new to the
   engine) and the day before, each followed by a dispatch (recording channels), then times
   **one daily run** for today (stages for every member, visit milestones, stop conditions and
   expiry, planning) — the steady state the scheduler sees each morning;
3. times the **scan floor** in the same process: one SQL statement that aggregates the same
   visits the run reads (84 days per member: count, recent count, last visit), rows fetched;
4. prints both, the ratio (goal ≤ 3×) and the peak memory of the run (goal < 300 MB: Python
   heap peak by tracemalloc in a second, forced run, and the process's peak RSS).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
import tracemalloc
from datetime import timedelta

from bench.common import fresh_database, machine, peak_rss_mb, table, verdict

RATIO_GOAL = 3.0
MEMORY_GOAL_MB = 300.0


def _build(url: str, members: int, months: int) -> None:
    """Build the demo club in a child process (its memory is not ours)."""
    subprocess.run([sys.executable, "-m", "bench.retention", "--build-only", "--url", url,
                    "--members", str(members), "--months", str(months)], check=True)


def _club(url: str):
    from sqlalchemy import func, select

    from app.clubs import service as clubs_service
    from app.clubs.models import Club
    from app.core.db import make_engine, make_sessionmaker, transaction
    from app.members.models import Member

    factory = make_sessionmaker(make_engine(url, pool_size=2, max_overflow=2))
    with transaction(factory) as s:
        club_id, members = s.execute(
            select(Member.club_id, func.count()).group_by(Member.club_id)
            .order_by(func.count().desc()).limit(1)).one()
        club = s.get(Club, club_id)
        return factory, club_id, members, clubs_service.club_today(club), club


def _floor(factory, club, as_of) -> tuple[float, int]:
    """One statement over the same visits the run aggregates: the least the run could cost."""
    from sqlalchemy import case, func, select

    from app.access.models import Visit
    from app.clubs import service as clubs_service
    from app.core.db import transaction
    from app.core.sql import local_day_start
    from app.retention.stages import RECENT_DAYS, WINDOW_DAYS

    zone = clubs_service.club_zone(club)
    stmt = (select(Visit.member_id,
                   func.sum(case((Visit.occurred_at >= local_day_start(
                       zone, as_of - timedelta(days=RECENT_DAYS - 1)), 1), else_=0)),
                   func.count(), func.max(Visit.occurred_at))
            .where(Visit.club_id == club.id,
                   Visit.occurred_at >= local_day_start(
                       zone, as_of - timedelta(days=WINDOW_DAYS - 1)),
                   Visit.occurred_at < local_day_start(zone, as_of + timedelta(days=1)))
            .group_by(Visit.member_id))
    best, rows = float("inf"), 0
    for _ in range(3):
        with transaction(factory) as s:
            started = time.perf_counter()
            rows = len(s.execute(stmt).all())
            best = min(best, time.perf_counter() - started)
    return best, rows


def _run(factory, club_id, as_of, *, now, force=False):
    from app.retention.service import run_day

    started = time.perf_counter()
    report = run_day(factory, club_id=club_id, as_of=as_of, now=now, force=force,
                     source="bench")
    return time.perf_counter() - started, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--url", help="use this database (with a demo club) instead of a new one")
    parser.add_argument("--keep", action="store_true", help="keep the new database")
    parser.add_argument("--reset", action="store_true",
                        help="with --url: empty the engine's tables first")
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.build_only:
        from bench.common import build_demo

        built = build_demo(args.url, members=args.members, months=args.months)
        print(f"demo club built in {built.seconds:.0f}s: {built.result.counts}")
        return 0
    if args.url:
        return _bench(args.url, args)
    with fresh_database("postgresql", "retention", keep=args.keep) as url:
        _build(url, args.members, args.months)
        return _bench(url, args)


ENGINE_TABLES = ("touchpoint_attempts", "interactions", "tasks", "scheduled_touchpoints",
                 "stage_changes", "member_stages", "retention_runs", "retention_state",
                 "retention_member_facts")


def _reset(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:  # DELETE: other domains' tables may reference tasks
        for table in ENGINE_TABLES:
            conn.execute(text(f'DELETE FROM "{table}"'))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ENGINE_TABLES:
            conn.execute(text(f'VACUUM ANALYZE "{table}"'))
    engine.dispose()


def _dispatch(factory, club_id, at) -> int:
    from app.retention.channels import recording
    from app.retention.dispatch import dispatch_due

    return dispatch_due(factory, channels=recording(), now=at, club_id=club_id, batch=500).claimed


def _bench(url: str, args) -> int:
    from datetime import time as clock

    from app.clubs import service as clubs_service
    from app.core.sql import local_at
    from app.retention.service import DAILY_RUN_AT

    if args.reset:
        _reset(url)
    factory, club_id, members, today, club = _club(url)
    zone = clubs_service.club_zone(club)
    print(machine())
    print(f"club {club_id}: {members:,} members; today {today}")

    before, yesterday = today - timedelta(days=2), today - timedelta(days=1)
    first_s, first = _run(factory, club_id, before, now=local_at(zone, before, DAILY_RUN_AT),
                          force=True)
    _dispatch(factory, club_id, local_at(zone, before, clock(12)))
    _run(factory, club_id, yesterday, now=local_at(zone, yesterday, DAILY_RUN_AT), force=True)
    _dispatch(factory, club_id, local_at(zone, yesterday, clock(12)))
    floor_before, floor_rows = _floor(factory, club, today)
    run_s, report = _run(factory, club_id, today, now=local_at(zone, today, DAILY_RUN_AT),
                         force=True)
    floor_after, floor_rows = _floor(factory, club, today)
    floor_s = min(floor_before, floor_after)
    rss = peak_rss_mb()
    tracemalloc.start()
    again_s, _ = _run(factory, club_id, today, now=local_at(zone, today, DAILY_RUN_AT), force=True)
    heap_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()

    ratio = run_s / floor_s if floor_s else float("inf")
    print(table(["measure", "seconds", "notes"], [
        ["first run (two days before, all members new)", first_s,
         f"{sum(first.transitions.values()):,} stage rows written"],
        ["daily run (today)", run_s,
         (f"{sum(report.transitions.values()):,} changes, "
          f"{sum(report.scheduled.values()):,} planned, "
          f"{sum(report.held_out.values()):,} held out")],
        ["scan floor (one aggregate over the visits)", floor_s, f"{floor_rows:,} rows"],
        ["daily run again (nothing changes)", again_s, "under tracemalloc"],
    ]))
    print("first run by phase: " + ", ".join(f"{k} {v:.2f}s" for k, v in first.phases.items()))
    print("daily run by phase: " + ", ".join(f"{k} {v:.2f}s" for k, v in report.phases.items()))
    print(f"stages today: {report.stage_counts}")
    print(f"ratio daily run / scan floor: {ratio:.2f}x (goal <= {RATIO_GOAL:.0f}x) "
          f"{verdict(ratio <= RATIO_GOAL)}")
    peak = max(heap_mb, rss)
    print(f"peak memory: Python heap {heap_mb:.0f} MB (tracemalloc), process RSS {rss:.0f} MB "
          f"(goal < {MEMORY_GOAL_MB:.0f} MB) {verdict(peak < MEMORY_GOAL_MB)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
