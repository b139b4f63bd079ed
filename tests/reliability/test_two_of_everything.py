"""Two of everything: two web workers and two schedulers on one PostgreSQL, through a simulated month.

Real processes: two `uvicorn app.asgi:app` web workers (each its own process and port) and two
`fitclub scheduler` processes, all on the test database. The schedulers run on a simulated
clock (`FITCLUB_CLOCK_FILE`, see `app/retention/jobs.py`) that the test moves through 30 club
days, and deliver to a real SMTP server (aiosmtpd) and a real SMS gateway (a local HTTP server)
started here. Two small clubs, in Berlin and in New York, ~60 members.

Each simulated day: the turnstiles post the day's check-ins (with the day's time, as a device
uploading its log would) and the desk sells café items and memberships through the web
workers — so members visit, start, fade, lapse and come back; then the clock moves to 15:00
UTC of the day (after the 05:00 daily run in both clubs, inside their 09:00-21:00 sending
hours), and the test waits until both clubs' daily runs are done and nothing due is left.

On day 16 the leader is SIGKILLed *inside* its daily run: the test holds a SHARE lock on
`scheduled_touchpoints`, so the run blocks after it has claimed the day (`retention_runs`) and
moved stages, uncommitted; the leader is found through the advisory lock's holder
(`application_name`), killed, the table lock released; the standby must take over and do the
day exactly once. A new scheduler process then joins as the standby.

Checks: every email/SMS touchpoint reached the SMTP/SMS server exactly once and the servers
received exactly what the database says was sent (one attempt each); every staff task exists
once; each club's daily run happened once for each of the 30 days (database rows and the
schedulers' own log lines); every acknowledged check-in has its visit; stock = receipts − sales.
"""
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import and_, func, insert, or_, select, text

from app.access.models import Visit
from app.core import clock as app_clock
from app.core.actors import Role
from app.core.db import transaction
from app.crm.models import Task
from app.inventory.models import StockLevel, StockMovement
from app.members.models import Card, Member
from app.memberships.models import Membership, Plan
from app.retention.models import (
    RetentionRun,
    ScheduledTouchpoint,
    StageChange,
    TouchpointAttempt,
    TouchpointDefinition,
)
from app.retention.scheduler import ADVISORY_LOCK_KEY
from tests.retention.servers import SmsGateway, SmtpServer, free_port

ROOT = Path(__file__).resolve().parents[2]
DAYS = 30
KILL_DAY = 16  # the leader is killed inside this day's daily run (1-based)
CLOCK_AT = clock_time(15, 0)  # UTC: past 05:00 and within 09:00-21:00 in Berlin and New York
JOB_SECONDS = "0.25"  # both jobs' interval in the scheduler processes
SETTLE_TIMEOUT = 30.0
RUN_LINE = re.compile(r"retention run club (\d+) for (\d{4}-\d{2}-\d{2})")


# --- processes -------------------------------------------------------------------------------

class Process:
    """A subprocess with its own log file and a libpq application_name (PGAPPNAME)."""

    def __init__(self, name: str, cmd: list[str], env: dict, log_dir: Path):
        self.name, self.cmd = name, cmd
        self.env = os.environ | env | {"PGAPPNAME": name}
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Process":
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT)
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for_log(self, needle: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n"
                                     + self.text()[-3000:])
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {needle!r} in its log:\n"
                                     + self.text()[-3000:])
            time.sleep(0.1)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def web_worker(name: str, db_url: str, log_dir: Path) -> tuple[Process, str]:
    port = free_port()
    proc = Process(name, [sys.executable, "-m", "uvicorn", "app.asgi:app", "--host",
                          "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                   {"DATABASE_URL": db_url, "SCHEDULER_ENABLED": "false", "DB_POOL_SIZE": "3",
                    "DB_MAX_OVERFLOW": "3",  # the workers run on the test's clock
                    app_clock.START_ENV: app_clock.now().isoformat()}, log_dir)
    return proc, f"http://127.0.0.1:{port}"


