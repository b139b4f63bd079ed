"""PT sessions: booking, moving and closing them (completed, no-show, cancelled), a trainer's
clients and notes, and booking a session from a CRM task.

A session's fate changes once, with one guarded UPDATE: ``status = :new WHERE id = :id AND
status = 'booked'``.

Booking a PT session locks the member row, then the trainer profile row (``FOR NO KEY UPDATE``
on PostgreSQL; SQLite serialises writers with ``BEGIN IMMEDIATE``), so the overlap checks and
the insert cannot interleave with another booking of the same trainer or member. Every writer
takes those locks in that order (member, then trainer), so two bookings cannot deadlock.

A member books and cancels their own sessions (the member app) through the same functions, with
a `MemberActor`: the same rules, and the member's own on top (`_member_may_book`, `_check_not_held`): only for
themselves, with a trainer of their own, within the slot horizon, and only while a package has
a session left that no other booking holds (`packages.held_sessions`).
"""
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from app.billing import service as billing_service
from app.clubs import service as clubs_service
from app.clubs.models import ClubStaff
from app.core import clock
from app.core.actors import DESK, MANAGERS, Actor, MemberActor, Role
from app.core.errors import Conflict, Forbidden, Invalid, NotFound
from app.core.schemas import Page
from app.crm import service as crm_service
from app.crm.models import Task
from app.crm.schemas import TaskRead
from app.members.models import Member
from app.trainers.availability import BLOCKING, HORIZON_DAYS, within_hours
from app.trainers.models import (
    ClassBooking,
    ClassOccurrence,
    PtPackage,
    PtSession,
    TrainerAbsence,
    TrainerClientNote,
    TrainerHours,
    TrainerProfile,
)
from app.trainers.packages import held_sessions, member_trainers, spend_one
from app.trainers.schemas import ClientRead, SessionRead
from app.trainers.service import (
    BOOKED,
    CANCELLED,
    COMPLETED,
    NO_SHOW,
    SCHEDULED,
    bulk_update,
    check_instant,
    day_bounds,
    format_when,
    full_name,
    get_settings,
    get_trainer,
    own_profile,
    require_own_profile,
    require_self_or_manager,
    trainer_names,
    zone_for,
)


