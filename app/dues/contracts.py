"""Contracts: selling a recurring membership, its payer and payment method, cancelling it.

Selling is a sale line of kind "contract" (`fulfil_contract_line`, registered in app/wiring.py):
the membership is opened through the memberships service (it ends with the minimum term, or
with the first period when there is none), the plan's terms are copied onto the contract (later
plan edits do not touch it) and the line goes on the receipt at 0.00 — the dues and the joining
fee are invoiced by the daily billing run.

Cancelling (`cancel_contract` at the desk, `cancel_online` by the member in the member app)
follows the notice period and the minimum term (`cancel_end`), moves the membership's end
through the memberships service and queues a written confirmation (an online one names the day
and time of receipt).
`Contract.term_end` follows the membership's end when a freeze moves it (`on_member_changed`).
"""
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.billing import service as billing_service
from app.billing.models import Sale
from app.billing.service import LineValues
from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core import i18n
from app.core.actors import Actor
from app.core.db import club_row
from app.core.errors import Conflict, Invalid, NotFound
from app.core.events import MemberChanged
from app.dues import notices, payers, terms
from app.dues.contracts_schemas import ContractLine
from app.dues.models import Contract, Mandate, Notice, Payer, StoredCard
from app.members.models import Member
from app.memberships import service as memberships_service
from app.memberships.models import Membership, Plan
from app.memberships.rules import add_months

CONTRACT = "contract"
ADULT_AGE = 18
GUARDIANS = ("parent", "guardian")
PERIOD_WORDS = {"month": "month", "4weeks": "4 weeks", "year": "year"}


def get_contract(session: Session, *, club_id: int, contract_id: int,
                 for_update: bool = False) -> Contract:
    """A contract of this club, else NotFound."""
    return club_row(session, Contract, club_id=club_id, row_id=contract_id,
                    for_update=for_update,
                    missing=NotFound("Contract not found", code="contract_not_found"))


# ----------------------------------------------------------------------------- the end date

def first_term_end(starts_on: date, period: str, minimum_months: int) -> date:
    """The first term's last day: the minimum term's, or the first period's without one."""
    return (terms.minimum_end(starts_on, minimum_months)
            or terms.period_end(starts_on, period, 0))


