"""A club with a manager, a front desk, trainers and members; helpers that act through the API.

Members are written with the ORM (arranged, not tested here); everything the trainers domain
owns — profiles, hours, products, packages, sessions, classes — goes through the HTTP API.
Times are built in the club's zone (Europe/Berlin) relative to today, so tests do not depend on
the hour they run at: "past" sessions are days ago (booked by a manager), "future" ones days ahead.
"""
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core.actors import Role
from app.core.db import transaction
from app.members.models import Member

BERLIN = ZoneInfo("Europe/Berlin")
ALL_WEEK = [{"weekday": d, "start": "06:00", "end": "22:00"} for d in range(1, 8)]


@dataclass
class Coach:
    """A trainer: their staff login and their profile id."""

    staff: object
    id: int

    @property
    def headers(self) -> dict[str, str]:
        return self.staff.headers


@dataclass
class Gym:
    client: object
    world: object
    db: object
    club: Club
    manager: object
    desk: object
    _n: int = field(default=0)

    # --- time

    @property
    def today(self) -> date:
        return clubs_service.club_today(self.club)

    def day(self, offset: int) -> date:
        return self.today + timedelta(days=offset)

    def at(self, offset_days: int, hh: int, mm: int = 0) -> datetime:
        """An aware instant: hh:mm wall-clock time in the club, `offset_days` from today."""
        return datetime.combine(self.day(offset_days), time(hh, mm), tzinfo=BERLIN)

    # --- people

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

    def trainer(self, hours: list | None = None, club: Club | None = None,
                manager=None) -> Coach:
        club = club or self.club
        manager = manager or self.manager
        staff = self.world.staff(club, Role.trainer)
        r = self.client.post("/api/v1/trainers", json={"user_id": staff.user_id,
                                                       "specialities": ["strength"]},
                             headers=manager.headers)
        assert r.status_code == 201, r.text
        coach = Coach(staff, r.json()["id"])
        r = self.client.put(f"/api/v1/trainers/{coach.id}/hours",
                            json={"intervals": ALL_WEEK if hours is None else hours},
                            headers=manager.headers)
        assert r.status_code == 200, r.text
        return coach

    # --- packages

    def product(self, sessions: int = 10, price: str = "500.00", validity_days: int = 90,
                **extra) -> int:
        body = {"name": f"PT {sessions}x{self._next()}", "sessions": sessions, "price": price,
                "validity_days": validity_days} | extra
        r = self.client.post("/api/v1/pt-products", json=body, headers=self.manager.headers)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def sell(self, member_id: int, product_id: int, staff=None, **body):
        body = {"package_product_id": product_id} | body
        return self.client.post(f"/api/v1/members/{member_id}/pt-packages", json=body,
                                headers=(staff or self.manager).headers)

    def package(self, member_id: int, product_id: int | None = None, start_offset: int = -30,
                **body) -> dict:
        """A package sold by the manager, valid from `start_offset` days from today."""
        product_id = product_id or self.product()
        r = self.sell(member_id, product_id, start_date=self.day(start_offset).isoformat(),
                      **body)
        assert r.status_code == 201, r.text
        return r.json()

    def packages(self, member_id: int, as_of: date | None = None) -> dict:
        params = {"as_of": as_of.isoformat()} if as_of else None
        r = self.client.get(f"/api/v1/members/{member_id}/pt-packages", params=params,
                            headers=self.desk.headers)
        assert r.status_code == 200, r.text
        return r.json()

    def balance(self, package_id: int) -> int:
        from app.trainers.models import PtPackage

        return self.scalar(select(PtPackage.sessions_left).where(PtPackage.id == package_id))

    # --- sessions

    def book(self, coach: Coach, member_id: int, start: datetime, minutes: int = 60,
             staff=None, **extra):
        body = {"member_id": member_id, "trainer_id": coach.id, "start": start.isoformat(),
                "duration_minutes": minutes} | extra
        return self.client.post("/api/v1/trainers/sessions", json=body,
                                headers=(staff or self.manager).headers)

    def booked(self, coach: Coach, member_id: int, start: datetime, **kw) -> dict:
        r = self.book(coach, member_id, start, **kw)
        assert r.status_code == 201, r.text
        return r.json()

    def act(self, session_id: int, action: str, staff=None, json=None):
        return self.client.post(f"/api/v1/trainers/sessions/{session_id}/{action}", json=json,
                                headers=(staff or self.manager).headers)

    # --- memberships (for classes and renewals)

    def plan(self, days: int = 30) -> int:
        r = self.client.post("/api/v1/plans", json={"name": f"{days} days {self._next()}",
                                                    "duration_days": days, "price": "50"},
                             headers=self.manager.headers)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def membership(self, member_id: int, plan_id: int | None = None,
                   start_offset: int = 0) -> dict:
        r = self.client.post(f"/api/v1/members/{member_id}/memberships",
                             json={"plan_id": plan_id or self.plan(),
                                   "start_date": self.day(start_offset).isoformat()},
                             headers=self.manager.headers)
        assert r.status_code == 201, r.text
        return r.json()

    # --- classes

    def class_type(self, capacity: int = 10, minutes: int = 60) -> int:
        r = self.client.post("/api/v1/class-types",
                             json={"name": f"Yoga {self._next()}", "capacity": capacity,
                                   "duration_minutes": minutes}, headers=self.manager.headers)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def class_at(self, coach: Coach, starts: datetime, capacity: int = 10, minutes: int = 60,
                 room: str | None = "Studio 1") -> dict:
        """A timetable slot at this wall-clock time and weekday, generated for that day."""
        local = starts.astimezone(BERLIN)
        kind = self.class_type(capacity=capacity, minutes=minutes)
        r = self.client.post("/api/v1/classes/timetable", json={
            "class_type_id": kind, "weekday": local.isoweekday(),
            "start_time": local.strftime("%H:%M"), "trainer_id": coach.id, "room": room},
            headers=self.manager.headers)
        assert r.status_code == 201, r.text
        day = local.date().isoformat()
        r = self.client.post("/api/v1/classes/generate", params={"from": day, "to": day},
                             headers=self.manager.headers)
        assert r.status_code == 200 and r.json()["created"] >= 1, r.text
        r = self.client.get("/api/v1/classes", params={"from": day, "to": day},
                            headers=self.desk.headers)
        return next(c for c in r.json() if c["class_type_id"] == kind)

    def book_class(self, occurrence_id: int, member_id: int, staff=None):
        return self.client.post(f"/api/v1/classes/{occurrence_id}/bookings",
                                json={"member_id": member_id},
                                headers=(staff or self.desk).headers)

    def class_detail(self, occurrence_id: int) -> dict:
        r = self.client.get(f"/api/v1/classes/{occurrence_id}", headers=self.desk.headers)
        assert r.status_code == 200, r.text
        return r.json()

    # --- reading the database in a short transaction of its own

    def scalar(self, stmt):
        with self.db.sessionmaker() as s:
            return s.scalar(stmt)

    def scalars(self, stmt) -> list:
        with self.db.sessionmaker() as s:
            return list(s.scalars(stmt))

    def count(self, model, *where) -> int:
        return self.scalar(select(func.count()).select_from(model).where(*where))

    def _next(self) -> int:
        self._n += 1
        return self._n


def money(value) -> Decimal:
    return Decimal(str(value))


@pytest.fixture
def gym(client, world, db) -> Gym:
    club = world.club()
    return Gym(client, world, db, club, manager=world.staff(club, Role.manager),
               desk=world.staff(club, Role.front_desk))
