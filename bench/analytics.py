"""Analytics endpoints against their "scan floors", on PostgreSQL or SQLite.

    python -m bench.analytics [--backend postgresql] [--members 100000] [--months 18]
                              [--url URL] [--keep] [--runs 3] [--only TEXT]
    python -m bench.analytics --backend sqlite   # 2,000 members, 24 months, 18 of engine history

1. creates a fresh database (PostgreSQL: from the admin URL FITCLUB_BENCH_PG_URL; SQLite: a
   temporary file) and builds the demo club in a child process (PostgreSQL: 100k members, ~3M
   visits, 18 months by default; SQLite: 2,000 members and 24 months, the embedded default's
   size); `--url` reuses a database that already holds one (brought to the head migration);
2. PostgreSQL: adds, with set-based `INSERT … SELECT` (seconds, not a simulation), what the demo
   does not write but the reports read: trainer profiles and PT packages (~8 % of memberships),
   at-risk stage changes (~25 %), a playbook of 8 touchpoint definitions and ~4 scheduled
   touchpoints per membership (10 % held out; sent, skipped, cancelled), call tasks (~30 %) and
   staff interactions with new members — all derived deterministically from the membership ids.
   SQLite: replays the retention engine over the last `--history` months (18 by default, as
   `fitclub retention simulate` does: stage changes, touchpoints, tasks; a few minutes), and
   takes no statistics (`ANALYZE`): a new user's database has none, the plans must not need them;
3. for each report, times the service call (in process, no HTTP, the default period: the last
   twelve calendar months) and, in the same run, its **scan floor**: one aggregate statement
   over the same rows the report must read (named in the table), best of `--runs` each;
4. prints the figures, the ratios and PASS/FAIL against issue 19's goals: on PostgreSQL each
   report ≤ 2× its floor and < 1 s; on SQLite each report < 1 s (the issue's goal for the
   embedded default). The ratios are printed on SQLite too, but not judged: there a floor is a
   single aggregate over a few thousand rows (2–30 ms), and a report's few statements cost some
   milliseconds each whatever the plan, so the ratio says little about the plans.

The machine is shared (2 cores, other engineers' tests and benchmarks): figures vary by tens of
percent from run to run; the table shows the load average at the start and the end.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.common import fresh_database, machine, table, verdict

RATIO_GOAL = 2.0
SECONDS_GOAL = 1.0


def _build(url: str, members: int, months: int, history: int) -> None:
    """Build the demo club (and on SQLite its engine history) in a child process (its memory is
    not ours)."""
    subprocess.run([sys.executable, "-m", "bench.analytics", "--build-only", "--url", url,
                    "--members", str(members), "--months", str(months),
                    "--history", str(history)], check=True)


def _simulate(url: str, months: int) -> None:
    """The retention engine replayed day by day over the last `months` months up to yesterday
    (what `fitclub retention simulate` does), for the club with the most members."""
    from datetime import timedelta

    from app.core.db import make_engine, make_sessionmaker
    from app.memberships.rules import add_months
    from app.retention import service as retention_service

    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    club_id, _members, today = _club(factory)
    started = time.perf_counter()
    result = retention_service.simulate(factory, club_id=club_id,
                                        start=add_months(today, -months),
                                        end=today - timedelta(days=1))
    print(f"engine history in {time.perf_counter() - started:.0f}s: {result.summary()}")
    engine.dispose()


EXTRAS = [
    # trainers and a PT product
    """INSERT INTO trainer_profiles (club_id, user_id, specialities, active, created_at, updated_at)
       SELECT cs.club_id, cs.user_id, '[]', true, now(), now() FROM club_staff cs
       WHERE cs.club_id = :club AND cs.role = 'trainer'
       AND NOT EXISTS (SELECT 1 FROM trainer_profiles t WHERE t.user_id = cs.user_id)""",
    """INSERT INTO pt_products (club_id, name, sessions, price, validity_days, active, created_at,
                               updated_at)
       SELECT :club, 'PT 10', 10, 450, 90, true, now(), now()
       WHERE NOT EXISTS (SELECT 1 FROM pt_products WHERE club_id = :club)""",
    # a PT package with a home trainer for ~8 % of memberships
    """INSERT INTO pt_packages (club_id, member_id, product_id, trainer_id, sessions_total,
                               sessions_left, price, valid_from, valid_until, created_at)
       SELECT m.club_id, m.member_id, p.id, t.id, 10, 0, 450, m.start_date, m.start_date + 89,
              m.created_at
       FROM memberships m
       JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM trainer_profiles
             WHERE club_id = :club) t ON t.k = m.member_id % 3
       JOIN pt_products p ON p.club_id = m.club_id
       WHERE m.club_id = :club AND (m.id * 2654435761) % 100 < 8""",
    # an at-risk episode in ~25 % of memberships
    """INSERT INTO stage_changes (club_id, member_id, from_stage, to_stage, on_date, at, reason,
                                 source)
       SELECT m.club_id, m.member_id, 'active', 'at_risk',
              m.start_date + CAST((m.id * 7919) % GREATEST(m.end_date - m.start_date, 1) AS INTEGER),
              m.created_at, 'bench', 'daily_run'
       FROM memberships m WHERE m.club_id = :club AND (m.id * 40503) % 100 < 25""",
    # a playbook
    """INSERT INTO touchpoint_definitions (club_id, key, name, stage, trigger, days, channel,
              subject_template, body_template, stop_condition, priority, enabled, is_default,
              created_at, updated_at)
       SELECT :club, k, k, st, 'days_after_stage_entry', 0, ch, '', 'x', 'none', 50, true, true,
              now(), now()
       FROM (VALUES ('welcome', 'onboarding', 'email'), ('how_is_it_going', 'onboarding',
                     'call_task'), ('class_invite', 'onboarding', 'email'),
                    ('miss_you', 'at_risk', 'email'), ('renewal_reminder', 'renewal_due', 'email'),
                    ('renewal_call', 'renewal_due', 'call_task'), ('renewal_last', 'renewal_due',
                     'sms'), ('winback', 'lapsed', 'email')) AS d(k, st, ch)
       WHERE NOT EXISTS (SELECT 1 FROM touchpoint_definitions WHERE club_id = :club)""",
    # ~4 touchpoints per membership: 10 % held out, else sent / skipped / cancelled
    """INSERT INTO scheduled_touchpoints (club_id, member_id, definition_id, cycle, stage, channel,
              priority, membership_id, trigger_on, planned_at, first_due_at, due_at, status,
              reason, attempts, sent_at, updated_at)
       SELECT m.club_id, m.member_id, d.id, 'm' || m.id, d.stage, d.channel, 50, m.id, x.day,
              x.at, x.at, x.at,
              CASE WHEN x.h < 10 THEN 'held_out' WHEN x.h < 82 THEN 'sent'
                   WHEN x.h < 92 THEN 'skipped' ELSE 'cancelled' END,
              NULL, 1, CASE WHEN x.h >= 10 AND x.h < 82 THEN x.at END, x.at
       FROM memberships m
       JOIN touchpoint_definitions d ON d.club_id = m.club_id
       CROSS JOIN LATERAL (SELECT CAST((m.id + d.id * 31) % GREATEST(m.end_date - m.start_date,
                                  1) AS INTEGER) AS offs) o
       CROSS JOIN LATERAL (SELECT m.start_date + o.offs AS day,
                                  ((m.member_id * 2654435761 + d.id * 40503) % 100) AS h,
                                  m.created_at + make_interval(days => o.offs) AS at) x
       WHERE m.club_id = :club AND (m.id + d.id) % 2 = 0
       ON CONFLICT DO NOTHING""",
    # a call task for ~30 % of memberships, a week before the end; most done, some late
    """INSERT INTO tasks (club_id, member_id, title, kind, assignee_role, due_date, status,
                         completed_at, created_at, updated_at)
       SELECT m.club_id, m.member_id, 'Renewal call', 'renewal_offer', 'front_desk',
              m.end_date - 7,
              CASE WHEN m.id % 10 < 7 THEN 'done' WHEN m.id % 10 < 8 THEN 'cancelled'
                   ELSE 'open' END,
              CASE WHEN m.id % 10 < 7 THEN m.created_at + make_interval(days =>
                   CAST(GREATEST(m.end_date - m.start_date - 7 + (m.id % 3) - 1, 0) AS INTEGER))
                   END,
              m.created_at, m.created_at
       FROM memberships m WHERE m.club_id = :club AND (m.id * 69069) % 100 < 30""",
    # staff interactions with new members (first memberships), 0–5 in their first weeks
    """INSERT INTO interactions (club_id, member_id, kind, channel, summary, staff_id, occurred_at)
       SELECT m.club_id, m.member_id, 'desk_visit', 'desk', 'Hello', cs.user_id,
              m.created_at + make_interval(days => CAST(g * 5 AS INTEGER))
       FROM memberships m
       JOIN club_staff cs ON cs.club_id = m.club_id AND cs.role = 'front_desk'
       CROSS JOIN generate_series(1, 3) g
       WHERE m.club_id = :club AND m.renews_id IS NULL AND (m.id + g + cs.user_id) % 4 < 2""",
]


def _extras(url: str, club_id: int) -> dict[str, int]:
    from sqlalchemy import text

    from app.core.db import make_engine

    engine = make_engine(url, pool_size=1, max_overflow=0)
    counts = {}
    if engine.dialect.name == "sqlite":  # the engine's own history (built with the club)
        with engine.connect() as conn:
            for t in ("stage_changes", "scheduled_touchpoints", "tasks", "interactions"):
                counts[t] = conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar()
        engine.dispose()
        return counts
    with engine.begin() as conn:
        if conn.execute(text("SELECT count(*) FROM scheduled_touchpoints")).scalar():
            pass  # already there (a reused database)
        else:
            for statement in EXTRAS:
                conn.execute(text(statement), {"club": club_id})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # the state autovacuum keeps a live database in: statistics, and visibility maps so
        # that index-only scans need not visit the heap (a fresh bulk load has none)
        conn.exec_driver_sql("VACUUM ANALYZE")
        for t in ("trainer_profiles", "pt_packages", "stage_changes", "touchpoint_definitions",
                  "scheduled_touchpoints", "tasks", "interactions"):
            counts[t] = conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar()
    engine.dispose()
    return counts


def _club(factory):
    from sqlalchemy import func, select

    from app.clubs import service as clubs_service
    from app.clubs.models import Club
    from app.core.db import transaction
    from app.members.models import Member

    with transaction(factory) as s:
        club_id, members = s.execute(
            select(Member.club_id, func.count()).group_by(Member.club_id)
            .order_by(func.count().desc()).limit(1)).one()
        club = s.get(Club, club_id)
        return club_id, members, clubs_service.club_today(club)


def _best(factory, fn: Callable, runs: int) -> tuple[float, object]:
    from app.core.db import transaction

    best, result = float("inf"), None
    for _ in range(runs):
        with transaction(factory) as s:
            started = time.perf_counter()
            result = fn(s)
            best = min(best, time.perf_counter() - started)
    return best, result


@dataclass
class Floor:
    """One aggregate per set of rows a report reads; a report that reads several sets (the
    KPIs: members, sales, memberships, visits) is measured against the sum of their scans."""

    name: str
    statements: tuple[str, ...]

    def run(self, session, params) -> object:
        from sqlalchemy import text

        return [session.execute(text(sql), params).one() for sql in self.statements]

    def __add__(self, other: Floor) -> Floor:
        return Floor(f"{self.name}+{other.name}", self.statements + other.statements)


def floor(name: str, *statements: str) -> Floor:
    return Floor(name, statements)


def _sqlite_params(params: dict) -> dict:
    """The floors' parameters as SQLite stores them: ISO dates, naive UTC instants."""
    from datetime import UTC, date, datetime

    def stored(value):
        if isinstance(value, datetime):
            return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(value, date):
            return value.isoformat()
        return value

    return {k: stored(v) for k, v in params.items()}


