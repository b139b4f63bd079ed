"""Analytics test data: hand-built clubs (`hand`) and the demo club with everything the reports
read (`demo`, built once per backend for the module that asks for it).

Rows are written directly (tests/builders.py and Core inserts, committed for real): the reports
are read-only, and the other packages' services are not what is under test here.
"""
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from app.access.models import Visit
from app.billing.models import Sale, SaleLine
from app.clubs.models import ClubStaff
from app.core.db import transaction
from app.crm.models import Interaction, Task
from app.members.models import Member
from app.memberships.models import Membership, Plan
from app.retention.models import ScheduledTouchpoint, StageChange, TouchpointDefinition
from app.trainers.models import PtPackage, PtProduct, PtSession, TrainerProfile
from tests.builders import Profile, World, local

BERLIN = ZoneInfo("Europe/Berlin")
AS_OF = date(2026, 6, 15)  # "today" of the demo club and of most hand-built tests


def days(n: int) -> timedelta:
    return timedelta(days=n)


# --- hand-built clubs ---------------------------------------------------------------------------

ANALYTICS = Profile(first_name="Member{n}", last_name="Test", consents=True,
                    joined=local(date(2025, 1, 1)), freeze_days=30, sold_hour=9)
"""Members with both consents who joined on 1 January 2025; memberships sold at 09:00."""


class Hand(World):
    """Builders for small clubs whose every figure is known by construction."""

    def __init__(self, db):
        super().__init__(db, ANALYTICS)

    def _insert(self, model, **values) -> int:
        with transaction(self.db.sessionmaker) as s:
            return s.execute(insert(model.__table__).returning(model.__table__.c.id),
                             values).scalar_one()

    def change(self, statement) -> None:
        """Run one statement in a transaction of its own (a change the tests follow)."""
        with transaction(self.db.sessionmaker) as s:
            s.execute(statement)

    def definition(self, club, key: str, channel: str = "email",
                   stage: str = "renewal_due") -> int:
        return self._insert(TouchpointDefinition, club_id=club.id, key=key, name=key.title(),
                            stage=stage, trigger="days_before_end", days=14, channel=channel,
                            body_template="Hello", enabled=True)

    def touchpoint(self, club, member: int, definition: int, membership: int | None,
                   status: str, *, channel: str = "email", on: date = date(2026, 1, 1),
                   cycle: str | None = None) -> int:
        self._members += 1
        at = local(on, 9)
        return self._insert(ScheduledTouchpoint, club_id=club.id, member_id=member,
                            definition_id=definition, cycle=cycle or f"c{self._members}",
                            channel=channel, membership_id=membership, trigger_on=on,
                            planned_at=at, first_due_at=at, due_at=at, status=status,
                            sent_at=at if status == "sent" else None, updated_at=at)


    def offer_results(self, club, plan: int, definition: int, end: date,
                      groups=(("sent", 40, 32), ("held_out", 40, 12))) -> None:
        """Per (status, members, renewed): members whose membership ends on `end`, each with
        the touchpoint `definition` two weeks before, the first `renewed` renewing next day."""
        for status, n, renewed in groups:
            for i in range(n):
                member = self.member(club)
                mid = self.membership(club, member, plan, end - timedelta(days=30), end)
                if i < renewed:
                    self.membership(club, member, plan, end + timedelta(days=1),
                                    end + timedelta(days=30))
                self.touchpoint(club, member, definition, mid, status,
                                on=end - timedelta(days=14))

@pytest.fixture
def hand(db) -> Hand:
    return Hand(db)


# --- the demo club, with what the demo does not write ------------------------------------------

@dataclass
class Demo:
    db: object
    club_id: int
    as_of: date
    raw: object


DEMO_SEED = 11


def _day_between(rng: random.Random, lo: date, hi: date) -> date:
    return lo + days(rng.randint(0, max((hi - lo).days, 0)))


def _edge_time(rng: random.Random, day: date) -> datetime:
    """A moment of a club day, often right after midnight or right before it (time-zone edges)."""
    hh, mm = rng.choice(((0, 5), (0, 40), (23, 20), (23, 55), (12, 0), (18, 30)))
    return local(day, hh, mm)


