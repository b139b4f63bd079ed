"""Members book group classes in the app: the timetable, booking, cancelling, the waitlist.

The seats, the waitlist and its promotion are the trainers' classes engine
(`app.trainers.classes`: the guarded seat counter, `_promote_first` on a cancellation); this
module adds what is the member's: only their own bookings, and the club's rules
(`ClubSettings`), which staff bookings do not go through:

- the booking window: classes from now to `class_booking_days_ahead` days ahead (club days);
- a membership active on the class's day — not frozen that day (the engine checks it:
  `rules.active_on`);
- a late cancellation (a booked place given up less than `class_late_cancel_hours` before the
  start) with `class_late_cancel_penalty`: "none", or "visit" — one visit used on the
  visit-limited membership of that day (the same counter the turnstile counts, one guarded
  UPDATE; nothing when the membership is unlimited or has no visit left). Leaving the waitlist
  is never late.

Tapping twice does nothing twice: booking a class one is booked or waiting for, or cancelling a
cancelled booking, answers with the booking as it is. Another member's booking is "not found".

Every booking and cancellation goes on the member's timeline for the staff. A place a
cancellation (the member's or the desk's) gives to the first on the waitlist comes as the
engine's `ClassPlaceGiven` event: `on_class_place_given` puts it on that member's timeline and
queues the email in the outbox in the same transaction; `notify_promoted` sends it (or the SMS,
by their preferred consented channel) after the member app's transaction committed. A
rolled-back cancellation tells no one.
"""
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.clubs import service as clubs_service
from app.clubs.schemas import ClubSettings
from app.core import clock, i18n
from app.core.actors import MemberActor
from app.core.config import Settings
from app.core.db import transaction
from app.core.errors import Conflict, NotFound
from app.core.events import ClassPlaceGiven
from app.crm import service as crm_service
from app.dues import notices
from app.members.models import Member
from app.memberships import rules
from app.memberships.models import Membership
from app.retention.channels import HttpSms, Message
from app.trainers import classes as engine
from app.trainers.models import ClassBooking, ClassOccurrence, ClassType
from app.trainers.schemas import ClassBookingRead, OccurrenceRead
from app.trainers.service import BOOKED, CANCELLED, trainer_names

log = logging.getLogger("fitclub.memberapp")

WAITLISTED = engine.WAITLISTED
BOOKED_KIND, CANCELLED_KIND, PROMOTED_KIND = "class_booked", "class_cancelled", "class_promoted"
NOTICE_KIND = "class_place"


@dataclass
class ClassRow:
    """A class on the member's timetable, with the member's own place in it."""

    occ: OccurrenceRead
    booking_id: int | None
    status: str | None  # booked | waitlisted | None
    position: int | None  # on the waitlist
    late: bool  # cancelling the booked place now would be a late cancellation

    @property
    def places_left(self) -> int:
        return max(self.occ.capacity - self.occ.booked_count, 0)


@dataclass
class Timetable:
    today: date
    last_day: date
    rules: ClubSettings
    rows: list[ClassRow]


@dataclass
class Booked:
    booking: ClassBookingRead
    again: bool  # the member was already booked or waiting: nothing changed


@dataclass
class Cancelled:
    booking: ClassBookingRead
    again: bool  # it was cancelled already: nothing changed
    late: bool
    visit_used: bool  # the late-cancel penalty used a visit
    promoted_id: int | None  # the booking that got the freed place (tell them: notify_promoted)


def _rules(session: Session, club_id: int) -> ClubSettings:
    return clubs_service.club_settings(clubs_service.get_club(session, club_id))


def _is_late(occ_start: datetime, now: datetime, settings: ClubSettings) -> bool:
    return occ_start - now < timedelta(hours=settings.class_late_cancel_hours)


