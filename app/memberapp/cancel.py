"""Cancelling a contract online (§312k BGB): without signing in, or signed in.

Without signing in (`cancel_without_sign_in`) the person gives their member number (the one the
app shows, or the number from the club's previous system) and the email address or phone number
the club has for them. Requests are counted per client network and per member number
(`app.core.ratelimit`, 429 over the limit). Whatever matches, the answer is the same receipt:
when the declaration arrived and what it said — never whether the details matched (no one learns
who is a member). What happens behind it:

- the details match a member: each running contract is cancelled through the dues service
  (`contracts.cancel_online`: received today, the end from the notice period and the minimum
  term) and the confirmation with the end date and the time of receipt is sent at once (after
  the answer, like the sign-in messages); the member's timeline shows it;
- the member has no running contract (a prepaid membership) or no email address for the
  confirmation, or the cancellation is extraordinary (for an important reason, which the desk
  must judge; meanwhile it counts as an ordinary one): the front desk gets a task;
- the member number names someone but the contact does not match (a typo, a changed address):
  a desk task in that club with what was typed; nothing is cancelled;
- nothing matches: only the receipt row (and a desk task when the instance has one club).

Every declaration is kept as a `MemberCancellation` row (the club's record of receipt).
Signed in (`cancel_signed_in`), the member picks a contract of their own and sees its end date.
"""
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from app.billing import service as billing_service
from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core import clock
from app.core.actors import MemberActor
from app.core.config import Settings
from app.core.db import transaction
from app.core.errors import Invalid, NotFound
from app.core.types import MAX_ID
from app.crm import service as crm_service
from app.dues import contracts as dues_contracts
from app.dues import notices
from app.dues.models import Contract
from app.memberapp.models import MemberCancellation
from app.memberapp.signin import count_request
from app.members import service as members_service
from app.members.models import Member
from app.memberships.models import Membership, Plan

log = logging.getLogger("fitclub.memberapp")

KINDS = ("ordinary", "extraordinary")
IP_LIMIT, NUMBER_LIMIT, WINDOW = 10, 5, timedelta(hours=1)
MAX_MATCHES = 20
TIMELINE_KIND = "contract_cancelled"
NUMBER = re.compile(r"[\w./:\-]{1,64}")


@dataclass
class Running:
    """A contract the member may cancel, with the day it would end if cancelled today."""

    contract: Contract
    plan_name: str
    ends_if_cancelled_today: date


@dataclass
class Receipt:
    id: int
    received_at: datetime
    kind: str
    reason: str | None
    member_number: str | None
    contact: str | None
    signed_in: bool
    ended: list[tuple[str, date]] = field(default_factory=list)
    """Signed in only: (plan, last day) of each contract this cancelled."""
    deliver: Callable[[], None] | None = field(default=None, repr=False)


def _check(kind: str, reason: str | None) -> str | None:
    if kind not in KINDS:
        raise Invalid("Choose an ordinary or an extraordinary cancellation",
                      code="cancel_kind_invalid")
    reason = (reason or "").strip() or None
    if kind == "extraordinary" and not reason:
        raise Invalid("Give the important reason for an extraordinary cancellation",
                      code="cancel_reason_missing")
    if reason and (len(reason) > 2000 or "\x00" in reason):
        raise Invalid("Give the reason as plain text of at most 2000 characters",
                      code="cancel_reason_missing")
    return reason


def running_contracts(session: Session, *, club_id: int, member_id: int) -> list[Running]:
    """The member's contracts not cancelled yet (their memberships not cancelled either)."""
    today = clubs_service.club_today_by_id(session, club_id)
    rows = session.execute(
        select(Contract, Plan.name)
        .join(Membership, Membership.id == Contract.membership_id)
        .join(Plan, Plan.id == Membership.plan_id)
        .where(Contract.club_id == club_id, Contract.member_id == member_id,
               Contract.ends_on.is_(None), Membership.cancelled_on.is_(None))
        .order_by(Contract.starts_on, Contract.id)).all()
    return [Running(c, name, dues_contracts.cancel_end(c, today)) for c, name in rows]


def _candidates(session: Session, number: str) -> list[Member]:
    """Members (any club, not erased) whose member number — the id, or the number from the
    club's previous system — is `number`."""
    by_ref = Member.external_ref == number
    where = or_(Member.id == int(number), by_ref) if number.isascii() and number.isdigit() and \
        int(number) <= MAX_ID else by_ref
    return list(session.scalars(select(Member).where(where, Member.erased_at.is_(None))
                                .order_by(Member.id).limit(MAX_MATCHES)))