def wait_healthy(proc: Process, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{proc.name} did not start:\n" + proc.text()[-3000:])
        time.sleep(0.1)


class Clock:
    """The simulated clock the schedulers read (written atomically)."""

    def __init__(self, path: Path):
        self.path = path
        self.now: datetime | None = None

    def set(self, at: datetime) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(at.isoformat())
        os.replace(tmp, self.path)
        self.now = at


# --- the clubs -------------------------------------------------------------------------------

@dataclass
class Person:
    member_id: int
    card: str
    kind: str  # regular, fader, expiring, renewing, newcomer, newcomer_silent
    end: date | None = None  # expiring and renewing: the membership's last day
    join_on: date | None = None  # newcomers: the day the desk sells the membership


@dataclass
class ClubSetup:
    club_id: int
    zone: ZoneInfo
    owner: dict
    desk: dict
    device: dict
    plan_id: int
    product_id: int = 0
    people: list[Person] = field(default_factory=list)


def _arrange_club(db, world, *, name: str, timezone: str, size: int, first: date,
                  tag: str) -> ClubSetup:
    club = world.club(name=name, timezone=timezone, anti_passback_minutes=0)
    zone = ZoneInfo(timezone)
    setup = ClubSetup(club.id, zone, world.staff(club, Role.owner).headers,
                      world.staff(club, Role.front_desk).headers, world.device(club).headers, 0)
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    with transaction(db.sessionmaker) as s:
        plan = Plan(club_id=club.id, name="Yearly", duration_months=12, price=Decimal("300.00"),
                    freeze_days=30, auto_renew=False, active=True)
        s.add(plan)
        s.flush()
        setup.plan_id = plan.id
        visits = []
        for i in range(size):
            kind = ("regular", "regular", "fader", "expiring", "renewing", "newcomer",
                    "newcomer_silent", "regular")[i % 8]
            member = Member(club_id=club.id, first_name=f"{tag}{i:02d}", last_name="Month",
                            email=f"{tag.lower()}{i}@example.org", phone=f"+4915100{club.id:03d}{i:04d}",
                            email_consent=i % 11 != 5, sms_consent=i % 13 != 6,
                            # a few birthdays inside the month
                            birth_date=date(1990, (first + timedelta(days=i)).month,
                                            (first + timedelta(days=i)).day) if i % 5 == 1 else None,
                            created_at=long_ago)
            s.add(member)
            s.flush()
            code = f"{tag}-{i:03d}"
            s.add(Card(club_id=club.id, member_id=member.id, code=code, status="active"))
            person = Person(member.id, code, kind)
            if kind.startswith("newcomer"):
                person.join_on = first + timedelta(days=1 + i % 11)
                member.created_at = datetime.combine(first - timedelta(days=20), clock_time(10),
                                                     tzinfo=UTC)
            else:
                if kind in ("expiring", "renewing"):
                    end = first + timedelta(days=3 + i % 13)
                    start = date(end.year - 1, end.month, end.day) + timedelta(days=1)
                    person.end = end
                else:
                    start = first - timedelta(days=40 + (i * 37) % 280)
                    end = date(start.year + 1, start.month, start.day) - timedelta(days=1)
                s.add(Membership(club_id=club.id, member_id=member.id, plan_id=plan.id,
                                 start_date=start, end_date=end, original_end_date=end,
                                 price=Decimal("300.00"), visits_used=0,
                                 created_at=datetime.combine(start, clock_time(8), tzinfo=UTC),
                                 updated_at=datetime.combine(start, clock_time(8), tzinfo=UTC)))
                # eight weeks of history: Mondays, Wednesdays and Fridays before the month
                day = first - timedelta(days=56)
                while day < first:
                    if day.weekday() in (0, 2, 4) and day >= start:
                        visits.append({"club_id": club.id, "member_id": member.id,
                                       "occurred_at": datetime.combine(
                                           day, clock_time(18), tzinfo=zone).astimezone(UTC)})
                    day += timedelta(days=1)
            setup.people.append(person)
        if visits:
            s.execute(insert(Visit), visits)
    return setup


# --- the web side ----------------------------------------------------------------------------

@dataclass
class Web:
    urls: list[str]
    clients: list[httpx.Client] = field(default_factory=list)
    n: int = 0
    served: Counter = field(default_factory=Counter)  # worker index -> requests
    granted: list[dict] = field(default_factory=list)  # acknowledged granted check-ins
    refused: int = 0
    sales: list[dict] = field(default_factory=list)
    memberships: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.clients = [httpx.Client(base_url=u, timeout=15) for u in self.urls]

    def post(self, path: str, *, headers: dict, json: dict) -> httpx.Response:
        """Alternate between the workers, like a load balancer."""
        i = self.n % len(self.clients)
        self.n += 1
        self.served[i] += 1
        return self.clients[i].post(path, headers=headers, json=json)

    def check_in(self, club: ClubSetup, card: str, at: datetime) -> None:
        event_id = uuid.uuid4().hex
        r = self.post("/api/v1/access/events", headers=club.device,
                      json={"card": card, "event_id": event_id, "occurred_at": at.isoformat()})
        assert r.status_code == 200, r.text
        answer = r.json()
        if answer["allow"]:
            self.granted.append(answer | {"club_id": club.club_id})
        else:
            self.refused += 1

    def sell_coffee(self, club: ClubSetup, quantity: int) -> None:
        r = self.post("/api/v1/inventory/sales",
                      headers=club.desk | {"Idempotency-Key": uuid.uuid4().hex},
                      json={"items": [{"product_id": club.product_id, "quantity": quantity}],
                            "payments": [{"method": "cash", "amount": f"{2 * quantity}.00"}]})
        assert r.status_code == 201, r.text
        sale = r.json()
        assert sum(line["quantity"] for line in sale["lines"]) == quantity, sale
        self.sales.append(sale | {"club_id": club.club_id, "quantity": quantity})

    def sell_membership(self, club: ClubSetup, member_id: int, start: date) -> None:
        r = self.post(f"/api/v1/members/{member_id}/memberships", headers=club.owner,
                      json={"plan_id": club.plan_id, "start_date": start.isoformat(),
                            "payments": [{"method": "card", "amount": "300.00"}]})
        assert r.status_code == 201, r.text
        self.memberships.append({"member_id": member_id, "start": start})

    def close(self) -> None:
        for c in self.clients:
            c.close()


def the_day_at_the_club(web: Web, club: ClubSetup, day: date, n: int) -> None:
    """What the turnstile and the desk do on one club day (all through the web workers)."""
    def at(minutes: int) -> datetime:
        return datetime.combine(day, clock_time(7), tzinfo=club.zone) + timedelta(minutes=minutes)

    for i, p in enumerate(club.people):
        if p.kind == "renewing" and day == p.end + timedelta(days=2):
            web.sell_membership(club, p.member_id, day)  # back after two days lapsed
        if p.kind.startswith("newcomer") and day == p.join_on:
            web.sell_membership(club, p.member_id, day)
        comes = {"regular": True, "expiring": day <= (p.end or day),
                 "renewing": True,  # also while lapsed: refused at the door
                 "newcomer": p.join_on is not None and day >= p.join_on}.get(p.kind, False)
        if comes and (n + i) % 3 == 0:  # every third day
            web.check_in(club, p.card, at(i))
    web.check_in(club, f"LOST-{n}", at(90))  # a card nobody holds: refused, still 200
    web.sell_coffee(club, 1 + n % 3)


# --- the database side -----------------------------------------------------------------------

def settle(db, clubs: list[ClubSetup], day: date, now: datetime, timeout: float) -> float:
    """Wait until both clubs' runs for `day` are done and nothing due by `now` is left."""
    st = ScheduledTouchpoint
    started = time.monotonic()
    while True:
        with db.engine.connect() as c:
            runs = c.execute(select(func.count()).select_from(RetentionRun).where(
                RetentionRun.run_date == day, RetentionRun.finished_at.is_not(None))).scalar()
            busy = c.execute(select(func.count()).select_from(st).where(or_(
                st.status == "sending", and_(st.status == "pending", st.due_at <= now)))).scalar()
        if runs == len(clubs) and busy == 0:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"day {day} not settled in {timeout}s: {runs} runs, {busy} due")
        time.sleep(0.05)


