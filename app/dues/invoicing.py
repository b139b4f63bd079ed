"""Invoices and the money ledger: gap-free numbers, unchangeable invoices, idempotent payments.

- **Numbers** come from one counter row per club and series (the year when the club's format
  names `{year}`, else `all`), moved on by one guarded `UPDATE ... RETURNING` in the invoice's
  own transaction: a rolled-back invoice gives its number back, so numbers have no gaps, and two
  writers queue on the row instead of taking the same number.
- **Issuing** writes the invoice and its lines once: a line whose `charge_key` is already
  invoiced in the club is left out (a re-run charges nothing twice); with no new line no
  invoice is written. The payer's and the club's details are copied onto the invoice as issued.
- **Payments** (`record_payment`) are the ledger: an invoice's open amount is its gross minus
  the sum of its payments. A payment given an `event_key` is written once per club — the same
  webhook, bank entry or file line again writes nothing.
- **Planned collections follow the ledger** (`follow_open_amount`, called by `record_payment`
  for every payment path — desk, credit note, card, SEPA): a planned debit or card charge is
  cancelled when nothing is open on its invoice any more, and lowered to what is still open
  after a part payment (never raised: the payer was told the amount). Collections already in a
  file or at the provider are not touched.
"""
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import String, bindparam, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from app.clubs.models import Club
from app.core import clock, sql
from app.core.errors import Invalid, NotFound
from app.dues import bulk, terms
from app.dues.models import Collection, DuesPayment, Invoice, InvoiceCounter, InvoiceLine, Payer

ALL_YEARS = "all"
CHUNK = 1000


@dataclass(frozen=True)
class LineIn:
    """A charge to put on an invoice; `gross` is unit price × quantity (what the payer pays)."""

    charge_key: str
    kind: str
    description: str
    gross: Decimal
    quantity: int = 1
    tax_rate: Decimal = terms.ZERO
    contract_id: int | None = None
    member_id: int | None = None
    sale_id: int | None = None
    period_start: date | None = None
    period_end: date | None = None


def series_for(number_format: str, issued_on: date) -> str:
    return str(issued_on.year) if "{year" in number_format else ALL_YEARS


def format_number(number_format: str, issued_on: date, seq: int) -> str:
    return number_format.format(year=issued_on.year, seq=seq)


def next_numbers(session: Session, *, club_id: int, issued_on: date, count: int = 1) -> list[str]:
    """`count` consecutive invoice numbers for the club, taken in the caller's transaction."""
    if count < 1:
        return []
    number_format = terms.settings_for(session, club_id).invoice_number_format
    series = series_for(number_format, issued_on)
    bump = (update(InvoiceCounter)
            .where(InvoiceCounter.club_id == club_id, InvoiceCounter.series == series)
            .values(last_number=InvoiceCounter.last_number + count)
            .returning(InvoiceCounter.last_number))
    last = session.execute(bump).scalar()
    if last is None:
        try:
            with session.begin_nested():
                session.execute(insert(InvoiceCounter).values(
                    club_id=club_id, series=series, last_number=0))
        except IntegrityError:  # a concurrent writer created the counter first
            pass
        last = session.execute(bump).scalar_one()
    first = last - count + 1
    return [format_number(number_format, issued_on, seq) for seq in range(first, last + 1)]


def payer_snapshot(payer: Payer) -> dict:
    return {"name": payer.name, "email": payer.email, "address": payer.address,
            "member_id": payer.member_id}


def seller_snapshot(session: Session, club_id: int) -> dict:
    club = session.get(Club, club_id)
    settings = terms.settings_for(session, club_id)
    return {"name": settings.legal_name or (club.name if club else ""),
            "address": settings.legal_address, "vat_id": settings.vat_id,
            "vat_registered": bool(settings.vat_registered),
            "creditor_id": settings.creditor_id}


def invoiced_keys(session: Session, *, club_id: int, keys: Iterable[str]) -> set[str]:
    """Which of `keys` are on an invoice of the club already.

    On PostgreSQL the keys are joined as `unnest(:keys)`, one index probe each: the billing run
    grows the lines table faster than its statistics, and a filter `charge_key = ANY(:keys)` in
    a cached generic plan then compares every line of the club with every key (100,000 invoices
    in one run made that quadratic: 2 s a chunk)."""
    keys = list(keys)
    if not keys:
        return set()
    if session.get_bind().dialect.name != "postgresql":
        return set(session.scalars(select(InvoiceLine.charge_key).where(
            InvoiceLine.club_id == club_id, InvoiceLine.charge_key.in_(keys))))
    wanted = func.unnest(bindparam("keys", keys, type_=ARRAY(String))).table_valued("key").render_derived()
    return set(session.scalars(
        select(InvoiceLine.charge_key)
        .join(wanted, InvoiceLine.charge_key == wanted.c.key)
        .where(InvoiceLine.club_id == club_id)))


