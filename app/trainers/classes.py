"""Group classes: class types, the weekly timetable, classes on the calendar, bookings with a
waitlist, attendance.

A class's seats change with one guarded UPDATE: ``booked_count = booked_count + 1 WHERE id = :id
AND booked_count < capacity``; when it changes no row the member joins the waitlist.

`mark_class_attendance` handles the `VisitGranted` event (subscribed in `app/wiring.py`): a
granted turnstile entry in [class start − 30 min, class end] marks the member's booking attended.
"""
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import and_, bindparam, case, func, literal_column, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.billing import service as billing_service
from app.core import clock, events
from app.core.actors import DESK, Actor, MemberActor
from app.core.errors import Conflict, Forbidden, Invalid, NotFound
from app.core.events import ClassPlaceGiven, Folded, VisitGranted
from app.core.sql import dialect_insert
from app.members.models import Member
from app.memberships import rules
from app.memberships.models import Membership
from app.trainers.models import ClassBooking, ClassOccurrence, ClassSlot, ClassType
from app.trainers.schemas import (
    AttendanceResult,
    ClassBookingCancelled,
    ClassBookingRead,
    ClassTypeCreate,
    GenerateResult,
    OccurrenceDetail,
    OccurrenceRead,
    SlotCreate,
)
from app.trainers.service import (
    BOOKED,
    CANCELLED,
    SCHEDULED,
    bulk_update,
    full_name,
    get_trainer,
    own_profile,
    trainer_names,
    zone_for,
)
from app.trainers.sessions import check_member_free

WAITLISTED = "waitlisted"
CHECK_IN_BEFORE_CLASS = timedelta(minutes=30)
LONGEST_CLASS = timedelta(minutes=480)  # ClassTypeCreate.duration_minutes' upper bound
MAX_GENERATE_DAYS = 92


# ----------------------------------------------------------------------------- class types, slots

def create_class_type(session: Session, *, actor: Actor, data: ClassTypeCreate) -> ClassType:
    if session.scalar(select(ClassType.id).where(ClassType.club_id == actor.club_id,
                                                 ClassType.name == data.name)):
        raise Conflict(f"A class type named {data.name!r} already exists",
                       code="class_type_exists")
    kind = ClassType(club_id=actor.club_id, **data.model_dump())
    session.add(kind)
    session.flush()
    return kind


def get_class_type(session: Session, *, club_id: int, class_type_id: int) -> ClassType:
    kind = session.scalar(select(ClassType).where(ClassType.id == class_type_id,
                                                  ClassType.club_id == club_id))
    if kind is None:
        raise NotFound("Class type not found", code="class_type_not_found")
    return kind


def update_class_type(session: Session, *, actor: Actor, class_type_id: int,
                      changes: dict) -> ClassType:
    """Change a class type; classes already generated keep their capacity and times."""
    kind = get_class_type(session, club_id=actor.club_id, class_type_id=class_type_id)
    name = changes.get("name")
    if name and name != kind.name and session.scalar(select(ClassType.id).where(
            ClassType.club_id == actor.club_id, ClassType.name == name)):
        raise Conflict(f"A class type named {name!r} already exists", code="class_type_exists")
    for field, value in changes.items():
        if value is not None or field == "description":
            setattr(kind, field, value)
    session.flush()
    return kind


def list_class_types(session: Session, *, club_id: int) -> list[ClassType]:
    return list(session.scalars(select(ClassType).where(ClassType.club_id == club_id)
                                .order_by(ClassType.name)))


def create_slot(session: Session, *, actor: Actor, data: SlotCreate) -> ClassSlot:
    """Add a weekly timetable line (generate occurrences to put it on the calendar)."""
    kind = get_class_type(session, club_id=actor.club_id, class_type_id=data.class_type_id)
    get_trainer(session, club_id=actor.club_id, trainer_id=data.trainer_id)
    slot = ClassSlot(club_id=actor.club_id, class_type_id=kind.id, trainer_id=data.trainer_id,
                     weekday=data.weekday, start_time=data.start_time,
                     capacity=data.capacity or kind.capacity, room=data.room, active=data.active)
    session.add(slot)
    session.flush()
    return slot


