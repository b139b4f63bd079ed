"""Invoices as documents: the list, one invoice with its lines and payments, the printable page,
and credit notes (the only correction: an issued invoice is never changed).

A **credit note** credits a whole invoice or some of its lines, each line once only (its charge
key `credit:<line id>`): it is an invoice of kind `credit_note` with the negative lines,
`corrects_id` naming the original. What is still open on the original is settled by it (a
payment of kind `credit`, method `credit_note`, recorded on both documents, so the ledger adds
up); credit beyond the open part stays open on the credit note (money the club owes back).
Planned collections of the original follow (`invoicing.follow_open_amount`): lowered to the new
open amount, or cancelled when nothing is left to collect.
"""
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from app.clubs import service as clubs_service
from app.core.actors import Actor
from app.core.errors import Conflict, Invalid, NotFound
from app.dues import invoicing, terms
from app.dues.invoicing import LineIn
from app.dues.models import DuesPayment, Invoice, InvoiceLine

TEMPLATES = Environment(loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
                        autoescape=select_autoescape(["html"]))


@dataclass
class InvoiceView:
    invoice: Invoice
    paid: Decimal
    open: Decimal
    lines: list[InvoiceLine] = field(default_factory=list)
    payments: list[DuesPayment] = field(default_factory=list)
    credited_line_ids: list[int] = field(default_factory=list)


def _paid_subquery():
    return (select(func.coalesce(func.sum(DuesPayment.amount), 0))
            .where(DuesPayment.invoice_id == Invoice.id).scalar_subquery())


def list_invoices(session: Session, *, club_id: int, payer_id: int | None = None,
                  member_id: int | None = None, open_only: bool = False, limit: int = 50,
                  offset: int = 0) -> tuple[list[InvoiceView], int]:
    """The club's invoices and credit notes, newest first, with what is paid and open."""
    paid = _paid_subquery()
    where = [Invoice.club_id == club_id]
    if payer_id is not None:
        where.append(Invoice.payer_id == payer_id)
    if member_id is not None:
        where.append(exists().where(InvoiceLine.invoice_id == Invoice.id,
                                    InvoiceLine.member_id == member_id))
    if open_only:
        where.append(Invoice.gross - paid != 0)
    total = session.scalar(select(func.count()).select_from(Invoice).where(*where))
    rows = session.execute(select(Invoice, paid).where(*where)
                           .order_by(Invoice.issued_on.desc(), Invoice.id.desc())
                           .limit(limit).offset(offset)).all()
    return [InvoiceView(invoice, terms.cents(p), terms.cents(invoice.gross - p))
            for invoice, p in rows], total


def _invoice(session: Session, *, club_id: int, invoice_id: int, for_update: bool = False
             ) -> Invoice:
    stmt = select(Invoice).where(Invoice.id == invoice_id, Invoice.club_id == club_id)
    invoice = session.scalars(stmt.with_for_update() if for_update else stmt).first()
    if invoice is None:
        raise NotFound("Invoice not found", code="invoice_not_found")
    return invoice


def get_invoice(session: Session, *, club_id: int, invoice_id: int) -> InvoiceView:
    """One invoice or credit note with its lines, payments and open amount."""
    invoice = _invoice(session, club_id=club_id, invoice_id=invoice_id)
    lines = list(session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id)
                                 .order_by(InvoiceLine.id)))
    payments = list(session.scalars(select(DuesPayment).where(
        DuesPayment.invoice_id == invoice.id).order_by(DuesPayment.id)))
    paid = terms.cents(sum((p.amount for p in payments), terms.ZERO))
    credited = invoicing.invoiced_keys(session, club_id=club_id,
                                       keys=(f"credit:{line.id}" for line in lines))
    return InvoiceView(invoice, paid, terms.cents(invoice.gross - paid), lines, payments,
                       [line.id for line in lines if f"credit:{line.id}" in credited])


