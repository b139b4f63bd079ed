"""The desk's side of recurring dues, reached from the member card: the member's payment panel
(who pays, how, the next charge, open invoices, the payment problem), and what the desk does
there — sell a recurring contract, take a SEPA mandate (and print its form), send a card link
(shown as a QR code), take a payment of an open invoice, record a cancellation.

Everything goes through the dues services (`panel`, `contracts`, `payers`, `sepa`, `cards`,
`desk`) and the billing sale path (a `contract` line), exactly as the JSON API does.
"""
import base64
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from app.billing import service as billing_service
from app.clubs import service as clubs_service
from app.core.actors import Actor
from app.core.errors import DomainError, Invalid
from app.core.schemas import IdPath
from app.core.types import MAX_ID
from app.dues import cards, contracts, desk, documents, dunning, panel, payers, sepa
from app.dues.contracts_schemas import ContractLine, PayerCreate
from app.dues.models import Payer
from app.memberships import service as memberships_service
from app.web.auth import PageSession, back_to, settings_of
from app.web.kit import (
    Back,
    DayText,
    DeskPage,
    Key,
    MemberId,
    Name,
    Short,
    Tick,
    build,
    clean,
    done,
    fmt_day,
    fmt_money,
    form_key,
    once,
    page_router,
    render,
    ticked,
)

router = page_router()

METHOD_TITLES = {"sepa": "SEPA direct debit", "card": "Card on file", "desk": "At the desk"}
RELATION_TITLES = {"self": "the member", "parent": "parent", "guardian": "guardian",
                   "partner": "partner", "other": "other"}
DESK_PAY_TITLES = {"cash": "cash", "card_terminal": "card terminal"}
DESK_NAME = "main"
MANDATE_FORM_CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                    "object-src 'none'; base-uri 'none'; form-action 'none'; "
                    "frame-ancestors 'none'")  # the form's own <style>

PayerChoice = Annotated[int | None, Form(ge=1, le=MAX_ID)]
ContractMethod = Annotated[str, Form(pattern=r"^(sepa|card|desk)$")]
Relation = Annotated[str | None, Form(pattern=r"^(parent|guardian|partner|other)?$")]
DeskMethod = Annotated[str, Form(pattern=r"^(cash|card_terminal)$")]
AmountText = Annotated[str, Form(min_length=1, max_length=20)]
MAX_AMOUNT_DIGITS = 10
"""Digits before the decimal point an amount may have (the ledger holds 12 digits, 2 after)."""


def _payments_url(member_id: int) -> str:
    return f"/desk/members/{member_id}/payments"


def _day(value: str | None, default: date, label: str, field: str) -> date:
    """A day from a form (YYYY-MM-DD), the default when empty; a sentence when it is not one."""
    value = clean(value)
    if value is None:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{label}: {value!r} is not a date (YYYY-MM-DD)", code="invalid_form",
                      details={"field": field}) from None


def _amount(value: str) -> Decimal:
    text = value.strip().replace(",", ".")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise Invalid(f"Amount: {value!r} is not an amount of money", code="invalid_form",
                      details={"field": "amount"}) from None
    if not amount.is_finite() or amount <= 0 or amount.adjusted() >= MAX_AMOUNT_DIGITS \
            or amount != amount.quantize(Decimal("0.01")):  # (in that order: 1e999999 has no cents)
        raise Invalid(f"Amount: {value!r} must be more than 0 with at most two decimals",
                      code="invalid_form", details={"field": "amount"})
    return amount


def _member_name(session: Session, actor: Actor, member_id: int) -> tuple[str, str]:
    member = billing_service.require_member(session, club_id=actor.club_id, member_id=member_id)
    return f"{member.first_name} {member.last_name}".strip(), member.first_name


def _payer_for(session: Session, actor: Actor, member_id: int, payer_id: int | None) -> Payer:
    """The payer a form names (of this club), else the member's own (made on first use)."""
    billing_service.require_member(session, club_id=actor.club_id, member_id=member_id)
    if payer_id is not None:
        return payers.get_payer(session, club_id=actor.club_id, payer_id=payer_id)
    return payers.payer_for_member(session, club_id=actor.club_id, member_id=member_id)