def cancel_end(contract: Contract, received_on: date) -> date:
    """The last day of a contract cancelled on `received_on`: the end of the term in which the
    notice runs out (never before the minimum term's end); with `monthly` renewal after the
    minimum term, the end of the billing period in which it runs out. A term a freeze moved
    (`term_end` later than the calendar's) ends on its moved day."""
    earliest = terms.after_notice(received_on, contract.notice_value, contract.notice_unit)
    first_end = first_term_end(contract.starts_on, contract.period, contract.minimum_months)
    if earliest <= first_end:
        end = first_end
    elif contract.renewal == "monthly":
        index = terms.period_index(contract.starts_on, contract.period, earliest)
        end = terms.period_end(contract.starts_on, contract.period, index)
    else:
        months = max(contract.renewal_months, 1)
        if contract.minimum_months:  # terms anchored on the start: never drift on month ends
            anchor, offset = contract.starts_on, contract.minimum_months
        else:
            anchor, offset = first_end + timedelta(days=1), 0
        k = max((earliest.year - first_end.year) * 12 + earliest.month - first_end.month, 1)
        k = max(k // months - 1, 1)
        while add_months(anchor, offset + k * months) - timedelta(days=1) < earliest:
            k += 1
        end = add_months(anchor, offset + k * months) - timedelta(days=1)
    if earliest <= contract.term_end:
        end = max(end, contract.term_end)
    return end


# ----------------------------------------------------------------------------- selling

def _payer_of(session: Session, *, club_id: int, member: Member,
              spec: ContractLine) -> tuple[Payer, str]:
    if spec.payer_id is None:
        payer = payers.payer_for_member(session, club_id=club_id, member_id=member.id)
    else:
        payer = payers.get_payer(session, club_id=club_id, payer_id=spec.payer_id)
    own = payer.member_id == member.id
    relation = spec.payer_relation or ("self" if own else "other")
    if own and relation != "self":
        raise Invalid("The member pays for themselves: the relation is self",
                      code="payer_relation_invalid", details={"field": "payer_relation"})
    if not own and relation == "self":
        raise Invalid("Someone else pays: say how they relate to the member (parent, guardian, "
                      "partner or other)", code="payer_relation_invalid",
                      details={"field": "payer_relation"})
    return payer, relation


def _age_on(birth_date: date, day: date) -> int:
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def _check_means(session: Session, *, club_id: int, payer_id: int, method: str,
                 mandate_id: int | None, card_id: int | None) -> None:
    """The mandate or card fits the method and belongs to the payer in this club."""
    if mandate_id is not None and method != "sepa":
        raise Invalid("A mandate is for payment by SEPA direct debit (method sepa)",
                      code="mandate_needs_sepa", details={"field": "mandate_id"})
    if card_id is not None and method != "card":
        raise Invalid("A stored card is for payment by card (method card)",
                      code="card_needs_card_method", details={"field": "card_id"})
    if mandate_id is not None:
        mandate = session.get(Mandate, mandate_id)
        if mandate is None or mandate.club_id != club_id or mandate.payer_id != payer_id:
            raise Invalid("This mandate is not one of the payer's", code="mandate_not_payers",
                          details={"field": "mandate_id"})
        if mandate.revoked_on is not None:
            raise Invalid(f"This mandate was revoked on {mandate.revoked_on}",
                          code="mandate_revoked", details={"field": "mandate_id"})
    if card_id is not None:
        card = session.get(StoredCard, card_id)
        if card is None or card.club_id != club_id or card.payer_id != payer_id:
            raise Invalid("This card is not one of the payer's", code="card_not_payers",
                          details={"field": "card_id"})
        if card.removed_on is not None:
            raise Invalid(f"This card was removed on {card.removed_on}", code="card_removed",
                          details={"field": "card_id"})


def _household_price(session: Session, *, settings, payer_id: int, start: date,
                     price: Decimal | None) -> Decimal | None:
    """The price after the household discount: each further contract the payer pays while it
    runs gets the club's percentage off; the first pays in full."""
    discount = Decimal(settings.household_discount or 0)
    if price is None or not discount:
        return price
    running = session.scalar(select(func.count()).select_from(Contract).where(
        Contract.payer_id == payer_id, or_(Contract.ends_on.is_(None), Contract.ends_on >= start)))
    if not running:
        return price
    return terms.cents(Decimal(price) * (Decimal(100) - discount) / Decimal(100))


def _terms_text(plan: Plan, contract: Contract) -> str:
    notice = f"{contract.notice_value} {contract.notice_unit}" if contract.notice_value \
        else "no notice"
    after = ("then monthly" if contract.renewal == "monthly"
             else f"then renews for {contract.renewal_months} months")
    text = (f"Contract: {plan.name} from {contract.starts_on.isoformat()}, {contract.price} per "
            f"{PERIOD_WORDS[contract.period]}, minimum {contract.minimum_months} months, "
            f"notice {notice}, {after}")
    if contract.joining_fee:
        text += f"; joining fee {contract.joining_fee}"
    return text + " (invoiced)"


def fulfil_contract_line(session: Session, *, actor: Actor, sale: Sale,
                         line_spec: ContractLine) -> LineValues:
    """Line kind "contract": open the membership, write the contract's terms, payer and method;
    0.00 on the receipt (the billing run invoices the dues and the joining fee)."""
    if sale.member_id is None:
        raise Invalid("A contract is sold to a member: give member_id", code="member_required")
    club_id = actor.club_id
    member = billing_service.require_member(session, club_id=club_id, member_id=sale.member_id,
                                            for_update=True)  # one sale per member at a time
    plan = memberships_service.get_plan(session, club_id=club_id, plan_id=line_spec.plan_id)
    if plan.billing != "recurring":
        raise Invalid(f"The plan {plan.name!r} is prepaid: sell it as a membership, not a "
                      "contract", code="plan_not_recurring", details={"field": "plan_id"})
    today = clubs_service.club_today_by_id(session, club_id)
    start = line_spec.start_date or today
    payer, relation = _payer_of(session, club_id=club_id, member=member, spec=line_spec)
    if member.birth_date is not None and _age_on(member.birth_date, max(start, today)) < ADULT_AGE \
            and (payer.member_id == member.id or relation not in GUARDIANS):
        raise Invalid("The member is under 18: a parent or guardian pays (give payer_id and "
                      "payer_relation parent or guardian)", code="minor_needs_guardian",
                      details={"field": "payer_id"})
    _check_means(session, club_id=club_id, payer_id=payer.id, method=line_spec.method,
                 mandate_id=line_spec.mandate_id, card_id=line_spec.card_id)
    payers.get_payer(session, club_id=club_id, payer_id=payer.id, for_update=True)  # household
    settings = terms.settings_for(session, club_id)
    price, next_price, next_from = plan.price, plan.next_price, plan.next_price_from
    if next_from is not None and next_from <= start:  # the new price is the price
        price, next_price, next_from = next_price, None, None
    price = _household_price(session, settings=settings, payer_id=payer.id, start=start,
                             price=price)
    next_price = _household_price(session, settings=settings, payer_id=payer.id, start=start,
                                  price=next_price)
    tax_rate = plan.tax_rate if plan.tax_rate is not None else (
        settings.default_tax_rate if settings.vat_registered else terms.ZERO)
    minimum = plan.minimum_months or 0
    end = first_term_end(start, plan.billing_period, minimum)
    membership = memberships_service.open_recurring_membership(
        session, actor=actor, sale=sale, plan_id=plan.id, start_date=start, end_date=end,
        price=price)
    contract = Contract(
        club_id=club_id, membership_id=membership.id, member_id=member.id, payer_id=payer.id,
        payer_relation=relation, method=line_spec.method, mandate_id=line_spec.mandate_id,
        card_id=line_spec.card_id, period=plan.billing_period, price=price,
        tax_rate=Decimal(tax_rate), joining_fee=plan.joining_fee or terms.ZERO, starts_on=start,
        minimum_months=minimum, notice_value=plan.notice_value or 0,
        notice_unit=plan.notice_unit or "months", renewal=plan.renewal or "monthly",
        renewal_months=plan.renewal_months or 1, term_end=end, next_due=start,
        next_price=next_price, next_price_from=next_from)
    session.add(contract)
    session.flush()
    return LineValues(description=_terms_text(plan, contract), unit_price=terms.ZERO,
                      item_id=contract.id)


# ----------------------------------------------------------------------------- changing

def change_payment(session: Session, *, actor: Actor, contract_id: int, method: str,
                   mandate_id: int | None = None, card_id: int | None = None) -> Contract:
    """Pay a contract another way: SEPA with a mandate, a stored card, or at the desk."""
    contract = get_contract(session, club_id=actor.club_id, contract_id=contract_id,
                            for_update=True)
    _check_means(session, club_id=actor.club_id, payer_id=contract.payer_id, method=method,
                 mandate_id=mandate_id, card_id=card_id)
    contract.method, contract.mandate_id, contract.card_id = method, mandate_id, card_id
    session.flush()
    return contract


def on_member_changed(session: Session, event: MemberChanged) -> None:
    """A membership's end moved (a freeze, an early unfreeze): the contract's term (and its end,
    once cancelled) moves with it, so `term_end` stays the membership's end. A membership
    cancelled outright (memberships' cancel, with a refund) ends its contract the day before."""
    rows = session.execute(
        select(Contract, Membership.end_date, Membership.cancelled_on)
        .join(Membership, Membership.id == Contract.membership_id)
        .where(Contract.club_id == event.club_id, Contract.member_id == event.member_id)).all()
    for contract, end, cancelled_on in rows:
        if cancelled_on is not None:  # cancelled as a membership (a refund): it ends there
            last = cancelled_on - timedelta(days=1)
            if contract.ends_on is None or contract.ends_on > last:
                contract.ends_on = last
                contract.cancel_received_on = contract.cancel_received_on or cancelled_on
        elif contract.ends_on is None:
            if contract.term_end != end:
                contract.term_end = end
        elif contract.ends_on != end:
            delta = end - contract.ends_on
            contract.ends_on = end
            contract.term_end += delta
    session.flush()


# ----------------------------------------------------------------------------- cancelling

def _locked(session: Session, *, club_id: int, contract_id: int) -> Contract:
    """Lock the member, then the contract (the order selling and freezing use)."""
    contract = get_contract(session, club_id=club_id, contract_id=contract_id)
    billing_service.require_member(session, club_id=club_id, member_id=contract.member_id,
                                   for_update=True)
    return get_contract(session, club_id=club_id, contract_id=contract_id, for_update=True)


def _confirmation(session: Session, *, contract: Contract, club: Club, language: str,
                  received_on: date, received_at: datetime | None) -> list[Notice]:
    """The written confirmation of a cancellation, to the payer and (if another) the member, in
    `language` (the member app's catalogues: the page's language online, else the club's)."""
    payer = session.get(Payer, contract.payer_id)
    member = session.get(Member, contract.member_id)
    name = f"{member.first_name} {member.last_name}".strip()
    key = f"cancel:{contract.id}"
    if session.scalar(select(Notice.id).where(Notice.club_id == contract.club_id,
                                              Notice.key == key)) is not None:
        key = f"cancel:{contract.id}:{contract.cancel_received_on.isoformat()}"  # again, later
    received = i18n.day(language, received_on)
    if received_at is not None:
        local = received_at.astimezone(clubs_service.club_zone(club))
        received = i18n.text(language, "email.cancelled.received_at",
                             day=i18n.day(language, local), time=f"{local:%H:%M}",
                             zone=club.timezone)
    ends = i18n.day(language, contract.ends_on)
    subject = i18n.text(language, "email.cancelled.subject", club=club.name, day=ends)
    body = i18n.text(language, "email.cancelled.body", club=club.name, name=name,
                     received=received, day=ends)
    queued = [notices.queue(session, club_id=contract.club_id, kind="cancellation", key=key,
                            to=payer.email, subject=subject, body=body, payer_id=payer.id,
                            member_id=member.id)]
    if payer.member_id != member.id and member.email and member.email != payer.email:
        queued.append(notices.queue(session, club_id=contract.club_id, kind="cancellation",
                                    key=f"{key}:member", to=member.email, subject=subject,
                                    body=body, member_id=member.id))
    return queued


@dataclass
class Cancelled:
    contract: Contract
    notices: list[Notice]
    """The confirmations queued (the member app sends them at once)."""


def _cancel(session: Session, *, club_id: int, contract_id: int, received_on: date | None,
            channel: str, cancelled_by: int | None, received_at: datetime | None = None,
            language: str | None = None) -> Cancelled:
    club = clubs_service.get_club(session, club_id)
    today = clubs_service.club_today(club)
    received_on = received_on or today
    if received_on > today:
        raise Invalid(f"A cancellation is received today ({today}) or earlier, not on "
                      f"{received_on}", code="received_in_future",
                      details={"field": "received_on"})
    contract = _locked(session, club_id=club_id, contract_id=contract_id)
    if contract.ends_on is not None:
        raise Conflict(f"This contract was already cancelled; it ends on {contract.ends_on}",
                       code="already_cancelled",
                       details={"ends_on": contract.ends_on.isoformat(),
                                "cancel_received_on": contract.cancel_received_on
                                and contract.cancel_received_on.isoformat()})
    membership = session.get(Membership, contract.membership_id)
    if membership.cancelled_on is not None:
        raise Conflict(f"The membership was cancelled on {membership.cancelled_on}; there is "
                       "nothing left to give notice on", code="membership_cancelled")
    exists_from = min(contract.starts_on, clubs_service.club_today(club, contract.created_at))
    if received_on < exists_from:
        raise Invalid(f"A cancellation of this contract is received on {exists_from} or later, "
                      f"not on {received_on}", code="received_before_contract",
                      details={"field": "received_on"})
    ends_on = cancel_end(contract, received_on)
    contract.ends_on, contract.cancel_received_on = ends_on, received_on
    contract.cancelled_by, contract.cancel_channel = cancelled_by, channel
    session.flush()
    memberships_service.set_membership_end(session, club_id=club_id,
                                           membership_id=contract.membership_id, end_date=ends_on)
    language = language or clubs_service.club_settings(club).member_language
    queued = _confirmation(session, contract=contract, club=club, language=language,
                           received_on=received_on, received_at=received_at)
    session.flush()
    return Cancelled(contract, queued)


def cancel_contract(session: Session, *, actor: Actor, contract_id: int,
                    received_on: date | None = None, channel: str = "desk") -> Contract:
    """Record a cancellation received on `received_on` (default today in the club; not in the
    future, nor before the contract existed: its start or its sale, the earlier): the contract
    and its membership end on `cancel_end`; a confirmation email is queued."""
    return _cancel(session, club_id=actor.club_id, contract_id=contract_id,
                   received_on=received_on, channel=channel,
                   cancelled_by=actor.user_id).contract


def cancel_online(session: Session, *, club_id: int, contract_id: int,
                  received_at: datetime, language: str | None = None) -> Cancelled:
    """A cancellation the member declared online (the member app, §312k BGB), received at
    `received_at`: the contract and its membership end on `cancel_end` of that day; the
    confirmation, which names the day and time of receipt, is queued."""
    received_on = clubs_service.club_today_by_id(session, club_id, received_at)
    return _cancel(session, club_id=club_id, contract_id=contract_id, received_on=received_on,
                   channel="online", cancelled_by=None, received_at=received_at,
                   language=language)


def withdraw_cancellation(session: Session, *, actor: Actor, contract_id: int) -> Contract:
    """Take a cancellation back before the contract ends: it runs on with its current term."""
    today = clubs_service.club_today_by_id(session, actor.club_id)
    contract = _locked(session, club_id=actor.club_id, contract_id=contract_id)
    if contract.ends_on is None:
        raise Conflict("This contract is not cancelled", code="not_cancelled")
    if contract.ends_on < today:
        raise Conflict(f"This contract ended on {contract.ends_on}; sell a new one",
                       code="contract_ended", details={"ends_on": contract.ends_on.isoformat()})
    term_end = contract.term_end
    contract.ends_on = contract.cancel_received_on = None
    contract.cancelled_by = contract.cancel_channel = None
    session.flush()
    memberships_service.set_membership_end(session, club_id=actor.club_id,
                                           membership_id=contract.membership_id,
                                           end_date=term_end)
    return contract