def update_slot(session: Session, *, actor: Actor, slot_id: int, changes: dict) -> ClassSlot:
    slot = session.scalar(select(ClassSlot).where(ClassSlot.id == slot_id,
                                                  ClassSlot.club_id == actor.club_id))
    if slot is None:
        raise NotFound("Timetable slot not found", code="slot_not_found")
    if changes.get("trainer_id") is not None:
        get_trainer(session, club_id=actor.club_id, trainer_id=changes["trainer_id"])
    for field, value in changes.items():
        if value is not None or field == "room":
            setattr(slot, field, value)
    session.flush()
    return slot


def list_slots(session: Session, *, club_id: int) -> list[ClassSlot]:
    return list(session.scalars(select(ClassSlot).where(ClassSlot.club_id == club_id)
                                .order_by(ClassSlot.weekday, ClassSlot.start_time, ClassSlot.id)))


def generate_occurrences(session: Session, *, actor: Actor, date_from: date,
                         date_to: date) -> GenerateResult:
    """Put the timetable on the calendar for [from, to]; days already generated are kept."""
    if date_to < date_from:
        raise Invalid("'to' must not be before 'from'", code="invalid_period")
    if (date_to - date_from).days >= MAX_GENERATE_DAYS:
        raise Invalid(f"Generate at most {MAX_GENERATE_DAYS} days at a time",
                      code="period_too_long")
    zone = zone_for(session, actor.club_id)
    slots = session.execute(
        select(ClassSlot, ClassType.duration_minutes)
        .join(ClassType, ClassType.id == ClassSlot.class_type_id)
        .where(ClassSlot.club_id == actor.club_id, ClassSlot.active.is_(True),
               ClassType.active.is_(True))).all()
    now = clock.now()
    rows = []
    day = date_from
    while day <= date_to:
        for slot, minutes in slots:
            if slot.weekday != day.isoweekday():
                continue
            starts = datetime.combine(day, slot.start_time, tzinfo=zone).astimezone(UTC)
            rows.append({"club_id": actor.club_id, "slot_id": slot.id,
                         "class_type_id": slot.class_type_id, "trainer_id": slot.trainer_id,
                         "day": day, "starts_at": starts,
                         "ends_at": starts + timedelta(minutes=minutes),
                         "capacity": slot.capacity, "room": slot.room, "booked_count": 0,
                         "status": SCHEDULED, "created_at": now})
        day += timedelta(days=1)
    created = 0
    for i in range(0, len(rows), 500):
        stmt = (dialect_insert(session, ClassOccurrence).values(rows[i:i + 500])
                .on_conflict_do_nothing(index_elements=["slot_id", "day"])
                .returning(ClassOccurrence.id))
        created += len(session.execute(stmt).all())
    return GenerateResult(date_from=date_from, date_to=date_to, created=created,
                          existing=len(rows) - created)


# ----------------------------------------------------------------------------- occurrences

def get_occurrence(session: Session, *, club_id: int, occurrence_id: int) -> ClassOccurrence:
    occ = session.scalar(select(ClassOccurrence).where(ClassOccurrence.id == occurrence_id,
                                                       ClassOccurrence.club_id == club_id)
                         .execution_options(populate_existing=True))
    if occ is None:
        raise NotFound("Class not found", code="class_not_found")
    return occ


def _occurrence_reads(session: Session, occs: list[ClassOccurrence]) -> list[OccurrenceRead]:
    if not occs:
        return []
    ids = [o.id for o in occs]
    b = ClassBooking
    counts = {row.occurrence_id: row for row in session.execute(
        select(b.occurrence_id,
               func.coalesce(func.sum(case((b.status == WAITLISTED, 1), else_=0)), 0)
               .label("waiting"),
               func.coalesce(func.sum(case((and_(b.status == BOOKED,
                                                 b.attended_at.is_not(None)), 1), else_=0)), 0)
               .label("attended"))
        .where(b.occurrence_id.in_(ids)).group_by(b.occurrence_id))}
    kinds = dict(session.execute(select(ClassType.id, ClassType.name).where(
        ClassType.id.in_({o.class_type_id for o in occs}))).all())
    trainers = trainer_names(session, {o.trainer_id for o in occs})
    return [OccurrenceRead(
        id=o.id, slot_id=o.slot_id, class_type_id=o.class_type_id,
        name=kinds.get(o.class_type_id, "?"), trainer_id=o.trainer_id,
        trainer_name=trainers.get(o.trainer_id, "?"), day=o.day, starts_at=o.starts_at,
        ends_at=o.ends_at, capacity=o.capacity, room=o.room, booked_count=o.booked_count,
        waitlist_count=int(counts[o.id].waiting) if o.id in counts else 0,
        attended_count=int(counts[o.id].attended) if o.id in counts else 0, status=o.status)
        for o in occs]


