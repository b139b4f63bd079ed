"""Signing in without a password: a one-time link by email, or a 6-digit code by SMS.

1. `request_sign_in`: the member types their email address or mobile number. Requests are
   counted per client network and per typed address (`app.core.ratelimit`, 429 over the limit,
   the same for every address). The members of any club with that address who agreed to that
   channel (and are not erased) are looked up; a challenge row is written either way, and the
   answer is the same either way — nobody learns from it whether an address belongs to a member.
   The message goes out after the answer (`Requested.deliver`, run as a background task), so
   the answer never waits for the mail server; a member gets at most `MEMBER_LIMIT` messages an
   hour.
2. The link (`verify_link`) or the code (`verify_code`, with the handle cookie of the browser
   that asked: a code typed into another browser does nothing) is checked: it works once, for
   `member_link_minutes` / `member_code_minutes` (settings); every wrong code uses up one of
   `MAX_CODE_ATTEMPTS` with one guarded UPDATE, so parallel guesses get no more.
3. One member: a session starts (`sessions.start`). Members of several clubs with that address
   get a short-lived choice (`choose_club`): the clubs' names, then a session in the one chosen.

Link tokens, handles, codes and choices are kept only as SHA-256 digests. Errors carry stable
codes; the pages show the member-language text for them (`app.core.i18n`, "error.<code>").
"""
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.clubs.models import Club
from app.clubs.schemas import ClubSettings
from app.core import clock, i18n
from app.core.config import Settings
from app.core.db import transaction
from app.core.errors import Invalid
from app.core.mail import Email, Mailer
from app.core.ratelimit import RateLimited, client_network, hit
from app.core.security import digest, new_secret
from app.memberapp import sessions
from app.memberapp.models import MemberSignIn
from app.members import service as members_service
from app.members.models import Member
from app.retention.channels import HttpSms, Message

log = logging.getLogger("fitclub.memberapp")

IP_LIMIT, IP_WINDOW = 10, timedelta(minutes=15)  # sign-in requests per client network
TO_LIMIT, TO_WINDOW = 5, timedelta(minutes=15)  # per typed email address or phone number
MEMBER_LIMIT, MEMBER_WINDOW = 5, timedelta(hours=1)  # messages a member is sent (silently)
VERIFY_LIMIT, VERIFY_WINDOW = 30, timedelta(minutes=15)  # links/codes checked per network
MAX_CODE_ATTEMPTS = 5
CHOICE_MINUTES = 10
KEEP_EXPIRED = timedelta(days=1)
MAX_MATCHES = 20
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE = re.compile(r"\+?[\d\s()./\-]{4,30}")
SIGN_IN_PATH = "/app/sign-in/link"


@dataclass
class Requested:
    channel: str  # email | sms
    handle: str | None  # sms: the browser's handle (its cookie)
    minutes: int
    deliver: Callable[[], None] | None = field(default=None, repr=False)


@dataclass
class Verified:
    token: str | None = None  # a session started (one member)
    member_id: int | None = None
    choice: str | None = None  # several clubs: the chooser's cookie
    clubs: list[tuple[int, str]] = field(default_factory=list)  # (member id, club name)


def _bucket(kind: str, value: str) -> str:
    return f"member-{kind}:" + hashlib.sha256(value.encode()).hexdigest()[:40]


def _refuse_over(hits: int, limit: int, left: int) -> None:
    if hits > limit:
        raise RateLimited(f"Too many attempts; try again in {max(left // 60, 1)} minutes",
                          retry_after=left)


def count_request(factory: sessionmaker[Session], *, kind: str, address: str | None,
                  limit: int, window: timedelta, key: str | None = None,
                  key_limit: int | None = None) -> None:
    """Count one request from the client's network (and for `key`) in its own transaction,
    committed whatever happens next; 429 over a limit."""
    now = clock.now()
    with transaction(factory) as s:
        hits, left = hit(s, bucket=_bucket(f"{kind}-ip", client_network(address)),
                         window=window, now=now)
        key_hits = key_left = 0
        if key is not None:
            key_hits, key_left = hit(s, bucket=_bucket(f"{kind}-to", key), window=window,
                                     now=now)
    _refuse_over(hits, limit, left)
    if key is not None:
        _refuse_over(key_hits, key_limit or limit, key_left)