def leader_name(db) -> str | None:
    """The application_name of the process holding the scheduler's advisory lock."""
    with db.engine.connect() as c:
        return c.execute(text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND (l.classid::bigint << 32 | l.objid::bigint) = :key"),
            {"key": ADVISORY_LOCK_KEY}).scalar()


def blocked_daily_run(db) -> str | None:
    """The process whose daily run waits for a lock while holding its claim of the day."""
    with db.engine.connect() as c:
        return c.execute(text(
            "SELECT a.application_name FROM pg_stat_activity a "
            "WHERE a.datname = current_database() AND a.wait_event_type = 'Lock' "
            "AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted "
            "AND l.relation = 'retention_runs'::regclass AND l.mode = 'RowExclusiveLock')"
        )).scalar()


# --- the test --------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.postgres_only
def test_two_web_workers_and_two_schedulers_through_a_month(db, client, world, tmp_path):
    if not db.is_postgres:
        pytest.skip("two schedulers elect a leader with a PostgreSQL advisory lock; SQLite runs "
                    "one scheduler per file (flock), tested in tests/retention/test_scheduler.py")
    first = app_clock.now().date() - timedelta(days=DAYS + 4)  # all check-ins in the past
    days = [first + timedelta(days=i) for i in range(DAYS)]
    berlin = _arrange_club(db, world, name="Riverside Berlin", timezone="Europe/Berlin",
                           size=48, first=first, tag="BER")
    newyork = _arrange_club(db, world, name="Riverside New York", timezone="America/New_York",
                            size=12, first=first, tag="NYC")
    clubs = [berlin, newyork]
    for club in clubs:
        product = client.post("/api/v1/inventory/products", headers=club.owner, json={
            "sku": f"COFFEE{club.club_id}", "name": "Coffee", "sale_price": "2.00"})
        assert product.status_code == 201, product.text
        club.product_id = product.json()["id"]
        r = client.post("/api/v1/inventory/receipts", headers=club.owner, json={
            "product_id": club.product_id, "quantity": 1000, "unit_cost": "0.50"})
        assert r.status_code == 201, r.text

    clock = Clock(tmp_path / "clock")
    logs = tmp_path / "logs"
    logs.mkdir()
    processes: list[Process] = []
    web = None
    lock_conn = None
    with SmtpServer() as smtp, SmsGateway() as sms:
        scheduler_env = {
            "DATABASE_URL": db.url, "SCHEDULER_ENABLED": "false",
            "FITCLUB_CLOCK_FILE": str(clock.path),
            app_clock.START_ENV: app_clock.now().isoformat(),
            "FITCLUB_SCHEDULER_DAILY_SECONDS": JOB_SECONDS,
            "FITCLUB_SCHEDULER_DISPATCH_SECONDS": JOB_SECONDS,
            "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "false",
            "SMTP_SSL": "false", "SMS_GATEWAY_URL": sms.url, "SMS_GATEWAY_TOKEN": "month-test",
            "PUBLIC_BASE_URL": "http://club.test"}
        fitclub = str(Path(sys.executable).parent / "fitclub")

        def scheduler(name: str) -> Process:
            proc = Process(name, [fitclub, "scheduler"], scheduler_env, logs).start()
            processes.append(proc)
            return proc

        try:
            workers = [web_worker(f"web-{i}", db.url, logs) for i in (1, 2)]
            for proc, _url in workers:
                processes.append(proc.start())
            for proc, url in workers:
                wait_healthy(proc, url)
            web = Web([url for _, url in workers])

            settled: list[float] = []
            takeover = None
            schedulers: dict[str, Process] = {}
            for n, day in enumerate(days, 1):
                for club in clubs:
                    the_day_at_the_club(web, club, day, n)
                if n == KILL_DAY:  # the next daily run will block inside its transaction
                    lock_conn = db.engine.connect()
                    lock_conn.execute(text("LOCK TABLE scheduled_touchpoints IN SHARE MODE"))
                clock.set(datetime.combine(day, CLOCK_AT, tzinfo=UTC))
                if n == 1:  # the schedulers start on the first morning: the leader, then a standby
                    schedulers["scheduler-1"] = scheduler("scheduler-1")
                    schedulers["scheduler-1"].wait_for_log("lock acquired")
                    schedulers["scheduler-2"] = scheduler("scheduler-2")
                    schedulers["scheduler-2"].wait_for_log("stands by")
                if n == KILL_DAY:
                    deadline = time.monotonic() + SETTLE_TIMEOUT
                    while (blocked := blocked_daily_run(db)) is None:
                        assert time.monotonic() < deadline, "the leader's daily run never blocked"
                        time.sleep(0.05)
                    leader = leader_name(db)
                    assert blocked == leader, (blocked, leader)
                    killed_at = time.monotonic()
                    schedulers[leader].kill()  # mid-run: the day claimed, stages moved, uncommitted
                    lock_conn.rollback()
                    lock_conn.close()
                    lock_conn = None
                    settled.append(settle(db, clubs, day, clock.now, SETTLE_TIMEOUT))
                    takeover = time.monotonic() - killed_at
                    new_leader = leader_name(db)
                    assert new_leader not in (None, leader), new_leader
                    schedulers["scheduler-3"] = scheduler("scheduler-3")
                    schedulers["scheduler-3"].wait_for_log("stands by")
                else:
                    settled.append(settle(db, clubs, day, clock.now, SETTLE_TIMEOUT))
        finally:
            if lock_conn is not None:
                lock_conn.close()
            for proc in reversed(processes):
                proc.stop()
            if web is not None:
                web.close()
        emails = smtp.messages
        texts = list(sms.requests)

    # --- deliveries: each touchpoint exactly once, and what the database says was sent ---
    email_ids = Counter()
    for _from, _to, message in emails:
        found = re.match(r"<touchpoint-(\d+)@", message["Message-ID"] or "")
        assert found, message["Message-ID"]
        email_ids[int(found.group(1))] += 1
    sms_ids = Counter(int(r["key"].removeprefix("touchpoint-")) for r in texts)
    assert all(r["auth"] == "Bearer month-test" for r in texts)
    assert email_ids and sms_ids, (len(emails), len(texts))
    doubled = {k: v for k, v in (email_ids + sms_ids).items() if v != 1}
    assert not doubled, f"delivered more than once: {doubled}"

    st = ScheduledTouchpoint
    with db.sessionmaker() as s:
        sent = dict(s.execute(select(st.id, st.channel).where(st.status == "sent")).all())
        assert {i for i, ch in sent.items() if ch == "email"} == set(email_ids)
        assert {i for i, ch in sent.items() if ch == "sms"} == set(sms_ids)
        statuses = Counter(s.scalars(select(st.status)))
        assert statuses["sending"] == 0 and statuses["failed"] == 0, statuses
        attempts = Counter(s.scalars(select(TouchpointAttempt.touchpoint_id)))
        assert set(attempts) == set(email_ids) | set(sms_ids)
        assert set(attempts.values()) == {1}
        task_rows = Counter(s.scalars(select(Task.touchpoint_id)
                                      .where(Task.touchpoint_id.is_not(None))))
        assert task_rows and set(task_rows.values()) == {1}
        assert set(task_rows) == {i for i, ch in sent.items() if ch.endswith("_task")}
        keys = Counter(s.scalars(
            select(TouchpointDefinition.key).join(st, st.definition_id == TouchpointDefinition.id)
            .where(st.status == "sent")))

        # --- the daily runs: once per club and day, by a scheduler ---
        runs = Counter(s.execute(select(RetentionRun.club_id, RetentionRun.run_date)
                                 .where(RetentionRun.finished_at.is_not(None))).all())
        assert set(runs) == {(c.club_id, d) for c in clubs for d in days}
        assert set(s.scalars(select(RetentionRun.source))) == {"scheduler"}

        # --- the web side: acknowledged check-ins are visits; stock adds up ---
        visit_ids = set(s.scalars(select(Visit.id).where(  # history ends the evening before
            Visit.occurred_at >= datetime.combine(first, clock_time(0), tzinfo=UTC))))
        assert {g["visit_id"] for g in web.granted} == visit_ids
        for club in clubs:
            received = s.scalar(select(func.sum(StockMovement.quantity)).where(
                StockMovement.product_id == club.product_id, StockMovement.kind == "receipt"))
            sold = sum(sale["quantity"] for sale in web.sales if sale["club_id"] == club.club_id)
            on_hand = s.scalar(select(StockLevel.on_hand).where(
                StockLevel.product_id == club.product_id))
            assert on_hand == received - sold, (club.club_id, on_hand, received, sold)

        # --- members' stages moved during the month ---
        moves = Counter(s.execute(select(StageChange.from_stage, StageChange.to_stage)
                                  .where(StageChange.on_date >= first)).all())
        to = Counter()
        for (_a, b), count in moves.items():
            to[b] += count
    newcomers = sum(p.kind.startswith("newcomer") for c in clubs for p in c.people)
    assert to["onboarding"] >= newcomers, moves
    assert to["at_risk"] and to["lapsed"] and to["renewal_due"], moves
    assert moves[("lapsed", "active")] or moves[("lapsed", "establishing")], moves
    assert {"welcome", "miss_you"} <= set(keys), keys

    # --- the schedulers' own account: each (club, day) run logged exactly once ---
    logged: dict[tuple[int, date], list[str]] = {}
    for name, proc in schedulers.items():
        for club_id, day in RUN_LINE.findall(proc.text()):
            logged.setdefault((int(club_id), date.fromisoformat(day)), []).append(name)
    assert set(logged) == set(runs)
    assert {k: v for k, v in logged.items() if len(v) != 1} == {}
    kill_day = days[KILL_DAY - 1]
    by_killed = {d for (_c, d), names in logged.items() if leader in names}
    assert by_killed == set(days[:KILL_DAY - 1]), "the killed leader ran only the days before"
    assert all(logged[(c.club_id, kill_day)] == [new_leader] for c in clubs)
    assert web.served[0] > 0 and web.served[1] > 0

    print(f"\ntwo of everything: {DAYS} days x {len(clubs)} clubs, {len(runs)} daily runs (each "
          f"once); {sum(email_ids.values())} emails + {sum(sms_ids.values())} SMS delivered once "
          f"each, {len(task_rows)} tasks; sent by key {dict(keys)}; {len(web.granted)} granted + "
          f"{web.refused} refused check-ins, {len(web.sales)} café sales, "
          f"{len(web.memberships)} memberships sold via {dict(web.served)} requests per worker; "
          f"leader {leader} SIGKILLed inside day {KILL_DAY}'s run, {new_leader} finished the day "
          f"{takeover:.2f}s later; settle per day median "
          f"{sorted(settled)[len(settled) // 2]:.2f}s, max {max(settled):.2f}s")