# The floors, for the default period [lo, hi] (t0, t1: its first and last instant; w0: 56 days
# before lo, the attendance window of the first memberships). Legend printed with the table.
LEGEND = """scan floors (one aggregate statement per row set, summed when a report reads several):
  E   memberships ending in the period joined to the same members' memberships
  M   all memberships, grouped per member          V   visits of the period
  V8  visits of the period and the 8 weeks before  PT  PT packages and sessions
  S   stage changes                                T   touchpoints of the memberships ending
  P   touchpoints, tasks, interactions and cancellations of the period
  K   members recorded and receipts (with their lines) of the period"""
ENDED = floor("E",
              "SELECT count(*), sum(n.price) FROM memberships m JOIN memberships n "
              "ON n.member_id = m.member_id WHERE m.club_id = :club "
              "AND m.end_date BETWEEN :lo AND :hi")
PT = floor("PT",
           "SELECT count(*), sum(trainer_id) FROM pt_packages WHERE club_id = :club",
           "SELECT count(*), sum(trainer_id) FROM pt_sessions WHERE club_id = :club")
WINDOW_VISITS = floor("V8",
                      "SELECT count(*), sum(member_id) FROM visits WHERE club_id = :club "
                      "AND occurred_at >= :w0 AND occurred_at < :t1")