def _regions(session: Session) -> set[str]:
    """The countries phone numbers without +prefix are read in, across the clubs."""
    return {ClubSettings.model_validate(raw or {}).phone_region
            for raw in session.scalars(select(Club.settings))} or {"DE"}


def phone_candidates(session: Session, typed: str) -> list[str]:
    """The E.164 numbers a typed phone number can be (one per club country that reads it)."""
    found = set()
    for region in sorted(_regions(session)):
        try:
            found.add(members_service.normalise_phone(typed, region=region))
        except Invalid:
            continue
    return sorted(found)


def parse_address(session: Session, typed: str) -> tuple[str, list[str]]:
    """("email", [address]) or ("sms", [E.164 numbers]); 422 for neither."""
    typed = (typed or "").strip()
    if "@" in typed:
        if len(typed) > 254 or not EMAIL.fullmatch(typed):
            raise Invalid("This is not an email address", code="sign_in_address_invalid")
        return "email", [typed.lower()]
    numbers = phone_candidates(session, typed) if PHONE.fullmatch(typed) else []
    if not numbers:
        raise Invalid("Type your email address or your mobile number (with +country code)",
                      code="sign_in_address_invalid")
    return "sms", numbers


def _members(session: Session, channel: str, addresses: list[str]) -> list[Member]:
    if channel == "email":
        where = (Member.email == addresses[0], Member.email_consent.is_(True))
    else:
        where = (Member.phone.in_(addresses), Member.sms_consent.is_(True))
    return list(session.scalars(select(Member).where(*where, Member.erased_at.is_(None))
                                .order_by(Member.club_id, Member.id).limit(MAX_MATCHES)))


def _link(settings: Settings, token: str) -> str:
    return f"{str(settings.public_base_url).rstrip('/')}{SIGN_IN_PATH}?token={token}"


def _email_delivery(settings: Settings, *, to: str, lang: str, link: str, minutes: int,
                    club: str | None, key: str) -> Callable[[], None]:
    subject = i18n.text(lang, "email.sign_in.subject", club=club or "fitclub")
    body = i18n.text(lang, "email.sign_in.body", link=link, minutes=minutes,
                     club=club or "fitclub")

    def deliver() -> None:
        sent = Mailer(settings).send(Email(to=to, subject=subject, body=body, message_key=key,
                                           sender_name=club))
        if not sent.ok:
            log.warning("a member's sign-in email was not accepted: %s", sent.error)
    return deliver


def _sms_delivery(settings: Settings, *, to: str, lang: str, code: str, minutes: int,
                  club_id: int, member_id: int, key: str) -> Callable[[], None]:
    body = i18n.text(lang, "sms.sign_in", code=code, minutes=minutes)

    def deliver() -> None:
        sms = HttpSms(settings)
        try:
            result = sms.send(Message(touchpoint_id=0, club_id=club_id, member_id=member_id,
                                      channel="sms", to=to, subject="", body=body, key=key))
        finally:
            sms.close()
        if not result.ok:
            log.warning("a member's sign-in code was not accepted: %s", result.error)
    return deliver


