"""A chain on one PostgreSQL: many demo clubs, the daily run for all, reports, check-ins under load.

    python -m bench.chain [--clubs 200] [--members 1000000] [--months 18] [--url URL]
                          [--keep-db] [--build-only] [--rate 300] [--seconds 30] [--workers 2]

Issue #19, "Scale past one club": 1,000,000 members and ~30M visits across 200 clubs (the
defaults; the demo gives ~28 visits a person). Steps:

1. creates a fresh PostgreSQL database (admin URL: FITCLUB_BENCH_PG_URL) and builds the chain in
   a child process (its memory is not ours): `--clubs` demo clubs, one after another, each with
   `--members / --clubs` people and `--months` of history (`app.demo.generator`, seeds 7, 8, …,
   staff under `clubNNN.demo.fitclub`), then `VACUUM ANALYZE`. `--url` reuses a database built
   this way (an empty one is built first); `--build-only` stops after the build (with a new
   database: kept);
2. **the daily run for all clubs** exactly as the scheduler does it
   (`app.retention.service.run_due_clubs`, what `jobs.daily_job` calls): first for two days before
   today (the first run: every member new to the engine) and the day before, each followed by a
   dispatch of the due touchpoints, then timed for today; in a child process, so its peak RSS is
   the engine's alone (goal: ≤ 10 minutes for the chain). Before it, the engine's, the extras'
   and the stored facts' tables are truncated, so a database can be measured again;
3. adds bench.analytics' derived rows (PT packages, at-risk episodes, touchpoints, tasks,
   interactions; `bench.analytics.EXTRAS`) to every club, then `VACUUM ANALYZE`; then one report
   per club, timed: a club's first report builds its stored analytics facts (the demo loads with
   triggers off, so there are none yet; afterwards triggers keep them current);
4. **reports**: each of bench.analytics' reports for one club (the first; best of `--runs`), and
   — since the API has no chain-wide (cross-club) report, every report is one club's — each
   report for every club back to back: total and worst club (goal: ≤ 5 s each);
5. **check-ins under load**: the app served by bench.checkin's uvicorn server (2 workers), a new
   turnstile in every club, valid cards of every club, driven open loop at `--rate`/s by
   bench.checkin's client: once alone, then **while** a forced re-run of today's daily run for
   every club and the slowest report for every club run in two child processes (goal: p99 < 15
   ms; the load lasts as long as the daily run, at least `--seconds`);
6. memory: the peak RSS of the daily run's process, and the database's size on disk.

The machine is shared (2 cores, other engineers' tests and benchmarks); the load average is shown.
Run it at the issue's size with no options (expect ~2 h on 2 cores: ~1 h building, ~35 min of
derived rows for the reports, at ~10 s a club).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from bench.common import fresh_database, machine, peak_rss_mb, table, verdict

DAILY_GOAL_S = 600.0
REPORT_GOAL_S = 5.0
P99_GOAL_MS = 15.0
TIMEZONE = "Europe/Berlin"  # the demo's (app.demo.data.DEMO_TIMEZONE)


def _child(*args: str, capture: bool = False) -> dict | None:
    """This module in a child process (`--job ...`); its last output line is JSON."""
    cmd = [sys.executable, "-m", "bench.chain", *args]
    if not capture:
        subprocess.run(cmd, check=True)
        return None
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    for line in lines[:-1]:
        print(line)
    return json.loads(lines[-1])


# --- 1. the build --------------------------------------------------------------------------------

def _today() -> date:
    from app.core import clock

    return clock.today(TIMEZONE)


def _sizes(clubs: int, members: int) -> list[int]:
    base, extra = divmod(members, clubs)
    return [base + (1 if i < extra else 0) for i in range(clubs)]


def build_chain(url: str, *, clubs: int, members: int, months: int, as_of: date) -> None:
    """`clubs` demo clubs in `url`, one transaction each, then VACUUM ANALYZE."""
    from sqlalchemy import create_engine

    from app.core.db import make_engine, make_sessionmaker
    from app.demo.generator import DemoOptions, build_demo

    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    started = time.perf_counter()
    visits = 0
    for i, size in enumerate(_sizes(clubs, members)):
        result = build_demo(factory, DemoOptions(
            members=size, months=months, seed=7 + i, as_of=as_of, dues=False,
            club_name=f"Chain club {i + 1:03d}", staff_domain=f"club{i + 1:03d}.demo.fitclub"))
        visits += result.counts["visits"]
        print(f"  club {i + 1}/{clubs} (id {result.club_id}): {size:,} people, "
              f"{result.counts['visits']:,} visits in {result.seconds:.1f} s; total "
              f"{visits:,} visits, {time.perf_counter() - started:.0f} s", flush=True)
    engine.dispose()
    t0 = time.perf_counter()
    raw = create_engine(url, isolation_level="AUTOCOMMIT")
    with raw.connect() as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    raw.dispose()
    print(f"  VACUUM ANALYZE in {time.perf_counter() - t0:.0f} s; built in "
          f"{time.perf_counter() - started:.0f} s (peak RSS {peak_rss_mb():.0f} MB)", flush=True)


def _club_count(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM clubs")).scalar()
    engine.dispose()
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chain",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--clubs", type=int, default=200)
    parser.add_argument("--members", type=int, default=1_000_000, help="people in all clubs")
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--url", help="use this database (built by this bench; empty: build)")
    parser.add_argument("--keep-db", action="store_true", help="keep the new database")
    parser.add_argument("--build-only", action="store_true", help="stop after the build")
    parser.add_argument("--runs", type=int, default=2, help="runs of each one-club report")
    parser.add_argument("--rate", type=float, default=300.0, help="check-ins per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="least load time per run")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--as-of", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.job:
        return _job(args)
    if args.url:
        from app.core import migrate

        migrate.upgrade(args.url)
        if not _club_count(args.url):
            _build(args)
        return 0 if args.build_only else _bench(args.url, args)
    with fresh_database("postgresql", "chain", keep=args.keep_db or args.build_only) as url:
        args.url = url
        _build(args)
        return 0 if args.build_only else _bench(url, args)


def _build(args) -> None:
    print(f"building {args.clubs} clubs, {args.members:,} people, {args.months} months "
          f"into {args.url} …", flush=True)
    started = time.perf_counter()
    _child("--job", "build", "--url", args.url, "--clubs", str(args.clubs), "--members",
           str(args.members), "--months", str(args.months), "--as-of", _today().isoformat())
    args.build_seconds = time.perf_counter() - started


def _job(args) -> int:
    as_of = date.fromisoformat(args.as_of) if args.as_of else None
    if args.job == "build":
        build_chain(args.url, clubs=args.clubs, members=args.members, months=args.months,
                    as_of=as_of)
        return 0
    if args.job == "engine":
        print(json.dumps(engine_days(args.url, as_of)))
        return 0
    if args.job == "daily":
        print(json.dumps(forced_daily_run(args.url, as_of)))
        return 0
    if args.job == "reports":
        report_loop(args.url, as_of, args.report)
        return 0
    raise SystemExit(f"unknown job {args.job}")


# --- 2. the daily run ---------------------------------------------------------------------------

ENGINE_TABLES = ("touchpoint_attempts", "interactions", "tasks", "scheduled_touchpoints",
                 "stage_changes", "member_stages", "retention_runs", "retention_state",
                 "pt_packages",  # bench.retention's, and the PT packages the extras add
                 # the analytics' stored facts: built by a club's first report after the load
                 "analytics_membership_facts", "analytics_fact_builds", "analytics_fact_dirty")


def _reset(url: str) -> None:
    """Empty what the engine and the extras wrote (a reused database starts as a built one).

    TRUNCATE, not DELETE (bench.retention's): with millions of touchpoints, DELETE's per-row
    foreign-key checks take many minutes. CASCADE also empties the tables that refer to these
    (PT sessions): nothing else in a database this bench built."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {', '.join(ENGINE_TABLES)} CASCADE")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in ENGINE_TABLES:
            conn.exec_driver_sql(f'ANALYZE "{name}"')
    engine.dispose()