STAGES = floor("S", "SELECT count(*), sum(member_id) FROM stage_changes "
                                "WHERE club_id = :club")
TOUCHPOINTS = floor("T",
                    "SELECT count(*), sum(t.definition_id) FROM memberships m "
                    "JOIN scheduled_touchpoints t ON t.membership_id = m.id "
                    "WHERE m.club_id = :club AND m.end_date BETWEEN :lo AND :hi")
ALL_MEMBERSHIPS = floor("M",
                        "SELECT count(*), sum(n) FROM (SELECT member_id, count(*) AS n, "
                        "max(end_date) FROM memberships WHERE club_id = :club "
                        "GROUP BY member_id) t")
VISITS = floor("V",
               "SELECT count(*), sum(member_id) FROM visits WHERE club_id = :club "
               "AND occurred_at >= :t0 AND occurred_at < :t1")
PROCESS_ROWS = floor("P",
                     "SELECT count(*), sum(definition_id) FROM scheduled_touchpoints "
                     "WHERE club_id = :club AND trigger_on BETWEEN :lo AND :hi",
                     "SELECT count(*), sum(member_id) FROM tasks WHERE club_id = :club "
                     "AND due_date BETWEEN :lo AND :hi",
                     "SELECT count(*), sum(member_id) FROM interactions WHERE club_id = :club "
                     "AND occurred_at >= :t0 AND occurred_at < :t1",
                     "SELECT count(*), sum(price) FROM memberships WHERE club_id = :club "
                     "AND cancelled_on BETWEEN :lo AND :hi")