def timetable(session: Session, *, actor: MemberActor, now: datetime | None = None) -> Timetable:
    """The club's classes from now to the end of the booking window, with the member's places."""
    now = now or clock.now()
    club = clubs_service.get_club(session, actor.club_id)
    settings = clubs_service.club_settings(club)
    today = clubs_service.club_today(club, now)
    last = today + timedelta(days=settings.class_booking_days_ahead)
    occs = [o for o in engine.list_occurrences(session, club_id=club.id, date_from=today,
                                               date_to=last)
            if o.starts_at > now and o.status == engine.SCHEDULED]
    mine = {b.occurrence_id: b for b in session.scalars(select(ClassBooking).where(
        ClassBooking.club_id == club.id, ClassBooking.member_id == actor.member_id,
        ClassBooking.occurrence_id.in_([o.id for o in occs] or [-1]),
        ClassBooking.status.in_((BOOKED, WAITLISTED))))}
    positions = _positions(session, [b for b in mine.values() if b.status == WAITLISTED])
    rows = [ClassRow(o, mine[o.id].id if o.id in mine else None,
                     mine[o.id].status if o.id in mine else None,
                     positions.get(mine[o.id].id) if o.id in mine else None,
                     _is_late(o.starts_at, now, settings)) for o in occs]
    return Timetable(today, last, settings, rows)


def _positions(session: Session, waiting: list[ClassBooking]) -> dict[int, int]:
    """Waitlist positions of these bookings: one count of those queued before each."""
    if not waiting:
        return {}
    ahead = ClassBooking.__table__.alias("ahead")
    b = ClassBooking
    counts = session.execute(
        select(b.id, func.count(ahead.c.id))
        .select_from(b)
        .outerjoin(ahead, (ahead.c.occurrence_id == b.occurrence_id)
                   & (ahead.c.status == WAITLISTED)
                   & ((ahead.c.queued_at < b.queued_at)
                      | ((ahead.c.queued_at == b.queued_at) & (ahead.c.id < b.id))))
        .where(b.id.in_([w.id for w in waiting])).group_by(b.id)).all()
    return {bid: n + 1 for bid, n in counts}


def _own_booking(session: Session, actor: MemberActor, booking_id: int) -> ClassBooking:
    booking = session.scalar(select(ClassBooking).where(
        ClassBooking.id == booking_id, ClassBooking.club_id == actor.club_id,
        ClassBooking.member_id == actor.member_id)
        .execution_options(populate_existing=True))
    if booking is None:
        raise NotFound("You have no booking with this number", code="class_booking_not_found")
    return booking


def _read(session: Session, booking: ClassBooking) -> ClassBookingRead:
    return engine.booking_reads(session, [booking])[0]


def _what(session: Session, occ: ClassOccurrence) -> str:
    """"Yoga on 2026-12-08 18:00" in the club's time, for the timeline."""
    name = session.scalar(select(ClassType.name).where(ClassType.id == occ.class_type_id))
    local = occ.starts_at.astimezone(clubs_service.club_zone(
        clubs_service.get_club(session, occ.club_id)))
    return f"{name} on {local:%Y-%m-%d %H:%M}"


def book(session: Session, *, actor: MemberActor, occurrence_id: int,
         now: datetime | None = None) -> Booked:
    """Book the member into a class (or onto its waitlist when it is full), within the club's
    booking window; booked or waiting already: the booking as it is."""
    now = now or clock.now()
    occ = engine.get_occurrence(session, club_id=actor.club_id, occurrence_id=occurrence_id)
    existing = session.scalar(select(ClassBooking).where(
        ClassBooking.occurrence_id == occ.id, ClassBooking.member_id == actor.member_id,
        ClassBooking.status.in_((BOOKED, WAITLISTED))))
    if existing is not None:
        return Booked(_read(session, existing), again=True)
    settings = _rules(session, actor.club_id)
    today = clubs_service.club_today_by_id(session, actor.club_id, now)
    if occ.day > today + timedelta(days=settings.class_booking_days_ahead):
        raise Conflict(f"Booking for this class opens {settings.class_booking_days_ahead} days "
                       "before it", code="class_booking_not_open",
                       details={"days": settings.class_booking_days_ahead})
    try:
        read = engine.book_class(session, actor=actor, occurrence_id=occ.id,
                                 member_id=actor.member_id, now=now)
    except Conflict as exc:
        if exc.code != "already_booked":
            raise
        # a second tap that raced the first: the first one's booking
        again = session.scalar(select(ClassBooking).where(
            ClassBooking.occurrence_id == occ.id, ClassBooking.member_id == actor.member_id)
            .execution_options(populate_existing=True))
        return Booked(_read(session, again), again=True)
    what = _what(session, occ)
    crm_service.record(session, club_id=actor.club_id, member_id=actor.member_id,
                       kind=BOOKED_KIND, channel=crm_service.MEMBER_CHANNEL, occurred_at=now,
                       summary=f"Booked {what} in the member app" if read.status == BOOKED
                       else f"Joined the waitlist of {what} in the member app "
                            f"(position {read.waitlist_position})")
    session.flush()
    return Booked(read, again=False)


