"""The member app's "get in" code: a personal QR code that changes every minute.

A code is 16 digits: `98`, the member's key (8 digits, fixed, unique in the club) and a
one-time part (6 digits) for the minute — HOTP (RFC 4226) with HMAC-SHA256 over the 60-second
time step (the TOTP construction of RFC 6238), keyed by the member's own secret. Digits only,
so QR readers that hand a scanned code to the controller as a card number (ZKTeco, Hikvision)
can carry it, and it fits a 64-bit card number; the prefix keeps codes apart from cards (no
card can be issued in this form: `members.service.APP_CODE`).

At the door (`access.service.check_in`, only for a card number of this form) the key names
the member and the one-time part must be the one for the attempt's minute, the minute before
(a code shown just before the minute turned) or the minute after (a device clock a little
behind the server's): a code is accepted for 60 to 120 seconds after the app showed it, then
refused as `code_expired`. From there the member's code is decided like a card: frozen,
payment overdue, no membership … with the same reasons. The attempt keeps the code as its
`card_code` and `identified_by = "app_code"`.

The secret is made on the first `current_code`; staff replace it when a phone is lost
(`reset_code`), which refuses every code made from the old one at once. Only the member sees
their code (the member app); no staff route shows it, and the privacy export leaves the secret
out.
"""
import hashlib
import hmac
import io
import secrets
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

import segno
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.access.models import MemberAppCode
from app.core import clock
from app.core.actors import Actor
from app.core.errors import Conflict, Invalid, NotFound
from app.members.models import Card, Member
from app.members.service import APP_CODE, APP_CODE_PREFIX

PREFIX = APP_CODE_PREFIX
KEY_DIGITS = 8
ONE_TIME_DIGITS = 6
LENGTH = len(PREFIX) + KEY_DIGITS + ONE_TIME_DIGITS
STEP_SECONDS = 60
ACCEPTED_STEPS = (0, -1, 1)
"""Relative to the attempt's step: this minute, the one before, the one after."""
_KEY_TRIES = 8


@dataclass(frozen=True, slots=True)
class MemberCode:
    """The code to show now; from `valid_until` on the app shows the next one (this one is
    still accepted at the door for one more step)."""

    code: str
    valid_until: datetime


def looks_like(code: str) -> bool:
    """True for a text in the member-code form (it may still name nobody)."""
    return APP_CODE.fullmatch(code) is not None


def step_of(at: datetime) -> int:
    return int(at.timestamp()) // STEP_SECONDS


def one_time(secret: bytes, step: int, digits: int = ONE_TIME_DIGITS) -> str:
    """HOTP (RFC 4226, dynamic truncation) with HMAC-SHA256 of the 8-byte step counter."""
    mac = hmac.new(secret, struct.pack(">Q", step), hashlib.sha256).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 10 ** digits:0{digits}d}"


def code_for(key: str, secret: str, step: int) -> str:
    """The code of the member with this key and (hex) secret in this time step."""
    return f"{PREFIX}{key}{one_time(bytes.fromhex(secret), step)}"


def key_of(code: str) -> str:
    """The member key inside a code in the member-code form."""
    return code[len(PREFIX):len(PREFIX) + KEY_DIGITS]


def verify(secret: str, code: str, at: datetime) -> bool:
    """Whether `code`'s one-time part is the member's for `at`'s step or a neighbour
    (`ACCEPTED_STEPS`); compared in constant time."""
    given = code[len(PREFIX) + KEY_DIGITS:].encode()
    key = bytes.fromhex(secret)
    step = step_of(at)
    ok = False
    for delta in ACCEPTED_STEPS:
        ok |= hmac.compare_digest(one_time(key, step + delta).encode(), given)
    return ok


# --- the member's secret ---------------------------------------------------------------------

def _member(session: Session, club_id: int, member_id: int) -> Member:
    member = session.scalar(select(Member).where(Member.id == member_id,
                                                 Member.club_id == club_id))
    if member is None:
        raise NotFound("Member not found", code="member_not_found")
    if member.erased_at is not None:
        raise Conflict("This member's data was erased", code="member_erased")
    return member


