"""The date rules of a membership, shared by every domain that asks "is it valid on this day?"."""
import calendar
from datetime import date, timedelta
from enum import StrEnum

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.memberships.models import Freeze, Membership, Plan


class Status(StrEnum):
    pending = "pending"
    active = "active"
    frozen = "frozen"
    expired = "expired"
    cancelled = "cancelled"


def add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def end_date_for(start: date, *, duration_days: int | None, duration_months: int | None) -> date:
    """Inclusive last day: a 1-month plan from 15 Jan ends 14 Feb; a 30-day plan ends day 30."""
    if duration_months:
        return add_months(start, duration_months) - timedelta(days=1)
    if duration_days:
        return start + timedelta(days=duration_days - 1)
    raise ValueError("a plan needs a duration in days or months")


def freeze_days(freeze: Freeze) -> int:
    return (freeze.end_date - freeze.start_date).days + 1


def status_on(membership: Membership, freezes: list[Freeze], as_of: date) -> Status:
    """Status on a day, in order of precedence: cancelled, pending, expired, frozen, active."""
    if membership.cancelled_on is not None and membership.cancelled_on <= as_of:
        return Status.cancelled
    if as_of < membership.start_date:
        return Status.pending
    if as_of > membership.end_date:
        return Status.expired
    if any(f.start_date <= as_of <= f.end_date for f in freezes if f.membership_id == membership.id):
        return Status.frozen
    return Status.active


def not_cancelled_on(as_of: date) -> ColumnElement[bool]:
    return or_(Membership.cancelled_on.is_(None), Membership.cancelled_on > as_of)


def frozen_on(as_of: date) -> ColumnElement[bool]:
    return exists(
        select(Freeze.id).where(Freeze.membership_id == Membership.id,
                                Freeze.start_date <= as_of, Freeze.end_date >= as_of)
    )


def active_on(as_of: date) -> ColumnElement[bool]:
    """SQL condition: the membership lets its member in on `as_of` (dates and freezes only)."""
    return and_(Membership.start_date <= as_of, Membership.end_date >= as_of,
                not_cancelled_on(as_of), ~frozen_on(as_of))


class MembershipSummary:
    """What the front desk sees at a glance: the membership that matters today and its state."""

    __slots__ = (
        "days_left",
        "end_date",
        "frozen_until",
        "member_id",
        "membership_id",
        "plan_name",
        "start_date",
        "status",
        "visits_left",
    )

    def __init__(self, member_id: int, status: str, membership_id: int | None = None,
                 plan_name: str | None = None, start_date: date | None = None,
                 end_date: date | None = None, visits_left: int | None = None,
                 days_left: int | None = None, frozen_until: date | None = None):
        self.member_id = member_id
        self.status = status
        self.membership_id = membership_id
        self.plan_name = plan_name
        self.start_date = start_date
        self.end_date = end_date
        self.visits_left = visits_left
        self.days_left = days_left
        self.frozen_until = frozen_until
        """The last day of the freeze the member is in today (None when not frozen)."""

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


_RANK = {Status.active: 0, Status.frozen: 1, Status.pending: 2, Status.expired: 3,
         Status.cancelled: 4}


def summaries(session, member_ids: list[int], as_of: date) -> dict[int, MembershipSummary]:
    """One summary per member (status "none" when they never had a membership), in two queries.

    The membership that matters is the one valid today; else frozen today; else the next one to
    start; else the most recently ended.
    """
    result = {mid: MembershipSummary(mid, "none") for mid in member_ids}
    if not member_ids:
        return result
    rows = session.execute(
        select(Membership, Plan.name).join(Plan, Plan.id == Membership.plan_id)
        .where(Membership.member_id.in_(member_ids))
    ).all()
    ids = [m.id for m, _ in rows]
    freezes = list(session.scalars(select(Freeze).where(Freeze.membership_id.in_(ids)))) if ids else []
    best: dict[int, tuple] = {}
    for membership, plan_name in rows:
        status = status_on(membership, freezes, as_of)
        if status is Status.pending:
            order = membership.start_date.toordinal()
        else:
            order = -membership.end_date.toordinal()
        key = (_RANK[status], order)
        if membership.member_id not in best or key < best[membership.member_id][0]:
            best[membership.member_id] = (key, membership, plan_name, status)
    for member_id, (_key, m, plan_name, status) in best.items():
        visits_left = None if m.visit_limit is None else max(m.visit_limit - m.visits_used, 0)
        days_left = (m.end_date - as_of).days + 1 if m.end_date >= as_of else 0
        frozen_until = max((f.end_date for f in freezes if f.membership_id == m.id
                            and f.start_date <= as_of <= f.end_date), default=None)
        result[member_id] = MembershipSummary(member_id, status.value, m.id, plan_name,
                                              m.start_date, m.end_date, visits_left, days_left,
                                              frozen_until)
    return result


def overlapping(start: date, end: date) -> ColumnElement[bool]:
    """SQL condition: the membership's effective days meet [start, end].

    A cancelled membership counts until the day before it was cancelled (`cancelled_on`).
    """
    return and_(Membership.start_date <= end, Membership.end_date >= start,
                or_(Membership.cancelled_on.is_(None), Membership.cancelled_on > start))