# long: one request's whole story — count, parse, look up, throttle per member, write the
# challenge, prepare the message — reads best in the order it happens
def request_sign_in(factory: sessionmaker[Session], *, settings: Settings, typed: str,
                    address: str | None, lang: str) -> Requested:
    """Ask for a sign-in link (an email address typed) or code (a mobile number typed); the same
    answer whether or not the address is a member's (see the module docstring)."""
    key = (typed or "").strip().lower()[:254]
    count_request(factory, kind="sign-in", address=address, limit=IP_LIMIT, window=IP_WINDOW,
                  key=key, key_limit=TO_LIMIT)
    now = clock.now()
    with transaction(factory) as s:
        channel, addresses = parse_address(s, typed)
        if channel == "sms" and not settings.sms_gateway_url:
            raise Invalid("Sign-in by SMS is not available here; use your email address",
                          code="sign_in_sms_unavailable")
        members = [m for m in _members(s, channel, addresses)
                   if hit(s, bucket=f"member-sign-in-member:{m.id}", window=MEMBER_WINDOW,
                          now=now)[0] <= MEMBER_LIMIT]
        minutes = (settings.member_link_minutes if channel == "email"
                   else settings.member_code_minutes)
        secret = new_secret()
        code = f"{secrets.randbelow(10**6):06d}"
        row = MemberSignIn(channel=channel, secret_hash=digest(secret),
                           code_hash=digest(f"{secret}:{code}") if channel == "sms" else None,
                           member_ids=[m.id for m in members], created_at=now,
                           expires_at=now + timedelta(minutes=minutes), attempts=0)
        s.add(row)
        s.execute(delete(MemberSignIn).where(MemberSignIn.expires_at < now - KEEP_EXPIRED))
        s.flush()
        deliver = None
        if members:
            first = members[0]
            clubs = {m.club_id for m in members}
            club = s.get(Club, first.club_id).name if len(clubs) == 1 else None
            lang = lang if lang in i18n.LANGUAGES else i18n.DEFAULT
            if channel == "email":
                deliver = _email_delivery(settings, to=first.email, lang=lang,
                                          link=_link(settings, secret), minutes=minutes,
                                          club=club, key=f"member-sign-in-{row.id}")
            else:
                deliver = _sms_delivery(settings, to=first.phone, lang=lang, code=code,
                                        minutes=minutes, club_id=first.club_id,
                                        member_id=first.id, key=f"member-sign-in-{row.id}")
    return Requested(channel=channel, handle=secret if channel == "sms" else None,
                     minutes=minutes, deliver=deliver)


def _verified(s: Session, *, row: MemberSignIn, settings: Settings,
              device: str | None) -> Verified:
    """After a right link or code: a session for the one member, or the choice of club."""
    members = list(s.scalars(select(Member).where(Member.id.in_(row.member_ids or [-1]),
                                                  Member.erased_at.is_(None))
                             .order_by(Member.club_id, Member.id)))
    if not members:
        raise Invalid("This sign-in link or code is not valid (any more)",
                      code="sign_in_invalid")
    if len(members) == 1:
        token = sessions.start(s, member=members[0], channel=row.channel, device=device,
                               ttl=timedelta(days=settings.member_session_days))
        return Verified(token=token, member_id=members[0].id)
    choice = new_secret()
    row.choice_hash = digest(choice)
    row.expires_at = clock.now() + timedelta(minutes=CHOICE_MINUTES)
    s.flush()
    return Verified(choice=choice, clubs=_club_names(s, members))


def _club_names(s: Session, members: list[Member]) -> list[tuple[int, str]]:
    names = dict(s.execute(select(Club.id, Club.name)
                           .where(Club.id.in_({m.club_id for m in members}))).all())
    return [(m.id, names.get(m.club_id, "?")) for m in members]


def verify_link(factory: sessionmaker[Session], *, settings: Settings, token: str,
                address: str | None, device: str | None = None) -> Verified:
    """Use an emailed link once: a session, or the choice of club."""
    count_request(factory, kind="verify", address=address, limit=VERIFY_LIMIT,
                  window=VERIFY_WINDOW)
    invalid = Invalid("This sign-in link is not valid or has expired; ask for a new one",
                      code="sign_in_invalid")
    if not token or len(token) > 200:
        raise invalid
    now = clock.now()
    with transaction(factory) as s:
        row = s.scalar(select(MemberSignIn).where(MemberSignIn.secret_hash == digest(token),
                                                  MemberSignIn.channel == "email"))
        if row is None or s.execute(update(MemberSignIn).where(
                MemberSignIn.id == row.id, MemberSignIn.used_at.is_(None),
                MemberSignIn.expires_at > now).values(used_at=now)).rowcount != 1:
            raise invalid
        return _verified(s, row=row, settings=settings, device=device)