def list_occurrences(session: Session, *, club_id: int, date_from: date, date_to: date,
                     trainer_id: int | None = None) -> list[OccurrenceRead]:
    """Classes on club-local days [from, to] by start time, with seats, waitlist, attendance."""
    if date_to < date_from:
        raise Invalid("'to' must not be before 'from'", code="invalid_period")
    if (date_to - date_from).days > 366:
        raise Invalid("List at most a year of classes at a time", code="period_too_long")
    where = [ClassOccurrence.club_id == club_id, ClassOccurrence.day >= date_from,
             ClassOccurrence.day <= date_to]
    if trainer_id is not None:
        where.append(ClassOccurrence.trainer_id == trainer_id)
    occs = list(session.scalars(select(ClassOccurrence).where(*where)
                                .order_by(ClassOccurrence.starts_at, ClassOccurrence.id)))
    return _occurrence_reads(session, occs)


def booking_reads(session: Session, bookings: list[ClassBooking]) -> list[ClassBookingRead]:
    if not bookings:
        return []
    names = {mid: full_name(f, la) for mid, f, la in session.execute(
        select(Member.id, Member.first_name, Member.last_name)
        .where(Member.id.in_({b.member_id for b in bookings})))}
    positions: dict[int, int] = {}
    for occ_id in {b.occurrence_id for b in bookings if b.status == WAITLISTED}:
        queue = session.scalars(select(ClassBooking.id).where(
            ClassBooking.occurrence_id == occ_id, ClassBooking.status == WAITLISTED)
            .order_by(ClassBooking.queued_at, ClassBooking.id)).all()
        positions.update({bid: i + 1 for i, bid in enumerate(queue)})
    return [ClassBookingRead(id=b.id, occurrence_id=b.occurrence_id, member_id=b.member_id,
                             member_name=names.get(b.member_id, "?"), status=b.status,
                             waitlist_position=positions.get(b.id), queued_at=b.queued_at,
                             attended_at=b.attended_at, attendance_source=b.attendance_source,
                             promoted_at=b.promoted_at) for b in bookings]


def occurrence_detail(session: Session, *, club_id: int, occurrence_id: int) -> OccurrenceDetail:
    """A class with its bookings: confirmed first, then the waitlist in order, then cancelled."""
    occ = get_occurrence(session, club_id=club_id, occurrence_id=occurrence_id)
    bookings = list(session.scalars(select(ClassBooking).where(
        ClassBooking.occurrence_id == occ.id).execution_options(populate_existing=True)))
    rank = {BOOKED: 0, WAITLISTED: 1, CANCELLED: 2}
    bookings.sort(key=lambda b: (rank.get(b.status, 3), b.queued_at, b.id))
    read = _occurrence_reads(session, [occ])[0]
    return OccurrenceDetail(**read.model_dump(), bookings=booking_reads(session, bookings))


def _get_booking(session: Session, *, club_id: int, booking_id: int) -> ClassBooking:
    booking = session.scalar(select(ClassBooking).where(ClassBooking.id == booking_id,
                                                        ClassBooking.club_id == club_id)
                             .execution_options(populate_existing=True))
    if booking is None:
        raise NotFound("Class booking not found", code="class_booking_not_found")
    return booking


def _take_seat(session: Session, occurrence_id: int) -> bool:
    return session.execute(bulk_update(
        update(ClassOccurrence)
        .where(ClassOccurrence.id == occurrence_id,
               ClassOccurrence.booked_count < ClassOccurrence.capacity)
        .values(booked_count=ClassOccurrence.booked_count + 1))).rowcount == 1


def _free_seat(session: Session, occurrence_id: int) -> None:
    session.execute(bulk_update(
        update(ClassOccurrence)
        .where(ClassOccurrence.id == occurrence_id, ClassOccurrence.booked_count > 0)
        .values(booked_count=ClassOccurrence.booked_count - 1)))