def _session_reads(session: Session, rows: list[PtSession]) -> list[SessionRead]:
    if not rows:
        return []
    trainers = trainer_names(session, {s.trainer_id for s in rows})
    members = {mid: full_name(f, la) for mid, f, la in session.execute(
        select(Member.id, Member.first_name, Member.last_name)
        .where(Member.id.in_({s.member_id for s in rows})))}
    return [SessionRead(
        id=s.id, trainer_id=s.trainer_id, trainer_name=trainers.get(s.trainer_id, "?"),
        member_id=s.member_id, member_name=members.get(s.member_id, "?"), starts_at=s.starts_at,
        ends_at=s.ends_at, duration_minutes=int((s.ends_at - s.starts_at).total_seconds() // 60),
        status=s.status, complimentary=s.complimentary, charged=s.package_id is not None,
        package_id=s.package_id, late_cancel=s.late_cancel, cancelled_by=s.cancelled_by,
        cancel_reason=s.cancel_reason, task_id=s.task_id, created_at=s.created_at)
        for s in rows]


def _get_session(session: Session, *, club_id: int, session_id: int) -> PtSession:
    pt = session.scalar(select(PtSession).where(PtSession.id == session_id,
                                                PtSession.club_id == club_id)
                        .execution_options(populate_existing=True))
    if pt is None:
        raise NotFound("Session not found", code="session_not_found")
    return pt


def read_session(session: Session, *, club_id: int, session_id: int) -> SessionRead:
    return _session_reads(session, [_get_session(session, club_id=club_id,
                                                 session_id=session_id)])[0]


def _staff_id(actor: Actor | MemberActor) -> int | None:
    """The staff user behind an action (`booked_by`, `closed_by`); None for a member's own."""
    return actor.user_id if isinstance(actor, Actor) else None


def _role(actor: Actor | MemberActor) -> Role | None:
    return actor.role if isinstance(actor, Actor) else None


def _may_manage(session: Session, actor: Actor | MemberActor, pt: PtSession) -> None:
    """Desk, managers and owners manage any session; a trainer and a member only their own."""
    if isinstance(actor, MemberActor):
        if pt.member_id != actor.member_id:
            raise NotFound("Session not found", code="session_not_found")
        return
    if actor.role in DESK:
        return
    profile = own_profile(session, actor)
    if profile is None or profile.id != pt.trainer_id:
        raise Forbidden("Trainers manage their own sessions only", code="not_your_session")


def _trainer_for_booking(session: Session, actor: Actor | MemberActor,
                         trainer_id: int | None) -> int:
    if _role(actor) == Role.trainer:
        profile = require_own_profile(session, actor)
        if trainer_id is not None and trainer_id != profile.id:
            raise Forbidden("Trainers book sessions with themselves only",
                            code="not_your_session")
        return profile.id
    if trainer_id is None:
        raise Invalid("Choose the trainer: give trainer_id", code="trainer_required",
                      details={"field": "trainer_id"})
    return trainer_id


def _bookable_trainer(session: Session, trainer: TrainerProfile, name: str) -> None:
    role = session.scalar(select(ClubStaff.role).where(ClubStaff.club_id == trainer.club_id,
                                                       ClubStaff.user_id == trainer.user_id))
    if not trainer.active or role != Role.trainer.value:
        raise Conflict(f"{name} is not taking bookings (inactive or no longer a trainer)",
                       code="trainer_inactive")


def _check_hours(session: Session, *, trainer: TrainerProfile, name: str, zone: ZoneInfo,
                 start: datetime, end: datetime) -> None:
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    day = local_start.date()
    absence = session.scalar(select(TrainerAbsence).where(
        TrainerAbsence.trainer_id == trainer.id, TrainerAbsence.start_date <= day,
        TrainerAbsence.end_date >= day).order_by(TrainerAbsence.start_date).limit(1))
    if absence is not None:
        raise Conflict(f"{name} is away ({absence.kind}) from {absence.start_date} to "
                       f"{absence.end_date}", code="trainer_absent",
                       details={"absence_id": absence.id, "kind": absence.kind,
                                "start_date": absence.start_date.isoformat(),
                                "end_date": absence.end_date.isoformat()})
    intervals = session.execute(
        select(TrainerHours.start_time, TrainerHours.end_time)
        .where(TrainerHours.trainer_id == trainer.id,
               TrainerHours.weekday == day.isoweekday())
        .order_by(TrainerHours.start_time)).all()
    if within_hours(list(intervals), local_start, local_end):
        return
    hours = ", ".join(f"{a:%H:%M}–{b:%H:%M}" for a, b in intervals) or "none"
    raise Conflict(f"{format_when(start, zone)}–{local_end:%H:%M} is outside {name}'s working "
                   f"hours on {day:%A}s ({hours})", code="outside_working_hours",
                   details={"weekday": day.isoweekday(),
                            "hours": [[f"{a:%H:%M}", f"{b:%H:%M}"] for a, b in intervals]})


def _check_free(session: Session, *, club_id: int, trainer_id: int, member_id: int,
                start: datetime, end: datetime, zone: ZoneInfo,
                exclude_id: int | None = None) -> None:
    overlap = [PtSession.club_id == club_id, PtSession.status.in_(BLOCKING),
               PtSession.starts_at < end, PtSession.ends_at > start]
    if exclude_id is not None:
        overlap.append(PtSession.id != exclude_id)
    clash = session.scalar(select(PtSession).where(*overlap, PtSession.trainer_id == trainer_id)
                           .order_by(PtSession.starts_at).limit(1))
    if clash is not None:
        raise Conflict(f"The trainer already has a session {format_when(clash.starts_at, zone)}–"
                       f"{clash.ends_at.astimezone(zone):%H:%M}", code="trainer_busy",
                       details={"session_id": clash.id})
    lesson = session.scalar(select(ClassOccurrence).where(
        ClassOccurrence.club_id == club_id, ClassOccurrence.trainer_id == trainer_id,
        ClassOccurrence.status == SCHEDULED, ClassOccurrence.starts_at < end,
        ClassOccurrence.ends_at > start).limit(1))
    if lesson is not None:
        raise Conflict(f"The trainer teaches a class {format_when(lesson.starts_at, zone)}–"
                       f"{lesson.ends_at.astimezone(zone):%H:%M}", code="trainer_busy",
                       details={"class_id": lesson.id})
    check_member_free(session, club_id=club_id, member_id=member_id, start=start, end=end,
                       zone=zone, exclude_id=exclude_id)


def check_member_free(session: Session, *, club_id: int, member_id: int, start: datetime,
                       end: datetime, zone: ZoneInfo, exclude_id: int | None = None,
                       exclude_class: int | None = None) -> None:
    overlap = [PtSession.club_id == club_id, PtSession.status.in_(BLOCKING),
               PtSession.starts_at < end, PtSession.ends_at > start,
               PtSession.member_id == member_id]
    if exclude_id is not None:
        overlap.append(PtSession.id != exclude_id)
    clash = session.scalar(select(PtSession).where(*overlap).order_by(PtSession.starts_at)
                           .limit(1))
    if clash is not None:
        raise Conflict(f"The member already has a session {format_when(clash.starts_at, zone)}–"
                       f"{clash.ends_at.astimezone(zone):%H:%M}", code="member_busy",
                       details={"session_id": clash.id})
    where = [ClassBooking.member_id == member_id, ClassBooking.status == BOOKED,
             ClassOccurrence.status == SCHEDULED, ClassOccurrence.starts_at < end,
             ClassOccurrence.ends_at > start]
    if exclude_class is not None:
        where.append(ClassOccurrence.id != exclude_class)
    lesson = session.scalar(select(ClassOccurrence)
                            .join(ClassBooking, ClassBooking.occurrence_id == ClassOccurrence.id)
                            .where(*where).limit(1))
    if lesson is not None:
        raise Conflict(f"The member is booked into a class {format_when(lesson.starts_at, zone)}–"
                       f"{lesson.ends_at.astimezone(zone):%H:%M}", code="member_busy",
                       details={"class_id": lesson.id})


def _check_package(session: Session, *, club_id: int, member_id: int, day: date) -> None:
    rows = session.execute(select(PtPackage.valid_from, PtPackage.valid_until).where(
        PtPackage.club_id == club_id, PtPackage.member_id == member_id,
        PtPackage.sessions_left > 0)).all()
    if any(valid_from <= day <= valid_until for valid_from, valid_until in rows):
        return
    expired = [until for _start, until in rows if until < day]
    if expired:
        raise Conflict(f"The member's PT package expired on {max(expired)}, before {day}; "
                       "sell a new package", code="package_expired",
                       details={"valid_until": max(expired).isoformat()})
    later = [start for start, _until in rows if start > day]
    if later:
        raise Conflict(f"The member's PT package starts on {min(later)}, after {day}",
                       code="package_not_started", details={"valid_from": min(later).isoformat()})
    raise Conflict("The member has no PT package with sessions left; sell one first",
                   code="no_package_balance")


def _member_may_book(session: Session, *, actor: MemberActor, member_id: int,
                     trainer_id: int, start: datetime, now: datetime,
                     complimentary: bool) -> None:
    """A member booking for themselves (under their lock, before the trainer is looked at): for
    themselves, a package for that day, with a trainer of their own, within the horizon."""
    if member_id != actor.member_id or complimentary:
        raise Forbidden("Members book their own sessions only", code="not_your_session")
    zone = zone_for(session, actor.club_id)
    today, day = clock.today(zone, now), start.astimezone(zone).date()
    _check_package(session, club_id=actor.club_id, member_id=member_id, day=day)
    if trainer_id not in member_trainers(session, club_id=actor.club_id, member_id=member_id,
                                         today=today):
        raise NotFound("Trainer not found", code="trainer_not_found")
    if day > today + timedelta(days=HORIZON_DAYS):
        raise Conflict(f"Sessions can be booked up to {HORIZON_DAYS} days ahead",
                       code="outside_member_horizon", details={"days": HORIZON_DAYS})


def _check_not_held(session: Session, *, club_id: int, member_id: int, day: date) -> None:
    """A member books only a session of a package that no booked session holds already."""
    _held, fits = held_sessions(session, club_id=club_id, member_id=member_id, extra_day=day)
    if not fits:
        raise Conflict("Every session left in your package is booked already; cancel one or "
                       "buy a new package", code="package_fully_booked")


def _lock_and_check(session: Session, *, actor: Actor | MemberActor, member_id: int,
                    trainer_ids: list[int], trainer_id: int, start: datetime, end: datetime,
                    complimentary: bool, exclude_id: int | None = None,
                    now: datetime | None = None) -> None:
    """Lock the member, then the trainer(s) in id order, and check every booking rule."""
    club_id = actor.club_id
    member = billing_service.require_member(session, club_id=club_id, member_id=member_id,
                                            for_update=True)
    if member.erased_at is not None:
        raise Conflict("This member's data was erased", code="member_erased")
    by_member = isinstance(actor, MemberActor)
    if by_member:
        _member_may_book(session, actor=actor, member_id=member_id, trainer_id=trainer_id,
                         start=start, now=now or clock.now(), complimentary=complimentary)
    locked = {tid: get_trainer(session, club_id=club_id, trainer_id=tid, for_update=True)
              for tid in sorted(set(trainer_ids))}
    trainer = locked[trainer_id]
    name = trainer_names(session, {trainer.id}).get(trainer.id, "The trainer")
    zone = zone_for(session, club_id)
    _bookable_trainer(session, trainer, name)
    _check_hours(session, trainer=trainer, name=name, zone=zone, start=start, end=end)
    _check_free(session, club_id=club_id, trainer_id=trainer.id, member_id=member_id,
                start=start, end=end, zone=zone, exclude_id=exclude_id)
    if by_member:
        _check_not_held(session, club_id=club_id, member_id=member_id,
                        day=start.astimezone(zone).date())
    elif not complimentary:
        _check_package(session, club_id=club_id, member_id=member_id,
                       day=start.astimezone(zone).date())


def book_session(session: Session, *, actor: Actor | MemberActor, member_id: int,
                 start: datetime, duration_minutes: int = 60, trainer_id: int | None = None,
                 complimentary: bool = False, task_id: int | None = None,
                 now: datetime | None = None) -> SessionRead:
    """Book a PT session: trainer free and working, member free, a package valid that day (and,
    for a member booking themselves, a session of it not held by another booking)."""
    now = now or clock.now()
    check_instant(start, now)
    start = start.astimezone(UTC)
    end = start + timedelta(minutes=duration_minutes)
    trainer_id = _trainer_for_booking(session, actor, trainer_id)
    if complimentary and task_id is None and _role(actor) not in MANAGERS:
        raise Forbidden("Only a manager may book a complimentary session",
                        code="complimentary_forbidden")
    if start < now and _role(actor) not in MANAGERS:
        raise Invalid("This time has passed; only a manager may record a past session",
                      code="session_in_past", details={"field": "start"})
    with session.begin_nested():
        _lock_and_check(session, actor=actor, member_id=member_id, trainer_ids=[trainer_id],
                        trainer_id=trainer_id, start=start, end=end, complimentary=complimentary,
                        now=now)
        pt = PtSession(club_id=actor.club_id, trainer_id=trainer_id, member_id=member_id,
                       starts_at=start, ends_at=end, status=BOOKED, complimentary=complimentary,
                       late_cancel=False, task_id=task_id, sequence=0,
                       booked_by=_staff_id(actor))
        session.add(pt)
        session.flush()
    return _session_reads(session, [pt])[0]


def reschedule_session(session: Session, *, actor: Actor, session_id: int, start: datetime,
                       duration_minutes: int | None = None, trainer_id: int | None = None,
                       now: datetime | None = None) -> SessionRead:
    """Move a booked session (same rules as booking; never charged)."""
    now = now or clock.now()
    club_id = actor.club_id
    check_instant(start, now)
    start = start.astimezone(UTC)
    pt = _get_session(session, club_id=club_id, session_id=session_id)
    _may_manage(session, actor, pt)
    if trainer_id is not None and trainer_id != pt.trainer_id and actor.role == Role.trainer:
        raise Forbidden("Ask the front desk or a manager to move a session to another trainer",
                        code="not_your_session")
    if pt.status != BOOKED:
        raise Conflict(f"This session is {pt.status.replace('_', '-')}; only booked sessions "
                       "can be moved", code="session_closed")
    if pt.starts_at <= now:
        raise Conflict("This session has started; mark it completed or no-show",
                       code="session_started")
    if start < now and actor.role not in MANAGERS:
        raise Invalid("This time has passed; only a manager may record a past session",
                      code="session_in_past", details={"field": "start"})
    minutes = duration_minutes or int((pt.ends_at - pt.starts_at).total_seconds() // 60)
    end = start + timedelta(minutes=minutes)
    new_trainer = trainer_id or pt.trainer_id
    with session.begin_nested():
        _lock_and_check(session, actor=actor, member_id=pt.member_id,
                        trainer_ids=[pt.trainer_id, new_trainer], trainer_id=new_trainer,
                        start=start, end=end, complimentary=pt.complimentary,
                        exclude_id=pt.id)
        moved = session.execute(bulk_update(
            update(PtSession).where(PtSession.id == pt.id, PtSession.status == BOOKED)
            .values(starts_at=start, ends_at=end, trainer_id=new_trainer,
                    sequence=PtSession.sequence + 1, updated_at=clock.now()))).rowcount
        if moved != 1:
            raise Conflict("This session was just closed by someone else", code="session_closed")
    return read_session(session, club_id=club_id, session_id=pt.id)


def _claim(session: Session, pt: PtSession, *, status: str, actor: Actor | MemberActor,
           now: datetime,
           **values) -> None:
    """The one guarded transition out of 'booked' (exactly once, whoever tries)."""
    claimed = session.execute(bulk_update(
        update(PtSession).where(PtSession.id == pt.id, PtSession.club_id == actor.club_id,
                                PtSession.status == BOOKED)
        .values(status=status, closed_at=now, closed_by=_staff_id(actor), updated_at=now,
                **values))).rowcount
    if claimed != 1:
        current = session.scalar(select(PtSession.status).where(PtSession.id == pt.id))
        raise Conflict(f"This session is already {(current or 'gone').replace('_', '-')}",
                       code="session_closed", details={"status": current})


def _charge(session: Session, pt: PtSession, *, required: bool) -> int | None:
    if pt.complimentary:
        return None
    day = pt.starts_at.astimezone(zone_for(session, pt.club_id)).date()
    package_id = spend_one(session, club_id=pt.club_id, member_id=pt.member_id, day=day)
    if package_id is None and required:
        raise Conflict(f"The member has no PT package with sessions left valid on {day}; "
                       "sell one first, then complete the session", code="no_package_balance")
    if package_id is not None:
        session.execute(bulk_update(update(PtSession).where(PtSession.id == pt.id)
                                .values(package_id=package_id)))
    return package_id


def complete_session(session: Session, *, actor: Actor, session_id: int,
                     note: str | None = None, now: datetime | None = None) -> SessionRead:
    """Mark a session delivered: spends exactly one session of the package expiring first."""
    return _close(session, actor=actor, session_id=session_id, status=COMPLETED, note=note,
                  now=now)


def mark_no_show(session: Session, *, actor: Actor, session_id: int,
                 now: datetime | None = None) -> SessionRead:
    """The member did not come: the session is spent as if delivered (when a balance is left)."""
    return _close(session, actor=actor, session_id=session_id, status=NO_SHOW, note=None, now=now)


def _close(session: Session, *, actor: Actor, session_id: int, status: str, note: str | None,
           now: datetime | None) -> SessionRead:
    now = now or clock.now()
    pt = _get_session(session, club_id=actor.club_id, session_id=session_id)
    _may_manage(session, actor, pt)
    if pt.status != BOOKED:
        raise Conflict(f"This session is already {pt.status.replace('_', '-')}",
                       code="session_closed", details={"status": pt.status})
    if pt.starts_at > now:
        raise Conflict("This session has not started yet", code="session_not_started")
    with session.begin_nested():
        _claim(session, pt, status=status, actor=actor, now=now)
        _charge(session, pt, required=status == COMPLETED)
        if note:
            session.add(TrainerClientNote(club_id=pt.club_id, trainer_id=pt.trainer_id,
                                          member_id=pt.member_id, session_id=pt.id, text=note,
                                          staff_id=actor.user_id, created_at=now))
        session.flush()
    return read_session(session, club_id=actor.club_id, session_id=pt.id)


def cancel_session(session: Session, *, actor: Actor | MemberActor, session_id: int,
                   by: str = "member", reason: str | None = None,
                   now: datetime | None = None) -> SessionRead:
    """Cancel a booked session; a member's cancellation inside the club's window spends it.
    A member (`MemberActor`) cancels their own sessions only, always as `by="member"`."""
    now = now or clock.now()
    pt = _get_session(session, club_id=actor.club_id, session_id=session_id)
    _may_manage(session, actor, pt)
    if by == "club" and _role(actor) not in MANAGERS and _role(actor) != Role.trainer:
        raise Forbidden("Only a manager or the session's trainer may cancel on the club's "
                        "behalf (free of charge)", code="waive_forbidden")
    if pt.status != BOOKED:
        raise Conflict(f"This session is already {pt.status.replace('_', '-')}",
                       code="session_closed", details={"status": pt.status})
    if pt.starts_at <= now:
        raise Conflict("This session has started; mark it completed or no-show instead",
                       code="session_started")
    window = timedelta(hours=get_settings(session, club_id=actor.club_id).pt_cancel_hours)
    late = by == "member" and not pt.complimentary and pt.starts_at - now < window
    with session.begin_nested():
        _claim(session, pt, status=CANCELLED, actor=actor, now=now, late_cancel=late,
               cancelled_by=by, cancel_reason=reason)
        if late:
            _charge(session, pt, required=False)
    return read_session(session, club_id=actor.club_id, session_id=pt.id)


def list_sessions(session: Session, *, actor: Actor, trainer_id: int | None = None,
                  member_id: int | None = None, date_from: date | None = None,
                  date_to: date | None = None, status: str | None = None, limit: int = 100,
                  offset: int = 0) -> Page[SessionRead]:
    """Sessions by start time; a period is club-local days, both inclusive."""
    where = [PtSession.club_id == actor.club_id]
    if trainer_id is not None:
        where.append(PtSession.trainer_id == trainer_id)
    if member_id is not None:
        where.append(PtSession.member_id == member_id)
    if status is not None:
        where.append(PtSession.status == status)
    if date_from is not None or date_to is not None:
        zone = zone_for(session, actor.club_id)
        lo, hi = day_bounds(zone, date_from or date(2000, 1, 1), date_to or date(2100, 12, 30))
        where += [PtSession.starts_at >= lo, PtSession.starts_at < hi]
    total = session.scalar(select(func.count()).select_from(PtSession).where(*where)) or 0
    rows = list(session.scalars(select(PtSession).where(*where)
                                .order_by(PtSession.starts_at, PtSession.id)
                                .limit(limit).offset(offset)))
    return Page[SessionRead](items=_session_reads(session, rows), total=total, limit=limit,
                             offset=offset)


# ----------------------------------------------------------------------------- clients and notes

def add_client_note(session: Session, *, actor: Actor, trainer_id: int, member_id: int,
                    text: str) -> TrainerClientNote:
    """A trainer's note about a client (read by that trainer and managers only)."""
    trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id)
    require_self_or_manager(actor, trainer, "this trainer's client notes")
    billing_service.require_member(session, club_id=actor.club_id, member_id=member_id)
    note = TrainerClientNote(club_id=actor.club_id, trainer_id=trainer.id, member_id=member_id,
                             text=text, staff_id=actor.user_id, created_at=clock.now())
    session.add(note)
    session.flush()
    return note


def client_notes(session: Session, *, actor: Actor, trainer_id: int, member_id: int,
                 limit: int = 50, offset: int = 0) -> tuple[list[TrainerClientNote], int]:
    """A trainer's notes about one client, newest first."""
    trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id)
    require_self_or_manager(actor, trainer, "this trainer's client notes")
    billing_service.require_member(session, club_id=actor.club_id, member_id=member_id)
    where = (TrainerClientNote.trainer_id == trainer.id, TrainerClientNote.member_id == member_id)
    total = session.scalar(select(func.count()).select_from(TrainerClientNote).where(*where))
    notes = list(session.scalars(select(TrainerClientNote).where(*where)
                                 .order_by(TrainerClientNote.created_at.desc(),
                                           TrainerClientNote.id.desc())
                                 .limit(limit).offset(offset)))
    return notes, total or 0


