"""Builders for members, cards, plans, memberships, freezes and sales, written with the ORM.

The members, memberships and billing services are written in parallel, so these builders arrange
rows directly and commit them for real (the check-in runs in another session).
"""
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from app.billing.models import Payment, Sale
from app.clubs.models import Club
from app.core import clock
from app.core.db import transaction
from app.members.models import Card, Member
from app.memberships.models import Freeze, Membership, Plan

BERLIN = ZoneInfo("Europe/Berlin")


def today(zone: ZoneInfo = BERLIN) -> date:
    return clock.today(zone)


def local(day: date, hh: int, mm: int = 0, zone: ZoneInfo = BERLIN) -> datetime:
    """An aware instant for a wall-clock time in the club's zone."""
    return datetime.combine(day, time(hh, mm), tzinfo=zone)


def iso(at: datetime) -> str:
    return at.isoformat()


def count_rows(session, model, *where) -> int:
    """Count rows, then end the read: on SQLite every transaction holds the write lock."""
    from sqlalchemy import func, select

    n = session.scalar(select(func.count()).select_from(model).where(*where))
    session.rollback()
    return n


@dataclass
class People:
    member_id: int
    club_id: int
    first_name: str
    card: str | None


@dataclass
class Gym:
    db: object
    _n: int = field(default=0)

    def _next(self) -> int:
        self._n += 1
        return self._n

    def plan(self, club: Club, *, name: str = "Monthly", visit_limit: int | None = None,
             access_start: time | None = None, access_end: time | None = None) -> int:
        with transaction(self.db.sessionmaker) as s:
            plan = Plan(club_id=club.id, name=name, duration_months=1, price=Decimal("49.00"),
                        visit_limit=visit_limit, access_start=access_start,
                        access_end=access_end, freeze_days=14, auto_renew=False, active=True)
            s.add(plan)
            s.flush()
            return plan.id

    def member(self, club: Club, *, first_name: str | None = None, last_name: str = "Muster",
               card: str | None = "auto", card_status: str = "active") -> People:
        n = self._next()
        first_name = first_name or f"Anna{n}"
        code = f"C{club.id:03d}{n:05d}" if card == "auto" else card
        with transaction(self.db.sessionmaker) as s:
            member = Member(club_id=club.id, first_name=first_name, last_name=last_name,
                            search_name=f"{first_name} {last_name}".lower())
            s.add(member)
            s.flush()
            if code is not None:
                s.add(Card(club_id=club.id, member_id=member.id, code=code, status=card_status,
                           blocked_at=clock.now() if card_status != "active" else None))
            return People(member.id, club.id, first_name, code)

    def membership(self, who: People, *, plan_id: int | None = None, start: date | None = None,
                   end: date | None = None, visit_limit: int | None = None, visits_used: int = 0,
                   cancelled_on: date | None = None, club: Club | None = None) -> int:
        start = start or today() - timedelta(days=10)
        end = end or today() + timedelta(days=20)
        with transaction(self.db.sessionmaker) as s:
            if plan_id is None:
                plan = Plan(club_id=who.club_id, name="Monthly", duration_months=1,
                            price=Decimal("49.00"), visit_limit=visit_limit, freeze_days=14,
                            auto_renew=False, active=True)
                s.add(plan)
                s.flush()
                plan_id = plan.id
            membership = Membership(
                club_id=who.club_id, member_id=who.member_id, plan_id=plan_id, start_date=start,
                end_date=end, original_end_date=end, price=Decimal("49.00"),
                visit_limit=visit_limit, visits_used=visits_used, cancelled_on=cancelled_on)
            s.add(membership)
            s.flush()
            return membership.id

    def freeze(self, who: People, membership_id: int, *, start: date, end: date) -> int:
        with transaction(self.db.sessionmaker) as s:
            freeze = Freeze(club_id=who.club_id, membership_id=membership_id, start_date=start,
                            end_date=end, reason="travel", created_at=clock.now())
            s.add(freeze)
            s.flush()
            return freeze.id

    def sale(self, who: People, *, total: str, paid: str) -> int:
        with transaction(self.db.sessionmaker) as s:
            sale = Sale(club_id=who.club_id, member_id=who.member_id, total=Decimal(total),
                        created_at=clock.now())
            s.add(sale)
            s.flush()
            if Decimal(paid):
                s.add(Payment(club_id=who.club_id, sale_id=sale.id, method="card",
                              kind="payment", amount=Decimal(paid), created_at=clock.now()))
            return sale.id


@pytest.fixture
def gym(db) -> Gym:
    return Gym(db)


@pytest.fixture
def post_event(client):
    """Post a turnstile event: post_event(device, card, event_id=..., occurred_at=..., direction=...)."""

    def post(device, card: str, **fields):
        body = {"card": card} | {k: (iso(v) if isinstance(v, datetime) else v)
                                 for k, v in fields.items() if v is not None}
        return client.post("/api/v1/access/events", json=body, headers=device.headers)

    return post