def _use_a_visit(session: Session, *, club_id: int, member_id: int, day: date) -> bool:
    """The late-cancel penalty: one visit used on the member's visit-limited membership active
    on `day` (one guarded UPDATE); False when there is none with a visit left."""
    target = (select(Membership.id).where(
        Membership.club_id == club_id, Membership.member_id == member_id, rules.active_on(day),
        Membership.visit_limit.is_not(None), Membership.visits_used < Membership.visit_limit)
        .order_by(Membership.end_date, Membership.id).limit(1).scalar_subquery())
    return session.execute(update(Membership).where(
        Membership.id == target, Membership.visits_used < Membership.visit_limit)
        .values(visits_used=Membership.visits_used + 1)
        .execution_options(synchronize_session=False)).rowcount == 1


def cancel(session: Session, *, actor: MemberActor, booking_id: int,
           now: datetime | None = None) -> Cancelled:
    """Cancel the member's own booking or leave the waitlist; a late cancellation costs what the
    club's rule says; the freed place goes to the first on the waitlist."""
    now = now or clock.now()
    booking = _own_booking(session, actor, booking_id)
    if booking.status == CANCELLED:
        return Cancelled(_read(session, booking), again=True, late=False, visit_used=False,
                         promoted_id=None)
    occ = engine.get_occurrence(session, club_id=actor.club_id,
                                 occurrence_id=booking.occurrence_id)
    settings = _rules(session, actor.club_id)
    was = booking.status
    late = was == BOOKED and _is_late(occ.starts_at, now, settings)
    done = engine.cancel_class_booking(session, actor=actor, booking_id=booking.id, now=now)
    visit_used = late and settings.class_late_cancel_penalty == "visit" and _use_a_visit(
        session, club_id=actor.club_id, member_id=actor.member_id, day=occ.day)
    what = _what(session, occ)
    summary = (f"Left the waitlist of {what} in the member app" if was == WAITLISTED
               else f"Cancelled {what} in the member app")
    if late:
        summary += (f"; late (less than {settings.class_late_cancel_hours} h before): "
                    + ("one visit used" if visit_used else "no penalty"))
    crm_service.record(session, club_id=actor.club_id, member_id=actor.member_id,
                       kind=CANCELLED_KIND, channel=crm_service.MEMBER_CHANNEL, occurred_at=now,
                       summary=summary)
    promoted = done.promoted  # its timeline entry and email: `on_class_place_given`
    session.flush()
    return Cancelled(done.booking, again=False, late=late, visit_used=visit_used,
                     promoted_id=promoted.id if promoted else None)


# --- telling the promoted member ---------------------------------------------------------------

def _channel(member: Member, *, sms_ready: bool) -> str | None:
    """The member's preferred channel if they agreed to it and it can reach them; else email,
    else SMS (agreed and reachable); None when they want no messages or none reaches them."""
    email = bool(member.email) and member.email_consent
    sms = bool(member.phone) and member.sms_consent and sms_ready
    if member.preferred_channel == "none":
        return None
    if member.preferred_channel == "sms" and sms:
        return "sms"
    return "email" if email else "sms" if sms else None