def trainer_clients(session: Session, *, actor: Actor, trainer_id: int,
                    now: datetime | None = None) -> list[ClientRead]:
    """A trainer's clients: members with sessions with them or a package naming them."""
    now = now or clock.now()
    trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id)
    require_self_or_manager(actor, trainer, "this trainer's clients")
    today = clubs_service.club_today_by_id(session, actor.club_id, now)
    s = PtSession
    stats = {row.member_id: row for row in session.execute(
        select(s.member_id,
               func.coalesce(func.sum(case((s.status == COMPLETED, 1), else_=0)), 0)
               .label("done"),
               func.max(case((s.status == COMPLETED, s.starts_at))).label("last"),
               func.min(case((and_(s.status == BOOKED, s.starts_at >= now), s.starts_at)))
               .label("next"))
        .where(s.club_id == actor.club_id, s.trainer_id == trainer.id, s.status != CANCELLED)
        .group_by(s.member_id))}
    homed = set(session.scalars(select(PtPackage.member_id).where(
        PtPackage.club_id == actor.club_id, PtPackage.trainer_id == trainer.id)))
    ids = set(stats) | homed
    if not ids:
        return []
    left = dict(session.execute(
        select(PtPackage.member_id, func.sum(PtPackage.sessions_left))
        .where(PtPackage.club_id == actor.club_id, PtPackage.member_id.in_(ids),
               PtPackage.valid_from <= today,
               PtPackage.valid_until >= today).group_by(PtPackage.member_id)).all())
    names = {mid: full_name(f, la) for mid, f, la in session.execute(
        select(Member.id, Member.first_name, Member.last_name).where(Member.id.in_(ids)))}
    def instant(value) -> datetime | None:  # an aggregate may come back as text on SQLite
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)

    out = [ClientRead(member_id=mid, name=names.get(mid, "?"),
                      sessions_completed=int(stats[mid].done) if mid in stats else 0,
                      last_session_at=instant(stats[mid].last) if mid in stats else None,
                      next_session_at=instant(stats[mid].next) if mid in stats else None,
                      sessions_left=int(left.get(mid) or 0)) for mid in ids]
    return sorted(out, key=lambda c: (c.name.lower(), c.member_id))


