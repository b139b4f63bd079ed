"""The figures an owner checks after switching: members, active memberships, visits and revenue
per month — counted in the import's files and in the club, to put side by side.

* **members**: people (the club: not erased; the files: the good rows of members.csv);
* **active memberships**: running on the club's today (started, not past their last day, not
  cancelled before; a frozen membership still runs);
* **visits per month**: by the month of the club's time zone;
* **revenue per month**: the price paid for memberships and PT packages, by the month they start
  (what the history files carry; sales of café products and dues are not in them).
"""
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.access.models import Visit
from app.imports.history.common import last_ordinal
from app.members.models import Member
from app.memberships.models import Membership
from app.trainers.models import PtPackage


def month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


@dataclass
class Figures:
    today: date
    members: int = 0
    active_memberships: int = 0
    visits: Counter = field(default_factory=Counter)
    """"YYYY-MM" → visits."""
    revenue: dict[str, Decimal] = field(default_factory=dict)
    """"YYYY-MM" → money."""

    def membership(self, start: date, end: date, cancelled_on: date | None,
                   price: Decimal | None) -> None:
        last = last_ordinal(start, end, cancelled_on)
        if last is not None and start.toordinal() <= self.today.toordinal() <= last:
            self.active_memberships += 1
        self.paid(start, price)

    def paid(self, start: date, price: Decimal | None) -> None:
        if price:
            key = month(start)
            self.revenue[key] = self.revenue.get(key, Decimal(0)) + Decimal(price)

    def as_dict(self) -> dict:
        return {"today": self.today.isoformat(), "members": self.members,
                "active_memberships": self.active_memberships,
                "visits_per_month": dict(sorted(self.visits.items())),
                "revenue_per_month": {k: f"{v:.2f}" for k, v in sorted(self.revenue.items())}}


def club_figures(session: Session, *, club_id: int, today: date, zone: ZoneInfo) -> Figures:
    """The club's figures now (visits streamed; the rest one query each)."""
    figures = Figures(today)
    figures.members = session.scalar(select(func.count()).select_from(Member).where(
        Member.club_id == club_id, Member.erased_at.is_(None))) or 0
    for start, end, cancelled_on, price in session.execute(
            select(Membership.start_date, Membership.end_date, Membership.cancelled_on,
                   Membership.price).where(Membership.club_id == club_id)):
        figures.membership(start, end, cancelled_on, price)
    for start, price in session.execute(select(PtPackage.valid_from, PtPackage.price).where(
            PtPackage.club_id == club_id)):
        figures.paid(start, price)
    hours: Counter = Counter()  # visits per UTC hour, then each hour → its local month
    for (at,) in session.execute(select(Visit.occurred_at).where(Visit.club_id == club_id)
                                 .execution_options(yield_per=50_000)):
        hours[at.replace(minute=0, second=0, microsecond=0)] += 1
    for hour, count in hours.items():
        local = (hour if hour.tzinfo else hour.replace(tzinfo=UTC)).astimezone(zone)
        figures.visits[month(local)] += count
    return figures


def comparison(files: Figures, club: Figures) -> list[tuple[str, str, str]]:
    """(what, the files' figure, the club's figure) rows, months in order."""
    rows = [("members", str(files.members), str(club.members)),
            (f"active memberships on {club.today.isoformat()}", str(files.active_memberships),
             str(club.active_memberships))]
    for key in sorted(set(files.visits) | set(club.visits)):
        rows.append((f"visits {key}", str(files.visits.get(key, 0)),
                     str(club.visits.get(key, 0))))
    for key in sorted(set(files.revenue) | set(club.revenue)):
        rows.append((f"revenue {key}", f"{files.revenue.get(key, 0):.2f}",
                     f"{club.revenue.get(key, 0):.2f}"))
    return rows