# --- the payment panel -----------------------------------------------------------------------------

def _contract_rows(session: Session, actor: Actor, found: panel.Panel, today: date) -> list[dict]:
    rows = []
    for view in found.contracts:
        contract = view.contract
        membership = memberships_service.get_membership(session, club_id=actor.club_id,
                                                        membership_id=contract.membership_id)
        plan = memberships_service.get_plan(session, club_id=actor.club_id,
                                            plan_id=membership.plan_id)
        rows.append({"view": view, "c": contract, "plan": plan.name,
                     "method": METHOD_TITLES.get(contract.method, contract.method),
                     "relation": RELATION_TITLES.get(contract.payer_relation,
                                                     contract.payer_relation),
                     "ends_if_today": (contracts.cancel_end(contract, today)
                                       if contract.ends_on is None else None)})
    return rows


def _payers_of(session: Session, actor: Actor, member_id: int, found: panel.Panel) -> list[dict]:
    """The member's own payer (if any) and the other payers of their contracts, each with their
    mandates and cards."""
    own, _ = payers.list_payers(session, club_id=actor.club_id, member_id=member_id, limit=5)
    seen: dict[int, Payer] = {p.id: p for p in own}
    for view in found.contracts:
        seen.setdefault(view.payer.id, view.payer)
    out = []
    for payer in seen.values():
        mandates = sepa.payer_mandates(session, club_id=actor.club_id, payer_id=payer.id)
        stored = cards.payer_cards(session, club_id=actor.club_id, payer_id=payer.id)
        out.append({"payer": payer, "own": payer.member_id == member_id,
                    "mandates": [{"m": m, "iban": panel.mask_iban(m.iban)} for m in mandates],
                    "cards": [{"c": c, "status": cards.card_status(c)} for c in stored]})
    return out


@router.get("/desk/members/{member_id}/payments")
def payments(request: Request, session: PageSession, actor: DeskPage, member_id: MemberId):
    name, first_name = _member_name(session, actor, member_id)
    found = panel.member_dues(session, club_id=actor.club_id, member_id=member_id)
    today = clubs_service.club_today(request.state.club)
    plans, _ = memberships_service.list_plans(session, club_id=actor.club_id, active=True)
    club_payers, _ = payers.list_payers(session, club_id=actor.club_id, limit=200)
    return render(request, "dues_payments.html", {
        "title": f"{name}: contract and payments", "member_id": member_id, "name": name,
        "first_name": first_name, "panel": found, "as_of": today,
        "contracts": _contract_rows(session, actor, found, today),
        "problem": dunning.payment_problem(session, club_id=actor.club_id, member_id=member_id,
                                           today=today),
        "payers": _payers_of(session, actor, member_id, found),
        "other_payers": [p for p in club_payers if p.member_id != member_id],
        "plans": [p for p in plans if p.billing == "recurring"],
        "method_titles": METHOD_TITLES, "relation_titles": RELATION_TITLES,
        "desk_pay_titles": DESK_PAY_TITLES, "key": form_key()})


# --- selling a recurring contract --------------------------------------------------------------------

def _means(session: Session, actor: Actor, payer: Payer, method: str) -> tuple[int | None,
                                                                                int | None]:
    """The payer's newest usable mandate (SEPA) or saved card (card), if there is one."""
    if method == "sepa":
        usable = [m for m in sepa.payer_mandates(session, club_id=actor.club_id,
                                                 payer_id=payer.id) if m.revoked_on is None]
        return (usable[0].id if usable else None), None
    if method == "card":
        saved = [c for c in cards.payer_cards(session, club_id=actor.club_id, payer_id=payer.id)
                 if cards.card_status(c) == "saved"]
        return None, (saved[0].id if saved else None)
    return None, None