def print_invoice(session: Session, *, club_id: int, invoice_id: int) -> str:
    """The invoice as a printable HTML page (PDF: the browser's print to PDF)."""
    view = get_invoice(session, club_id=club_id, invoice_id=invoice_id)
    corrects = (session.get(Invoice, view.invoice.corrects_id)
                if view.invoice.corrects_id else None)
    return TEMPLATES.get_template("invoice.html").render(
        view=view, invoice=view.invoice, seller=view.invoice.seller_snapshot or {},
        payer=view.invoice.payer_snapshot or {}, corrects=corrects,
        vat=bool((view.invoice.seller_snapshot or {}).get("vat_registered")))


def _lines_to_credit(session: Session, invoice: Invoice,
                     line_ids: list[int] | None) -> list[InvoiceLine]:
    lines = list(session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id)
                                 .order_by(InvoiceLine.id)))
    if line_ids:
        known = {line.id for line in lines}
        unknown = sorted(set(line_ids) - known)
        if unknown:
            raise Invalid("These lines are not on the invoice", code="unknown_invoice_line",
                          details={"line_ids": unknown})
        lines = [line for line in lines if line.id in set(line_ids)]
    credited = invoicing.invoiced_keys(session, club_id=invoice.club_id,
                                       keys=(f"credit:{line.id}" for line in lines))
    if not line_ids:  # the whole invoice: what is not credited yet
        lines = [line for line in lines if f"credit:{line.id}" not in credited]
        if not lines:
            raise Conflict("Every line of this invoice was credited already",
                           code="already_credited")
    elif credited:
        raise Conflict("A line of this invoice was credited already; each line is credited "
                       "once only", code="already_credited",
                       details={"line_ids": sorted(int(k.split(":")[1]) for k in credited)})
    return lines


def credit_note(session: Session, *, actor: Actor, invoice_id: int,
                line_ids: list[int] | None, reason: str) -> Invoice:
    """Credit a whole invoice (no `line_ids`: every line not credited yet) or the lines named
    (each once only) with a credit note."""
    invoice = _invoice(session, club_id=actor.club_id, invoice_id=invoice_id, for_update=True)
    if invoice.kind != "invoice":
        raise Invalid("A credit note cannot be credited", code="not_an_invoice")
    lines = _lines_to_credit(session, invoice, line_ids)
    today = clubs_service.club_today_by_id(session, actor.club_id)
    note = invoicing.issue_invoice(
        session, club_id=actor.club_id, payer_id=invoice.payer_id, issued_on=today,
        due_on=today, method=invoice.method, kind="credit_note", corrects_id=invoice.id,
        lines=[LineIn(charge_key=f"credit:{line.id}", kind="credit", gross=-line.gross,
                      description=f"Credit: {line.description} ({reason})",
                      quantity=line.quantity, tax_rate=line.tax_rate,
                      contract_id=line.contract_id, member_id=line.member_id,
                      sale_id=line.sale_id, period_start=line.period_start,
                      period_end=line.period_end) for line in lines])
    if note is None:  # a concurrent request credited them first
        raise Conflict("These lines were credited already", code="already_credited")
    _settle(session, invoice=invoice, note=note, today=today, reason=reason,
            staff_id=actor.user_id)
    return note


def _settle(session: Session, *, invoice: Invoice, note: Invoice, today: date, reason: str,
            staff_id: int | None) -> None:
    """The credit settles what is open on the original; planned collections follow."""
    still_open = invoicing.open_amount(session, invoice)
    settled = min(still_open, -note.gross) if still_open > 0 else terms.ZERO
    if settled > 0:
        for target, amount in ((invoice, settled), (note, -settled)):
            invoicing.record_payment(
                session, club_id=invoice.club_id, invoice_id=target.id, amount=amount,
                method="credit_note", kind="credit", occurred_on=today,
                event_key=f"credit:{note.id}:{target.id}", reference=f"{note.number}: "
                f"{reason}"[:140], staff_id=staff_id, follow=False)
    invoicing.follow_open_amount(session, club_id=invoice.club_id, invoice_ids=[invoice.id])
