"""Builders for the retention tests: members, plans, memberships, freezes and visits via the ORM.

The members and memberships services are written in parallel, so rows are arranged directly
(and committed for real). Dates are fixed so every test is reproducible; `local(day, hh)` is a
club-local wall-clock time as an aware instant.
"""
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from app.access.models import Visit
from app.core.db import transaction
from app.members.models import Member
from app.memberships.models import Freeze, Membership, Plan
from app.memberships.rules import end_date_for
from app.retention import service
from app.retention.channels import Channels, Recording
from app.retention.dispatch import dispatch_due
from app.retention.models import MemberStage, ScheduledTouchpoint, TouchpointDefinition

BERLIN = ZoneInfo("Europe/Berlin")
D = date(2026, 3, 2)  # a Monday: "today" in most tests


def local(day: date, hh: int = 12, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=BERLIN).astimezone(UTC)


def ago(n: int, ref: date = D) -> date:
    return ref - timedelta(days=n)


@dataclass
class RetentionWorld:
    db: object
    world: object
    _n: int = field(default=0)

    def club(self, **settings):
        return self.world.club(**settings)

    def plan(self, club, *, months: int = 12, auto_renew: bool = False,
             name: str | None = None) -> int:
        with transaction(self.db.sessionmaker) as s:
            plan = Plan(club_id=club.id, name=name or f"{months} months", duration_months=months,
                        price=Decimal("300.00"), freeze_days=30, auto_renew=auto_renew,
                        active=True)
            s.add(plan)
            s.flush()
            return plan.id

    def member(self, club, first: str | None = None, *, email_consent: bool = True,
               sms_consent: bool = True, email: str | None = "auto", phone: str | None = "auto",
               birth_date: date | None = None, created_at: datetime | None = None) -> int:
        self._n += 1
        first = first or f"Member{self._n}"
        with transaction(self.db.sessionmaker) as s:
            m = Member(club_id=club.id, first_name=first, last_name="Test",
                       email=f"{first.lower()}{self._n}@example.com" if email == "auto" else email,
                       phone=f"+49151000{self._n:05d}" if phone == "auto" else phone,
                       birth_date=birth_date, email_consent=email_consent,
                       sms_consent=sms_consent,
                       created_at=created_at or datetime(2020, 1, 1, tzinfo=UTC))
            s.add(m)
            s.flush()
            return m.id

    def membership(self, club, member_id: int, plan_id: int, start: date, *,
                   end: date | None = None, months: int = 12, cancelled_on: date | None = None,
                   sold_at: datetime | None = None, renews_id: int | None = None) -> int:
        end = end or end_date_for(start, duration_days=None, duration_months=months)
        with transaction(self.db.sessionmaker) as s:
            m = Membership(club_id=club.id, member_id=member_id, plan_id=plan_id,
                           start_date=start, end_date=end, original_end_date=end,
                           price=Decimal("300.00"), visits_used=0, renews_id=renews_id,
                           cancelled_on=cancelled_on,
                           created_at=sold_at or local(start, 8), updated_at=sold_at or local(start, 8))
            s.add(m)
            s.flush()
            return m.id

    def freeze(self, club, membership_id: int, start: date, end: date) -> int:
        with transaction(self.db.sessionmaker) as s:
            f = Freeze(club_id=club.id, membership_id=membership_id, start_date=start,
                       end_date=end, reason="travel", created_at=local(start, 8))
            s.add(f)
            s.flush()
            return f.id

    def visits(self, club, member_id: int, days, hour: int = 18) -> None:
        rows = [{"club_id": club.id, "member_id": member_id, "occurred_at": local(d, hour)}
                for d in days]
        if rows:
            with transaction(self.db.sessionmaker) as s:
                s.execute(insert(Visit), rows)

    def regular_visits(self, club, member_id: int, start: date, end: date,
                       weekdays=(0, 2, 4)) -> None:
        days, d = [], start
        while d <= end:
            if d.weekday() in weekdays:
                days.append(d)
            d += timedelta(days=1)
        self.visits(club, member_id, days)

    # --- running the engine ---
    def run(self, club, day: date = D, **kw) -> service.RunReport:
        return service.run_day(self.db.sessionmaker, club_id=club.id, as_of=day,
                               now=kw.pop("now", local(day, 5)), force=True, **kw)

    def dispatch(self, now: datetime, channels: Channels | None = None, **kw):
        channels = channels or self.channels
        return dispatch_due(self.db.sessionmaker, channels=channels, now=now, **kw)

    @property
    def channels(self) -> Channels:
        if not hasattr(self, "_channels"):
            self._channels = Channels(email=Recording(), sms=Recording())
        return self._channels

    def stage(self, member_id: int) -> MemberStage | None:
        with transaction(self.db.sessionmaker) as s:
            return s.scalar(select(MemberStage).where(MemberStage.member_id == member_id))

    def touchpoints(self, member_id: int | None = None, key: str | None = None) -> list:
        with transaction(self.db.sessionmaker) as s:
            q = (select(ScheduledTouchpoint, TouchpointDefinition.key)
                 .join(TouchpointDefinition,
                       TouchpointDefinition.id == ScheduledTouchpoint.definition_id))
            if member_id is not None:
                q = q.where(ScheduledTouchpoint.member_id == member_id)
            if key is not None:
                q = q.where(TouchpointDefinition.key == key)
            return [(tp, k) for tp, k in s.execute(q.order_by(ScheduledTouchpoint.id))]

    def definition(self, club, key: str) -> TouchpointDefinition:
        with transaction(self.db.sessionmaker) as s:
            service.playbook.ensure_default_playbook(s, club_id=club.id)
            return s.scalar(select(TouchpointDefinition).where(
                TouchpointDefinition.club_id == club.id, TouchpointDefinition.key == key))

    def only(self, club, *keys: str) -> None:
        """Disable every definition except these (keeps a test about one play focused)."""
        with transaction(self.db.sessionmaker) as s:
            service.playbook.ensure_default_playbook(s, club_id=club.id)
            for d in s.scalars(select(TouchpointDefinition)
                               .where(TouchpointDefinition.club_id == club.id)):
                d.enabled = d.key in keys


@pytest.fixture
def rw(db, world) -> RetentionWorld:
    return RetentionWorld(db, world)