def _contact_matches(session: Session, member: Member, contact: str) -> bool:
    if "@" in contact:
        return bool(member.email) and member.email.lower() == contact.lower()
    if not member.phone:
        return False
    region = clubs_service.club_settings(clubs_service.get_club(session, member.club_id)) \
        .phone_region
    try:
        return members_service.normalise_phone(contact, region=region) == member.phone
    except Invalid:
        return False


def _sender(factory: sessionmaker[Session], settings: Settings,
            ids: list[int]) -> Callable[[], None] | None:
    if not ids:
        return None

    def deliver() -> None:
        with transaction(factory) as s:
            sent = notices.send_pending(s, settings=settings, ids=ids)
        if sent < len(ids):
            log.warning("%s of %s cancellation confirmations were not sent at once (the "
                        "notices job tries again)", len(ids) - sent, len(ids))
    return deliver


def _summary(kind: str, received: str, reason: str | None) -> str:
    what = "Extraordinary cancellation" if kind == "extraordinary" else "Cancellation"
    return f"{what} declared in the member app, received {received}" + (
        f"; reason: {reason}" if reason else "")


# long: one declaration's whole handling for one member — every contract, the record, the
# timeline and the desk's tasks — reads best in one place
def _cancel_member(session: Session, *, member: Member, received_at: datetime, kind: str,
                   reason: str | None, typed: tuple[str | None, str | None], signed_in: bool,
                   language: str | None, contract_ids: list[int] | None = None
                   ) -> tuple[MemberCancellation, list[tuple[str, date]], list[int]]:
    """Cancel the member's running contracts (or the chosen ones); the receipt row, the timeline
    entry, the desk's tasks; (the first receipt row, (plan, end) per contract, notice ids). The
    confirmation is written in `language` (the page's), else the club's member language."""
    club = clubs_service.get_club(session, member.club_id)
    local = received_at.astimezone(clubs_service.club_zone(club))
    received = f"{local:%Y-%m-%d %H:%M}"
    # the member's row first (the lock order of selling and cancelling): a second declaration
    # at the same instant waits here, then finds the contract cancelled and gets the same receipt
    billing_service.require_member(session, club_id=member.club_id, member_id=member.id,
                                   for_update=True)
    running = running_contracts(session, club_id=member.club_id, member_id=member.id)
    if contract_ids is not None:
        running = [r for r in running if r.contract.id in contract_ids]
    number, contact = typed
    rows, ended, notice_ids, unaddressed = [], [], [], False
    for r in running:
        done = dues_contracts.cancel_online(session, club_id=member.club_id,
                                            contract_id=r.contract.id, received_at=received_at,
                                            language=language)
        notice_ids += [n.id for n in done.notices if n.sent_at is None]
        unaddressed = unaddressed or not any(n.to for n in done.notices)
        ended.append((r.plan_name, done.contract.ends_on))
        rows.append(MemberCancellation(
            club_id=member.club_id, member_id=member.id, contract_id=r.contract.id,
            received_at=received_at, kind=kind, reason=reason, member_number=number,
            contact=contact, signed_in=signed_in, outcome="cancelled",
            ends_on=done.contract.ends_on))
    if not rows:
        already = session.scalar(select(func.max(Contract.ends_on)).where(
            Contract.club_id == member.club_id, Contract.member_id == member.id,
            Contract.ends_on >= local.date()))
        rows.append(MemberCancellation(
            club_id=member.club_id, member_id=member.id, received_at=received_at, kind=kind,
            reason=reason, member_number=number, contact=contact, signed_in=signed_in,
            outcome="already_cancelled" if already else "no_contract", ends_on=already))
    session.add_all(rows)
    ends = ", ".join(f"{plan} ends on {day.isoformat()}" for plan, day in ended)
    crm_service.record(session, club_id=member.club_id, member_id=member.id,
                       kind=TIMELINE_KIND, channel=crm_service.MEMBER_CHANNEL,
                       occurred_at=received_at,
                       summary=_summary(kind, received, reason)
                       + (f": {ends}" if ends else f" ({rows[0].outcome.replace('_', ' ')})"))
    name = f"{member.first_name} {member.last_name}".strip()
    if kind == "extraordinary":
        crm_service.desk_task(
            session, club_id=member.club_id, member_id=member.id,
            title=f"Decide on {name}'s extraordinary cancellation (member app)",
            details=f"Received {received}. Reason given: {reason}. Until decided it counts as "
                    f"an ordinary cancellation" + (f" ({ends})." if ends else "."))
    if rows[0].outcome == "no_contract":
        crm_service.desk_task(
            session, club_id=member.club_id, member_id=member.id,
            title=f"Answer {name}'s cancellation from the member app",
            details=f"Received {received}; {name} has no running contract to cancel (a prepaid "
                    "membership?). Check and answer in writing.")
    elif unaddressed:
        crm_service.desk_task(
            session, club_id=member.club_id, member_id=member.id,
            title=f"Confirm {name}'s cancellation in writing",
            details=f"Received {received} in the member app ({ends}); there is no email "
                    "address to send the confirmation to.")
    session.flush()
    return rows[0], ended, notice_ids