def book_class(session: Session, *, actor: Actor | MemberActor, occurrence_id: int,
               member_id: int, now: datetime | None = None) -> ClassBookingRead:
    """Book a member into a class, or onto its waitlist when it is full (guarded seat counter).

    A `MemberActor` books for themselves (`app.memberapp.classes` checks the club's rules
    first); `booked_by` names staff only, so it stays empty then."""
    now = now or clock.now()
    club_id = actor.club_id
    staff_id = actor.user_id if isinstance(actor, Actor) else None
    occ = get_occurrence(session, club_id=club_id, occurrence_id=occurrence_id)
    if occ.status != SCHEDULED:
        raise Conflict("This class was cancelled", code="class_cancelled")
    if occ.starts_at <= now:
        raise Conflict("This class has already started", code="class_started")
    with session.begin_nested():
        member = billing_service.require_member(session, club_id=club_id, member_id=member_id,
                                                for_update=True)
        if member.erased_at is not None:
            raise Conflict("This member's data was erased", code="member_erased")
        active = session.scalar(select(Membership.id).where(
            Membership.club_id == club_id, Membership.member_id == member_id,
            rules.active_on(occ.day)).limit(1))
        if active is None:
            raise Conflict(f"The member has no membership active on {occ.day}",
                           code="no_active_membership")
        booking = session.scalar(select(ClassBooking).where(
            ClassBooking.occurrence_id == occ.id, ClassBooking.member_id == member_id)
            .with_for_update().execution_options(populate_existing=True))
        if booking is not None and booking.status != CANCELLED:
            raise Conflict(f"The member is already {booking.status} for this class",
                           code="already_booked", details={"booking_id": booking.id})
        zone = zone_for(session, club_id)
        check_member_free(session, club_id=club_id, member_id=member_id, start=occ.starts_at,
                           end=occ.ends_at, zone=zone, exclude_class=occ.id)
        status = BOOKED if _take_seat(session, occ.id) else WAITLISTED
        if booking is None:
            booking = ClassBooking(club_id=club_id, occurrence_id=occ.id, member_id=member_id,
                                   status=status, queued_at=now, booked_by=staff_id)
            session.add(booking)
            try:
                with session.begin_nested():
                    session.flush()
            except IntegrityError as exc:
                raise Conflict("The member is already booked for this class",
                               code="already_booked") from exc
        else:
            booking.status, booking.queued_at, booking.booked_by = status, now, staff_id
            booking.attended_at = booking.attendance_source = None
            booking.cancelled_at = booking.promoted_at = None
            session.flush()
    return booking_reads(session, [booking])[0]


def _promote_first(session: Session, occurrence_id: int, now: datetime) -> ClassBooking | None:
    """Give a freed seat to the first on the waitlist (in the canceller's transaction)."""
    while True:
        first = session.scalar(select(ClassBooking.id).where(
            ClassBooking.occurrence_id == occurrence_id, ClassBooking.status == WAITLISTED)
            .order_by(ClassBooking.queued_at, ClassBooking.id).limit(1))
        if first is None or not _take_seat(session, occurrence_id):
            return None
        promoted = session.execute(bulk_update(
            update(ClassBooking).where(ClassBooking.id == first, ClassBooking.status == WAITLISTED)
            .values(status=BOOKED, promoted_at=now, updated_at=now))).rowcount
        if promoted == 1:
            return session.scalar(select(ClassBooking).where(ClassBooking.id == first)
                                  .execution_options(populate_existing=True))
        _free_seat(session, occurrence_id)  # they left the waitlist meanwhile: next one


def cancel_class_booking(session: Session, *, actor: Actor | MemberActor, booking_id: int,
                         now: datetime | None = None) -> ClassBookingCancelled:
    """Cancel a booking or leave the waitlist; a freed seat goes to the first in line
    (`ClassPlaceGiven` is published for them)."""
    now = now or clock.now()
    booking = _get_booking(session, club_id=actor.club_id, booking_id=booking_id)
    occ = get_occurrence(session, club_id=actor.club_id, occurrence_id=booking.occurrence_id)
    if booking.status == CANCELLED:
        raise Conflict("This booking is already cancelled", code="booking_cancelled")
    if occ.starts_at <= now:
        raise Conflict("This class has already started", code="class_started")
    was = booking.status
    promoted = None
    with session.begin_nested():
        done = session.execute(bulk_update(
            update(ClassBooking).where(ClassBooking.id == booking.id, ClassBooking.status == was)
            .values(status=CANCELLED, cancelled_at=now, updated_at=now))).rowcount
        if done != 1:
            raise Conflict("This booking was just changed by someone else; reload",
                           code="booking_changed")
        if was == BOOKED:
            _free_seat(session, occ.id)
            promoted = _promote_first(session, occ.id, now)
    if promoted is not None:  # the member app tells them (`app/wiring.py`)
        events.publish(session, ClassPlaceGiven(club_id=actor.club_id,
                                                member_id=promoted.member_id,
                                                booking_id=promoted.id))
    booking = _get_booking(session, club_id=actor.club_id, booking_id=booking.id)
    reads = booking_reads(session, [booking] + ([promoted] if promoted else []))
    return ClassBookingCancelled(booking=reads[0], promoted=reads[1] if promoted else None)