def _factory(url: str):
    from app.core.db import make_engine, make_sessionmaker

    return make_sessionmaker(make_engine(url, pool_size=2, max_overflow=2))


def _scheduler_day(factory, day: date) -> tuple[float, list]:
    """What `jobs.daily_job` does on `day` at the run's hour: `run_due_clubs`, timed."""
    from zoneinfo import ZoneInfo

    from app.core.sql import local_at
    from app.retention.service import DAILY_RUN_AT, run_due_clubs

    started = time.perf_counter()
    reports = run_due_clubs(factory, now=local_at(ZoneInfo(TIMEZONE), day, DAILY_RUN_AT))
    return time.perf_counter() - started, reports


def _dispatch(factory, day: date) -> int:
    from datetime import time as clock_time
    from zoneinfo import ZoneInfo

    from app.core.sql import local_at
    from app.retention.channels import recording
    from app.retention.dispatch import dispatch_due

    return dispatch_due(factory, channels=recording(), batch=500,
                        now=local_at(ZoneInfo(TIMEZONE), day, clock_time(12))).claimed


def engine_days(url: str, today: date) -> dict:
    """The first run two days before today, the day before, then today's run, timed (JSON)."""
    factory = _factory(url)
    out: dict = {}
    for label, day in (("first", today - timedelta(days=2)), ("yesterday",
                                                               today - timedelta(days=1))):
        seconds, reports = _scheduler_day(factory, day)
        out[f"{label}_s"] = seconds
        out[f"{label}_clubs"] = len(reports)
        out[f"{label}_changes"] = sum(sum(r.transitions.values()) for r in reports)
        out[f"{label}_dispatched"] = _dispatch(factory, day)
        print(f"  engine {label} ({day}): {len(reports)} clubs in {seconds:.1f} s", flush=True)
    rss_before = peak_rss_mb()
    seconds, reports = _scheduler_day(factory, today)
    out.update(daily_s=seconds, daily_clubs=len(reports),
               daily_members=sum(r.members for r in reports),
               daily_changes=sum(sum(r.transitions.values()) for r in reports),
               daily_planned=sum(sum(r.scheduled.values()) for r in reports),
               daily_slowest_s=max((r.seconds for r in reports), default=0.0),
               rss_before_daily_mb=rss_before, rss_mb=peak_rss_mb())
    phases: dict[str, float] = {}
    for r in reports:
        for k, v in r.phases.items():
            phases[k] = phases.get(k, 0.0) + v
    out["daily_phases"] = phases
    return out