def _not_matched(session: Session, *, named: list[Member], received_at: datetime, kind: str,
                 reason: str | None, number: str, contact: str) -> MemberCancellation:
    """Nothing matched: the receipt, and a desk task where someone can look (the club of the
    member the number names, or the only club)."""
    clubs = sorted({m.club_id for m in named}) or list(session.scalars(
        select(Club.id).order_by(Club.id).limit(2)))
    club_id = clubs[0] if len(clubs) == 1 else None
    row = MemberCancellation(club_id=club_id, member_id=None, received_at=received_at,
                             kind=kind, reason=reason, member_number=number, contact=contact,
                             signed_in=False, outcome="not_matched")
    session.add(row)
    for club in clubs if named else [club_id] if club_id else []:
        local = received_at.astimezone(clubs_service.club_zone(clubs_service.get_club(
            session, club)))
        crm_service.desk_task(
            session, club_id=club, member_id=None,
            title="An online cancellation could not be matched to a member",
            details=f"Received {local:%Y-%m-%d %H:%M} in the member app ({kind}): member "
                    f"number {number!r}, contact {contact!r}" + (f", reason: {reason}" if reason
                                                                   else "")
                    + ". Find the person, cancel at the desk and confirm in writing.")
    session.flush()
    return row


def cancel_without_sign_in(factory: sessionmaker[Session], *, settings: Settings,
                           member_number: str, contact: str, kind: str, reason: str | None,
                           address: str | None, language: str | None = None) -> Receipt:
    """The cancel page without sign-in (see the module docstring): the same receipt whatever
    matched."""
    number = (member_number or "").strip()
    contact = (contact or "").strip()
    count_request(factory, kind="cancel", address=address, limit=IP_LIMIT, window=WINDOW,
                  key=number.lower()[:64], key_limit=NUMBER_LIMIT)
    if not NUMBER.fullmatch(number):
        raise Invalid("Give your member number", code="cancel_number_missing")
    if not contact or len(contact) > 254 or "\x00" in contact:
        raise Invalid("Give the email address or phone number the club has for you",
                      code="cancel_contact_missing")
    reason = _check(kind, reason)
    received_at = clock.now()
    with transaction(factory) as s:
        named = _candidates(s, number)
        matched = [m for m in named if _contact_matches(s, m, contact)]
        notice_ids: list[int] = []
        first = None
        for member in matched:
            row, _ended, ids = _cancel_member(s, member=member, received_at=received_at,
                                              kind=kind, reason=reason,
                                              typed=(number, contact), signed_in=False,
                                              language=language)
            first = first or row
            notice_ids += ids
        if first is None:
            first = _not_matched(s, named=named, received_at=received_at, kind=kind,
                                 reason=reason, number=number, contact=contact)
        receipt_id = first.id
    return Receipt(receipt_id, received_at, kind, reason, number, contact, signed_in=False,
                   deliver=_sender(factory, settings, notice_ids))


def cancel_signed_in(factory: sessionmaker[Session], *, settings: Settings, actor: MemberActor,
                     contract_id: int, kind: str, reason: str | None,
                     language: str | None = None) -> Receipt:
    """A signed-in member cancels one of their running contracts; the receipt names its end."""
    reason = _check(kind, reason)
    received_at = clock.now()
    with transaction(factory) as s:
        running = running_contracts(s, club_id=actor.club_id, member_id=actor.member_id)
        if contract_id not in {r.contract.id for r in running}:
            raise NotFound("No running contract of yours has this number",
                           code="contract_not_found")
        member = s.get(Member, actor.member_id)
        row, ended, ids = _cancel_member(s, member=member, received_at=received_at, kind=kind,
                                         reason=reason, typed=(None, None), signed_in=True,
                                         language=language, contract_ids=[contract_id])
        receipt_id = row.id
    return Receipt(receipt_id, received_at, kind, reason, None, None, signed_in=True,
                   ended=ended, deliver=_sender(factory, settings, ids))