def _place(session: Session, booking_id: int):
    """(booking, occurrence, class name, member, club, language, message values), or None when
    the booking is no place from the waiting list (any more)."""
    row = session.execute(
        select(ClassBooking, ClassOccurrence, ClassType.name, Member)
        .join(ClassOccurrence, ClassOccurrence.id == ClassBooking.occurrence_id)
        .join(ClassType, ClassType.id == ClassOccurrence.class_type_id)
        .join(Member, Member.id == ClassBooking.member_id)
        .where(ClassBooking.id == booking_id)
        .execution_options(populate_existing=True)).first()
    if row is None:
        return None
    booking, occ, name, member = row
    if booking.status != BOOKED or booking.promoted_at is None or member.erased_at:
        return None
    club = clubs_service.get_club(session, occ.club_id)
    lang = clubs_service.club_settings(club).member_language
    local = occ.starts_at.astimezone(clubs_service.club_zone(club))
    values = {"club": club.name, "name": name, "day": i18n.Texts(lang).day(local.date()),
              "time": f"{local:%H:%M}",
              "trainer": trainer_names(session, {occ.trainer_id}).get(occ.trainer_id, "")}
    return booking, occ, name, member, club, lang, values


def _key(booking: ClassBooking) -> str:
    """One message per promotion (a later promotion of the same booking is another)."""
    return f"class-place-{booking.id}-{booking.promoted_at:%Y%m%d%H%M%S%f}"


def _queue_email(session: Session, booking, member, club, lang, values):
    return notices.queue(session, club_id=club.id, kind=NOTICE_KIND, key=_key(booking),
                         to=member.email, member_id=member.id,
                         subject=i18n.text(lang, "email.class_place.subject", **values),
                         body=i18n.text(lang, "email.class_place.body", **values))


def on_class_place_given(session: Session, event: ClassPlaceGiven) -> None:
    """`ClassPlaceGiven` handler (best effort, in the promoting transaction, whoever cancelled):
    the place on the member's timeline and, when email is how they hear from the club, the email
    queued in the outbox (`app.dues.notices`: sent by the member app at once after the commit,
    else by the notices job within a minute; a rolled-back cancellation queues nothing). SMS has
    no outbox: the member app sends it after its commit (`notify_promoted`)."""
    found = _place(session, event.booking_id)
    if found is None:
        return
    booking, occ, name, member, club, lang, values = found
    channel = _channel(member, sms_ready=True)
    if channel == "email":
        _queue_email(session, booking, member, club, lang, values)
    local = occ.starts_at.astimezone(clubs_service.club_zone(club))
    crm_service.record(session, club_id=club.id, member_id=member.id, kind=PROMOTED_KIND,
                       occurred_at=booking.promoted_at,
                       summary=f"Moved from the waiting list into {name} on "
                               f"{local:%Y-%m-%d %H:%M} (a place came free)"
                               + ("; told by email" if channel == "email" else ""))


def notify_promoted(factory: sessionmaker[Session], settings: Settings,
                    booking_id: int) -> str | None:
    """Tell the member their waiting-list place became a booking, after the promoting
    transaction committed (it reads what was committed: a rolled-back promotion sends nothing):
    the queued email at once, or the SMS when that is their channel. The channel used, or
    None."""
    with transaction(factory) as s:
        found = _place(s, booking_id)
        if found is None:
            return None
        booking, _occ, name, member, club, lang, values = found
        channel = _channel(member, sms_ready=bool(settings.sms_gateway_url))
        if channel == "email":
            notice = _queue_email(s, booking, member, club, lang, values)  # queued: the same
            if notice.sent_at is None:
                notices.send_pending(s, settings=settings, ids=[notice.id])
            return channel
        if channel is None:
            return None
        sms = HttpSms(settings)
        try:
            sent = sms.send(Message(touchpoint_id=0, club_id=club.id, member_id=member.id,
                                    channel="sms", to=member.phone, subject="",
                                    body=i18n.text(lang, "sms.class_place", **values),
                                    key=_key(booking)))
        finally:
            sms.close()
        if not sent.ok:
            log.warning("a waiting-list place SMS was not accepted: %s", sent.error)
            return None
        crm_service.record(s, club_id=club.id, member_id=member.id, kind=PROMOTED_KIND,
                           channel="sms", summary=f"Told by SMS about the place in {name}")
    return channel