def issue_invoice(session: Session, *, club_id: int, payer_id: int, lines: Sequence[LineIn],
                  issued_on: date, due_on: date, method: str, kind: str = "invoice",
                  corrects_id: int | None = None) -> Invoice | None:
    """Issue one invoice (or credit note) of the lines not invoiced yet; None when none is new.

    Lines are rounded one by one (`terms.split_gross`); the totals are the sums of the lines.
    Runs in a SAVEPOINT: a concurrent writer that invoiced one of the keys first makes this
    call write nothing and return None.
    """
    payer = session.get(Payer, payer_id)
    if payer is None or payer.club_id != club_id:
        raise NotFound("Payer not found", code="payer_not_found")
    if kind not in ("invoice", "credit_note"):
        raise Invalid(f"Unknown invoice kind {kind!r}", code="invalid_invoice_kind")
    known = invoiced_keys(session, club_id=club_id, keys=(line.charge_key for line in lines))
    fresh = [line for line in lines if line.charge_key not in known]
    if not fresh:
        return None
    amounts = [terms.split_gross(line.gross, line.tax_rate) for line in fresh]
    try:
        with session.begin_nested():
            number, = next_numbers(session, club_id=club_id, issued_on=issued_on)
            invoice = Invoice(
                club_id=club_id, payer_id=payer_id, number=number, kind=kind,
                corrects_id=corrects_id, issued_on=issued_on, due_on=due_on, method=method,
                currency=_currency(session, club_id),
                net=sum((a.net for a in amounts), terms.ZERO),
                tax=sum((a.tax for a in amounts), terms.ZERO),
                gross=sum((a.gross for a in amounts), terms.ZERO),
                payer_snapshot=payer_snapshot(payer),
                seller_snapshot=seller_snapshot(session, club_id), created_at=clock.now())
            session.add(invoice)
            session.flush()
            session.add_all(InvoiceLine(
                club_id=club_id, invoice_id=invoice.id, charge_key=line.charge_key,
                kind=line.kind, contract_id=line.contract_id, member_id=line.member_id,
                sale_id=line.sale_id, description=line.description[:200],
                period_start=line.period_start, period_end=line.period_end,
                quantity=line.quantity,
                unit_price=terms.cents(Decimal(line.gross) / max(line.quantity, 1)),
                tax_rate=line.tax_rate, net=a.net, tax=a.tax, gross=a.gross)
                for line, a in zip(fresh, amounts, strict=True))
            session.flush()
    except IntegrityError:
        return None
    return invoice


@dataclass(frozen=True)
class Draft:
    """One invoice to issue in a batch: whom, when due, how collected, its lines."""

    payer_id: int
    due_on: date
    method: str
    lines: Sequence[LineIn]
    tag: object = None
    """The caller's own data, handed back on `Issued.draft` (the billing run: mandate, card)."""


@dataclass(frozen=True)
class Issued:
    """An invoice a batch wrote: its draft (with only the fresh lines), id, number and gross."""

    draft: Draft
    invoice_id: int
    number: str
    gross: Decimal
    line_keys: tuple[str, ...]


def issue_invoices(session: Session, *, club_id: int, drafts: Sequence[Draft],
                   issued_on: date) -> list[Issued]:
    """Issue many invoices at once (the billing run): the same rules as `issue_invoice` —
    lines already invoiced are left out, a draft with no fresh line writes nothing, numbers
    come from `next_numbers` in the caller's transaction — in a few statements.

    No savepoint: a concurrent writer of the same charge key makes the caller's transaction
    fail (the billing run's chunk rolls back whole and its next try skips the key).
    """
    known = invoiced_keys(session, club_id=club_id,
                          keys=(line.charge_key for d in drafts for line in d.lines))
    fresh: list[Draft] = []
    for d in drafts:
        lines = [line for line in d.lines if line.charge_key not in known]
        known.update(line.charge_key for line in lines)
        if lines:
            fresh.append(Draft(d.payer_id, d.due_on, d.method, lines, d.tag))
    if not fresh:
        return []
    payers = {p.id: payer_snapshot(p) for p in session.execute(
        select(Payer.id, Payer.name, Payer.email, Payer.address, Payer.member_id).where(
            Payer.club_id == club_id, bulk.among(session, Payer.id, {d.payer_id for d in fresh})))}
    if len(payers) != len({d.payer_id for d in fresh}):
        raise NotFound("Payer not found", code="payer_not_found")
    numbers = next_numbers(session, club_id=club_id, issued_on=issued_on, count=len(fresh))
    seller, currency, now = seller_snapshot(session, club_id), _currency(session, club_id), \
        clock.now()
    amounts = [[terms.split_gross(line.gross, line.tax_rate) for line in d.lines] for d in fresh]
    rows = [{"club_id": club_id, "payer_id": d.payer_id, "number": number, "kind": "invoice",
             "issued_on": issued_on, "due_on": d.due_on, "method": d.method,
             "currency": currency, "net": sum((a.net for a in amts), terms.ZERO),
             "tax": sum((a.tax for a in amts), terms.ZERO),
             "gross": sum((a.gross for a in amts), terms.ZERO),
             "payer_snapshot": payers[d.payer_id], "seller_snapshot": seller, "created_at": now}
            for d, number, amts in zip(fresh, numbers, amounts, strict=True)]
    ids = bulk.insert_rows(session, Invoice, rows, ids=True)
    bulk.insert_rows(session, InvoiceLine, [
        {"club_id": club_id, "invoice_id": invoice_id, "charge_key": line.charge_key,
         "kind": line.kind, "contract_id": line.contract_id, "member_id": line.member_id,
         "sale_id": line.sale_id, "description": line.description[:200],
         "period_start": line.period_start, "period_end": line.period_end,
         "quantity": line.quantity,
         "unit_price": terms.cents(Decimal(line.gross) / max(line.quantity, 1)),
         "tax_rate": line.tax_rate, "net": a.net, "tax": a.tax, "gross": a.gross}
        for d, invoice_id, amts in zip(fresh, ids, amounts, strict=True)
        for line, a in zip(d.lines, amts, strict=True)])
    return [Issued(d, invoice_id, row["number"], row["gross"],
                   tuple(line.charge_key for line in d.lines))
            for d, invoice_id, row in zip(fresh, ids, rows, strict=True)]