def forced_daily_run(url: str, today: date) -> dict:
    """Today's run again for every club, as `run_due_clubs` calls it but forced (it is done)."""
    from zoneinfo import ZoneInfo

    from app.core.sql import local_at
    from app.retention.service import DAILY_RUN_AT, club_ids, run_day

    factory = _factory(url)
    now = local_at(ZoneInfo(TIMEZONE), today, DAILY_RUN_AT)
    started = time.perf_counter()
    changes = 0
    for club_id in club_ids(factory):
        report = run_day(factory, club_id=club_id, as_of=today, now=now, source="scheduler",
                         force=True)
        changes += sum(report.transitions.values())
    return {"seconds": time.perf_counter() - started, "changes": changes, "rss_mb": peak_rss_mb()}


# --- 3./4. reports ------------------------------------------------------------------------------

def add_extras(url: str, clubs: list[int]) -> float:
    """bench.analytics' derived rows for every club, then VACUUM ANALYZE; seconds."""
    from sqlalchemy import create_engine, text

    from bench.analytics import EXTRAS

    started = time.perf_counter()
    engine = create_engine(url)
    for club_id in clubs:
        with engine.begin() as conn:
            for statement in EXTRAS:
                conn.execute(text(statement), {"club": club_id})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    return time.perf_counter() - started


FACTS_REPORT = "/renewals/breakdown?by=cohort"  # reads the stored facts (ensure_facts)


def build_facts(factory, clubs: list[int], today: date) -> tuple[float, float]:
    """Each club's first report after the load builds its stored analytics facts (the demo
    loads with triggers off, so none exist yet; afterwards triggers keep them current): one
    report per club, timed, so the timed reports see the steady state. (total, worst) s."""
    fn = _report_fns()[FACTS_REPORT]
    each = [_timed(factory, fn, club_id, today) for club_id in clubs]
    return sum(each), max(each)


def _report_fns() -> dict:
    from bench.analytics import _reports

    return {path: fn for path, fn, _floor in _reports()}


