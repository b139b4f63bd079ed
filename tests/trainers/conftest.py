"""A club with a manager, a front desk, trainers and members; helpers that act through the API.

Members are written with the ORM (arranged, not tested here); everything the trainers domain
owns — profiles, hours, products, packages, sessions, classes — goes through the HTTP API.
Times are built in the club's zone (Europe/Berlin) relative to today, so tests do not depend on
the hour they run at: "past" sessions are days ago (booked by a manager), "future" ones days ahead.
"""
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.core.actors import Role
from app.core.db import transaction
from app.core.errors import Conflict
from tests.builders import ClubApi, Coach

BERLIN = ZoneInfo("Europe/Berlin")


class Gym(ClubApi):
    """The trainers' club: members, trainers, PT products and packages, plans and memberships
    come from `ClubApi` (tests/builders.py); sessions and classes are booked here."""

    plan_body: ClassVar[dict] = {"name": "30 days", "duration_days": 30, "price": "50"}

    # --- time

    def at(self, offset_days: int, hh: int, mm: int = 0) -> datetime:
        """An aware instant: hh:mm wall-clock time in the club, `offset_days` from today."""
        return datetime.combine(self.day(offset_days), time(hh, mm), tzinfo=BERLIN)

    # --- packages

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


@pytest.fixture
def gym(client, world) -> Gym:
    club = world.club()
    return Gym(client, world, club, manager=world.staff(club, Role.manager),
               desk=world.staff(club, Role.front_desk))


def race(db, n: int, work) -> tuple[list, list]:
    """Run work(session, i) in n transactions at once (each holding its connection before the
    start line); (results, Conflicts)."""
    barrier = threading.Barrier(n)

    def attempt(i):
        try:
            with transaction(db.sessionmaker) as s:
                s.connection()
                barrier.wait()
                return work(s, i)
        except Conflict as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        outcomes = list(pool.map(attempt, range(n)))
    return ([o for o in outcomes if not isinstance(o, Conflict)],
            [o for o in outcomes if isinstance(o, Conflict)])