def _currency(session: Session, club_id: int) -> str:
    club = session.get(Club, club_id)
    return club.currency if club is not None else "EUR"


def paid_amount(session: Session, invoice_id: int) -> Decimal:
    total = session.scalar(select(func.coalesce(func.sum(DuesPayment.amount), 0))
                           .where(DuesPayment.invoice_id == invoice_id))
    return terms.cents(total or 0)


def open_amount(session: Session, invoice: Invoice) -> Decimal:
    """What is still owed on the invoice: its gross minus its payments (returns add back)."""
    return terms.cents(invoice.gross - paid_amount(session, invoice.id))


def record_payment(session: Session, *, club_id: int, invoice_id: int, amount: Decimal,
                   method: str, occurred_on: date, kind: str = "payment",
                   event_key: str | None = None, collection_id: int | None = None,
                   reference: str | None = None, desk: str | None = None,
                   staff_id: int | None = None, follow: bool = True) -> DuesPayment | None:
    """Write one ledger entry; None when `event_key` was already recorded for the club.

    The invoice's planned collections then follow its open amount (`follow_open_amount`);
    `follow=False` is for a caller that does that itself afterwards (many payments at once)."""
    invoice = session.get(Invoice, invoice_id)
    if invoice is None or invoice.club_id != club_id:
        raise NotFound("Invoice not found", code="invoice_not_found")
    if event_key is not None and session.scalar(select(DuesPayment.id).where(
            DuesPayment.club_id == club_id, DuesPayment.event_key == event_key)) is not None:
        return None
    payment = DuesPayment(
        club_id=club_id, invoice_id=invoice_id, payer_id=invoice.payer_id,
        collection_id=collection_id, kind=kind, method=method, amount=terms.cents(amount),
        occurred_on=occurred_on, reference=reference, event_key=event_key, desk=desk,
        staff_id=staff_id, created_at=clock.now())
    try:
        with session.begin_nested():
            session.add(payment)
            session.flush()
    except IntegrityError:  # the same event recorded by a concurrent delivery
        return None
    if follow:
        follow_open_amount(session, club_id=club_id, invoice_ids=[invoice_id])
    return payment


def open_cents_of(invoice_id) -> object:
    """What is open on the invoice `invoice_id` (a column or value), in whole cents, as SQL:
    its gross minus its payments (exact on both backends)."""
    invoice, payment = aliased(Invoice), aliased(DuesPayment)  # never correlated away
    gross = select(sql.cents(invoice.gross)).where(invoice.id == invoice_id).scalar_subquery()
    paid = (select(func.coalesce(func.sum(sql.cents(payment.amount)), 0))
            .where(payment.invoice_id == invoice_id).scalar_subquery())
    return gross - paid


def follow_open_amount(session: Session, *, club_id: int,
                       invoice_ids: Iterable[int] | None = None, where: Sequence = ()) -> None:
    """The planned collections of these invoices (or those matching `where`) follow what is
    still open on their invoice: cancelled when nothing is, lowered to the open amount when it
    is less than planned. Two set-based UPDATEs (per 1,000 invoices)."""
    open_cents = open_cents_of(Collection.invoice_id)
    base = [Collection.club_id == club_id, Collection.status == "planned", *where]
    if invoice_ids is None:
        parts = [base]
    else:
        ids = sorted(set(invoice_ids))
        parts = [[*base, bulk.among(session, Collection.invoice_id, ids[i:i + CHUNK])]
                 for i in range(0, len(ids), CHUNK)]
    now = clock.now()
    for part in parts:
        session.execute(update(Collection).where(*part, open_cents <= 0)
                        .values(status="cancelled", updated_at=now)
                        .execution_options(synchronize_session="fetch"))
        session.execute(update(Collection)
                        .where(*part, open_cents > 0, sql.cents(Collection.amount) > open_cents)
                        .values(amount=open_cents / literal(100.0), updated_at=now)
                        .execution_options(synchronize_session="fetch"))