def _timed(factory, fn, club_id: int, today: date) -> float:
    from app.core.db import transaction

    with transaction(factory) as s:
        started = time.perf_counter()
        fn(s, club_id, today)
        return time.perf_counter() - started


def time_reports(factory, clubs: list[int], today: date, runs: int) -> list[dict]:
    """Each report: best of `runs` for the first club; then for every club back to back."""
    rows = []
    for path, fn in _report_fns().items():
        one = min(_timed(factory, fn, clubs[0], today) for _ in range(runs))
        each = [_timed(factory, fn, club_id, today) for club_id in clubs]
        rows.append({"path": path, "one_s": one, "chain_s": sum(each), "worst_s": max(each),
                     "worst_club": clubs[each.index(max(each))]})
        print(f"  {path}: one club {one * 1000:.0f} ms; {len(clubs)} clubs {sum(each):.1f} s "
              f"(worst {max(each) * 1000:.0f} ms)", flush=True)
    return rows


def report_loop(url: str, today: date, path: str) -> None:
    """One report for every club, over and over (until the parent stops this process); one
    line per report."""
    from app.retention.service import club_ids

    factory = _factory(url)
    fn = _report_fns()[path]
    clubs = club_ids(factory)
    while True:
        for club_id in clubs:
            print(f"{club_id} {_timed(factory, fn, club_id, today):.4f}", flush=True)



# --- 5. check-ins under load ---------------------------------------------------------------------

class ChainRequests:
    """bench.checkin's request maker for every club's turnstile in turn."""

    def __init__(self, address: str, turnstiles: list[tuple[str, list[str]]]):
        from bench.checkin import Requests

        self.each = [Requests(address, key, cards) for key, cards in turnstiles if cards]
        self.n = 0

    def check_in(self) -> bytes:
        self.n += 1
        return self.each[self.n % len(self.each)].check_in()


def turnstiles(url: str, clubs: list[int]) -> list[tuple[str, list[str]]]:
    """A new turnstile in every club (its key), anti-passback off, the club's valid cards."""
    from app.clubs import service as clubs_service
    from app.core.db import make_engine, make_sessionmaker, transaction
    from bench.checkin import set_anti_passback, valid_cards

    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    out = []
    stamp = int(time.time())  # wall-clock: a unique device name in a reused database
    for club_id in clubs:
        with transaction(factory) as session:
            _device, key = clubs_service.add_device(
                session, club=clubs_service.get_club(session, club_id),
                name=f"bench chain {stamp}", direction="in")
        set_anti_passback(url, club_id, 0)
        out.append((key, valid_cards(url, club_id)))
    engine.dispose()
    return out


def _merge(name: str, runs: list):
    from collections import Counter

    from bench.checkin import Run

    merged = Run(name, sum(r.seconds for r in runs))
    for r in runs:
        merged.latencies += r.latencies
        merged.statuses += r.statuses
        merged.reasons += r.reasons
        merged.offered += r.offered
    merged.reasons = Counter(merged.reasons)
    return merged


def load_while(address: str, make, *, rate: float, least: float, busy) -> tuple:
    """Open-loop check-ins in 10-second pieces until `least` seconds passed and `busy()` is
    False; the merged run and the pieces' count."""
    from bench.checkin import open_loop

    pieces, started = [], time.perf_counter()
    while not pieces or time.perf_counter() - started < least or busy():
        pieces.append(asyncio.run(open_loop("under load", address, make, rate=rate, seconds=10,
                                            warmup=0.0 if pieces else 2.0, checkin=True)))
    return _merge("under load", pieces), len(pieces)


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "bench.chain", *args], stdout=out,
                                stderr=subprocess.STDOUT)


