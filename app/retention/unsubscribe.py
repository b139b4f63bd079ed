"""Unsubscribe links: `<club>.<member>.<HMAC-SHA256(SECRET_KEY)>`, unforgeable without the key.

Opening the link (GET) only shows a page with an Unsubscribe button: mail scanners and link
previews open every link in a message, and must not unsubscribe anyone. The button, and a mail
client's RFC 8058 one-click request (the email's `List-Unsubscribe` and
`List-Unsubscribe-Post: List-Unsubscribe=One-Click` headers), POST the same URL, which withdraws
the consent (`unsubscribe`).
"""
import base64
import hashlib
import hmac

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core import clock
from app.core.errors import Invalid
from app.crm.models import Interaction
from app.members import service as members_service
from app.members.models import Member

_PURPOSE = b"fitclub/unsubscribe/email/v1:"


def _mac(secret: str, club_id: int, member_id: int) -> str:
    digest = hmac.new(secret.encode(), _PURPOSE + f"{club_id}.{member_id}".encode(),
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_token(secret: str, *, club_id: int, member_id: int) -> str:
    return f"{club_id}.{member_id}.{_mac(secret, club_id, member_id)}"


def read_token(secret: str, token: str) -> tuple[int, int]:
    """(club_id, member_id) of a valid token; anything else is refused the same way."""
    bad = Invalid("This unsubscribe link is not valid", code="invalid_token")
    parts = (token or "").split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise bad
    if len(parts[0]) > 19 or len(parts[1]) > 19:
        raise bad
    club_id, member_id = int(parts[0]), int(parts[1])
    if not hmac.compare_digest(parts[2], _mac(secret, club_id, member_id)):
        raise bad
    return club_id, member_id


def url(base_url: str, secret: str, *, club_id: int, member_id: int) -> str:
    token = make_token(secret, club_id=club_id, member_id=member_id)
    return f"{base_url.rstrip('/')}/api/v1/retention/unsubscribe?token={token}"


def unsubscribe(session: Session, *, secret: str, token: str) -> bool:
    """Withdraw email consent for the member the token names; True when it was withdrawn now."""
    club_id, member_id = read_token(secret, token)
    member = session.scalar(select(Member).where(Member.id == member_id,
                                                 Member.club_id == club_id))
    if member is None or member.erased_at is not None or not member.email_consent:
        return False
    members_service.set_consent(session, club_id=club_id, member_id=member_id, channel="email",
                                granted=False, source="unsubscribe_link")
    session.add(Interaction(club_id=club_id, member_id=member_id, kind="consent",
                            channel="email", summary="Unsubscribed from emails (link in an email)",
                            outcome="email_consent_withdrawn", staff_id=None,
                            occurred_at=clock.now()))
    session.flush()
    return True
