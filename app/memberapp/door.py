"""The member app's "get in" page (`/app/door`): the member's door code as a QR code, its digits
(for the desk to type), their name, and what the door would say now (frozen, payment overdue …).

The code is `access.member_codes.current_code` (it changes every minute; the door accepts it
for one more minute after); the state is `access.preview.door_state`, the turnstile's own
judgement without recording an attempt. Only the signed-in member's own code: the page takes
no id.
"""
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup
from sqlalchemy.orm import Session

from app.access import member_codes, preview
from app.core import clock
from app.core.actors import MemberActor
from app.members.models import Member


@dataclass(frozen=True)
class Door:
    name: str
    code: str
    qr: Markup
    """The QR code as inline SVG markup (made here from digits only)."""
    valid_until: datetime
    seconds_left: int
    state: preview.DoorState


def door(session: Session, *, actor: MemberActor) -> Door:
    now = clock.now()
    member = session.get(Member, actor.member_id)
    shown = member_codes.current_code(session, club_id=actor.club_id,
                                      member_id=actor.member_id, now=now)
    svg = member_codes.qr_svg(shown.code).decode()
    state = preview.door_state(session, club_id=actor.club_id, member_id=actor.member_id,
                               at=now)
    left = max(int((shown.valid_until - now).total_seconds()), 1)
    return Door(name=f"{member.first_name} {member.last_name}".strip(), code=shown.code,
                qr=Markup(svg), valid_until=shown.valid_until, seconds_left=left, state=state)
