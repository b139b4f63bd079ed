"""A trainer's schedule as an iCalendar (RFC 5545) feed, authorised by the secret in its URL."""
import hmac
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clubs.models import ClubStaff, StaffUser
from app.core import clock
from app.core.actors import Actor
from app.core.errors import NotFound
from app.core.security import digest, new_secret
from app.members.models import Member
from app.trainers.models import ClassOccurrence, ClassType, PtSession, TrainerProfile
from app.trainers.service import (
    BOOKED,
    COMPLETED,
    SCHEDULED,
    get_trainer,
    require_self_or_manager,
    short_name,
    trainer_names,
)

FEED_PAST = timedelta(days=31)
FEED_FUTURE = timedelta(days=366)


def rotate_feed_token(session: Session, *, actor: Actor, trainer_id: int) -> tuple[str, datetime]:
    """A new secret for the trainer's calendar feed (the old URL stops working)."""
    trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id, for_update=True)
    require_self_or_manager(actor, trainer, "this trainer's calendar feed")
    token = new_secret()
    trainer.feed_token_hash = digest(token)
    trainer.feed_token_created_at = clock.now()
    session.flush()
    return token, trainer.feed_token_created_at


def revoke_feed_token(session: Session, *, actor: Actor, trainer_id: int) -> None:
    trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id, for_update=True)
    require_self_or_manager(actor, trainer, "this trainer's calendar feed")
    trainer.feed_token_hash = None
    trainer.feed_token_created_at = None
    session.flush()


def _ics_text(value: str) -> str:
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n"))


def _ics_fold(line: str) -> str:
    """RFC 5545 §3.1: lines of at most 75 octets, continued with CRLF + one space."""
    if len(line.encode()) <= 75:
        return line
    parts, current, size, limit = [], "", 0, 75
    for ch in line:
        n = len(ch.encode())
        if size + n > limit:
            parts.append(current)
            current, size, limit = "", 0, 74
        current += ch
        size += n
    parts.append(current)
    return "\r\n ".join(parts)


def _ics_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def schedule_feed(session: Session, *, trainer_id: int, token: str, uid_domain: str,
                  now: datetime | None = None) -> str:
    """The trainer's booked PT sessions and classes as an iCalendar (RFC 5545) document.

    The feed is authorised by the token alone (calendar apps send no headers), and only while
    the trainer still works in the club with an active account: removed from the staff
    (`DELETE /api/v1/staff/{id}`) or deactivated, the URL stops working at once. A wrong token
    answers like an unknown trainer. Members appear as first name + initial.
    """
    now = now or clock.now()
    trainer = session.scalar(
        select(TrainerProfile)
        .join(ClubStaff, (ClubStaff.club_id == TrainerProfile.club_id)
              & (ClubStaff.user_id == TrainerProfile.user_id))
        .join(StaffUser, StaffUser.id == TrainerProfile.user_id)
        .where(TrainerProfile.id == trainer_id, StaffUser.active.is_(True)))
    if (trainer is None or trainer.feed_token_hash is None or not token
            or not hmac.compare_digest(trainer.feed_token_hash, digest(token))):
        raise NotFound("Unknown calendar feed", code="feed_not_found")
    name = trainer_names(session, {trainer.id}).get(trainer.id, "Trainer")
    lo, hi = now - FEED_PAST, now + FEED_FUTURE
    sessions = session.execute(
        select(PtSession.id, PtSession.starts_at, PtSession.ends_at, PtSession.status,
               PtSession.sequence, PtSession.updated_at, Member.first_name, Member.last_name)
        .join(Member, Member.id == PtSession.member_id)
        .where(PtSession.trainer_id == trainer.id, PtSession.status.in_((BOOKED, COMPLETED)),
               PtSession.starts_at >= lo, PtSession.starts_at < hi)
        .order_by(PtSession.starts_at)).all()
    classes = session.execute(
        select(ClassOccurrence.id, ClassOccurrence.starts_at, ClassOccurrence.ends_at,
               ClassOccurrence.room, ClassOccurrence.capacity, ClassOccurrence.booked_count,
               ClassType.name)
        .join(ClassType, ClassType.id == ClassOccurrence.class_type_id)
        .where(ClassOccurrence.trainer_id == trainer.id, ClassOccurrence.status == SCHEDULED,
               ClassOccurrence.starts_at >= lo, ClassOccurrence.starts_at < hi)
        .order_by(ClassOccurrence.starts_at)).all()
    stamp = _ics_time(now)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//fitclub//trainer schedule//EN",
             "CALSCALE:GREGORIAN", "METHOD:PUBLISH",
             f"X-WR-CALNAME:{_ics_text(f'{name} – fitclub')}",
             "REFRESH-INTERVAL;VALUE=DURATION:PT15M", "X-PUBLISHED-TTL:PT15M"]
    for s in sessions:
        lines += ["BEGIN:VEVENT", f"UID:pt-session-{s.id}@{uid_domain}", f"DTSTAMP:{stamp}",
                  f"DTSTART:{_ics_time(s.starts_at)}", f"DTEND:{_ics_time(s.ends_at)}",
                  f"SUMMARY:{_ics_text('PT: ' + short_name(s.first_name, s.last_name))}",
                  f"SEQUENCE:{s.sequence}", "STATUS:CONFIRMED", "TRANSP:OPAQUE",
                  f"LAST-MODIFIED:{_ics_time(s.updated_at)}", "END:VEVENT"]
    for c in classes:
        lines += ["BEGIN:VEVENT", f"UID:class-{c.id}@{uid_domain}", f"DTSTAMP:{stamp}",
                  f"DTSTART:{_ics_time(c.starts_at)}", f"DTEND:{_ics_time(c.ends_at)}",
                  f"SUMMARY:{_ics_text(f'Class: {c.name} ({c.booked_count}/{c.capacity})')}",
                  "STATUS:CONFIRMED", "TRANSP:OPAQUE"]
        if c.room:
            lines.append(f"LOCATION:{_ics_text(c.room)}")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "".join(_ics_fold(line) + "\r\n" for line in lines)
