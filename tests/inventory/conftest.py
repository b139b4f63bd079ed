"""A club with a bar: staff of every role, products and helpers that go through the API."""
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import func, select, update

from app.clubs.models import Club
from app.core import clock
from app.core.actors import Role
from app.core.db import transaction
from app.inventory.models import StockMovement
from app.members.models import Member

API = "/api/v1/inventory"


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def cost(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


@dataclass
class Bar:
    client: object
    world: object
    db: object
    club: Club
    owner: object
    manager: object
    desk: object
    trainer: object
    _n: int = field(default=0)

    # -- requests
    def post(self, path: str, body, staff=None, headers=None):
        return self.client.post(path if path.startswith("/api") else API + path, json=body,
                                headers=(staff or self.manager).headers | (headers or {}))

    def get(self, path: str, staff=None, **params):
        return self.client.get(path if path.startswith("/api") else API + path, params=params,
                               headers=(staff or self.manager).headers)

    def patch(self, path: str, body, staff=None):
        return self.client.patch(API + path, json=body, headers=(staff or self.manager).headers)

    # -- arranging through the API
    def product(self, staff=None, **fields) -> dict:
        self._n += 1
        body = {"sku": f"SKU-{self._n}", "name": f"Product {self._n}", "category": "drinks",
                "sale_price": "3.50"} | fields
        r = self.post("/products", body, staff=staff)
        assert r.status_code == 201, r.text
        return r.json()

    def receive(self, product_id: int, quantity: int, unit_cost, staff=None, **extra) -> dict:
        r = self.post("/receipts", {"product_id": product_id, "quantity": quantity,
                                    "unit_cost": str(unit_cost)} | extra, staff=staff)
        assert r.status_code == 201, r.text
        return r.json()

    def sell(self, lines, payments="full", staff=None, member_id=None, headers=None):
        """POST /api/v1/sales (billing's endpoint) with product lines [(product_id, qty), ...];
        paid in full in cash unless `payments` says otherwise."""
        body = {"lines": [{"kind": "product", "product_id": p, "quantity": q} for p, q in lines]}
        if member_id is not None:
            body["member_id"] = member_id
        if payments == "full":
            payments = [{"method": "cash", "amount": str(self._total(lines))}]
        if payments:
            body["payments"] = payments
        return self.post("/api/v1/sales", body, staff=staff or self.desk, headers=headers)

    def sold(self, lines, **kwargs) -> dict:
        r = self.sell(lines, **kwargs)
        assert r.status_code == 201, r.text
        return r.json()

    def _total(self, lines) -> Decimal:
        prices = {p["id"]: Decimal(p["sale_price"]) for p in self.products()}
        return money(sum(prices.get(p, Decimal(1)) * q for p, q in lines))

    def products(self) -> list[dict]:
        r = self.get("/products", limit=500)
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def on_hand(self, product_id: int) -> int:
        r = self.get(f"/products/{product_id}")
        assert r.status_code == 200, r.text
        return r.json()["on_hand"]

    def member(self, club: Club | None = None) -> int:
        self._n += 1
        with transaction(self.db.sessionmaker) as s:
            m = Member(club_id=(club or self.club).id, first_name=f"Anna{self._n}",
                       last_name="Berg", search_name=f"anna{self._n} berg")
            s.add(m)
            s.flush()
            return m.id

    # -- reading and time travel in short transactions of their own
    def count(self, model, *where) -> int:
        with self.db.sessionmaker() as s:
            return s.scalar(select(func.count()).select_from(model).where(*where))

    def rows(self, stmt) -> list:
        with self.db.sessionmaker() as s:
            return list(s.scalars(stmt))

    def backdate(self, *, days: float, movement_ids=None, **where) -> None:
        """Move ledger rows into the past (analytics periods and sales-rate windows)."""
        conditions = [getattr(StockMovement, k) == v for k, v in where.items()]
        if movement_ids is not None:
            conditions.append(StockMovement.id.in_(movement_ids))
        with transaction(self.db.sessionmaker) as s:
            s.execute(update(StockMovement).where(*conditions)
                      .values(created_at=clock.now() - timedelta(days=days)))


@pytest.fixture
def bar(client, world, db) -> Bar:
    club = world.club("Riverside Fitness", timezone="Europe/Berlin")
    return Bar(client, world, db, club, owner=world.staff(club, Role.owner),
               manager=world.staff(club, Role.manager), desk=world.staff(club, Role.front_desk),
               trainer=world.staff(club, Role.trainer))


def at(days_ago: float) -> datetime:
    return clock.now() - timedelta(days=days_ago)
