"""What a signed-in member sees of their own data: memberships (end date, visits and freeze days
left), contracts (terms, notice, the end a cancellation today would give), what they owe and
their invoices, PT packages, upcoming classes and PT sessions, and visits by month.

Read-only, and only ever for `actor.member_id` in `actor.club_id`: nothing here takes an id
from the request.
"""
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.access.models import Visit
from app.billing import service as billing_service
from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core import clock
from app.core.actors import MemberActor
from app.dues import contracts as dues_contracts
from app.dues import panel as dues_panel
from app.dues import terms
from app.dues.models import Contract
from app.members.models import Member
from app.memberships import service as memberships_service
from app.memberships.models import Membership, Plan
from app.memberships.rules import add_months
from app.memberships.service import MembershipView
from app.trainers import packages as pt_packages
from app.trainers.classes import WAITLISTED
from app.trainers.models import ClassBooking, ClassOccurrence, ClassType, PtSession
from app.trainers.schemas import MemberPtPackages
from app.trainers.service import BOOKED, trainer_names

VISIT_MONTHS = 12
SHOWN_ENDED_DAYS = 60  # memberships that ended within this many days are still shown
INVOICES_SHOWN = 12
UPCOMING_SHOWN = 10


@dataclass
class ContractTerms:
    contract: Contract
    plan_name: str
    minimum_end: date | None
    """The last day of the minimum term (None without one)."""
    ends_if_cancelled_today: date | None
    """For a running contract: the last day if the member cancelled today."""


@dataclass
class Upcoming:
    kind: str  # class | pt
    name: str
    starts_at: datetime
    trainer: str
    waitlisted: bool = False
    promoted: bool = False  # a place from the waitlist (`app.memberapp.classes`)


@dataclass
class Overview:
    member: Member
    club: Club
    today: date
    memberships: list[MembershipView]
    contracts: list[ContractTerms]
    debt: Decimal
    """Unpaid desk sales (prepaid memberships, packages, café on account)."""
    invoices: list[dues_panel.OpenInvoiceView]
    dues_open: Decimal
    packages: MemberPtPackages
    upcoming: list[Upcoming]
    visits: list[tuple[int, int, int]] = field(default_factory=list)
    """(year, month, visits) for the last `VISIT_MONTHS` months, the latest first."""

    @property
    def zone(self) -> ZoneInfo:
        return clubs_service.club_zone(self.club)

    @property
    def owes(self) -> Decimal:
        return terms.cents(self.debt + self.dues_open)


def _memberships(session: Session, actor: MemberActor, today: date) -> list[MembershipView]:
    views, _ = memberships_service.member_memberships(
        session, club_id=actor.club_id, member_id=actor.member_id, as_of=today, limit=12)
    shown = [v for v in views if v.cancelled_on is None
             and v.end_date >= today - timedelta(days=SHOWN_ENDED_DAYS)]
    return shown or views[:1]


def _contracts(session: Session, actor: MemberActor, today: date) -> list[ContractTerms]:
    rows = session.execute(
        select(Contract, Plan.name)
        .join(Membership, Membership.id == Contract.membership_id)
        .join(Plan, Plan.id == Membership.plan_id)
        .where(Contract.club_id == actor.club_id, Contract.member_id == actor.member_id,
               (Contract.ends_on.is_(None)) | (Contract.ends_on >= today))
        .order_by(Contract.starts_on.desc(), Contract.id.desc())).all()
    found = []
    for contract, name in rows:
        minimum = terms.minimum_end(contract.starts_on, contract.minimum_months)
        preview = (dues_contracts.cancel_end(contract, today) if contract.ends_on is None
                   else None)
        found.append(ContractTerms(contract, name, minimum, preview))
    return found


