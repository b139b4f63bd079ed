"""Trainer profiles, their working hours and absences, the trainer domain's settings, and what
the other modules of `app.trainers` share: session and class statuses, the club's zone and day,
names, bulk updates, the access checks on a trainer's own data.
"""
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.clubs import service as clubs_service
from app.clubs.models import Club, ClubStaff, StaffUser
from app.core import clock
from app.core.actors import MANAGERS, Actor, Role
from app.core.db import club_row
from app.core.errors import Conflict, Forbidden, Invalid, NotFound
from app.core.events import StaffJoined
from app.core.sql import dialect_insert, local_day_start
from app.trainers.models import (
    PtSession,
    TrainerAbsence,
    TrainerHours,
    TrainerProfile,
    TrainerSettings,
)
from app.trainers.schemas import (
    HoursIntervalRead,
    HoursRead,
    HoursSet,
    TrainerCreate,
    TrainerRead,
    TrainerSettingsRead,
)

BOOKED, COMPLETED, NO_SHOW, CANCELLED = "booked", "completed", "no_show", "cancelled"
SCHEDULED = "scheduled"
DEFAULT_PT_CANCEL_HOURS = 24
BOOKING_HORIZON = timedelta(days=366)


# ----------------------------------------------------------------------------- small helpers

def _club(session: Session, club_id: int) -> Club:
    return clubs_service.get_club(session, club_id)


def zone_for(session: Session, club_id: int) -> ZoneInfo:
    return clubs_service.club_zone(_club(session, club_id))


def format_when(at: datetime, zone: ZoneInfo) -> str:
    local = at.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y %H:%M}"


def day_bounds(zone: ZoneInfo, first: date, last: date) -> tuple[datetime, datetime]:
    """[start of `first`, start of the day after `last`) in the club's zone, as UTC instants."""
    return local_day_start(zone, first), local_day_start(zone, last + timedelta(days=1))


def full_name(first: str | None, last: str | None) -> str:
    return " ".join(p for p in (first, last) if p) or "?"


def short_name(first: str | None, last: str | None) -> str:
    """First name and the initial of the surname ("Anna B."): what a calendar may show."""
    first = (first or "").strip() or "Member"
    last = (last or "").strip()
    return f"{first} {last[0].upper()}." if last else first


def check_instant(at: datetime, now: datetime, *, field: str = "start") -> None:
    if at.utcoffset() is None:
        raise Invalid(f"{field} needs a UTC offset", code="timezone_required")
    if abs(at - now) > BOOKING_HORIZON:
        raise Invalid(f"{field} must be within a year of today", code="outside_horizon",
                      details={"field": field})


def bulk_update(stmt):
    """A bulk UPDATE that leaves objects in the session alone (we re-read what we need)."""
    return stmt.execution_options(synchronize_session=False)


# ----------------------------------------------------------------------------- settings

def get_settings(session: Session, *, club_id: int) -> TrainerSettingsRead:
    """The trainer domain's settings for a club (defaults when none were saved)."""
    hours = session.scalar(select(TrainerSettings.pt_cancel_hours)
                           .where(TrainerSettings.club_id == club_id))
    return TrainerSettingsRead(pt_cancel_hours=DEFAULT_PT_CANCEL_HOURS if hours is None else hours)


def update_settings(session: Session, *, actor: Actor, pt_cancel_hours: int) -> TrainerSettingsRead:
    """Save the club's PT cancellation window (one upsert)."""
    now = clock.now()
    stmt = (dialect_insert(session, TrainerSettings)
            .values(club_id=actor.club_id, pt_cancel_hours=pt_cancel_hours, updated_at=now)
            .on_conflict_do_update(index_elements=["club_id"],
                                   set_={"pt_cancel_hours": pt_cancel_hours, "updated_at": now}))
    session.execute(stmt)
    return get_settings(session, club_id=actor.club_id)


# ----------------------------------------------------------------------------- trainers

