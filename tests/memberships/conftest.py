"""A club with staff, members (written with the ORM) and helpers that sell through the API."""
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core.actors import Role
from app.core.db import transaction
from app.members.models import Member

MONTHLY = {"name": "Monthly", "duration_months": 1, "price": "100.00", "freeze_days": 14}


@dataclass
class Shop:
    client: object
    world: object
    db: object
    club: Club
    manager: object = None
    desk: object = None
    _n: int = field(default=0)

    @property
    def today(self) -> date:
        return clubs_service.club_today(self.club)

    def day(self, offset: int) -> date:
        return self.today + timedelta(days=offset)

    def member(self, first_name: str | None = None, last_name: str = "Berg",
               club: Club | None = None) -> int:
        self._n += 1
        first_name = first_name or f"Anna{self._n}"
        with transaction(self.db.sessionmaker) as s:
            m = Member(club_id=(club or self.club).id, first_name=first_name,
                       last_name=last_name, search_name=f"{first_name} {last_name}".lower())
            s.add(m)
            s.flush()
            return m.id

    def plan(self, staff=None, **fields) -> dict:
        body = dict(MONTHLY) | fields
        r = self.client.post("/api/v1/plans", json=body, headers=(staff or self.manager).headers)
        assert r.status_code == 201, r.text
        return r.json()

    def sell(self, member_id: int, plan_id: int, staff=None, headers=None, **body):
        body = {"plan_id": plan_id} | body
        return self.client.post(f"/api/v1/members/{member_id}/memberships", json=body,
                                headers=(staff or self.desk).headers | (headers or {}))

    def sold(self, member_id: int, plan_id: int, staff=None, **body) -> dict:
        r = self.sell(member_id, plan_id, staff=staff, **body)
        assert r.status_code == 201, r.text
        return r.json()

    def membership(self, membership_id: int, as_of: date | None = None, staff=None) -> dict:
        params = {"as_of": as_of.isoformat()} if as_of else None
        r = self.client.get(f"/api/v1/memberships/{membership_id}", params=params,
                            headers=(staff or self.desk).headers)
        assert r.status_code == 200, r.text
        return r.json()

    def count(self, model) -> int:
        return self.scalar(select(func.count()).select_from(model))

    def scalar(self, stmt):
        """Read in a short transaction of its own (on SQLite an open one would block the API)."""
        with self.db.sessionmaker() as s:
            return s.scalar(stmt)

    def scalars(self, stmt) -> list:
        with self.db.sessionmaker() as s:
            return list(s.scalars(stmt))


def money(value) -> Decimal:
    return Decimal(str(value))


@pytest.fixture
def shop(client, world, db) -> Shop:
    club = world.club()
    return Shop(client, world, db, club, manager=world.staff(club, Role.manager),
                desk=world.staff(club, Role.front_desk))