def _new_key(session: Session, club_id: int) -> str:
    """A random key no code of the club uses and no card of the club starts with (cards in the
    code form may predate the rule that refuses them)."""
    for _ in range(_KEY_TRIES):
        key = f"{secrets.randbelow(10 ** KEY_DIGITS):0{KEY_DIGITS}d}"
        used = session.scalar(select(MemberAppCode.id).where(
            MemberAppCode.club_id == club_id, MemberAppCode.key == key).limit(1))
        card = session.scalar(select(Card.id).where(
            Card.club_id == club_id, Card.code.startswith(PREFIX + key)).limit(1))
        if used is None and card is None:
            return key
    raise Conflict("Could not find a free member code key; try again", code="code_key_busy")


def _row(session: Session, club_id: int, member_id: int) -> MemberAppCode | None:
    return session.scalar(select(MemberAppCode).where(MemberAppCode.club_id == club_id,
                                                      MemberAppCode.member_id == member_id))


def _create(session: Session, club_id: int, member_id: int, now: datetime) -> MemberAppCode:
    """The member's row, made now; a concurrent first use that made it first wins."""
    for _ in range(_KEY_TRIES):
        row = MemberAppCode(club_id=club_id, member_id=member_id, key=_new_key(session, club_id),
                            secret=secrets.token_hex(32), created_at=now)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            return row
        except IntegrityError:
            existing = _row(session, club_id, member_id)
            if existing is not None:
                return existing
    raise Conflict("Could not store the member's code; try again", code="code_key_busy")


def current_code(session: Session, *, club_id: int, member_id: int,
                 now: datetime | None = None) -> MemberCode:
    """The member's code for now (their secret is made on first use). For the member app only:
    whoever sees it can get in as the member for the next minute or two."""
    now = now or clock.now()
    _member(session, club_id, member_id)
    row = _row(session, club_id, member_id) or _create(session, club_id, member_id, now)
    step = step_of(now)
    return MemberCode(code=code_for(row.key, row.secret, step),
                      valid_until=datetime.fromtimestamp((step + 1) * STEP_SECONDS, UTC))


def reset_code(session: Session, *, actor: Actor, member_id: int) -> MemberAppCode:
    """A new secret (a lost phone): every code made before is refused from now on. The key
    stays, so an old code still names the member in the attempt log (`code_expired`)."""
    now = clock.now()
    _member(session, actor.club_id, member_id)
    row = _row(session, actor.club_id, member_id)
    if row is None:
        row = _create(session, actor.club_id, member_id, now)
    row.secret = secrets.token_hex(32)
    row.reset_at, row.reset_by = now, actor.user_id
    session.flush()
    return row


def member_for_code(session: Session, *, club_id: int, code: str,
                    at: datetime | None = None) -> int | None:
    """The member a scanned code names in this club (the desk's scanner field).

    None when it is not a code of this club (it may be a card); a code of a member whose
    one-time part is not current is 422 `code_expired`.
    """
    if not looks_like(code):
        return None
    row = session.execute(
        select(MemberAppCode.member_id, MemberAppCode.secret, Member.erased_at)
        .join(Member, Member.id == MemberAppCode.member_id)
        .where(MemberAppCode.club_id == club_id, MemberAppCode.key == key_of(code))).first()
    if row is None or row.erased_at is not None:
        return None
    if not verify(row.secret, code, at or clock.now()):
        raise Invalid(EXPIRED_MESSAGE, code="code_expired")
    return row.member_id


EXPIRED_MESSAGE = "App code expired, please open it again in the app"


def qr_svg(code: str) -> bytes:
    """The code as an SVG QR code (numeric mode, error correction M, the standard quiet zone)."""
    if not looks_like(code):
        raise Invalid("Not a member code", code="invalid_member_code")
    out = io.BytesIO()
    segno.make(code, error="m", micro=False).save(out, kind="svg", scale=8, border=4,
                                                    xmldecl=False, title="Member code")
    return out.getvalue()
