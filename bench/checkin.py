"""Check-in throughput and latency over HTTP against a real server on PostgreSQL.

    python -m bench.checkin [--members 10000] [--rate 300] [--seconds 20] [--workers 2]

1. creates a fresh PostgreSQL database (admin URL: FITCLUB_BENCH_PG_URL), migrates it and builds
   the demo club (history included, so anti-passback and status queries see real tables);
2. times the decision in-process (`app.access.service.check_in`) to split database/ORM time from
   HTTP overhead;
3. serves the app with `uvicorn app.asgi:app --workers N` as a subprocess and drives it from this
   process with a small raw-asyncio HTTP/1.1 client (keep-alive; cheap on the shared CPUs):
   (a) maximum throughput, closed loop, for `GET /health` (no database) and for
       `POST /api/v1/access/events`; (b) an open-loop 300 check-ins/s (latency counted from the
       moment each request was due, so queueing shows);
4. prints the table and the goals (check-in ≥ 25% of the trivial endpoint's throughput — 50%
   is the long-term goal; p99 < 15 ms at 300/s), then drops the database.

The same run also drives the ZKTeco PUSH adapter's background verification
(`POST /iclock/cdata?SN=…&AuthType=device`, one rtlog-style record, text/plain answer) against
a ZKTeco device registered in the club: idle latency and the same open-loop rate, alternated with
the native endpoint so both see the same machine; goal: the adapter's p99 at most 10% above the
native endpoint's. Only with `--zkteco`: since the adapter throttles calls per serial number
(240/min) and per address (600/min, `app.access.protocols.common`), one client address driving
it at 300/s measures the throttle (429s), not the adapter; its idle latency and CPU per request
are still shown with `--zkteco`, and `--rate 8` keeps the comparison under the throttle.

Cards: members whose membership lets them in now on an unlimited all-day plan, cycled in a
shuffled order, and the club's anti-passback window set to 0 so every check-in takes the full
granted path (decision, event, counter update, visit) instead of short denials.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter

from bench.common import (
    build_demo,
    fresh_database,
    machine,
    median,
    peak_rss_mb,
    percentile,
    table,
    verdict,
)

RATIO_GOAL = 0.25  # issue #19's goal; the long-term goal is 50%
P99_GOAL_MS = 15.0
ADAPTER_P99_GOAL = 1.10  # the ZKTeco adapter's p99 / the native endpoint's p99
CHECKIN_PATH = "/api/v1/access/events"
ZK_SERIAL = "BENCHZK0001"


# --- the cards and the in-process timing ------------------------------------------------------

def valid_cards(url: str, club_id: int, *, everyone: bool = False) -> list[str]:
    """Active cards of members let in today on an all-day unlimited plan (or every active card)."""
    from sqlalchemy import select

    from app.clubs import service as clubs_service
    from app.core.db import make_engine, make_sessionmaker
    from app.members.models import Card
    from app.memberships import rules
    from app.memberships.models import Membership, Plan

    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        stmt = select(Card.code).where(Card.club_id == club_id, Card.status == "active")
        if not everyone:
            today = clubs_service.club_today(clubs_service.get_club(session, club_id))
            stmt = (stmt.join(Membership, Membership.member_id == Card.member_id)
                    .join(Plan, Plan.id == Membership.plan_id)
                    .where(rules.active_on(today), Membership.visit_limit.is_(None),
                           Plan.access_end.is_(None)))
        codes = sorted(set(session.scalars(stmt)))
    engine.dispose()
    random.Random(1).shuffle(codes)
    return codes


def set_anti_passback(url: str, club_id: int, minutes: int) -> None:
    from app.clubs import service as clubs_service
    from app.core.db import make_engine, make_sessionmaker, transaction

    engine = make_engine(url)
    with transaction(make_sessionmaker(engine)) as session:
        clubs_service.update_club_settings(session, club=clubs_service.get_club(session, club_id),
                                           changes={"anti_passback_minutes": minutes})
    engine.dispose()


def add_zkteco_device(url: str, club_id: int) -> str:
    """Register the ZKTeco controller the adapter runs are made with, approved for calls from
    127.0.0.1 (as a manager does); its serial number."""
    from app.access import devices
    from app.clubs import service as clubs_service
    from app.core.db import make_engine, make_sessionmaker, transaction

    engine = make_engine(url)
    with transaction(make_sessionmaker(engine)) as session:
        device, _key = clubs_service.add_device(
            session, club=clubs_service.get_club(session, club_id), name="bench zkteco",
            protocol="zkteco", serial_number=ZK_SERIAL, timezone="UTC")
        session.flush()
        devices.approve_device(session, club_id=club_id, device_id=device.id,
                               allowed_networks=["127.0.0.1/32"])
    engine.dispose()
    return ZK_SERIAL


def protocol_app():
    """The app as served, with the device-protocol routes even before app/main.py lists them."""
    from app.access.protocols.router import router
    from app.main import create_app

    app = create_app()
    if not any(getattr(route, "path", None) == "/iclock/cdata" for route in app.routes):
        app.include_router(router)
    return app


@dataclass
class InProcess:
    n: int
    select1: list[float] = field(default_factory=list)
    session_auth: list[float] = field(default_factory=list)
    check_in: list[float] = field(default_factory=list)
    device_path: list[float] = field(default_factory=list)
    zk_path: list[float] = field(default_factory=list)
    commit: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)


def time_in_process(url: str, *, device_key: str, cards: list[str], n: int,
                    zk_serial: str | None = None) -> InProcess:
    """The same work one HTTP check-in does, without HTTP: session (on an autocommit connection,
    as `device_work(autocommit=True)` opens it), device key (the per-process cache, the key
    checked again in the decision's first read), decision, commit."""
    from sqlalchemy import text

    from app import wiring
    from app.access import service as access_service
    from app.access.protocols import zkteco
    from app.access.protocols.common import resolve_device
    from app.core.db import make_engine, make_sessionmaker

    wiring.install()  # the VisitGranted handlers, as in the served app

    def served(factory):
        session = factory()
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        return session

    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    out = InProcess(n)
    with engine.connect() as conn:
        for _ in range(50):
            conn.execute(text("SELECT 1"))
        for _ in range(n):
            t0 = perf_counter()
            conn.execute(text("SELECT 1"))
            out.select1.append(perf_counter() - t0)
    run = f"inproc-{int(time.time())}"
    for i in range(n + 50):  # the first 50 warm caches and are not counted
        card = cards[i % len(cards)]
        t0 = perf_counter()
        session = served(factory)
        device = access_service.device_for_key(session, key=device_key)
        t1 = perf_counter()
        decision = access_service.check_in(
            session, club_id=device.club_id, occurred_at=datetime.now(UTC), card_code=card,
            device_id=device.device_id, dedup_key=f"dev:{device.device_id}:{run}-{i}",
            source="device", device_key=device_key)
        t2 = perf_counter()
        session.commit()
        t3 = perf_counter()
        session.close()
        # the whole entry point the router calls (card normalised, device seen), for comparison
        session = served(factory)
        t4 = perf_counter()
        access_service.device_check_in(session, device=device, card=card,
                                       event_id=f"{run}-b{i}", occurred_at=None, direction=None,
                                       key=device_key)
        session.commit()
        t5 = perf_counter()
        session.close()
        if zk_serial:  # the ZKTeco adapter's whole path: serial lookup, verification, commit
            session = factory()
            t6 = perf_counter()
            device_zk = resolve_device(session, protocol="zkteco", serial=zk_serial,
                                       client_ip="127.0.0.1")
            zkteco.verify(session, device_zk, zk_record(card, time.time_ns() + i).encode())
            session.commit()
            if i >= 50:
                out.zk_path.append(perf_counter() - t6)
            session.close()
        if i >= 50:
            out.session_auth.append(t1 - t0)
            out.check_in.append(t2 - t1)
            out.commit.append(t3 - t2)
            out.total.append(t3 - t0)
            out.device_path.append(t5 - t4)
            out.reasons[decision.reason] += 1
    engine.dispose()
    return out


# --- the server --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(url: str, *, workers: int, port: int, log: Path):
    """uvicorn app.asgi:app with N workers in its own process group; stopped on exit."""
    env = dict(os.environ, DATABASE_URL=url, SCHEDULER_ENABLED="false",
               DB_POOL_SIZE=os.environ.get("DB_POOL_SIZE", "10"),
               DB_MAX_OVERFLOW=os.environ.get("DB_MAX_OVERFLOW", "10"))
    cmd = [sys.executable, "-m", "uvicorn", "bench.checkin:protocol_app", "--factory",
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
           "--no-access-log", "--log-level", "warning"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited ({proc.returncode}); see {log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not answer within 60 s; see {log}")
            time.sleep(0.3)
        time.sleep(1.0 if workers > 1 else 0.2)  # let every worker finish starting
        yield f"127.0.0.1:{port}"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- a small HTTP/1.1 client -------------------------------------------------------------------

class Connection:
    """One keep-alive HTTP/1.1 connection; responses must carry Content-Length (uvicorn's do)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, data: bytes) -> tuple[int, bytes]:
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"content-length:")
        length = int(lower[at + 15:lower.index(b"\r\n", at)]) if at >= 0 else 0
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


def zk_record(card: str, nonce: int) -> str:
    """One background-verification record as ZKTeco Security PUSH firmware sends it (the
    device's local wall-clock time; `nonce` keeps repeated questions apart)."""
    at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return (f"time={at}\tpin=0\tcardno={card}\teventaddr=1\tevent=0\tinoutstatus=0"
            f"\tverifytype=4\tindex={nonce}\tsitecode=0\tlinkid=0\tmaskflag=255")


class Requests:
    """Request bytes for the endpoints; each check-in has a new event id and card."""

    def __init__(self, host: str, device_key: str, cards: list[str], zk_serial: str | None = None):
        self.host = host
        self.health = f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        self.head = (f"POST {CHECKIN_PATH} HTTP/1.1\r\nHost: {host}\r\nX-Device-Key: {device_key}"
                     "\r\nContent-Type: application/json\r\nContent-Length: ").encode()
        self.cards = cards
        self.n = 0
        self.run = f"b{int(time.time())}"
        self.zk_head = (f"POST /iclock/cdata?SN={zk_serial}&AuthType=device HTTP/1.1\r\n"
                        f"Host: {host}\r\nContent-Type: text/plain\r\nContent-Length: "
                        ).encode()

    def check_in(self) -> bytes:
        self.n += 1
        body = json.dumps({"card": self.cards[self.n % len(self.cards)],
                           "event_id": f"{self.run}-{self.n}",
                           "occurred_at": datetime.now(UTC).isoformat()}).encode()
        return self.head + str(len(body)).encode() + b"\r\n\r\n" + body

    def zk_verify(self) -> bytes:
        self.n += 1
        body = zk_record(self.cards[self.n % len(self.cards)], self.n).encode()
        return self.zk_head + str(len(body)).encode() + b"\r\n\r\n" + body


@dataclass
class Run:
    name: str
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds
    statuses: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    offered: int = 0
    server_cpu_ms: float | None = None  # CPU per request: uvicorn's processes, PostgreSQL's
    db_cpu_ms: float | None = None

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    def ms(self, p: float) -> float:
        return percentile(self.latencies, p) * 1000

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)


def _note(run: Run, status: int, body: bytes, checkin: bool) -> None:
    run.statuses[status] += 1
    if checkin and status == 200:
        if body.startswith(b"AUTH="):  # the ZKTeco adapter answers text/plain
            run.reasons[body.split(b"\n", 1)[0].decode()] += 1
        else:
            run.reasons[json.loads(body)["reason"]] += 1


async def closed_loop(name: str, address: str, make, *, concurrency: int, seconds: float,
                      warmup: float, checkin: bool) -> Run:
    """`concurrency` connections each sending the next request as soon as the last returns."""
    host, port = address.split(":")
    conns = [await Connection.open(host, int(port)) for _ in range(concurrency)]
    run = Run(name, seconds)
    start = perf_counter()  # (uvloop's loop.time() ticks in whole milliseconds)
    measure_from, stop = start + warmup, start + warmup + seconds

    async def worker(conn: Connection) -> None:
        while True:
            t0 = perf_counter()
            if t0 >= stop:
                return
            status, body = await conn.request(make())
            t1 = perf_counter()
            if t0 >= measure_from:
                run.latencies.append(t1 - t0)
                _note(run, status, body, checkin)

    await asyncio.gather(*(worker(c) for c in conns))
    for c in conns:
        c.close()
    return run


async def open_loop(name: str, address: str, make, *, rate: float, seconds: float,
                    warmup: float, checkin: bool, max_connections: int = 64,
                    drain: float = 30.0) -> Run:
    """Requests due at a fixed rate whatever the answers; latency counts from when each was due.

    At most `max_connections` are open: when the server falls behind, requests wait for a
    connection and that wait is part of their latency (no coordinated omission). Requests still
    unanswered `drain` seconds after the last one was due count as timeouts.
    """
    host, port = address.split(":")
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    every: list[Connection] = []
    for _ in range(16):
        every.append(await Connection.open(host, int(port)))
        idle.put_nowait(every[-1])
    opened = len(every)
    run = Run(name, seconds)
    tasks: set[asyncio.Task] = set()
    start = perf_counter() + 0.05
    measure_from = start + warmup
    total = int((warmup + seconds) * rate)

    async def connection() -> Connection:
        nonlocal opened
        if not idle.empty():
            return idle.get_nowait()
        if opened < max_connections:
            opened += 1
            every.append(await Connection.open(host, int(port)))
            return every[-1]
        return await idle.get()

    async def one(due: float) -> None:
        conn = await connection()
        status, body = await conn.request(make())
        done = perf_counter()
        idle.put_nowait(conn)
        if due >= measure_from:
            run.latencies.append(done - due)
            _note(run, status, body, checkin)

    for i in range(total):
        due = start + i / rate
        delay = due - perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if due >= measure_from:
            run.offered += 1
        task = asyncio.create_task(one(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        _done, pending = await asyncio.wait(set(tasks), timeout=drain)
        for task in pending:
            task.cancel()
        run.statuses["timeout"] += len(pending)
    for conn in every:
        conn.close()
    return run


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (Linux /proc; gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICK


def server_pids(port: int) -> list[int]:
    """uvicorn's processes serving `port` (the parent and its workers)."""
    parents = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"--port\0{port}\0" in (entry / "cmdline").read_text():
                    parents.add(int(entry.name))
            except OSError:
                continue
    pids = set(parents)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
            if ppid in parents:
                pids.add(int(entry.name))
    return sorted(pids)


def database_pids(url: str) -> list[int]:
    """The PostgreSQL backends connected to this database (the server's pool)."""
    from sqlalchemy import create_engine, make_url, text

    engine = create_engine(url)
    with engine.connect() as conn:
        pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :db "
                                 "AND pid <> pg_backend_pid()"),
                            {"db": make_url(url).database}).scalars().all()
    engine.dispose()
    return list(pids)


async def sequential(name: str, address: str, make, *, n: int, checkin: bool,
                     url: str | None = None) -> Run:
    """One request at a time on one connection: the latency of an idle server, and (with the
    database `url`) the CPU one request costs the server's processes and PostgreSQL's backends
    — a figure the other load on a shared machine hardly moves, unlike the latencies."""
    host, port = address.split(":")
    conn = await Connection.open(host, int(port))
    run = Run(name, 0.0)
    started = perf_counter()
    for i in range(n + 20):
        if i == 20 and url:
            servers, backends = server_pids(int(port)), database_pids(url)
            cpu = (_cpu_seconds(servers), _cpu_seconds(backends))
        t0 = perf_counter()
        status, body = await conn.request(make())
        if i >= 20:
            run.latencies.append(perf_counter() - t0)
            _note(run, status, body, checkin)
    run.seconds = perf_counter() - started
    if url:
        run.server_cpu_ms = (_cpu_seconds(servers) - cpu[0]) * 1000 / n
        run.db_cpu_ms = (_cpu_seconds(backends) - cpu[1]) * 1000 / n
    conn.close()
    return run


def _loop_policy() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


# --- the report -------------------------------------------------------------------------------

def report(args, built, inproc: InProcess, seq: dict[str, Run], health: Run, checkin: Run,
           paced: Run, pairs: list[tuple[Run, Run]] | None = None) -> bool:
    ms = 1000.0
    print("\n== In-process: where a check-in's time goes (median of "
          f"{inproc.n}, ms) ==")
    print(table(["step", "p50 ms", "p99 ms"], [
        ["SELECT 1 round trip (Core, same engine)", median(inproc.select1) * ms,
         percentile(inproc.select1, 99) * ms],
        ["new session (autocommit) + cached device key", median(inproc.session_auth) * ms,
         percentile(inproc.session_auth, 99) * ms],
        ["access.service.check_in (decide + record)", median(inproc.check_in) * ms,
         percentile(inproc.check_in, 99) * ms],
        ["commit (nothing left to commit)", median(inproc.commit) * ms, percentile(inproc.commit, 99) * ms],
        ["= database/ORM work of one check-in", median(inproc.total) * ms,
         percentile(inproc.total, 99) * ms],
        ["device_check_in entry point + commit", median(inproc.device_path) * ms,
         percentile(inproc.device_path, 99) * ms],
        *([["ZKTeco adapter: serial lookup + verify + commit", median(inproc.zk_path) * ms,
            percentile(inproc.zk_path, 99) * ms]] if inproc.zk_path else []),
    ]))
    print(f"   decisions: {dict(inproc.reasons)}")

    h, c = seq["health"], seq["checkin"]
    print("\n== Idle server, one request at a time (ms; CPU per request: uvicorn's processes, "
          "PostgreSQL's backends) ==")
    print(table(["request", "p50 ms", "p99 ms", "server CPU ms", "PostgreSQL CPU ms"], [
        [f"{name}", run.ms(50), run.ms(99), run.server_cpu_ms, run.db_cpu_ms]
        for name, run in (("GET /health (HTTP + uvicorn + FastAPI, no database)", h),
                          ("POST check-in", c),
                          ("POST /iclock/cdata?AuthType=device (ZKTeco)", seq.get("zkteco")))
        if run is not None]))
    cpu = ((c.server_cpu_ms + c.db_cpu_ms) / h.server_cpu_ms
           if c.server_cpu_ms is not None and h.server_cpu_ms else None)
    if cpu:
        print(f"   one at a time, a check-in costs {cpu:.1f}x the CPU of /health (server + "
              "database); under load both cost less per request (batched wake-ups)")

    ratio = checkin.throughput / health.throughput if health.throughput else 0.0
    print(f"\n== Load: {args.workers} uvicorn workers, PostgreSQL, {args.members:,} members ==")
    print(table(["run", "requests", "throughput/s", "p50 ms", "p99 ms", "max ms", "errors"], [
        [f"GET /health, max ({args.concurrency} connections)", len(health.latencies),
         health.throughput, health.ms(50), health.ms(99), health.ms(100), health.errors],
        [f"POST check-in, max ({args.concurrency} connections)", len(checkin.latencies),
         checkin.throughput, checkin.ms(50), checkin.ms(99), checkin.ms(100), checkin.errors],
        [f"POST check-in, open loop at {args.rate:g}/s", f"{len(paced.latencies):,} of {paced.offered:,}",
         paced.throughput, paced.ms(50), paced.ms(99), paced.ms(100), paced.errors],
    ]))
    print(f"   check-in decisions under load: {dict(checkin.reasons + paced.reasons)}")
    ratio_ok = ratio >= RATIO_GOAL
    p99_ok = paced.ms(99) < P99_GOAL_MS and paced.errors == 0
    print("\n== Goals ==")
    print(f"   check-in / trivial throughput = {checkin.throughput:,.0f} / "
          f"{health.throughput:,.0f} = {ratio:.0%}   (goal ≥ {RATIO_GOAL:.0%})   "
          f"{verdict(ratio_ok)}")
    print(f"   p99 at {args.rate:g} check-ins/s = {paced.ms(99):.1f} ms   "
          f"(goal < {P99_GOAL_MS:g} ms)   {verdict(p99_ok)}")
    if not pairs:
        return ratio_ok and p99_ok
    print(f"\n== ZKTeco adapter vs native endpoint, open loop at {args.rate:g}/s, alternated ==")
    rows = []
    for i, (native, zk) in enumerate(pairs, 1):
        for run in (native, zk):
            rows.append([f"round {i}: {run.name}", f"{len(run.latencies):,} of {run.offered:,}",
                         run.ms(50), run.ms(99), run.ms(100), run.errors])
    print(table(["run", "requests", "p50 ms", "p99 ms", "max ms", "errors"], rows))
    print(f"   ZKTeco answers: {dict(sum((zk.reasons for _, zk in pairs), Counter()))}; "
          f"statuses: {dict(sum((zk.statuses for _, zk in pairs), Counter()))}")
    native_p99 = median([native.ms(99) for native, _ in pairs])
    zk_p99 = median([zk.ms(99) for _, zk in pairs])
    adapter_ok = zk_p99 <= native_p99 * ADAPTER_P99_GOAL and not any(
        zk.errors for _, zk in pairs)
    print(f"   adapter p99 / native p99 = {zk_p99:.1f} / {native_p99:.1f} ms = "
          f"{zk_p99 / native_p99:.0%}   (goal ≤ {ADAPTER_P99_GOAL:.0%}; median of "
          f"{len(pairs)} rounds)   {verdict(adapter_ok)}")
    return ratio_ok and p99_ok and adapter_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.checkin", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=300.0, help="check-ins per second, paced")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each load run")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="connections for the maximum-throughput runs")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds not counted per run")
    parser.add_argument("--in-process", type=int, default=300, dest="inproc",
                        help="check-ins timed in-process")
    parser.add_argument("--all-cards", action="store_true",
                        help="use every active card (denials included), not only valid members")
    parser.add_argument("--keep-db", action="store_true", help="keep the database afterwards")
    parser.add_argument("--zkteco", action="store_true",
                        help="also the ZKTeco adapter runs (throttled per address: see above)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternated native/ZKTeco open-loop rounds")
    args = parser.parse_args(argv)

    print(f"bench.checkin — {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} — {machine()}")
    _loop_policy()
    with fresh_database("postgresql", "checkin", keep=args.keep_db) as url:
        print(f"building the demo club: {args.members:,} members …")
        built = build_demo(url, members=args.members, progress=args.members >= 20_000)
        r = built.result
        print(f"   built in {built.seconds:.1f} s: {r.counts['visits']:,} visits, "
              f"{r.counts['memberships']:,} memberships (peak RSS {built.peak_rss_mb:.0f} MB)")
        set_anti_passback(url, r.club_id, 0)
        cards = valid_cards(url, r.club_id, everyone=args.all_cards)
        print(f"   {len(cards):,} cards in the draw")
        zk_serial = add_zkteco_device(url, r.club_id) if args.zkteco else None
        print(f"timing {args.inproc} check-ins in-process …")
        inproc = time_in_process(url, device_key=r.device_key, cards=cards, n=args.inproc,
                                 zk_serial=zk_serial)
        log = Path(f"/tmp/fitclub-bench-uvicorn-{os.getpid()}.log")
        with serve(url, workers=args.workers, port=free_port(), log=log) as address:
            requests = Requests(address, r.device_key, cards, zk_serial)
            print(f"serving on {address} ({args.workers} workers); driving …")
            seq = {
                "health": asyncio.run(sequential("health", address, lambda: requests.health,
                                                 n=1000, checkin=False, url=url)),
                "checkin": asyncio.run(sequential("checkin", address, requests.check_in, n=1000,
                                                  checkin=True, url=url)),
            }
            if zk_serial:
                seq["zkteco"] = asyncio.run(sequential("zkteco", address, requests.zk_verify,
                                                       n=1000, checkin=True, url=url))
            health = asyncio.run(closed_loop(
                "health", address, lambda: requests.health, concurrency=args.concurrency,
                seconds=args.seconds, warmup=args.warmup, checkin=False))
            print(f"   /health: {health.throughput:,.0f}/s")
            checkin = asyncio.run(closed_loop(
                "checkin", address, requests.check_in, concurrency=args.concurrency,
                seconds=args.seconds, warmup=args.warmup, checkin=True))
            print(f"   check-in: {checkin.throughput:,.0f}/s")
            paced = asyncio.run(open_loop(
                "paced", address, requests.check_in, rate=args.rate, seconds=args.seconds,
                warmup=args.warmup, checkin=True))
            print(f"   paced: p99 {paced.ms(99):.1f} ms")
            pairs = []
            for i in range(args.rounds if zk_serial else 0):
                native = asyncio.run(open_loop(
                    "native POST /api/v1/access/events", address, requests.check_in,
                    rate=args.rate, seconds=args.seconds, warmup=args.warmup, checkin=True))
                zk = asyncio.run(open_loop(
                    "ZKTeco POST /iclock/cdata?AuthType=device", address, requests.zk_verify,
                    rate=args.rate, seconds=args.seconds, warmup=args.warmup, checkin=True))
                print(f"   round {i + 1}: p99 native {native.ms(99):.1f} ms, "
                      f"ZKTeco {zk.ms(99):.1f} ms")
                pairs.append((native, zk))
        ok = report(args, built, inproc, seq, health, checkin, paced, pairs)
        print(f"\n(peak RSS of the driver {peak_rss_mb():.0f} MB; server log {log})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
