"""Friday-evening peak: turnstile check-ins, front-desk searches and café sales at once.

    python -m bench.peak [--members 10000] [--rate 60] [--seconds 45] [--workers 2]
                         [--mix 70/20/10] [--warmup 5] [--keep-db]

1. a fresh PostgreSQL database (admin URL: FITCLUB_BENCH_PG_URL) with the demo club at
   `--members` (history included), five café products with stock received through the API;
2. `uvicorn --workers N` serving it (`bench.checkin.serve`);
3. an async httpx client sends an open-loop stream at `--rate` requests/s for `--seconds`
   (after `--warmup` seconds not counted), each request drawn by the mix:
   - check-in (`POST /api/v1/access/events`, the demo turnstile's device key): cards of members
     let in now (~85%), of members whose membership does not let them in (~8%), unknown cards
     (~4%) and a second swipe of a card just used (~3%: anti-passback);
   - search (`GET /api/v1/members?q=`, a front-desk token): the first 3-4 letters of a name
     (half), the last 4 digits of a phone (a quarter), a whole card code (a quarter);
   - café sale (`POST /api/v1/inventory/sales` with an `Idempotency-Key`, 1-3 items, paid in
     cash); one sale in 20 is sent again with the same key once answered (a till retrying) and
     must be answered with the same sale;
   latency counts from the moment a request was due (no coordinated omission);
4. per kind: requests, throughput, p50/p95/p99/max and errors — any 5xx, transport error or
   timeout, and any 4xx that is not a business answer (only 409 is one here; check-in refusals
   are 200 answers with `allow: false`);
5. checks the database: one access event per answered check-in, a visit for exactly the granted
   ones, exactly the acknowledged sales (retries included once), stock = receipts − sales.

Exit status 0 only with no error and every check passed. The load average is printed before and
after: the machine is shared.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter

import httpx

from bench.checkin import free_port, serve, valid_cards
from bench.common import build_demo, fresh_database, machine, percentile, table, verdict

KINDS = ("check-in", "search", "sale")
BUSINESS_4XX = {"sale": {409}, "sale retry": {409}}  # out of stock: a correct answer
PRODUCTS = 5


# --- what the requests are made of ------------------------------------------------------------

@dataclass
class Material:
    """Cards, search terms and products drawn from the demo club."""

    granted: list[str]  # cards of members let in now
    refused: list[str]  # active cards of members without a membership that lets them in now
    names: list[str]
    phones: list[str]
    cards: list[str]
    products: list[int] = field(default_factory=list)


def material(url: str, club_id: int, seed: int) -> Material:
    from sqlalchemy import select

    from app.core.db import make_engine, make_sessionmaker
    from app.members.models import Card, Member

    rng = random.Random(seed)
    granted = valid_cards(url, club_id)
    everyone = valid_cards(url, club_id, everyone=True)
    lets_in = set(granted)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as s:
        people = s.execute(select(Member.first_name, Member.last_name, Member.phone)
                           .where(Member.club_id == club_id, Member.erased_at.is_(None))).all()
        cards = list(s.scalars(select(Card.code).where(Card.club_id == club_id)))
    engine.dispose()
    rng.shuffle(people)
    names = [(p.first_name if rng.random() < 0.5 else p.last_name) for p in people[:2000]]
    names = [n[:rng.choice((3, 4))] for n in names if len(n) >= 3]
    names = [n.lower() if rng.random() < 0.5 else n for n in names]
    phones = [p.phone[-4:] for p in people[:4000] if p.phone and len(p.phone) >= 4][:2000]
    rng.shuffle(cards)
    return Material(granted, [c for c in everyone if c not in lets_in], names, phones,
                    cards[:2000])


def login(base: str, email: str, password: str) -> dict[str, str]:
    r = httpx.post(base + "/api/v1/auth/token", data={"username": email, "password": password},
                   timeout=30)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def stock_the_cafe(base: str, owner: dict[str, str]) -> list[int]:
    """Five products with 100,000 of each received (through the API, as the manager would)."""
    ids = []
    with httpx.Client(base_url=base, headers=owner, timeout=30) as c:
        for i in range(PRODUCTS):
            r = c.post("/api/v1/inventory/products", json={
                "sku": f"PEAK-{i}-{uuid.uuid4().hex[:6]}", "name": f"Peak drink {i}",
                "sale_price": "2.50"})
            r.raise_for_status()
            ids.append(r.json()["id"])
            c.post("/api/v1/inventory/receipts", json={
                "product_id": ids[-1], "quantity": 100_000, "unit_cost": "0.80"}).raise_for_status()
    return ids


class Draw:
    """The next request of each kind (seeded, so runs are repeatable)."""

    def __init__(self, m: Material, seed: int):
        self.m, self.rng = m, random.Random(seed)
        self.recent: list[str] = []
        self.n = 0
        self.next_granted = self.next_refused = 0  # each member comes once, in a shuffled order
        self.run = f"peak{int(time.time())}"

    def check_in(self) -> dict:
        self.n += 1
        x = self.rng.random()
        if x < 0.03 and self.recent:
            card = self.rng.choice(self.recent)  # the same card again within minutes
        elif x < 0.07:
            card = f"UNKNOWN-{self.rng.randrange(10**6):06d}"
        elif x < 0.15 and self.m.refused:
            card = self.m.refused[self.next_refused % len(self.m.refused)]
            self.next_refused += 1
        else:
            card = self.m.granted[self.next_granted % len(self.m.granted)]
            self.next_granted += 1
        self.recent = (self.recent + [card])[-50:]
        return {"card": card, "event_id": f"{self.run}-{self.n}",
                "occurred_at": datetime.now(UTC).isoformat()}

    def search(self) -> str:
        x = self.rng.random()
        pool = self.m.names if x < 0.5 else self.m.phones if x < 0.75 else self.m.cards
        return self.rng.choice(pool)

    def sale(self) -> dict:
        products = self.rng.sample(self.m.products, self.rng.randint(1, 3))
        items = [{"product_id": p, "quantity": self.rng.randint(1, 2)} for p in products]
        total = sum(i["quantity"] for i in items) * 2.5
        return {"items": items, "payments": [{"method": "cash", "amount": f"{total:.2f}"}]}


# --- the run ----------------------------------------------------------------------------------

@dataclass
class Stats:
    kind: str
    latencies: list[float] = field(default_factory=list)  # measured window only, seconds
    statuses: Counter = field(default_factory=Counter)  # every answer (warm-up included)
    errors: list[str] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)

    def ms(self, p: float) -> float:
        return percentile(self.latencies, p) * 1000


@dataclass
class Acknowledged:
    events: int = 0  # check-ins answered 200
    visit_ids: set = field(default_factory=set)
    sales: dict = field(default_factory=dict)  # sale id -> {product_id: quantity}
    replays: int = 0
    unanswered: Counter = field(default_factory=Counter)  # kind -> still unanswered at the end


async def run_load(base: str, *, device: dict, desk: dict, draw: Draw, rate: float,
                   seconds: float, warmup: float, mix: tuple[float, float, float],
                   drain: float = 30.0) -> tuple[dict[str, Stats], Acknowledged, float]:
    stats = {k: Stats(k) for k in (*KINDS, "sale retry")}
    ack = Acknowledged()
    # idle connections are dropped after 4 s, before uvicorn's 5 s keep-alive timeout closes
    # them: reusing one the server is closing fails with "Server disconnected" (a client race)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=4.0)
    rng = random.Random(1)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        start = perf_counter() + 0.1
        measure_from = start + warmup
        total = int((warmup + seconds) * rate)
        tasks: set[asyncio.Task] = set()

        def record(kind: str, due: float, status: int | None, error: str | None) -> None:
            s = stats[kind]
            if status is not None:
                s.statuses[status] += 1
            if error is None and status is not None and (
                    status >= 500 or (400 <= status < 500
                                      and status not in BUSINESS_4XX.get(kind, ()))):
                error = f"HTTP {status}"
            if error:
                s.errors.append(error)
            if due >= measure_from:
                s.latencies.append(perf_counter() - due)

        async def send(kind: str, due: float) -> None:
            try:
                if kind == "check-in":
                    r = await client.post("/api/v1/access/events", headers=device,
                                          json=draw.check_in())
                    if r.status_code == 200:
                        answer = r.json()
                        ack.events += 1
                        stats[kind].outcomes["granted" if answer["allow"]
                                             else f"refused: {answer['reason']}"] += 1
                        if answer["allow"]:
                            ack.visit_ids.add(answer["visit_id"])
                elif kind == "search":
                    r = await client.get("/api/v1/members", headers=desk,
                                         params={"q": draw.search()})
                    if r.status_code == 200:
                        stats[kind].outcomes["found" if r.json()["items"] else "none"] += 1
                else:
                    body, key = draw.sale(), uuid.uuid4().hex
                    r = await client.post("/api/v1/inventory/sales", json=body,
                                          headers=desk | {"Idempotency-Key": key})
                    if r.status_code == 201:
                        sale = r.json()
                        ack.sales[sale["id"]] = {i["product_id"]: i["quantity"]
                                                 for i in body["items"]}
                        stats[kind].outcomes["sold"] += 1
                        if rng.random() < 0.05:  # the till did not see the answer: retry
                            again_due = perf_counter()
                            again = await client.post("/api/v1/inventory/sales", json=body,
                                                      headers=desk | {"Idempotency-Key": key})
                            error = None
                            if again.status_code == 201 and again.json()["id"] != sale["id"]:
                                error = "a retried sale was sold twice"
                            ack.replays += 1
                            record("sale retry", again_due, again.status_code, error)
                record(kind, due, r.status_code, None)
            except httpx.HTTPError as exc:
                record(kind, due, None, f"{exc.__class__.__name__}: {exc}")

        kinds = rng.choices(KINDS, weights=mix, k=total)
        for i, kind in enumerate(kinds):
            due = start + i / rate
            delay = due - perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(send(kind, due), name=kind)
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        behind = perf_counter() - (start + (total - 1) / rate)  # the sender's own lag
        pending = set()
        if tasks:
            _done, pending = await asyncio.wait(set(tasks), timeout=drain)
            for task in pending:
                task.cancel()
    ack.unanswered = Counter(task.get_name() for task in pending)
    return stats, ack, behind


# --- the checks -------------------------------------------------------------------------------

@dataclass
class Before:
    event_id: int
    visit_id: int
    sale_id: int


def high_water(url: str) -> Before:
    from sqlalchemy import func, select

    from app.access.models import AccessEvent, Visit
    from app.billing.models import Sale
    from app.core.db import make_engine, make_sessionmaker

    engine = make_engine(url)
    with make_sessionmaker(engine)() as s:
        marks = Before(s.scalar(select(func.coalesce(func.max(AccessEvent.id), 0))),
                       s.scalar(select(func.coalesce(func.max(Visit.id), 0))),
                       s.scalar(select(func.coalesce(func.max(Sale.id), 0))))
    engine.dispose()
    return marks


def verify(url: str, before: Before, ack: Acknowledged, products: list[int]) -> list[tuple]:
    """(check, expected, found, ok) rows: every acknowledged write is stored, nothing else is.

    A request still unanswered at the end may have been done by the server without the client
    hearing it: that many extra rows are allowed (and shown); with none, the sets must be equal.
    """
    from sqlalchemy import func, select

    from app.access.models import AccessEvent, Visit
    from app.billing.models import Sale, SaleLine
    from app.core.db import make_engine, make_sessionmaker
    from app.inventory.models import StockLevel, StockMovement

    def same(name: str, acknowledged: set, stored: set, unanswered: int) -> tuple:
        missing, extra = acknowledged - stored, stored - acknowledged
        found = f"{len(stored):,}" + (f" ({len(extra)} unacknowledged)" if extra else "")
        return (name, f"{len(acknowledged):,}", found + (f", {len(missing)} MISSING" if missing
                                                         else ""),
                not missing and len(extra) <= unanswered)

    engine = make_engine(url)
    rows = []
    checkins, sales_out = ack.unanswered["check-in"], ack.unanswered["sale"]
    with make_sessionmaker(engine)() as s:
        events = s.scalar(select(func.count()).where(AccessEvent.id > before.event_id))
        rows.append(("access events = answered check-ins", f"{ack.events:,}", f"{events:,}",
                     ack.events <= events <= ack.events + checkins))
        visits = set(s.scalars(select(Visit.id).where(Visit.id > before.visit_id)))
        rows.append(same("visits = granted check-ins acknowledged", ack.visit_ids, visits,
                         checkins))
        sales = set(s.scalars(select(Sale.id).where(Sale.id > before.sale_id)))
        rows.append(same("sales = acknowledged sales (a retry once)", set(ack.sales), sales,
                         sales_out))
        acknowledged = Counter()
        for lines in ack.sales.values():
            acknowledged.update(lines)
        in_lines = dict(s.execute(select(SaleLine.item_id, func.sum(SaleLine.quantity))
                                  .where(SaleLine.sale_id > before.sale_id,
                                         SaleLine.kind == "product")
                                  .group_by(SaleLine.item_id)).all())
        for p in products:
            received = s.scalar(select(func.coalesce(func.sum(StockMovement.quantity), 0))
                                .where(StockMovement.product_id == p,
                                       StockMovement.kind == "receipt"))
            moved = -s.scalar(select(func.coalesce(func.sum(StockMovement.quantity), 0))
                              .where(StockMovement.product_id == p, StockMovement.kind == "sale"))
            on_hand = s.scalar(select(StockLevel.on_hand).where(StockLevel.product_id == p))
            stored = in_lines.get(p, 0)
            ok = (on_hand == received - moved and moved == stored
                  and (stored == acknowledged[p] if not sales_out else stored >= acknowledged[p]))
            rows.append((f"product {p}: stock = receipts − sales",
                         f"{received} − {acknowledged[p]}",
                         f"{on_hand:,}" + ("" if stored == acknowledged[p]
                                           else f" (sold {stored}, moved {moved})"), ok))
    engine.dispose()
    return rows


# --- main -------------------------------------------------------------------------------------

def _mix(value: str) -> tuple[float, float, float]:
    parts = [float(x) for x in value.split("/")]
    if len(parts) != 3 or min(parts) < 0 or sum(parts) <= 0:
        raise argparse.ArgumentTypeError("--mix is check-ins/searches/sales, e.g. 70/20/10")
    return parts[0], parts[1], parts[2]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peak", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=60.0, help="requests per second, all kinds")
    parser.add_argument("--seconds", type=float, default=45.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds sent but not measured")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--mix", type=_mix, default=(70.0, 20.0, 10.0),
                        help="check-ins/searches/sales (default 70/20/10)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-db", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)

    started = time.monotonic()
    print(f"bench.peak — {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} — {machine()}")
    print(f"load average at start: {_load()}")
    with fresh_database("postgresql", "peak", keep=args.keep_db) as url:
        print(f"building the demo club: {args.members:,} members …")
        built = build_demo(url, members=args.members, seed=args.seed, progress=False)
        r = built.result
        print(f"   built in {built.seconds:.1f} s: {r.counts['visits']:,} visits, "
              f"{r.counts['memberships']:,} memberships")
        m = material(url, r.club_id, args.seed)
        print(f"   cards: {len(m.granted):,} let in now, {len(m.refused):,} not; "
              f"{len(m.names):,} name parts, {len(m.phones):,} phone tails, "
              f"{len(m.cards):,} card codes to search")
        desk_email = next(s.email for s in r.staff if s.role == "front_desk")
        owner_email = next(s.email for s in r.staff if s.role == "owner")
        log = Path(f"/tmp/fitclub-bench-peak-{os.getpid()}.log")
        with serve(url, workers=args.workers, port=free_port(), log=log) as address:
            base = f"http://{address}"
            m.products = stock_the_cafe(base, login(base, owner_email, r.password))
            desk = login(base, desk_email, r.password)
            before = high_water(url)
            draw = Draw(m, args.seed)
            print(f"serving on {address} ({args.workers} workers); {args.rate:g} requests/s "
                  f"for {args.warmup:g}+{args.seconds:g} s, mix {'/'.join(f'{x:g}' for x in args.mix)} …")
            try:
                import uvloop

                asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            except ImportError:
                pass
            stats, ack, behind = asyncio.run(run_load(
                base, device={"X-Device-Key": r.device_key}, desk=desk, draw=draw,
                rate=args.rate, seconds=args.seconds, warmup=args.warmup, mix=args.mix))
        checks = verify(url, before, ack, m.products)

    print(f"\n== Friday peak: {args.workers} uvicorn workers, PostgreSQL, {args.members:,} "
          f"members, {args.rate:g} requests/s offered for {args.seconds:g} s ==")
    rows = []
    for s in stats.values():
        if not s.statuses and not s.errors:
            continue
        rows.append([s.kind, len(s.latencies), len(s.latencies) / args.seconds, s.ms(50),
                     s.ms(95), s.ms(99), s.ms(100), len(s.errors)])
    every = [x for s in stats.values() for x in s.latencies]
    errors = sum(len(s.errors) for s in stats.values()) + sum(ack.unanswered.values())
    rows.append(["all", len(every), len(every) / args.seconds, percentile(every, 50) * 1000,
                 percentile(every, 95) * 1000, percentile(every, 99) * 1000,
                 percentile(every, 100) * 1000, errors])
    print(table(["kind", "requests", "throughput/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
                 "errors"], rows))
    for s in stats.values():
        if s.outcomes or s.statuses:
            print(f"   {s.kind}: statuses {dict(s.statuses)}; {dict(s.outcomes)}")
        for e, n in Counter(s.errors).most_common(5):
            print(f"   {s.kind} ERROR ×{n}: {e}")
    if ack.unanswered:
        print(f"   ERROR: requests unanswered 30 s after the last was due: "
              f"{dict(ack.unanswered)} (the server may have done them: the checks below allow "
              "that many extra rows)")
    if behind > 1.0:
        print(f"   the client fell {behind:.1f} s behind the schedule: the machine could not "
              "send at this rate")
    print("\n== Checks against the database ==")
    print(table(["check", "expected", "found", "ok"],
                [[c, e, f, verdict(bool(ok))] for c, e, f, ok in checks]))
    ok = errors == 0 and all(c[3] for c in checks)
    print(f"\nload average at the end: {_load()}; {ack.replays} sale retries answered with the "
          f"first sale; whole run {time.monotonic() - started:.0f} s; server log {log}")
    print(f"RESULT: {verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
