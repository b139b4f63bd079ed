"""A club with a bar: staff of every role, products and helpers that go through the API."""
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import update

from app.core import clock
from app.core.actors import Role
from app.core.db import transaction
from app.inventory.models import StockMovement
from tests.builders import ClubApi, Staff

API = "/api/v1/inventory"


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def cost(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


@dataclass
class Bar(ClubApi):
    """Products, stock and members come from `ClubApi` (tests/builders.py); the café sells."""

    trainer_staff: Staff | None = None

    # -- requests
    def post(self, path: str, body, staff=None, headers=None):
        return self.client.post(path if path.startswith("/api") else API + path, json=body,
                                headers=(staff or self.manager).headers | (headers or {}))

    def get(self, path: str, staff=None, **params):
        return self.client.get(path if path.startswith("/api") else API + path, params=params,
                               headers=(staff or self.manager).headers)

    def patch(self, path: str, body, staff=None):
        return self.client.patch(API + path, json=body, headers=(staff or self.manager).headers)

    # -- selling through the API (billing's endpoint)
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

    # -- time travel in a short transaction of its own
    def backdate(self, *, days: float, movement_ids=None, **where) -> None:
        """Move ledger rows into the past (analytics periods and sales-rate windows)."""
        conditions = [getattr(StockMovement, k) == v for k, v in where.items()]
        if movement_ids is not None:
            conditions.append(StockMovement.id.in_(movement_ids))
        with transaction(self.db.sessionmaker) as s:
            s.execute(update(StockMovement).where(*conditions)
                      .values(created_at=clock.now() - timedelta(days=days)))


@pytest.fixture
def bar(client, world) -> Bar:
    club = world.club("Riverside Fitness", timezone="Europe/Berlin")
    return Bar(client, world, club, owner=world.staff(club, Role.owner),
               manager=world.staff(club, Role.manager), desk=world.staff(club, Role.front_desk),
               trainer_staff=world.staff(club, Role.trainer))


def at(days_ago: float) -> datetime:
    return clock.now() - timedelta(days=days_ago)