# --- the simulated clock itself --------------------------------------------------------------

def test_the_jobs_read_the_simulated_clock_and_refuse_it_in_production(tmp_path, monkeypatch):
    from app.core.config import Settings
    from app.retention import jobs
    from app.retention.scheduler import build_scheduler

    dev = Settings(database_url="sqlite://", _env_file=None)
    assert abs(jobs.job_now(dev) - app_clock.now()) < timedelta(seconds=5)  # no file: the app's
    path = tmp_path / "clock"
    monkeypatch.setenv(jobs.CLOCK_FILE_ENV, str(path))
    assert jobs.job_now(dev) is None  # missing file: the run is skipped, not run on a guess
    path.write_text("2026-03-02T15:00:00+01:00")
    assert jobs.job_now(dev) == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    path.write_text("2026-03-02T15:00:00")  # no offset: ambiguous, skipped
    assert jobs.job_now(dev) is None

    prod = Settings(database_url="sqlite://", environment="production", secret_key="s" * 40,
                    _env_file=None)
    with pytest.raises(RuntimeError, match="refused in production"):
        build_scheduler(prod, None)


def test_the_job_intervals_come_from_the_environment(monkeypatch):
    from app.core.config import Settings
    from app.retention.scheduler import build_scheduler

    monkeypatch.setenv("FITCLUB_SCHEDULER_DAILY_SECONDS", "0.5")
    monkeypatch.setenv("FITCLUB_SCHEDULER_DISPATCH_SECONDS", "2")
    scheduler = build_scheduler(Settings(database_url="sqlite://", _env_file=None), None)
    intervals = {job.id: job.trigger.interval for job in scheduler.get_jobs()}
    assert intervals == {"retention_daily": timedelta(seconds=0.5),
                         "retention_dispatch": timedelta(seconds=2)}
    monkeypatch.setenv("FITCLUB_SCHEDULER_DISPATCH_SECONDS", "0")
    with pytest.raises(RuntimeError, match="more than 0"):
        build_scheduler(Settings(database_url="sqlite://", _env_file=None), None)