# ----------------------------------------------------------------------------- retention hooks

def my_tasks(session: Session, *, actor: Actor, limit: int = 200) -> list[TaskRead]:
    """Open tasks for the trainer role (unassigned) or for the calling user, oldest due first."""
    today = clubs_service.club_today_by_id(session, actor.club_id)
    rows = session.execute(
        select(Task, Member.first_name, Member.last_name)
        .outerjoin(Member, Member.id == Task.member_id)
        .where(Task.club_id == actor.club_id, Task.status == "open",
               or_(Task.assignee_user_id == actor.user_id,
                   and_(Task.assignee_user_id.is_(None),
                        Task.assignee_role == Role.trainer.value)))
        .order_by(Task.due_date, Task.id).limit(limit)).all()
    out = []
    for task, first, last in rows:
        data = {f: getattr(task, f) for f in TaskRead.model_fields if hasattr(task, f)}
        data["member_name"] = full_name(first, last) if task.member_id else None
        data["overdue"] = task.due_date < today
        out.append(TaskRead(**data))
    return out


def book_from_task(session: Session, *, actor: Actor, task_id: int, start: datetime,
                   duration_minutes: int = 60, trainer_id: int | None = None,
                   now: datetime | None = None) -> SessionRead:
    """Book the task's member a complimentary session and close the task ("session booked")."""
    task = session.scalar(select(Task).where(Task.id == task_id, Task.club_id == actor.club_id)
                          .with_for_update().execution_options(populate_existing=True))
    if task is None:
        raise NotFound("Task not found", code="task_not_found")
    if actor.role == Role.trainer and not (
            task.assignee_user_id == actor.user_id
            or (task.assignee_user_id is None and task.assignee_role == Role.trainer.value)):
        raise Forbidden("Trainers act on their own tasks and trainer tasks only",
                        code="not_your_task")
    if task.status != "open":
        raise Conflict(f"This task is already {task.status}", code="task_closed")
    if task.member_id is None:
        raise Invalid("This task is not about a member; nobody to book", code="task_no_member")
    with session.begin_nested():
        booked = book_session(session, actor=actor, member_id=task.member_id, start=start,
                              duration_minutes=duration_minutes, trainer_id=trainer_id,
                              complimentary=True, task_id=task.id, now=now)
        crm_service.complete_task(session, actor=actor, task_id=task.id, outcome="session booked")
    return booked