def checkins(url: str, clubs: list[int], today: date, args, slow_report: str) -> dict:
    """The open loop alone, then while the forced daily run and `slow_report` for every club
    run in child processes."""
    from bench.checkin import free_port, open_loop, serve

    cards = turnstiles(url, clubs)
    print(f"  {len(cards)} turnstiles, {sum(len(c) for _, c in cards):,} valid cards", flush=True)
    logs = Path(f"/tmp/fitclub-bench-chain-{os.getpid()}")
    logs.mkdir(exist_ok=True)
    out: dict = {}
    with serve(url, workers=args.workers, port=free_port(), log=logs / "uvicorn.log") as address:
        requests = ChainRequests(address, cards)
        alone = asyncio.run(open_loop("alone", address, requests.check_in, rate=args.rate,
                                      seconds=args.seconds, warmup=2.0, checkin=True))
        print(f"  alone: p99 {alone.ms(99):.1f} ms", flush=True)
        daily = _spawn(["--job", "daily", "--url", url, "--as-of", today.isoformat()],
                       logs / "daily.log")
        reports = _spawn(["--job", "reports", "--url", url, "--as-of", today.isoformat(),
                          "--report", slow_report], logs / "reports.log")
        started = time.perf_counter()
        try:
            loaded, pieces = load_while(address, requests.check_in, rate=args.rate,
                                        least=args.seconds, busy=lambda: daily.poll() is None)
        finally:
            reports.terminate()  # the report loop runs until the daily run is over
            reports.wait()
            daily.wait()
        out["load_s"] = time.perf_counter() - started
    lines = (logs / "daily.log").read_text().strip().splitlines()
    out["daily"] = json.loads(lines[-1]) if daily.returncode == 0 else {"error": lines[-5:]}
    done = [line.split() for line in (logs / "reports.log").read_text().splitlines()
            if line[:1].isdigit()]
    out["reports_done"] = len(done)
    out["report_worst_s"] = max((float(t) for _, t in done), default=float("nan"))
    out.update(alone=alone, loaded=loaded, pieces=pieces, logs=str(logs))
    return out


# --- the whole bench ----------------------------------------------------------------------------

def _counts(url: str) -> dict:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.connect() as conn:
        out = {t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar()
               for t in ("clubs", "members", "memberships", "visits")}
        out["db_bytes"] = conn.exec_driver_sql(
            "SELECT pg_database_size(current_database())").scalar()
        out["visits_bytes"] = conn.exec_driver_sql(
            "SELECT pg_total_relation_size('visits') + pg_total_relation_size('access_events')"
        ).scalar()
        out["pg"] = conn.exec_driver_sql("SHOW server_version").scalar()
        out["shared_buffers"] = conn.exec_driver_sql("SHOW shared_buffers").scalar()
    engine.dispose()
    return out


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:,.0f} MB"