def sprinkle(session, club_id: int, as_of: date, seed: int = DEMO_SEED) -> None:
    """Add trainers, PT, stage history, a playbook with touchpoints, tasks, interactions, café
    sales, visits at midnight edges and unusual memberships to a demo club, deterministically."""
    rng = random.Random(seed)
    conn = session.connection()

    def add(model, rows: list[dict]) -> None:
        if rows:
            conn.execute(insert(model.__table__), rows)

    staff = {role: [u for u, r in session.execute(
        select(ClubStaff.user_id, ClubStaff.role).where(ClubStaff.club_id == club_id))
        if r == role] for role in ("trainer", "front_desk", "manager", "owner")}
    add(TrainerProfile, [{"club_id": club_id, "user_id": u} for u in staff["trainer"]])
    trainers = list(session.scalars(select(TrainerProfile.id)
                                    .where(TrainerProfile.club_id == club_id)))
    product = conn.execute(insert(PtProduct.__table__).returning(PtProduct.__table__.c.id), {
        "club_id": club_id, "name": "PT 10", "sessions": 10, "price": Decimal("450.00"),
        "validity_days": 90}).scalar_one()
    plans = list(session.scalars(select(Plan.id).where(Plan.club_id == club_id)))
    memberships = session.execute(
        select(Membership.id, Membership.member_id, Membership.plan_id, Membership.start_date,
               Membership.end_date).where(Membership.club_id == club_id)
        .order_by(Membership.id)).all()
    members = list(session.scalars(select(Member.id).where(Member.club_id == club_id)
                                   .order_by(Member.id)))

    # unusual memberships: void, cancelled after its end, overlapping, parallel, early renewal
    unusual = []
    for i, member in enumerate(rng.sample(members, 12)):
        start = _day_between(rng, as_of - days(300), as_of - days(20))
        end = start + days(rng.choice((29, 59, 89)))
        row = {"club_id": club_id, "member_id": member, "plan_id": rng.choice(plans),
               "start_date": start, "end_date": end, "original_end_date": end,
               "price": Decimal("49.00"), "visits_used": 0, "cancelled_on": None,
               "cancel_reason": None, "created_at": local(start, 8),
               "updated_at": local(start, 8)}
        if i % 4 == 0:
            row["cancelled_on"] = start  # void: never ran
        elif i % 4 == 1:
            row["cancelled_on"] = end + days(3)  # recorded after it ended: changes nothing
            row["cancel_reason"] = None
        elif i % 4 == 2:
            row["cancelled_on"] = start + days(10)
            row["cancel_reason"] = "   "  # blank: not a recorded reason
        unusual.append(row)
        if i % 3 == 0:  # a parallel one starting the same day
            unusual.append(dict(row, cancelled_on=None, cancel_reason=None,
                                end_date=end + days(30), original_end_date=end + days(30)))
    add(Membership, unusual)
    memberships = session.execute(
        select(Membership.id, Membership.member_id, Membership.plan_id, Membership.start_date,
               Membership.end_date).where(Membership.club_id == club_id)
        .order_by(Membership.id)).all()

    packages, sessions, changes, tasks, visits = [], [], [], [], []
    definitions = [("welcome", "onboarding", "email"), ("intro", "onboarding", "trainer_task"),
                   ("miss_you", "at_risk", "sms"), ("renewal_call", "renewal_due", "call_task"),
                   ("renewal_offer", "renewal_due", "email")]
    add(TouchpointDefinition, [{"club_id": club_id, "key": k, "name": k, "stage": st,
                                "trigger": "days_after_stage_entry", "days": 0, "channel": ch,
                                "body_template": "x", "enabled": k != "intro"}
                               for k, st, ch in definitions])
    defs = session.execute(select(TouchpointDefinition.id, TouchpointDefinition.channel)
                           .where(TouchpointDefinition.club_id == club_id)).all()
    touchpoints = []
    by_member: dict[int, list] = {}
    for m in memberships:
        by_member.setdefault(m.member_id, []).append(m)
    for m in memberships:
        lo, hi = m.start_date, m.end_date
        if rng.random() < 0.2:
            start = _day_between(rng, lo - days(20), hi)
            packages.append({"club_id": club_id, "member_id": m.member_id, "product_id": product,
                             "trainer_id": rng.choice(trainers + [None]),
                             "sessions_total": 10, "sessions_left": 3,
                             "price": Decimal("450.00"), "valid_from": start,
                             "valid_until": start + days(rng.randint(10, 90)),
                             "created_at": local(start, 10)})
        if rng.random() < 0.2:
            day = _day_between(rng, lo - days(3), hi + days(3))
            at = _edge_time(rng, day)
            sessions.append({"club_id": club_id, "trainer_id": rng.choice(trainers),
                             "member_id": m.member_id, "starts_at": at,
                             "ends_at": at + timedelta(hours=1),
                             "status": rng.choice(("completed", "completed", "no_show",
                                                   "booked", "cancelled"))})
        if rng.random() < 0.35:
            changes.append({"club_id": club_id, "member_id": m.member_id, "from_stage": "active",
                            "to_stage": rng.choice(("at_risk", "at_risk", "active", "lapsed")),
                            "on_date": _day_between(rng, lo - days(4), hi + days(4)),
                            "at": local(lo, 5), "reason": "test", "source": "daily_run"})
        for k, (definition, channel) in enumerate(defs):
            if rng.random() >= 0.5:
                continue
            status = rng.choices(("sent", "held_out", "skipped", "cancelled", "failed",
                                  "pending"), weights=(50, 18, 10, 10, 5, 7))[0]
            roll = rng.random()
            membership_id = m.id if roll < 0.9 else None if roll < 0.95 else \
                rng.choice(by_member[m.member_id]).id
            on = _day_between(rng, lo, hi)
            at = local(on, 9)
            touchpoints.append({"club_id": club_id, "member_id": m.member_id,
                                "definition_id": definition, "cycle": f"m{m.id}-{k}",
                                "channel": channel, "membership_id": membership_id,
                                "trigger_on": on, "planned_at": at, "first_due_at": at,
                                "due_at": at, "status": status, "updated_at": at,
                                "sent_at": at if status == "sent" else None})
            if rng.random() < 0.05:  # a second cycle of the same play for the same membership
                touchpoints.append(dict(touchpoints[-1], cycle=f"m{m.id}-{k}-again",
                                        status=rng.choice(("held_out", "sent"))))
        if rng.random() < 0.3:
            due = _day_between(rng, lo, hi + days(10))
            status = rng.choice(("done", "done", "done", "cancelled", "open"))
            done_at = None
            if status == "done":
                done_at = _edge_time(rng, due + days(rng.choice((-3, 0, 0, 0, 1, 5))))
            tasks.append({"club_id": club_id, "member_id": m.member_id, "title": "Call",
                          "kind": rng.choice(("call", "renewal_offer", "trainer", "follow_up")),
                          "due_date": due, "status": status, "completed_at": done_at,
                          "created_at": local(due, 6), "updated_at": local(due, 6)})
        if rng.random() < 0.25:  # visits at the edges of the attendance window
            end = hi
            for day, (hh, mm) in ((end, (23, 55)), (end + days(1), (0, 5)),
                                  (end - days(55), (0, 5)), (end - days(56), (23, 55))):
                if lo <= day <= as_of:
                    visits.append({"club_id": club_id, "member_id": m.member_id,
                                   "membership_id": None, "occurred_at": local(day, hh, mm)})
    # joiners' first weeks: staff interactions (and the engine's own), visits at the edges
    interactions = []
    staff_ids = staff["front_desk"] + staff["manager"]
    for member, ms in by_member.items():
        first = min(ms, key=lambda m: (m.start_date, m.id))
        for _ in range(rng.randint(0, 6)):
            day = first.start_date + days(rng.choice((0, 3, 10, 29, 29, 30, 31)))
            interactions.append({"club_id": club_id, "member_id": member, "kind": "desk_visit",
                                 "channel": "desk", "summary": "Hello",
                                 "staff_id": rng.choice(staff_ids + [None]),
                                 "occurred_at": _edge_time(rng, day)})
        if rng.random() < 0.3 and first.start_date + days(14) <= as_of:
            day = first.start_date + days(rng.choice((13, 14)))
            visits.append({"club_id": club_id, "member_id": member, "membership_id": None,
                           "occurred_at": _edge_time(rng, day)})
    add(PtPackage, packages)
    add(PtSession, sessions)
    add(StageChange, changes)
    add(ScheduledTouchpoint, touchpoints)
    add(Task, tasks)
    add(Interaction, interactions)
    add(Visit, visits)
    # café and mixed receipts, some at midnight edges of the period, odd cents
    for i in range(40):
        day = _day_between(rng, as_of - days(340), as_of)
        at = _edge_time(rng, day)
        kinds = rng.choice((["product"], ["product", "product"], ["product", "pt_package"], []))
        amounts = [Decimal(rng.randint(5, 995)) / 100 for _ in kinds]
        sale = conn.execute(insert(Sale.__table__).returning(Sale.__table__.c.id), {
            "club_id": club_id, "member_id": rng.choice(members + [None]),
            "total": sum(amounts, Decimal("0.00")) if amounts else Decimal("3.35"),
            "created_at": at}).scalar_one()
        add(SaleLine, [{"club_id": club_id, "sale_id": sale, "kind": k, "description": "x",
                        "quantity": 1, "unit_price": a, "amount": a}
                       for k, a in zip(kinds, amounts, strict=True)])
    # leads recorded lately: some not converted yet
    add(Member, [{"club_id": club_id, "first_name": f"Lead{i}", "last_name": "New",
                  "search_name": f"lead{i} new", "created_at": _edge_time(rng, as_of - days(i)),
                  "updated_at": local(as_of)} for i in range(0, 40, 3)])


@pytest.fixture(scope="module")
def demo(database, empty_all_tables) -> Iterator[Demo]:
    """The demo club (150 members, 12 months, fixed seed and today) plus `sprinkle`, on each
    backend once per module, with its raw rows loaded for the reference computation."""
    from app.demo.generator import DemoOptions, build_demo
    from tests.analytics import reference

    empty_all_tables(database)
    result = build_demo(database.sessionmaker,
                        DemoOptions(members=150, months=12, seed=DEMO_SEED, as_of=AS_OF))
    with transaction(database.sessionmaker) as s:
        sprinkle(s, result.club_id, AS_OF)
    with database.sessionmaker() as s:
        raw = reference.load(s, result.club_id)
    yield Demo(database, result.club_id, AS_OF, raw)
    empty_all_tables(database)