@router.post("/desk/members/{member_id}/contracts")
def sell_contract(request: Request, session: PageSession, actor: DeskPage, member_id: MemberId,
                  plan_id: Annotated[int, Form(ge=1, le=MAX_ID)], method: ContractMethod,
                  start_date: DayText = None, payer_id: PayerChoice = None,
                  payer_name: Name = None, payer_email: Short = None,
                  relation: Relation = None, key: Key = None, back: Back = None):
    url = back_to(request, back, _payments_url(member_id))
    if not once(session, request, actor, key, {"member": member_id, "plan": plan_id}):
        return done(request, url, "This contract was already sold.", "info")
    today = clubs_service.club_today(request.state.club)
    start = _day(start_date, today, "Start", "start_date")
    if clean(payer_name):
        payer = payers.create_payer(session, club_id=actor.club_id, data=build(
            PayerCreate, name=clean(payer_name), email=clean(payer_email)))
    else:
        payer = _payer_for(session, actor, member_id, payer_id)
    own = payer.member_id == member_id
    mandate_id, card_id = _means(session, actor, payer, method)
    line = build(ContractLine, plan_id=plan_id, start_date=start, payer_id=payer.id,
                 payer_relation=None if own else (relation or "other"), method=method,
                 mandate_id=mandate_id, card_id=card_id)
    sale = billing_service.create_sale(session, actor=actor, member_id=member_id, lines=[line])
    [sold] = billing_service.get_sale(session, club_id=actor.club_id, sale_id=sale.id).lines
    contract = contracts.get_contract(session, club_id=actor.club_id, contract_id=sold.item_id)
    plan = memberships_service.get_plan(session, club_id=actor.club_id, plan_id=plan_id)
    how = METHOD_TITLES[method].lower()
    if method == "sepa":
        how += " — no mandate yet: take one below" if mandate_id is None else ""
    elif method == "card":
        how += " — no saved card yet: send a card link below" if card_id is None else ""
    text = (f"{plan.name} from {fmt_day(contract.starts_on)}, "
            f"{fmt_money(contract.price, request.state.club.currency)} per "
            f"{contracts.PERIOD_WORDS.get(contract.period, contract.period)}, paid by "
            f"{payer.name} ({how}). The daily billing run invoices the dues.")
    return done(request, url, text, "ok", "Contract sold")


# --- a SEPA mandate ------------------------------------------------------------------------------

@router.post("/desk/members/{member_id}/mandates")
def take_mandate(request: Request, session: PageSession, actor: DeskPage, member_id: MemberId,
                 account_holder: Annotated[str, Form(min_length=1, max_length=70)],
                 iban: Annotated[str, Form(min_length=1, max_length=50)],
                 bic: Annotated[str | None, Form(max_length=15)] = None,
                 signed_on: DayText = None, payer_id: PayerChoice = None, back: Back = None):
    url = back_to(request, back, _payments_url(member_id))
    payer = _payer_for(session, actor, member_id, payer_id)
    today = clubs_service.club_today(request.state.club)
    mandate = sepa.create_mandate(
        session, actor=actor, payer_id=payer.id, iban=iban, bic=clean(bic),
        account_holder=account_holder, signed_on=_day(signed_on, today, "Signed on",
                                                      "signed_on"))
    found = panel.member_dues(session, club_id=actor.club_id, member_id=member_id)
    attached = 0
    for view in found.contracts:  # the payer's SEPA contracts that waited for a mandate
        c = view.contract
        if c.payer_id == payer.id and c.method == "sepa" and c.mandate_id is None:
            contracts.change_payment(session, actor=actor, contract_id=c.id, method="sepa",
                                     mandate_id=mandate.id)
            attached += 1
    text = (f"Mandate {mandate.reference} for {payer.name}, account "
            f"{panel.mask_iban(mandate.iban)}. Print the form for the payer to sign.")
    if attached:
        text += f" The SEPA contract{'s' if attached > 1 else ''} of {payer.name} now use it."
    return done(request, url, text, "ok", "Mandate taken")


@router.get("/desk/mandates/{mandate_id}/form")
def mandate_form(session: PageSession, actor: DeskPage, mandate_id: IdPath("mandate id")):
    html = sepa.mandate_form(session, actor=actor, mandate_id=mandate_id)
    return HTMLResponse(html, headers={"Content-Security-Policy": MANDATE_FORM_CSP})