# long: the bench's steps in order, each printing as it goes; the table needs all their figures
def _bench(url: str, args) -> int:
    from app.retention.service import club_ids
    from bench.checkin import P99_GOAL_MS as CHECKIN_P99_MS
    from bench.checkin import _loop_policy

    print(machine())
    load_start = os.getloadavg()
    today = _today()
    _reset(url)
    counts = _counts(url)
    factory = _factory(url)
    clubs = club_ids(factory)
    print(f"{counts['clubs']} clubs, {counts['members']:,} people, {counts['memberships']:,} "
          f"memberships, {counts['visits']:,} visits; today {today}; PostgreSQL "
          f"{counts['pg']} (shared_buffers {counts['shared_buffers']}); database "
          f"{_gb(counts['db_bytes'])}", flush=True)

    print("the daily run for all clubs (scheduler path, child process) …", flush=True)
    engine = _child("--job", "engine", "--url", url, "--as-of", today.isoformat(), capture=True)
    print(f"  daily run {engine['daily_s']:.1f} s for {engine['daily_clubs']} clubs; phases: "
          + ", ".join(f"{k} {v:.1f}s" for k, v in engine["daily_phases"].items()), flush=True)

    print("analytics extras for every club …", flush=True)
    extras_s = add_extras(url, clubs)
    print(f"  in {extras_s:.0f} s", flush=True)
    facts_s, facts_worst = build_facts(factory, clubs, today)
    print(f"stored analytics facts built by each club's first report ({FACTS_REPORT}): "
          f"{facts_s:.1f} s, worst club {facts_worst:.2f} s", flush=True)
    print(f"reports: one club (best of {args.runs}), then every club back to back …", flush=True)
    reports = time_reports(factory, clubs, today, args.runs)
    slow = max(reports, key=lambda r: r["chain_s"])

    print(f"check-ins at {args.rate:g}/s alone, then during the daily run and {slow['path']} "
          "for every club …", flush=True)
    _loop_policy()
    load = checkins(url, clubs, today, args, slow["path"])
    after = _counts(url)
    load_end = os.getloadavg()

    n = len(clubs)
    people = counts["members"]
    print(f"\n== Chain: {n} clubs, {people:,} people, {counts['visits']:,} visits, "
          f"{counts['memberships']:,} memberships on one PostgreSQL ==")
    if getattr(args, "build_seconds", None):
        print(f"built in {args.build_seconds:.0f} s (this run)")
    print(f"load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end "
          "(2 cores, shared)")
    daily = load["daily"]
    alone, loaded = load["alone"], load["loaded"]
    p99_ok = loaded.ms(99) < CHECKIN_P99_MS and loaded.errors == 0
    print(table(["measure", "figure", "goal", "verdict"], [
        ["first run, all clubs (every member new)", f"{engine['first_s']:.1f} s", "", ""],
        ["daily run, all clubs (run_due_clubs)", f"{engine['daily_s']:.1f} s",
         f"<= {DAILY_GOAL_S / 60:.0f} min", verdict(engine["daily_s"] <= DAILY_GOAL_S)],
        ["  slowest club's run", f"{engine['daily_slowest_s']:.2f} s", "", ""],
        ["  changes / planned touchpoints",
         f"{engine['daily_changes']:,} / {engine['daily_planned']:,}", "", ""],
        ["analytics facts: first report of every club", (f"{facts_s:.1f} s "
         f"(worst club {facts_worst:.2f} s)"), "", ""],
        ["daily run again, forced, under the load below",
         f"{daily.get('seconds', float('nan')):.1f} s", "", ""],
        [f"check-in p99 at {args.rate:g}/s alone", (f"{alone.ms(99):.1f} ms "
         f"(p50 {alone.ms(50):.1f}, {alone.errors} errors)"), "", ""],
        [f"check-in p99 at {args.rate:g}/s during daily run + report",
         (f"{loaded.ms(99):.1f} ms (p50 {loaded.ms(50):.1f}, max {loaded.ms(100):.0f}, "
         f"{loaded.errors} errors, {len(loaded.latencies):,} of {loaded.offered:,})"),
         f"< {CHECKIN_P99_MS:g} ms", verdict(p99_ok)],
        [f"  {slow['path']} during the load", (f"{load['reports_done']} runs, worst "
         f"{load['report_worst_s']:.2f} s"), "", ""],
        ["peak RSS, engine process (first + daily runs)", f"{engine['rss_mb']:.0f} MB", "", ""],
        ["peak RSS, forced daily run process", f"{daily.get('rss_mb', float('nan')):.0f} MB",
         "", ""],
        ["PostgreSQL database size", (f"{_gb(counts['db_bytes'])} built, "
         f"{_gb(after['db_bytes'])} at the end"), "", ""],
        ["  of which visits + access events", _gb(after["visits_bytes"]), "", ""],
    ]))
    print("\n== Reports: one club, and every club back to back (no chain-wide report exists in "
          "the API: each report is one club's) ==")
    ok_reports = True
    rows = []
    for r in reports:
        good = r["one_s"] <= REPORT_GOAL_S and r["chain_s"] <= REPORT_GOAL_S
        ok_reports &= good
        rows.append([r["path"], round(r["one_s"] * 1000), f"{r['chain_s']:.1f}",
                     round(r["worst_s"] * 1000), verdict(r["one_s"] <= REPORT_GOAL_S),
                     verdict(r["chain_s"] <= REPORT_GOAL_S)])
    print(table(["report", "one club ms", f"{n} clubs s", "worst club ms",
                 f"one <= {REPORT_GOAL_S:g} s", f"all <= {REPORT_GOAL_S:g} s"], rows))
    ok = engine["daily_s"] <= DAILY_GOAL_S and p99_ok and ok_reports
    print(f"\ngoals (daily run <= 10 min; each report <= 5 s for one club and for all clubs; "
          f"p99 < {CHECKIN_P99_MS:g} ms under load): {verdict(ok)}")
    print(f"(logs: {load['logs']}; peak RSS of this process {peak_rss_mb():.0f} MB)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
