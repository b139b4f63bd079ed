"""A trainer's free PT slots: working hours minus absences, sessions and classes, cut into slots.

`free_slots` reads each kind once for the whole range (hours, absences, PT sessions, classes,
and — for a member — the member's own sessions and booked classes), then works in memory:

- each day's working intervals (`TrainerHours`, wall-clock time in the club's zone) become UTC
  instants through `zoneinfo`, so a day on which the clocks change has the real number of hours
  (a 01:00–05:00 interval on the spring-forward day is three hours long: 01:00, 03:00, 04:00);
- days in an absence have no slots;
- what blocks the trainer (sessions booked, completed or no-show; scheduled classes) and, when
  a member asks, what blocks the member, is cut out of those intervals;
- what is left is cut into slots of the session's length from the start of each free stretch,
  and only slots starting after now and on a day within the horizon are kept.

A slot is offered, not held: `app.trainers.sessions.book_session` checks every rule again when
it is booked (under its locks), so a slot someone took in between is refused there.
"""
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.clubs import service as clubs_service
from app.clubs.models import ClubStaff
from app.core import clock
from app.core.actors import Role
from app.core.errors import Invalid
from app.trainers.models import (
    ClassBooking,
    ClassOccurrence,
    PtSession,
    TrainerAbsence,
    TrainerHours,
)
from app.trainers.service import BOOKED, COMPLETED, NO_SHOW, SCHEDULED, day_bounds, get_trainer

SESSION_MINUTES = 60
"""A PT session's length: `book_session`'s default (neither products nor settings name one)."""
HORIZON_DAYS = 14
"""How far ahead slots are offered (and members may book): today and the next 14 days."""
MAX_DAYS = 62
BLOCKING = (BOOKED, COMPLETED, NO_SHOW)  # sessions that occupy their slot


@dataclass(frozen=True)
class Slot:
    trainer_id: int
    starts_at: datetime  # UTC
    ends_at: datetime


def within_hours(intervals: list[tuple[time, time]], local_start: datetime,
                 local_end: datetime) -> bool:
    """The working-hours rule of a booking: start and end on one day inside one interval."""
    return local_end.date() == local_start.date() and any(
        a <= local_start.time() and local_end.time() <= b for a, b in intervals)


def _bookable(session: Session, *, club_id: int, trainer_id: int) -> bool:
    trainer = get_trainer(session, club_id=club_id, trainer_id=trainer_id)
    role = session.scalar(select(ClubStaff.role).where(ClubStaff.club_id == club_id,
                                                       ClubStaff.user_id == trainer.user_id))
    return trainer.active and role == Role.trainer.value


def _busy(session: Session, *, club_id: int, trainer_id: int, member_id: int | None,
          lo: datetime, hi: datetime) -> list[tuple[datetime, datetime]]:
    """What blocks the slots: one query per kind over [lo, hi)."""
    who = PtSession.trainer_id == trainer_id
    if member_id is not None:
        who = or_(who, PtSession.member_id == member_id)
    rows = session.execute(select(PtSession.starts_at, PtSession.ends_at).where(
        PtSession.club_id == club_id, PtSession.status.in_(BLOCKING), who,
        PtSession.starts_at < hi, PtSession.ends_at > lo)).all()
    rows += session.execute(select(ClassOccurrence.starts_at, ClassOccurrence.ends_at).where(
        ClassOccurrence.club_id == club_id, ClassOccurrence.trainer_id == trainer_id,
        ClassOccurrence.status == SCHEDULED, ClassOccurrence.starts_at < hi,
        ClassOccurrence.ends_at > lo)).all()
    if member_id is not None:
        rows += session.execute(
            select(ClassOccurrence.starts_at, ClassOccurrence.ends_at)
            .join(ClassBooking, ClassBooking.occurrence_id == ClassOccurrence.id)
            .where(ClassBooking.club_id == club_id, ClassBooking.member_id == member_id,
                   ClassBooking.status == BOOKED, ClassOccurrence.status == SCHEDULED,
                   ClassOccurrence.starts_at < hi, ClassOccurrence.ends_at > lo)).all()
    return sorted((_utc(a), _utc(b)) for a, b in rows)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _cut(start: datetime, end: datetime, busy: list[tuple[datetime, datetime]]
         ) -> list[tuple[datetime, datetime]]:
    """[start, end) minus the (sorted) busy intervals."""
    free, at = [], start
    for b_start, b_end in busy:
        if b_end <= at or b_start >= end:
            continue
        if b_start > at:
            free.append((at, b_start))
        at = max(at, b_end)
        if at >= end:
            break
    if at < end:
        free.append((at, end))
    return free


def free_slots(session: Session, *, club_id: int, trainer_id: int, date_from: date,
               date_to: date, member_id: int | None = None, length: int = SESSION_MINUTES,
               horizon_days: int = HORIZON_DAYS, now: datetime | None = None) -> list[Slot]:
    """The trainer's free slots of `length` minutes on the club days `date_from`…`date_to`
    (clipped to today … today + `horizon_days`), starting after now; with `member_id`, also
    free for that member. In start order."""
    if not 15 <= length <= 240:
        raise Invalid("A session lasts 15 to 240 minutes", code="invalid_length")
    now = now or clock.now()
    club = clubs_service.get_club(session, club_id)
    zone = clubs_service.club_zone(club)
    today = clubs_service.club_today(club, now)
    first, last = max(date_from, today), min(date_to, today + timedelta(days=horizon_days))
    if last < first or (last - first).days > MAX_DAYS:
        return []
    if not _bookable(session, club_id=club_id, trainer_id=trainer_id):
        return []
    hours: dict[int, list[tuple[time, time]]] = {}
    for weekday, a, b in session.execute(
            select(TrainerHours.weekday, TrainerHours.start_time, TrainerHours.end_time)
            .where(TrainerHours.trainer_id == trainer_id).order_by(TrainerHours.start_time)):
        hours.setdefault(weekday, []).append((a, b))
    away = session.execute(select(TrainerAbsence.start_date, TrainerAbsence.end_date).where(
        TrainerAbsence.trainer_id == trainer_id, TrainerAbsence.start_date <= last,
        TrainerAbsence.end_date >= first)).all()
    lo, hi = day_bounds(zone, first, last)
    busy = _busy(session, club_id=club_id, trainer_id=trainer_id, member_id=member_id,
                 lo=lo, hi=hi)
    step = timedelta(minutes=length)
    slots = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        intervals = hours.get(day.isoweekday(), [])
        if not intervals or any(a <= day <= b for a, b in away):
            continue
        for a, b in intervals:
            start = datetime.combine(day, a, tzinfo=zone).astimezone(UTC)
            end = datetime.combine(day, b, tzinfo=zone).astimezone(UTC)
            for free_start, free_end in _cut(start, end, busy):
                at = free_start
                while at + step <= free_end:
                    if at > now and within_hours(intervals, at.astimezone(zone),
                                                 (at + step).astimezone(zone)):
                        slots.append(Slot(trainer_id, at, at + step))
                    at += step
    return sorted(slots, key=lambda s: s.starts_at)