# --- a card on file ------------------------------------------------------------------------------

@router.post("/desk/members/{member_id}/cards")
def send_card_link(request: Request, session: PageSession, actor: DeskPage, member_id: MemberId,
                   payer_id: PayerChoice = None, email: Tick = None, back: Back = None):
    back_to(request, back, _payments_url(member_id))
    payer = _payer_for(session, actor, member_id, payer_id)
    card, _link = cards.start_card_setup(session, actor=actor, payer_id=payer.id,
                                         send_email=ticked(email),
                                         settings=settings_of(request))
    text = f"Card link for {payer.name} ready: let them scan the code"
    text += f", or they open the email sent to {payer.email}." if ticked(email) else "."
    return done(request, f"/desk/cards/{card.id}?member={member_id}", text, "ok", "Card link")


@router.get("/desk/cards/{card_id}")
def card_page(request: Request, session: PageSession, actor: DeskPage,
              card_id: IdPath("card id"), member: Annotated[int | None, Query(ge=1,
                                                                            le=MAX_ID)] = None):
    card = cards.get_card(session, club_id=actor.club_id, card_id=card_id)
    payer = payers.get_payer(session, club_id=actor.club_id, payer_id=card.payer_id)
    status, link, qr, problem = cards.card_status(card), None, None, None
    if status == "pending":
        try:
            link = cards.card_link(session, club_id=actor.club_id, card_id=card.id,
                                   settings=settings_of(request))
        except DomainError as exc:  # expired, completed meanwhile, provider unreachable
            problem = exc.message
        else:
            qr = base64.b64encode(cards.qr_svg(link)).decode("ascii")
        status = cards.card_status(card)
    back = _payments_url(member) if member else (
        _payments_url(payer.member_id) if payer.member_id else "/desk")
    return render(request, "dues_card.html", {
        "title": f"Card for {payer.name}", "card": card, "payer": payer, "status": status,
        "link": link, "qr": qr, "problem": problem, "back": back})


# --- paying an open invoice, cancelling ------------------------------------------------------------

@router.post("/desk/invoices/{invoice_id}/payments")
def pay_invoice(request: Request, session: PageSession, actor: DeskPage,
                invoice_id: IdPath("invoice id"), amount: AmountText, method: DeskMethod,
                key: Key = None, back: Back = None):
    url = back_to(request, back, "/desk")
    value = _amount(amount)
    if not once(session, request, actor, key, {"invoice": invoice_id, "amount": str(value)}):
        return done(request, url, "This payment was already recorded.", "info")
    payment = desk.pay_invoice(session, actor=actor, invoice_id=invoice_id, amount=value,
                               method=method, desk=DESK_NAME)
    invoice = documents.get_invoice(session, club_id=actor.club_id, invoice_id=invoice_id)
    currency = request.state.club.currency
    left = invoice.open
    rest = "nothing is left open" if left <= 0 else f"{fmt_money(left, currency)} is still open"
    return done(request, url, f"{fmt_money(payment.amount, currency)} by "
                              f"{DESK_PAY_TITLES[method]} for invoice {invoice.invoice.number}; "
                              f"{rest}.", "ok", "Payment taken")


@router.post("/desk/contracts/{contract_id}/cancel")
def cancel_contract(request: Request, session: PageSession, actor: DeskPage,
                    contract_id: IdPath("contract id"), received_on: DayText = None,
                    back: Back = None):
    contract = contracts.get_contract(session, club_id=actor.club_id, contract_id=contract_id)
    url = back_to(request, back, _payments_url(contract.member_id))
    today = clubs_service.club_today(request.state.club)
    received = _day(received_on, today, "Received on", "received_on")
    contract = contracts.cancel_contract(session, actor=actor, contract_id=contract_id,
                                         received_on=received, channel="desk")
    return done(request, url, f"Received on {fmt_day(received)}: the contract ends on "
                              f"{fmt_day(contract.ends_on)}. A confirmation goes to the payer.",
                "ok", "Contract cancelled")