def get_trainer(session: Session, *, club_id: int, trainer_id: int,
                for_update: bool = False) -> TrainerProfile:
    """A trainer profile of this club, else NotFound (FOR NO KEY UPDATE when asked)."""
    return club_row(session, TrainerProfile, club_id=club_id, row_id=trainer_id,
                    for_update=for_update,
                    missing=NotFound("Trainer not found", code="trainer_not_found"))


def own_profile(session: Session, actor: Actor) -> TrainerProfile | None:
    """The calling staff user's trainer profile in the acting club, if any."""
    return session.scalar(select(TrainerProfile).where(TrainerProfile.club_id == actor.club_id,
                                                       TrainerProfile.user_id == actor.user_id))


def require_own_profile(session: Session, actor: Actor) -> TrainerProfile:
    profile = own_profile(session, actor)
    if profile is None:
        raise Forbidden("You have no trainer profile in this club; ask a manager to create one",
                        code="no_trainer_profile")
    return profile


def is_self(actor: Actor, trainer: TrainerProfile) -> bool:
    return actor.role == Role.trainer and trainer.user_id == actor.user_id


def require_self_or_manager(actor: Actor, trainer: TrainerProfile, what: str) -> None:
    if actor.role in MANAGERS or is_self(actor, trainer):
        return
    raise Forbidden(f"Only managers and the trainer themselves may see or change {what}",
                    code="not_your_trainer_profile")


def trainer_names(session: Session, trainer_ids: set[int]) -> dict[int, str]:
    if not trainer_ids:
        return {}
    return dict(session.execute(
        select(TrainerProfile.id, StaffUser.name)
        .join(StaffUser, StaffUser.id == TrainerProfile.user_id)
        .where(TrainerProfile.id.in_(trainer_ids))).all())


def _trainer_read(session: Session, trainer: TrainerProfile) -> TrainerRead:
    return TrainerRead(id=trainer.id, user_id=trainer.user_id,
                       name=trainer_names(session, {trainer.id}).get(trainer.id, "?"),
                       specialities=list(trainer.specialities or []), bio=trainer.bio,
                       active=trainer.active, has_feed_token=trainer.feed_token_hash is not None)


def create_trainer(session: Session, *, actor: Actor, data: TrainerCreate) -> TrainerRead:
    """Give a staff user with the trainer role a trainer profile in the actor's club."""
    role = session.scalar(select(ClubStaff.role).where(ClubStaff.club_id == actor.club_id,
                                                       ClubStaff.user_id == data.user_id))
    if role is None:
        raise NotFound("No such staff member in this club", code="staff_not_found")
    if role != Role.trainer.value:
        raise Invalid(f"This staff member's role is {role}; give them the trainer role first",
                      code="not_a_trainer", details={"field": "user_id"})
    if session.scalar(select(TrainerProfile.id).where(TrainerProfile.club_id == actor.club_id,
                                                      TrainerProfile.user_id == data.user_id)):
        raise Conflict("This staff member already has a trainer profile", code="trainer_exists")
    trainer = TrainerProfile(club_id=actor.club_id, user_id=data.user_id,
                             specialities=list(dict.fromkeys(data.specialities)), bio=data.bio,
                             active=data.active)
    session.add(trainer)
    session.flush()
    return _trainer_read(session, trainer)


def update_trainer(session: Session, *, actor: Actor, trainer_id: int,
                   changes: dict) -> TrainerRead:
    """Change a trainer's specialities, bio or active flag."""
    trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id, for_update=True)
    if changes.get("specialities") is not None:
        trainer.specialities = list(dict.fromkeys(changes["specialities"]))
    if "bio" in changes:
        trainer.bio = changes["bio"]
    if changes.get("active") is not None:
        trainer.active = changes["active"]
    session.flush()
    return _trainer_read(session, trainer)


def read_trainer(session: Session, *, club_id: int, trainer_id: int) -> TrainerRead:
    return _trainer_read(session, get_trainer(session, club_id=club_id, trainer_id=trainer_id))


