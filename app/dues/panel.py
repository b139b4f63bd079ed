"""The member card's payment panel: who pays, how, the next charge, open invoices and totals.

An invoice's open amount is its gross minus the sum of its dues payments (a return or refund is
negative, so it opens the invoice again); nothing stores a balance.
"""
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.billing import service as billing_service
from app.clubs import service as clubs_service
from app.dues import terms
from app.dues.models import (
    Contract,
    DuesPayment,
    Invoice,
    InvoiceLine,
    Mandate,
    Payer,
    StoredCard,
)


def mask_iban(iban: str) -> str:
    """Country and check digits, then the last four: DE89 **** 3000."""
    compact = iban.replace(" ", "")
    return f"{compact[:4]} **** {compact[-4:]}" if len(compact) > 8 else "****"


@dataclass
class MandateView:
    id: int
    reference: str
    account_holder: str
    iban: str
    signed_on: date
    revoked_on: date | None


@dataclass
class CardView:
    id: int
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    ready: bool


@dataclass
class ContractView:
    contract: Contract
    payer: Payer
    mandate: MandateView | None
    card: CardView | None
    next_charge_on: date | None
    next_charge_amount: Decimal | None


@dataclass
class OpenInvoiceView:
    id: int
    number: str
    issued_on: date
    due_on: date
    gross: Decimal
    paid: Decimal
    open: Decimal


@dataclass
class Panel:
    member_id: int
    contracts: list[ContractView]
    open_invoices: list[OpenInvoiceView]
    invoiced: Decimal
    paid: Decimal
    open: Decimal


def price_on(contract: Contract, day: date) -> Decimal:
    """The contract's price for a period starting on `day` (an announced change from its day)."""
    if contract.next_price is not None and contract.next_price_from is not None \
            and day >= contract.next_price_from:
        return contract.next_price
    return contract.price


def _next_charge(session: Session, contract: Contract) -> tuple[date | None, Decimal | None]:
    if contract.ends_on is not None and contract.next_due > contract.ends_on:
        return None, None
    amount = price_on(contract, contract.next_due)
    if contract.joining_fee:
        invoiced = session.scalar(select(InvoiceLine.id).where(
            InvoiceLine.club_id == contract.club_id,
            InvoiceLine.charge_key == f"join:{contract.id}"))
        if invoiced is None:
            amount += contract.joining_fee
    return contract.next_due, terms.cents(amount)


def _contract_view(session: Session, contract: Contract) -> ContractView:
    payer = session.get(Payer, contract.payer_id)
    mandate = card = None
    if contract.mandate_id is not None:
        m = session.get(Mandate, contract.mandate_id)
        mandate = MandateView(m.id, m.reference, m.account_holder, mask_iban(m.iban),
                              m.signed_on, m.revoked_on)
    if contract.card_id is not None:
        c = session.get(StoredCard, contract.card_id)
        card = CardView(c.id, c.brand, c.last4, c.exp_month, c.exp_year,
                        c.method_ref is not None and c.removed_on is None)
    return ContractView(contract, payer, mandate, card, *_next_charge(session, contract))


def member_invoices(session: Session, *, club_id: int, member_id: int,
                    limit: int | None = None) -> list[OpenInvoiceView]:
    """The member's invoices (a line for them, or a payer who is them) with what is paid and
    open, oldest due first; `limit`: only the latest that many."""
    own_payers = select(Payer.id).where(Payer.club_id == club_id, Payer.member_id == member_id)
    with_lines = select(InvoiceLine.invoice_id).where(InvoiceLine.club_id == club_id,
                                                      InvoiceLine.member_id == member_id)
    paid = (select(DuesPayment.invoice_id, func.sum(DuesPayment.amount).label("paid"))
            .where(DuesPayment.club_id == club_id).group_by(DuesPayment.invoice_id).subquery())
    mine = (Invoice.club_id == club_id, Invoice.kind == "invoice",
            or_(Invoice.id.in_(with_lines), Invoice.payer_id.in_(own_payers)))
    if limit is not None:
        latest = (select(Invoice.id).where(*mine)
                  .order_by(Invoice.due_on.desc(), Invoice.id.desc()).limit(limit))
        mine = (Invoice.id.in_(latest.scalar_subquery()),)
    stmt = (select(Invoice, func.coalesce(paid.c.paid, 0))
            .outerjoin(paid, paid.c.invoice_id == Invoice.id).where(*mine))
    views = []
    for invoice, paid_amount in session.execute(stmt.order_by(Invoice.due_on, Invoice.id)).all():
        paid_amount = terms.cents(paid_amount)
        views.append(OpenInvoiceView(invoice.id, invoice.number, invoice.issued_on,
                                     invoice.due_on, invoice.gross, paid_amount,
                                     terms.cents(invoice.gross - paid_amount)))
    return views


def open_invoices(session: Session, *, club_id: int, member_id: int) -> list[OpenInvoiceView]:
    """The member's invoices not paid in full."""
    return [v for v in member_invoices(session, club_id=club_id, member_id=member_id)
            if v.open > 0]


def member_dues(session: Session, *, club_id: int, member_id: int) -> Panel:
    """The payment panel of a member: running contracts with payer, means and next charge; open
    invoices with their open amounts and the totals."""
    billing_service.require_member(session, club_id=club_id, member_id=member_id)
    today = clubs_service.club_today_by_id(session, club_id)
    contracts = list(session.scalars(
        select(Contract).where(Contract.club_id == club_id, Contract.member_id == member_id,
                               or_(Contract.ends_on.is_(None), Contract.ends_on >= today))
        .order_by(Contract.starts_on.desc(), Contract.id.desc())))
    invoices = open_invoices(session, club_id=club_id, member_id=member_id)
    invoiced = terms.cents(sum((i.gross for i in invoices), terms.ZERO))
    paid = terms.cents(sum((i.paid for i in invoices), terms.ZERO))
    return Panel(member_id, [_contract_view(session, c) for c in contracts], invoices,
                 invoiced, paid, terms.cents(invoiced - paid))