def _upcoming(session: Session, actor: MemberActor, now: datetime) -> list[Upcoming]:
    classes = session.execute(
        select(ClassBooking.status, ClassOccurrence.starts_at, ClassOccurrence.trainer_id,
               ClassType.name, ClassBooking.promoted_at)
        .join(ClassOccurrence, ClassOccurrence.id == ClassBooking.occurrence_id)
        .join(ClassType, ClassType.id == ClassOccurrence.class_type_id)
        .where(ClassBooking.club_id == actor.club_id, ClassBooking.member_id == actor.member_id,
               ClassBooking.status.in_((BOOKED, WAITLISTED)), ClassOccurrence.starts_at >= now)
        .order_by(ClassOccurrence.starts_at).limit(UPCOMING_SHOWN)).all()
    pt = session.execute(
        select(PtSession.starts_at, PtSession.trainer_id)
        .where(PtSession.club_id == actor.club_id, PtSession.member_id == actor.member_id,
               PtSession.status == BOOKED, PtSession.starts_at >= now)
        .order_by(PtSession.starts_at).limit(UPCOMING_SHOWN)).all()
    names = trainer_names(session, {r.trainer_id for r in (*classes, *pt)})
    found = [Upcoming("class", r.name, r.starts_at, names.get(r.trainer_id, ""),
                      waitlisted=r.status == WAITLISTED,
                      promoted=r.status == BOOKED and r.promoted_at is not None) for r in classes]
    found += [Upcoming("pt", "", r.starts_at, names.get(r.trainer_id, "")) for r in pt]
    return sorted(found, key=lambda u: u.starts_at)[:UPCOMING_SHOWN]


def visits_by_month(session: Session, *, club: Club, member_id: int, today: date,
                    months: int = VISIT_MONTHS) -> list[tuple[int, int, int]]:
    """(year, month, visits) for the last `months` club-local months, the latest first (months
    without a visit count 0)."""
    zone = clubs_service.club_zone(club)
    first = add_months(today.replace(day=1), -(months - 1))
    since = datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC)
    counts: dict[tuple[int, int], int] = {}
    for (at,) in session.execute(select(Visit.occurred_at).where(
            Visit.club_id == club.id, Visit.member_id == member_id, Visit.occurred_at >= since)):
        local = at.astimezone(zone)
        counts[(local.year, local.month)] = counts.get((local.year, local.month), 0) + 1
    found = []
    for back in range(months):
        day = add_months(today.replace(day=1), -back)
        found.append((day.year, day.month, counts.get((day.year, day.month), 0)))
    return found


def _since(session: Session, member: Member, club: Club) -> date:
    """Since when the person is the club's: their first membership's start or their record's."""
    first = session.scalar(select(func.min(Membership.start_date)).where(
        Membership.club_id == club.id, Membership.member_id == member.id))
    joined = member.created_at.astimezone(clubs_service.club_zone(club)).date()
    return min(first, joined) if first else joined


def overview(session: Session, *, actor: MemberActor) -> Overview:
    """Everything the member's home page shows, for the signed-in member only (visits by
    month since they joined, at most `VISIT_MONTHS`)."""
    club = clubs_service.get_club(session, actor.club_id)
    member = session.get(Member, actor.member_id)
    now = clock.now()
    today = clubs_service.club_today(club, now)
    since = _since(session, member, club)
    months = visits_by_month(session, club=club, member_id=member.id, today=today)
    invoices = dues_panel.member_invoices(session, club_id=club.id, member_id=member.id,
                                          limit=INVOICES_SHOWN)
    return Overview(
        member=member, club=club, today=today,
        memberships=_memberships(session, actor, today),
        contracts=_contracts(session, actor, today),
        debt=billing_service.member_debt(session, club_id=club.id, member_id=member.id),
        invoices=list(reversed(invoices)),
        dues_open=terms.cents(sum((i.open for i in dues_panel.open_invoices(
            session, club_id=club.id, member_id=member.id)), terms.ZERO)),
        packages=pt_packages.member_packages(session, club_id=club.id, member_id=member.id,
                                             as_of=today, now=now),
        upcoming=_upcoming(session, actor, now),
        visits=[m for m in months if (m[0], m[1]) >= (since.year, since.month)] or months[:1])
