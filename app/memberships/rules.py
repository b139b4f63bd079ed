"""The date rules of a membership, shared by every domain that asks "is it valid on this day?"."""
import calendar
from datetime import date, timedelta
from enum import StrEnum

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.memberships.models import Freeze, Membership


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