SALES = floor("K",
              "SELECT count(*), sum(id) FROM members WHERE club_id = :club "
              "AND created_at >= :t0 AND created_at < :t1",
              "SELECT count(*), sum(l.amount) FROM sales s JOIN sale_lines l ON l.sale_id = s.id "
              "WHERE s.club_id = :club AND s.created_at >= :t0 AND s.created_at < :t1")


def _reports():
    from app.analytics import service

    def call(fn, **kw):
        return lambda s, club, as_of: fn(s, club_id=club, as_of=as_of, **kw)

    return [
        ("/renewals", call(service.renewal_report), ENDED),
        ("/renewals/breakdown?by=plan", call(service.renewal_breakdown, by="plan"), ENDED),
        ("/renewals/breakdown?by=cohort", call(service.renewal_breakdown, by="cohort"),
         ALL_MEMBERSHIPS),
        ("/renewals/breakdown?by=trainer", call(service.renewal_breakdown, by="trainer"),
         ENDED + PT),
        ("/renewals/breakdown?by=attendance", call(service.renewal_breakdown, by="attendance"),
         ENDED + WINDOW_VISITS),
        ("/renewals/breakdown?by=stage", call(service.renewal_breakdown, by="stage"),
         ENDED + STAGES),
        ("/renewals/breakdown?by=channel", call(service.renewal_breakdown, by="channel"),
         ENDED + TOUCHPOINTS),
        ("/touchpoints", call(service.touchpoint_effectiveness), ENDED + TOUCHPOINTS),
        ("/retention/monthly", call(service.monthly), ALL_MEMBERSHIPS),
        ("/retention/cohorts", call(service.cohorts), ALL_MEMBERSHIPS),
        ("/retention/survival", call(service.survival), ALL_MEMBERSHIPS),
        ("/retention/before-after", lambda s, club, as_of: service.before_after(
            s, club_id=club, as_of=as_of, on=as_of.replace(day=1)), ENDED),
        ("/process", call(service.process_report), ALL_MEMBERSHIPS + VISITS + PROCESS_ROWS),
        ("/kpis", call(service.kpi_report), SALES + ALL_MEMBERSHIPS + VISITS),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--members", type=int,
                        help="demo club size (PostgreSQL 100,000; SQLite 2,000)")
    parser.add_argument("--months", type=int, help="demo history (PostgreSQL 18; SQLite 24)")
    parser.add_argument("--history", type=int, default=18,
                        help="SQLite: months of engine history replayed (0: none)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", help="use this database (with a demo club) instead of a new one")
    parser.add_argument("--keep", action="store_true", help="keep the new database")
    parser.add_argument("--only", help="only reports whose path contains this text")
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sqlite = args.backend == "sqlite" or (args.url or "").startswith("sqlite")
    if args.members is None:
        args.members = 2_000 if sqlite else 100_000
    if args.months is None:
        args.months = 24 if sqlite else 18

    if args.build_only:
        from bench.common import build_demo

        built = build_demo(args.url, members=args.members, months=args.months)
        print(f"demo club built in {built.seconds:.0f}s: {built.result.counts}")
        if sqlite and args.history:
            _simulate(args.url, args.history)
        return 0
    if args.url:
        from app.core import migrate

        migrate.upgrade(args.url)  # a reused database gets this branch's indexes
        return _bench(args.url, args)
    with fresh_database(args.backend, "analytics", keep=args.keep) as url:
        _build(url, args.members, args.months, args.history)
        return _bench(url, args)


