"""Members book personal training in the app: their packages, their trainer's free slots,
booking one, their coming sessions and cancelling one.

Every rule is the trainers domain's: the slots are `app.trainers.availability.free_slots`, a
booking is `app.trainers.sessions.book_session` and a cancellation `cancel_session`, called with
the member as the actor (`MemberActor`). What that adds for a member — only for themselves, only
with a trainer of their own packages (`packages.member_trainers`), within the slot horizon, and
only while a package has a session no other booking holds — is checked there too, under the
booking's locks. This module only reads what the page shows, makes a second tap harmless, and
puts each booking and cancellation on the member's timeline for the staff.

Spending: as for every PT session, the package is spent when the session is closed (completed,
no-show, or a late cancellation), from the package that expires first among those valid on the
session's day. Until then a booked session *holds* a session of that package
(`packages.held_sessions`): what the member sees as "left to book" is the balance less the
sessions held, and booking takes one from the package that expires first.
"""
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clubs import service as clubs_service
from app.core import clock
from app.core.actors import MemberActor
from app.core.errors import Conflict, Invalid, NotFound
from app.crm import service as crm_service
from app.trainers import availability
from app.trainers import packages as pt_packages
from app.trainers import sessions as pt_sessions
from app.trainers.models import PtSession
from app.trainers.schemas import PtPackageRead, SessionRead
from app.trainers.service import BOOKED, CANCELLED, get_settings, trainer_names

BOOKED_KIND, CANCELLED_KIND = "pt_booked", "pt_cancelled"
DAYS_SHOWN = 7  # the page shows the free slots of the next week (booking reaches the horizon)


@dataclass
class PackageRow:
    package: PtPackageRead
    held: int  # booked sessions that will spend this package
    left_to_book: int


@dataclass
class TrainerDay:
    day: date
    slots: list[availability.Slot]


@dataclass
class TrainerSlots:
    trainer_id: int
    name: str
    days: list[TrainerDay]


@dataclass
class Coming:
    session: PtSession
    trainer: str
    late: bool  # cancelling now would spend a session


@dataclass
class Training:
    zone: ZoneInfo
    today: date
    packages: list[PackageRow]
    trainers: list[TrainerSlots]
    coming: list[Coming]
    cancel_hours: int
    left_to_book: int = field(init=False)

    def __post_init__(self) -> None:
        self.left_to_book = sum(p.left_to_book for p in self.packages
                                if p.package.status == "active")


