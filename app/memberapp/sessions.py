"""Members' device sessions: started after a sign-in, resolved on every member page, ended by the
member (sign out, sign out everywhere else) or by the desk.

A session is the `fitclub_member` cookie (path /app, HttpOnly): a 256-bit random token whose
SHA-256 is the row's `token_hash`. It is a separate table from the staff's `auth_tokens`, so a
member's cookie is no staff token and a staff token no member session.
"""
import re
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.core import audit, clock
from app.core.actors import Actor, MemberActor
from app.core.security import digest, new_secret
from app.crm import service as crm_service
from app.memberapp.models import MemberSession
from app.members import service as members_service
from app.members.models import Member

TOUCH_EVERY = timedelta(minutes=10)  # last_seen_at is written at most this often
MAX_TOKEN = 200
TIMELINE_KIND = "member_app"
TIMELINE_CHANNEL = crm_service.MEMBER_CHANNEL


def device_label(user_agent: str | None) -> str | None:
    """"Firefox on Android", "Safari on iPhone": enough for a member to recognise a device."""
    ua = user_agent or ""
    if not ua:
        return None
    browser = next((name for pattern, name in (
        (r"Edg/", "Edge"), (r"OPR/|Opera", "Opera"), (r"SamsungBrowser", "Samsung Internet"),
        (r"Firefox/|FxiOS", "Firefox"), (r"Chrome/|CriOS|Chromium", "Chrome"),
        (r"Safari/", "Safari")) if re.search(pattern, ua)), "Browser")
    system = next((name for pattern, name in (
        (r"iPhone", "iPhone"), (r"iPad", "iPad"), (r"Android", "Android"),
        (r"Windows", "Windows"), (r"Mac OS X|Macintosh", "Mac"), (r"CrOS", "ChromeOS"),
        (r"Linux", "Linux")) if re.search(pattern, ua)), None)
    return f"{browser} on {system}" if system else browser


def start(session: Session, *, member: Member, channel: str, device: str | None,
          ttl: timedelta) -> str:
    """A new session for the member on this device; the cookie's token (returned once). The
    sign-in is put on the member's timeline for the staff."""
    now = clock.now()
    token = new_secret()
    session.add(MemberSession(club_id=member.club_id, member_id=member.id,
                              token_hash=digest(token), channel=channel, device=device,
                              created_at=now, expires_at=now + ttl, last_seen_at=now))
    how = "an emailed link" if channel == "email" else "a code by SMS"
    crm_service.record(session, club_id=member.club_id, member_id=member.id, kind=TIMELINE_KIND,
                       channel=TIMELINE_CHANNEL,
                       summary=f"Signed in to the member app with {how}"
                               + (f" ({device})" if device else ""))
    session.flush()
    return token


def resolve(session: Session, *, token: str | None) -> MemberActor | None:
    """The member of a live session token (not expired, not revoked, the person not erased), or
    None."""
    if not token or len(token) > MAX_TOKEN:
        return None
    now = clock.now()
    row = session.execute(
        select(MemberSession.id, MemberSession.member_id, MemberSession.club_id,
               MemberSession.last_seen_at, Member.first_name, Member.last_name)
        .join(Member, Member.id == MemberSession.member_id)
        .where(MemberSession.token_hash == digest(token), MemberSession.revoked_at.is_(None),
               MemberSession.expires_at > now, Member.erased_at.is_(None),
               Member.club_id == MemberSession.club_id)).first()
    if row is None:
        return None
    if row.last_seen_at < now - TOUCH_EVERY:
        session.execute(update(MemberSession).where(MemberSession.id == row.id)
                        .values(last_seen_at=now))
    name = f"{row.first_name} {row.last_name}".strip()
    return MemberActor(session_id=row.id, member_id=row.member_id, club_id=row.club_id,
                       name=name)


def _live(club_id: int, member_id: int, now: datetime):
    return (MemberSession.club_id == club_id, MemberSession.member_id == member_id,
            MemberSession.revoked_at.is_(None), MemberSession.expires_at > now)


def live_sessions(session: Session, *, club_id: int, member_id: int) -> list[MemberSession]:
    """The member's sessions that still work, the most recently used first."""
    return list(session.scalars(select(MemberSession).where(*_live(club_id, member_id,
                                                                   clock.now()))
                                .order_by(MemberSession.last_seen_at.desc(),
                                          MemberSession.id.desc())))


def live_count(session: Session, *, club_id: int, member_id: int) -> int:
    return session.scalar(select(func.count()).select_from(MemberSession)
                          .where(*_live(club_id, member_id, clock.now()))) or 0


def sign_out(session: Session, *, actor: MemberActor) -> None:
    """End this device's session (a repeat is harmless)."""
    session.execute(update(MemberSession).where(MemberSession.id == actor.session_id,
                                                MemberSession.revoked_at.is_(None))
                    .values(revoked_at=clock.now(), revoked_by="member"))


def sign_out_others(session: Session, *, actor: MemberActor) -> int:
    """End the member's sessions on every other device; how many."""
    now = clock.now()
    ended = session.execute(update(MemberSession).where(
        *_live(actor.club_id, actor.member_id, now), MemberSession.id != actor.session_id)
        .values(revoked_at=now, revoked_by="member")).rowcount
    if ended:
        crm_service.record(session, club_id=actor.club_id, member_id=actor.member_id,
                           kind=TIMELINE_KIND, channel=TIMELINE_CHANNEL,
                           summary=f"Signed out of the member app on {ended} other "
                                   f"device{'s' if ended != 1 else ''}")
    return ended


def revoke_by_staff(session: Session, *, actor: Actor, member_id: int) -> int:
    """The desk signs a member out of the app on every device (a lost phone); how many sessions
    ended. On the member's timeline, and audited."""
    members_service.get_member(session, club_id=actor.club_id, member_id=member_id)
    now = clock.now()
    ended = session.execute(update(MemberSession).where(*_live(actor.club_id, member_id, now))
                            .values(revoked_at=now, revoked_by="staff",
                                    revoked_by_staff=actor.user_id)).rowcount
    crm_service.record(session, club_id=actor.club_id, member_id=member_id,
                       kind=TIMELINE_KIND, channel=TIMELINE_CHANNEL, staff_id=actor.user_id,
                       summary=f"Signed out of the member app by staff ({ended} "
                               f"device{'s' if ended != 1 else ''})")
    audit.record(session, club_id=actor.club_id, actor=actor, action="updated",
                 member_id=member_id, fields=["member_app_sessions"])
    session.flush()
    return ended