def verify_code(factory: sessionmaker[Session], *, settings: Settings, handle: str | None,
                code: str, address: str | None, device: str | None = None) -> Verified:
    """Check an SMS code typed in the browser that asked for it: a session or the choice of
    club; a wrong code uses up an attempt (committed), and the answer says how many are left."""
    count_request(factory, kind="verify", address=address, limit=VERIFY_LIMIT,
                  window=VERIFY_WINDOW)
    dead = Invalid("This code has expired or was tried too often; ask for a new one",
                   code="sign_in_code_expired")
    code = "".join((code or "").split())
    if not handle or len(handle) > 200:
        raise dead
    now = clock.now()
    with transaction(factory) as s:
        table = MemberSignIn.__table__
        claimed = s.execute(
            update(table).where(table.c.secret_hash == digest(handle), table.c.channel == "sms",
                                table.c.used_at.is_(None), table.c.expires_at > now,
                                table.c.attempts < MAX_CODE_ATTEMPTS)
            .values(attempts=table.c.attempts + 1)
            .returning(table.c.id, table.c.attempts, table.c.code_hash)).first()
    if claimed is None:
        raise dead
    right = hmac.compare_digest(claimed.code_hash or "", digest(f"{handle}:{code}"))
    if not right:
        left = MAX_CODE_ATTEMPTS - claimed.attempts
        if left <= 0:
            raise dead
        raise Invalid(f"This code is not right; {left} attempts left", code="sign_in_code_wrong",
                      details={"attempts_left": left})
    with transaction(factory) as s:
        if s.execute(update(MemberSignIn).where(MemberSignIn.id == claimed.id,
                                                MemberSignIn.used_at.is_(None))
                     .values(used_at=now)).rowcount != 1:
            raise dead
        row = s.get(MemberSignIn, claimed.id)
        return _verified(s, row=row, settings=settings, device=device)


def choices(session: Session, *, choice: str | None) -> list[tuple[int, str]]:
    """The clubs a pending choice stands for: (member id, club name); empty when none."""
    row = _choice_row(session, choice)
    if row is None:
        return []
    members = list(session.scalars(select(Member).where(Member.id.in_(row.member_ids or [-1]),
                                                        Member.erased_at.is_(None))
                                   .order_by(Member.club_id, Member.id)))
    return _club_names(session, members)


def _choice_row(session: Session, choice: str | None) -> MemberSignIn | None:
    if not choice or len(choice) > 200:
        return None
    return session.scalar(select(MemberSignIn).where(
        MemberSignIn.choice_hash == digest(choice), MemberSignIn.used_at.is_not(None),
        MemberSignIn.expires_at > clock.now()))


def choose_club(factory: sessionmaker[Session], *, settings: Settings, choice: str | None,
                member_id: int, device: str | None = None) -> Verified:
    """Sign in as the chosen club's member (once per choice)."""
    invalid = Invalid("This choice has expired; sign in again", code="sign_in_invalid")
    with transaction(factory) as s:
        row = _choice_row(s, choice)
        if row is None or member_id not in (row.member_ids or []):
            raise invalid
        member = s.scalar(select(Member).where(Member.id == member_id,
                                               Member.erased_at.is_(None)))
        if member is None or s.execute(update(MemberSignIn).where(
                MemberSignIn.id == row.id, MemberSignIn.choice_hash == row.choice_hash)
                .values(choice_hash=None)).rowcount != 1:
            raise invalid
        token = sessions.start(s, member=member, channel=row.channel, device=device,
                               ttl=timedelta(days=settings.member_session_days))
        return Verified(token=token, member_id=member.id)
