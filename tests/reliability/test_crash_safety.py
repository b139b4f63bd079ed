"""SIGKILL the server mid-load: every acknowledged check-in and sale survives, nothing is half-written.

A real `uvicorn` process serves the PostgreSQL test database; threads post device check-ins and
café sales; the server is killed with SIGKILL while they run, restarted, and loaded again. Then:
every check-in answered 200 has its access event (and visit when granted), every sale answered
201 has its lines and matching stock movements, no sale lacks lines or movements, and stock on
hand equals receipts minus sales for every product.
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app.access.models import AccessEvent, Visit
from app.billing.models import Sale, SaleLine
from app.inventory.models import StockLevel, StockMovement

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("FITCLUB_CRASH_KILLS", "2"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, db_url: str, log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = os.environ | {"DATABASE_URL": db_url, "SCHEDULER_ENABLED": "false",
                                 "DB_POOL_SIZE": "5", "DB_MAX_OVERFLOW": "5"}
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "app.asgi:app", "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-level", "warning"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("uvicorn did not start:\n" + self.log.read_text()[-2000:])

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Load:
    """Threads that post until told to stop, keeping what the server acknowledged."""

    def __init__(self, server: Server, cards: list[str], device_headers, desk_headers,
                 product_ids: list[int]):
        self.server, self.cards, self.product_ids = server, cards, product_ids
        self.device_headers, self.desk_headers = device_headers, desk_headers
        self.checkins: list[dict] = []  # acknowledged answers
        self.sales: list[dict] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def _checkins(self, n: int) -> None:
        with httpx.Client(base_url=self.server.url, timeout=5) as c:
            i = 0
            while not self.stop.is_set():
                i += 1
                card = self.cards[(n * 7 + i) % len(self.cards)]
                event_id = f"t{n}-{uuid.uuid4().hex[:12]}"
                try:
                    r = c.post("/api/v1/access/events", headers=self.device_headers,
                               json={"card": card, "event_id": event_id})
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                if r.status_code == 200:
                    with self.lock:
                        self.checkins.append(r.json() | {"event_id": event_id})

    def _sales(self, n: int) -> None:
        with httpx.Client(base_url=self.server.url, timeout=5) as c:
            i = 0
            while not self.stop.is_set():
                i += 1
                items = [{"product_id": p, "quantity": 1 + (i + k) % 3}
                         for k, p in enumerate(self.product_ids[: 1 + i % len(self.product_ids)])]
                try:
                    total = f"{sum(item['quantity'] for item in items) * 2}.00"
                    body = {"items": items, "payments": [{"method": "cash", "amount": total}]}
                    r = c.post("/api/v1/inventory/sales", json=body,
                               headers=self.desk_headers | {"Idempotency-Key": uuid.uuid4().hex})
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                if r.status_code == 201:
                    with self.lock:
                        self.sales.append(r.json())

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._checkins, args=(n,)) for n in range(2)]
        threads += [threading.Thread(target=self._sales, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        return threads


@pytest.mark.slow
@pytest.mark.postgres_only
def test_acknowledged_writes_survive_sigkill(db, client, world, tmp_path):
    if not db.is_postgres:
        pytest.skip("crash safety is tested on PostgreSQL (the production backend)")
    from app.core.actors import Role

    club = world.club(anti_passback_minutes=0)
    desk = world.staff(club, Role.front_desk)
    owner = world.staff(club, Role.owner)
    device = world.device(club)
    h = owner.headers
    plan = client.post("/api/v1/plans", headers=h, json={
        "name": "Monthly", "duration_months": 1, "price": "49.00"}).json()
    cards = []
    for i in range(8):
        code = f"CRASH-{i:03d}"
        m = client.post("/api/v1/members", headers=h, json={
            "first_name": "Load", "last_name": f"Tester{i}", "card": code}).json()
        r = client.post(f"/api/v1/members/{m['id']}/memberships", headers=h,
                        json={"plan_id": plan["id"]})
        assert r.status_code == 201, r.text
        cards.append(code)
    products = []
    for i in range(3):
        p = client.post("/api/v1/inventory/products", headers=h, json={
            "sku": f"CR{i}", "name": f"Drink {i}", "sale_price": "2.00"}).json()
        r = client.post("/api/v1/inventory/receipts", headers=h, json={
            "product_id": p["id"], "quantity": 100_000, "unit_cost": "0.50"})
        assert r.status_code == 201, r.text
        products.append(p["id"])

    server = Server(db.url, tmp_path / "uvicorn.log")
    load = Load(server, cards, device.headers, desk.headers, products)
    kills = 0
    try:
        server.start()
        threads = load.run()
        for _ in range(KILLS):
            time.sleep(1.5)
            server.kill()
            kills += 1
            time.sleep(0.3)
            server.start()
        time.sleep(1.0)
        load.stop.set()
        for t in threads:
            t.join(timeout=30)
    finally:
        load.stop.set()
        server.stop()

    assert kills == KILLS
    assert len(load.checkins) > 20 and len(load.sales) > 10, (len(load.checkins), len(load.sales))

    with db.sessionmaker() as s:
        keys = set(s.scalars(select(AccessEvent.dedup_key).where(AccessEvent.club_id == club.id)))
        visit_ids = set(s.scalars(select(Visit.id).where(Visit.club_id == club.id)))
        for answer in load.checkins:
            assert f"dev:{device.device_id}:{answer['event_id']}" in keys, answer
            if answer["allow"]:
                assert answer["visit_id"] in visit_ids, answer

        sale_ids = set(s.scalars(select(Sale.id).where(Sale.club_id == club.id)))
        assert {sale["id"] for sale in load.sales} <= sale_ids
        with_lines = set(s.scalars(select(SaleLine.sale_id).where(SaleLine.club_id == club.id)))
        assert with_lines == sale_ids, "a sale without lines (half-written)"
        line_qty = dict(s.execute(
            select(SaleLine.sale_id, func.sum(SaleLine.quantity))
            .where(SaleLine.club_id == club.id, SaleLine.kind == "product")
            .group_by(SaleLine.sale_id)).all())
        moved_qty = dict(s.execute(
            select(StockMovement.sale_id, func.sum(StockMovement.quantity))
            .where(StockMovement.club_id == club.id, StockMovement.kind == "sale")
            .group_by(StockMovement.sale_id)).all())
        assert set(moved_qty) == set(line_qty), "a café sale without stock movements"
        for sale_id, qty in line_qty.items():
            assert abs(moved_qty[sale_id]) == qty, (sale_id, qty, moved_qty[sale_id])
        for answer in load.sales:
            assert line_qty[answer["id"]] == sum(line["quantity"] for line in answer["lines"])

        for product_id in products:
            received = s.scalar(select(func.sum(StockMovement.quantity)).where(
                StockMovement.product_id == product_id, StockMovement.kind == "receipt"))
            sold = s.scalar(select(func.coalesce(func.sum(func.abs(StockMovement.quantity)), 0))
                            .where(StockMovement.product_id == product_id,
                                   StockMovement.kind == "sale"))
            on_hand = s.scalar(select(StockLevel.on_hand).where(
                StockLevel.product_id == product_id))
            assert on_hand == received - sold, (product_id, on_hand, received, sold)
    print(f"\ncrash safety: {kills} SIGKILLs survived, {len(load.checkins)} acknowledged "
          f"check-ins, {len(load.sales)} acknowledged sales, {len(sale_ids)} sales stored")
