"""What every analytics query starts from: the club, its day, its grace window and the period."""
from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, exists, or_
from sqlalchemy.orm import Session

from app.analytics.sql import prepare
from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core import sql
from app.core.errors import Invalid, NotFound
from app.memberships.models import Membership, Plan
from app.memberships.rules import add_months

MAX_PERIOD_DAYS = 3 * 366 + 1  # three years at a time
EARLY_DAYS = 30  # a renewal may start up to 30 days before the end (RETENTION.md)


@dataclass(frozen=True)
class Scope:
    """The club, its time zone, "today" (`as_of`), the grace window and the period asked for.

    `grace` is the club's `grace_days`, at least 1: a membership that starts the day after
    another ends always continues it. `date_to` is never after `as_of`.
    """

    club_id: int
    zone: ZoneInfo
    as_of: date
    grace: int
    date_from: date
    date_to: date
    plan_id: int | None = None

    @property
    def tz(self) -> str:
        return self.zone.key


def default_from(date_to: date) -> date:
    """The first day of the month eleven months before `date_to`'s: twelve calendar months."""
    return add_months(date_to.replace(day=1), -11)


def scope(session: Session, *, club_id: int, as_of: date | None = None,
          date_from: date | None = None, date_to: date | None = None,
          plan_id: int | None = None, default_start=default_from,
          max_days: int | None = MAX_PERIOD_DAYS) -> Scope:
    """Resolve and check the period: defaults, `to` capped at today, at most three years."""
    prepare(session)
    club = session.get(Club, club_id)
    if club is None:
        raise NotFound("Club not found")
    zone = clubs_service.club_zone(club)
    as_of = as_of or clubs_service.club_today(club)
    grace = max(clubs_service.club_settings(club).grace_days, 1)
    date_to = min(date_to or as_of, as_of)
    if date_from is None:
        date_from = default_start(date_to)
    if date_from > date_to:
        raise Invalid(f"'from' ({date_from}) must not be after 'to' ({date_to}; a period ends "
                      "today at the latest)", code="invalid_period",
                      details={"from": date_from.isoformat(), "to": date_to.isoformat()})
    if max_days is not None and (date_to - date_from).days + 1 > max_days:
        raise Invalid("Ask for at most three years at a time", code="period_too_long")
    if plan_id is not None:
        plan = session.get(Plan, plan_id)
        if plan is None or plan.club_id != club_id:
            raise NotFound("Plan not found", code="plan_not_found")
    return Scope(club_id=club_id, zone=zone, as_of=as_of, grace=grace, date_from=date_from,
                 date_to=date_to, plan_id=plan_id)


# --- the membership rules every measure shares ---------------------------------------------------

def last_day(m):
    """The last day a membership lets its member in: the end date (already moved out by any
    freeze), or the day before `cancelled_on` when it was cancelled before its end."""
    return case((and_(m.c.cancelled_on.is_not(None), m.c.cancelled_on <= m.c.end_date),
                 sql.add_days(m.c.cancelled_on, -1)), else_=m.c.end_date)


def not_void(m):
    """A membership cancelled on or before its first day never ran: it counts nowhere."""
    return or_(m.c.cancelled_on.is_(None), m.c.cancelled_on > m.c.start_date)


def month_label(index: int) -> str:
    first = sql.month_of(index)
    return f"{first.year:04d}-{first.month:02d}"


def month_end(index: int) -> date:
    return sql.month_of(index + 1) - timedelta(days=1)


def renewed(s: Scope, w):
    """1 when the membership `w` (columns id, member_id, start_date, last_day, next_start — the
    member's next start in (start, id) order among the club's memberships that ran) was renewed:
    the member started another membership, not void and starting later than this one started,
    between `EARLY_DAYS` before and `grace` days after its last day; else 0.

    When the next start is later than this start and not more than 30 days before the last day,
    it decides alone (renewed iff it starts by last day + grace); otherwise (no later start, a
    tie, or an overlapping membership that started earlier in the window) an `EXISTS` over the
    member's memberships decides — rare, and `CASE` evaluates it only then. It depends only on
    the member's memberships and on grace: stored with the facts (`retention.ensure_facts`).
    """
    n = Membership.__table__.alias("n")
    early = sql.add_days(w.c.last_day, -EARLY_DAYS)
    late = sql.add_days(w.c.last_day, s.grace)
    other = exists().where(
        n.c.member_id == w.c.member_id, n.c.id != w.c.id, not_void(n),
        n.c.start_date > w.c.start_date, n.c.start_date >= early, n.c.start_date <= late)
    return case(
        (w.c.next_start.is_(None), 0),
        (and_(w.c.next_start > w.c.start_date, w.c.next_start >= early),
         case((w.c.next_start <= late, 1), else_=0)),
        (other, 1), else_=0)