def overview(session: Session, *, actor: MemberActor, days: int = DAYS_SHOWN,
             now: datetime | None = None) -> Training:
    """The member's usable packages (with what is left to book), the free slots of their
    trainer(s) for the next `days` days, and their coming sessions."""
    now = now or clock.now()
    club = clubs_service.get_club(session, actor.club_id)
    zone, today = clubs_service.club_zone(club), clubs_service.club_today(club, now)
    owned = pt_packages.member_packages(session, club_id=actor.club_id,
                                        member_id=actor.member_id, as_of=today, now=now)
    held, _fits = pt_packages.held_sessions(session, club_id=actor.club_id,
                                            member_id=actor.member_id)
    rows = [PackageRow(p, held.get(p.id, 0), max(p.sessions_left - held.get(p.id, 0), 0))
            for p in owned.items if p.status in ("active", "pending")]
    ids = pt_packages.member_trainers(session, club_id=actor.club_id,
                                      member_id=actor.member_id, today=today)
    names = trainer_names(session, set(ids))
    trainers = []
    for trainer_id in ids:
        slots = availability.free_slots(session, club_id=actor.club_id, trainer_id=trainer_id,
                                        member_id=actor.member_id, date_from=today,
                                        date_to=today + timedelta(days=days - 1), now=now)
        by_day: dict[date, list[availability.Slot]] = {}
        for slot in slots:
            by_day.setdefault(slot.starts_at.astimezone(zone).date(), []).append(slot)
        trainers.append(TrainerSlots(trainer_id, names.get(trainer_id, "?"),
                                     [TrainerDay(d, s) for d, s in sorted(by_day.items())]))
    window = timedelta(hours=get_settings(session, club_id=actor.club_id).pt_cancel_hours)
    coming = list(session.scalars(select(PtSession).where(
        PtSession.club_id == actor.club_id, PtSession.member_id == actor.member_id,
        PtSession.status == BOOKED, PtSession.starts_at > now)
        .order_by(PtSession.starts_at, PtSession.id).limit(20)))
    names |= trainer_names(session, {s.trainer_id for s in coming} - set(names))
    return Training(zone, today, rows, trainers,
                    [Coming(s, names.get(s.trainer_id, "?"),
                            not s.complimentary and s.starts_at - now < window)
                     for s in coming], int(window.total_seconds() // 3600))


def cancel_hours(session: Session, *, actor: MemberActor) -> int:
    """The club's PT cancellation window: cancelling later than this spends the session."""
    return get_settings(session, club_id=actor.club_id).pt_cancel_hours


@dataclass
class Booked:
    session: SessionRead
    again: bool  # the member had booked exactly this already: nothing changed


@dataclass
class Cancelled:
    session: SessionRead
    again: bool  # it was cancelled already: nothing changed


def _instant(start: str) -> datetime:
    try:
        at = datetime.fromisoformat(start.strip())
    except ValueError:
        at = None
    try:  # a time at the calendar's ends (0001-01-01+01:00) has no UTC instant
        utc = at.astimezone(UTC) if at is not None and at.utcoffset() is not None else None
    except OverflowError:
        utc = None
    if utc is None:
        raise Invalid("Choose one of the free times", code="slot_invalid")
    return utc


def _mine(session: Session, actor: MemberActor, session_id: int) -> PtSession:
    pt = session.scalar(select(PtSession).where(
        PtSession.id == session_id, PtSession.club_id == actor.club_id,
        PtSession.member_id == actor.member_id).execution_options(populate_existing=True))
    if pt is None:
        raise NotFound("You have no session with this number", code="session_not_found")
    return pt


def _when(session: Session, pt: SessionRead | PtSession, club_id: int) -> str:
    local = pt.starts_at.astimezone(clubs_service.club_zone(
        clubs_service.get_club(session, club_id)))
    return f"{local:%Y-%m-%d %H:%M}"


def book(session: Session, *, actor: MemberActor, trainer_id: int, start: str,
         now: datetime | None = None) -> Booked:
    """Book a free slot with one of the member's trainers (`book_session`, the member acting);
    the same slot booked already: that booking, unchanged."""
    now = now or clock.now()
    at = _instant(start)
    same = select(PtSession).where(
        PtSession.club_id == actor.club_id, PtSession.member_id == actor.member_id,
        PtSession.trainer_id == trainer_id, PtSession.starts_at == at,
        PtSession.status == BOOKED)
    existing = session.scalar(same)
    if existing is not None:
        return Booked(pt_sessions.read_session(session, club_id=actor.club_id,
                                               session_id=existing.id), again=True)
    try:
        day = at.astimezone(clubs_service.club_zone(
            clubs_service.get_club(session, actor.club_id))).date()
    except OverflowError:  # 9999-12-31 23:30 UTC is in the year 10000 in Berlin
        raise Invalid("Choose one of the free times", code="slot_invalid") from None
    offered = {slot.starts_at for slot in availability.free_slots(
        session, club_id=actor.club_id, trainer_id=trainer_id, member_id=actor.member_id,
        date_from=day, date_to=day, now=now)}
    try:
        read = pt_sessions.book_session(session, actor=actor, member_id=actor.member_id,
                                        start=at, trainer_id=trainer_id, now=now,
                                        duration_minutes=availability.SESSION_MINUTES)
    except Conflict as exc:
        # a second tap that waited for the first one's lock: the first one's booking
        if exc.code not in ("member_busy", "trainer_busy"):
            raise
        existing = session.scalar(same.execution_options(populate_existing=True))
        if existing is None:
            raise
        return Booked(pt_sessions.read_session(session, club_id=actor.club_id,
                                               session_id=existing.id), again=True)
    if at not in offered:  # the engine's rules held, but the page offered no such time
        raise Invalid("Choose one of the free times", code="slot_invalid")
    held, _fits = pt_packages.held_sessions(session, club_id=actor.club_id,
                                            member_id=actor.member_id)
    owned = pt_packages.member_packages(session, club_id=actor.club_id,
                                        member_id=actor.member_id, now=now)
    left = sum(max(p.sessions_left - held.get(p.id, 0), 0) for p in owned.items
               if p.status == "active")
    crm_service.record(session, club_id=actor.club_id, member_id=actor.member_id,
                       kind=BOOKED_KIND, channel=crm_service.MEMBER_CHANNEL, occurred_at=now,
                       summary=f"Booked a personal-training session with {read.trainer_name} "
                               f"on {_when(session, read, actor.club_id)} in the member app "
                               f"({left} left to book)")
    session.flush()
    return Booked(read, again=False)


def cancel(session: Session, *, actor: MemberActor, session_id: int,
           now: datetime | None = None) -> Cancelled:
    """Cancel the member's own booked session (`cancel_session`, by the member): inside the
    club's window it is a late cancellation and spends a session. Cancelled already: as it is."""
    now = now or clock.now()
    pt = _mine(session, actor, session_id)
    if pt.status == CANCELLED:
        return Cancelled(pt_sessions.read_session(session, club_id=actor.club_id,
                                                  session_id=pt.id), again=True)
    read = pt_sessions.cancel_session(session, actor=actor, session_id=pt.id, by="member",
                                      now=now)
    summary = (f"Cancelled the personal-training session with {read.trainer_name} on "
               f"{_when(session, read, actor.club_id)} in the member app")
    if read.late_cancel:
        hours = get_settings(session, club_id=actor.club_id).pt_cancel_hours
        summary += (f"; late (less than {hours} h before): "
                    + ("one session of the package spent" if read.charged
                       else "no session left to spend"))
    crm_service.record(session, club_id=actor.club_id, member_id=actor.member_id,
                       kind=CANCELLED_KIND, channel=crm_service.MEMBER_CHANNEL, occurred_at=now,
                       summary=summary)
    session.flush()
    return Cancelled(read, again=False)