def _bench(url: str, args) -> int:
    from datetime import timedelta

    from app.analytics.common import default_from
    from app.clubs import service as clubs_service
    from app.clubs.models import Club
    from app.core.db import make_engine, make_sessionmaker, transaction

    factory = make_sessionmaker(make_engine(url, pool_size=2, max_overflow=2))
    club_id, members, today = _club(factory)
    started = time.perf_counter()
    extras = _extras(url, club_id)
    print(machine())
    print(f"club {club_id}: {members:,} members; today {today}; extras added in "
          f"{time.perf_counter() - started:.0f}s: {extras}")
    with transaction(factory) as s:
        zone = clubs_service.club_zone(s.get(Club, club_id))
        counts = {t: s.execute(__import__("sqlalchemy").text(f"SELECT count(*) FROM {t}"))
                  .scalar() for t in ("memberships", "visits")}
    print(f"memberships {counts['memberships']:,}, visits {counts['visits']:,}")
    lo = default_from(today)
    from app.core.sql import local_day_start

    params = {"club": club_id, "lo": lo, "hi": today, "t0": local_day_start(zone, lo),
              "t1": local_day_start(zone, today + timedelta(days=1)),
              "w0": local_day_start(zone, lo - timedelta(days=56))}
    backend = factory.kw["bind"].dialect.name
    if backend == "sqlite":
        params = _sqlite_params(params)
    load_before = os.getloadavg()
    rows, ok, fast = [], True, 0
    floors: dict[str, float] = {}
    for path, fn, floor in _reports():
        if args.only and args.only not in path:
            continue
        if floor.name not in floors:
            floors[floor.name], _ = _best(factory, lambda s, f=floor: f.run(s, params), args.runs)
        seconds, _ = _best(factory, lambda s, f=fn: f(s, club_id, today), args.runs)
        floor_s = floors[floor.name]
        ratio = seconds / floor_s if floor_s else float("inf")
        good = (ratio <= RATIO_GOAL or backend == "sqlite") and seconds < SECONDS_GOAL
        ok &= good
        fast += seconds < SECONDS_GOAL
        rows.append([path, round(seconds * 1000), floor.name, round(floor_s * 1000),
                     f"{ratio:.2f}x", "yes" if seconds < SECONDS_GOAL else "NO", verdict(good)])
    load_after = os.getloadavg()
    print(f"{backend}; period {lo} … {today}; best of {args.runs} runs each; load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (2 cores, shared)")
    print(table(["report", "ms", "scan floor", "floor ms", "ratio", "< 1 s", "goal"], rows))
    print(LEGEND)
    within = sum(float(row[4][:-1]) <= RATIO_GOAL and row[5] == "yes" for row in rows)
    print(f"under {SECONDS_GOAL:.0f} s: {fast} of {len(rows)}; within {RATIO_GOAL:.0f}x their "
          f"floor and under {SECONDS_GOAL:.0f} s: {within} of {len(rows)}")
    goal = (f"each report < {SECONDS_GOAL:.0f} s (SQLite; ratios not judged)"
            if backend == "sqlite" else
            f"each report <= {RATIO_GOAL:.0f}x its floor and < {SECONDS_GOAL:.0f} s")
    print(f"goal: {goal} — {verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