def mark_attendance(session: Session, *, actor: Actor, occurrence_id: int,
                    member_ids: list[int], attended: bool = True,
                    now: datetime | None = None) -> AttendanceResult:
    """Staff mark who came (or undo it); only confirmed bookings can be marked."""
    now = now or clock.now()
    occ = get_occurrence(session, club_id=actor.club_id, occurrence_id=occurrence_id)
    if actor.role not in DESK:
        profile = own_profile(session, actor)
        if profile is None or profile.id != occ.trainer_id:
            raise Forbidden("Trainers mark attendance for their own classes only",
                            code="not_your_class")
    if occ.starts_at - CHECK_IN_BEFORE_CLASS > now:
        raise Conflict("Attendance can be marked from 30 minutes before the class",
                       code="class_not_started")
    ids = set(member_ids)
    booked = set(session.scalars(select(ClassBooking.member_id).where(
        ClassBooking.occurrence_id == occ.id, ClassBooking.status == BOOKED,
        ClassBooking.member_id.in_(ids))))
    values = ({"attended_at": now, "attendance_source": "staff"} if attended
              else {"attended_at": None, "attendance_source": None})
    where = [ClassBooking.occurrence_id == occ.id, ClassBooking.status == BOOKED,
             ClassBooking.member_id.in_(sorted(booked))]
    if attended:
        where.append(ClassBooking.attended_at.is_(None))
    marked = session.execute(bulk_update(update(ClassBooking).where(*where)
                                     .values(updated_at=now, **values))).rowcount if booked else 0
    return AttendanceResult(occurrence_id=occ.id, marked=marked,
                            not_booked=sorted(ids - booked))


# --- the turnstile counts as attendance

_cb, _co = ClassBooking.__table__, ClassOccurrence.__table__


def _attend_on_check_in(gate=None):
    """The booked class an entry falls in is marked attended; `gate` further limits it (the
    check-in folds this into its grant statement, gated on the visit being written)."""
    return (
        update(_cb)
        .where(_cb.c.club_id == bindparam("ca_club_id", type_=_cb.c.club_id.type),
               _cb.c.member_id == bindparam("ca_member_id", type_=_cb.c.member_id.type),
               _cb.c.status == literal_column(f"'{BOOKED}'"), _cb.c.attended_at.is_(None),
               _cb.c.occurrence_id.in_(
                   select(_co.c.id).where(_co.c.club_id == bindparam("ca_club_id"),
                                          _co.c.status == literal_column(f"'{SCHEDULED}'"),
                                          _co.c.starts_at >= bindparam("ca_earliest_start"),
                                          _co.c.starts_at <= bindparam("ca_latest_start"),
                                          _co.c.ends_at >= bindparam("ca_at"))),
               true() if gate is None else gate)
        .values(attended_at=bindparam("ca_at", type_=_cb.c.attended_at.type),
                attendance_source=literal_column("'turnstile'"), updated_at=bindparam("ca_at"))
    )


_ATTEND_ON_CHECK_IN = _attend_on_check_in()


def _attendance_params(event: VisitGranted) -> dict:
    occurred_at = event.occurred_at
    return {"ca_club_id": event.club_id, "ca_member_id": event.member_id, "ca_at": occurred_at,
            "ca_latest_start": occurred_at + CHECK_IN_BEFORE_CLASS,
            "ca_earliest_start": occurred_at - LONGEST_CLASS}


ATTENDANCE_FOLDED = Folded(
    lambda gate: [_attend_on_check_in(gate).returning(_cb.c.id).cte("attended")],
    _attendance_params)
"""`mark_class_attendance` as SQL the check-in folds into its grant statement."""


def mark_class_attendance(session: Session, event: VisitGranted) -> None:
    """`VisitGranted` handler: an entry in [start − 30 min, end] of a booked class marks it
    attended.

    One UPDATE; the class window is also bounded below (start ≥ entry − the longest class) so
    the index on (club_id, starts_at) reads a few hours of classes, not the club's history.
    """
    session.connection().execute(_ATTEND_ON_CHECK_IN, _attendance_params(event))