def list_trainers(session: Session, *, club_id: int, active: bool | None = None
                  ) -> list[TrainerRead]:
    """The club's trainers by name."""
    where = [TrainerProfile.club_id == club_id]
    if active is not None:
        where.append(TrainerProfile.active.is_(active))
    rows = session.execute(select(TrainerProfile, StaffUser.name)
                           .join(StaffUser, StaffUser.id == TrainerProfile.user_id)
                           .where(*where).order_by(StaffUser.name, TrainerProfile.id)).all()
    return [TrainerRead(id=t.id, user_id=t.user_id, name=name,
                        specialities=list(t.specialities or []), bio=t.bio, active=t.active,
                        has_feed_token=t.feed_token_hash is not None) for t, name in rows]


# --- working hours and absences

def get_hours(session: Session, *, club_id: int, trainer_id: int) -> HoursRead:
    trainer = get_trainer(session, club_id=club_id, trainer_id=trainer_id)
    rows = session.execute(select(TrainerHours.weekday, TrainerHours.start_time,
                                  TrainerHours.end_time)
                           .where(TrainerHours.trainer_id == trainer.id)
                           .order_by(TrainerHours.weekday, TrainerHours.start_time)).all()
    return HoursRead(trainer_id=trainer.id, timezone=_club(session, club_id).timezone,
                     intervals=[HoursIntervalRead(weekday=w, start=s, end=e) for w, s, e in rows])


def set_hours(session: Session, *, actor: Actor, trainer_id: int, data: HoursSet) -> HoursRead:
    """Replace a trainer's weekly working hours (booked sessions are not touched)."""
    trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id, for_update=True)
    session.execute(delete(TrainerHours).where(TrainerHours.trainer_id == trainer.id)
                    .execution_options(synchronize_session=False))
    session.add_all(TrainerHours(club_id=actor.club_id, trainer_id=trainer.id, weekday=iv.weekday,
                                 start_time=iv.start, end_time=iv.end) for iv in data.intervals)
    session.flush()
    return get_hours(session, club_id=actor.club_id, trainer_id=trainer.id)


def add_absence(session: Session, *, actor: Actor, trainer_id: int, start_date: date,
                end_date: date, kind: str, note: str | None) -> tuple[TrainerAbsence, list[int]]:
    """Mark days a trainer is away; answers the sessions already booked on them."""
    trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id, for_update=True)
    absence = TrainerAbsence(club_id=actor.club_id, trainer_id=trainer.id, start_date=start_date,
                             end_date=end_date, kind=kind, note=note, created_by=actor.user_id,
                             created_at=clock.now())
    session.add(absence)
    session.flush()
    lo, hi = day_bounds(zone_for(session, actor.club_id), start_date, end_date)
    booked = list(session.scalars(
        select(PtSession.id).where(PtSession.trainer_id == trainer.id, PtSession.status == BOOKED,
                                   PtSession.starts_at >= lo, PtSession.starts_at < hi)
        .order_by(PtSession.starts_at)))
    return absence, booked


def list_absences(session: Session, *, club_id: int, trainer_id: int) -> list[TrainerAbsence]:
    trainer = get_trainer(session, club_id=club_id, trainer_id=trainer_id)
    return list(session.scalars(select(TrainerAbsence).where(TrainerAbsence.trainer_id == trainer.id)
                                .order_by(TrainerAbsence.start_date, TrainerAbsence.id)))


def delete_absence(session: Session, *, actor: Actor, trainer_id: int, absence_id: int) -> None:
    trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id)
    absence = session.scalar(select(TrainerAbsence).where(TrainerAbsence.id == absence_id,
                                                          TrainerAbsence.trainer_id == trainer.id))
    if absence is None:
        raise NotFound("Absence not found", code="absence_not_found")
    session.delete(absence)
    session.flush()


def on_staff_joined(session: Session, event: StaffJoined) -> None:
    """`StaffJoined` handler: a trainer who joins by invitation gets a trainer profile."""
    if event.role != Role.trainer.value:
        return
    if not session.scalar(select(TrainerProfile.id).where(
            TrainerProfile.club_id == event.club_id, TrainerProfile.user_id == event.user_id)):
        session.add(TrainerProfile(club_id=event.club_id, user_id=event.user_id,
                                   specialities=[], active=True))
        session.flush()
