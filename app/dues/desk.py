"""The front desk's money: paying open invoices, and each desk's daily close-out.

- **Paying** an invoice at the desk (cash, card terminal, transfer) writes one `dues_payments`
  row with the desk's name and the staff member; part payments are fine, more than the open
  amount is refused, and so is a payment while a debit of the invoice is in a collection file
  not yet submitted or its card charge is at the provider (409 `collection_under_way`). The
  invoice's planned SEPA debits and card charges follow
  (`invoicing.follow_open_amount`): cancelled once it is settled, lowered to what is still open
  after a part payment, so no file or card run takes the money a second time. A payment that
  settles an invoice closes its dunning case (`recovered`).
- **Close-out** of a desk and business day (club-local): takings per method are
  1. the dues payments recorded at that desk that day, and
  2. the desk sales' payments (`billing.Payment`) of that day, which carry no desk: a sale's
     payment is attributed by **the staff member who took it**. A staff member's desk that day
     is the desk of the last dues payment they took that day; one who took none belongs to the
     first desk they close that day. So a sale is counted at one desk at most; the sales of a
     person who neither took dues money at a desk nor closed one are in no close-out.
  Expected cash = opening float + cash takings; difference = counted − expected. Once per desk
  and day: a second close-out is refused (409) and shows the first.
"""
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.billing.models import Payment
from app.clubs import service as clubs_service
from app.core import clock
from app.core.actors import Actor
from app.core.errors import Conflict, Invalid, NotFound
from app.core.sql import local_day_start
from app.dues import dunning, invoicing, terms
from app.dues.models import Collection, DeskCloseout, DuesPayment, Invoice

DESK_METHODS = ("cash", "card_terminal", "transfer")
MAX_DAYS_BACK = 366
SALE_METHODS = {"cash": "cash", "card": "card_terminal", "transfer": "transfer"}
"""How a desk sale's payment method (billing) is counted in a close-out."""


def pay_invoice(session: Session, *, actor: Actor, invoice_id: int, amount: Decimal,
                method: str, desk: str) -> DuesPayment:
    """Take a payment for an open invoice at the desk (part payments allowed)."""
    if method not in DESK_METHODS:
        raise Invalid("method must be cash, card_terminal or transfer", code="invalid_method",
                      details={"field": "method"})
    amount = terms.cents(amount)
    if amount <= 0:
        raise Invalid("The amount must be more than 0.00", code="invalid_amount",
                      details={"field": "amount"})
    invoice = session.get(Invoice, invoice_id, with_for_update=True)
    if invoice is None or invoice.club_id != actor.club_id:
        raise NotFound("Invoice not found", code="invoice_not_found")
    if invoice.kind != "invoice":
        raise Invalid("A credit note is not paid", code="not_payable")
    owed = invoicing.open_amount(session, invoice)
    if owed <= 0:
        raise Conflict(f"Invoice {invoice.number} is paid already", code="invoice_paid",
                       details={"open": str(owed)})
    if amount > owed:
        raise Invalid(f"Only {owed} is open on invoice {invoice.number}; {amount} is too much",
                      code="amount_exceeds_open", details={"field": "amount", "open": str(owed)})
    _refuse_while_collecting(session, invoice)
    day = clubs_service.club_today_by_id(session, actor.club_id)
    payment = invoicing.record_payment(
        session, club_id=actor.club_id, invoice_id=invoice.id, amount=amount, method=method,
        occurred_on=day, desk=desk, staff_id=actor.user_id)
    if amount == owed:
        dunning.close_paid_cases(session, club_id=actor.club_id, day=day, invoice_id=invoice.id)
    session.flush()
    return payment


def _refuse_while_collecting(session: Session, invoice: Invoice) -> None:
    """409 while a debit of the invoice is in a collection file not yet submitted, or a card
    charge is at the provider: the money may be on its way, and taking it at the desk too would
    charge the payer twice. Once the debit comes back (returned, failed) the desk takes it."""
    under_way = session.execute(
        select(Collection.method, Collection.amount, Collection.due_on)
        .where(Collection.invoice_id == invoice.id, Collection.status.in_(("in_file", "pending")))
        .limit(1)).first()
    if under_way is None:
        return
    what = ("a direct debit of {} is in the collection file for {:%d.%m.%Y}"
            if under_way.method == "sepa" else "a card charge of {} due {:%d.%m.%Y} is under way")
    raise Conflict(f"Invoice {invoice.number}: " + what.format(under_way.amount, under_way.due_on)
                   + "; take the money at the desk only if it comes back",
                   code="collection_under_way",
                   details={"method": under_way.method, "amount": str(under_way.amount)})


@dataclass(frozen=True)
class Takings:
    desk: str
    business_day: date
    takings: dict[str, Decimal]
    staff_ids: tuple[int, ...]


def _desk_staff(session: Session, actor: Actor, desk: str, business_day: date) -> set[int]:
    """The staff whose desk sales count at `desk` that day (see the module docstring)."""
    latest = session.execute(
        select(DuesPayment.staff_id, DuesPayment.desk)
        .where(DuesPayment.club_id == actor.club_id, DuesPayment.occurred_on == business_day,
               DuesPayment.desk.is_not(None), DuesPayment.staff_id.is_not(None))
        .order_by(DuesPayment.created_at, DuesPayment.id)).all()
    desk_of: dict[int, str] = {}
    for staff_id, at_desk in latest:
        desk_of[staff_id] = at_desk  # the last desk a staff member took dues money at
    staff = {staff_id for staff_id, at_desk in desk_of.items() if at_desk == desk}
    if actor.user_id not in desk_of:
        closed_elsewhere = session.scalar(select(DeskCloseout.id).where(
            DeskCloseout.club_id == actor.club_id, DeskCloseout.business_day == business_day,
            DeskCloseout.closed_by == actor.user_id, DeskCloseout.desk != desk).limit(1))
        if closed_elsewhere is None:
            staff.add(actor.user_id)
    return staff


def _takings(session: Session, *, actor: Actor, desk: str, business_day: date) -> Takings:
    club = clubs_service.get_club(session, actor.club_id)
    totals = {method: terms.ZERO for method in DESK_METHODS}
    dues = session.execute(
        select(DuesPayment.method, func.sum(DuesPayment.amount))
        .where(DuesPayment.club_id == actor.club_id, DuesPayment.desk == desk,
               DuesPayment.occurred_on == business_day)
        .group_by(DuesPayment.method)).all()
    for method, total in dues:
        totals[method] = totals.get(method, terms.ZERO) + terms.cents(total)
    staff_ids = tuple(sorted(_desk_staff(session, actor, desk, business_day)))
    zone = clubs_service.club_zone(club)
    if staff_ids:
        sales = session.execute(
            select(Payment.method, func.sum(Payment.amount))
            .where(Payment.club_id == actor.club_id, Payment.staff_id.in_(staff_ids),
                   Payment.created_at >= local_day_start(zone, business_day),
                   Payment.created_at < local_day_start(zone, business_day + timedelta(days=1)))
            .group_by(Payment.method)).all()
        for method, total in sales:
            key = SALE_METHODS.get(method, method)
            totals[key] = totals.get(key, terms.ZERO) + terms.cents(total)
    return Takings(desk, business_day, totals, staff_ids)


def _check_day(session: Session, actor: Actor, business_day: date | None) -> date:
    today = clubs_service.club_today_by_id(session, actor.club_id)
    day = business_day or today
    if day > today:
        raise Invalid("A business day in the future cannot be closed", code="invalid_date",
                      details={"field": "business_day"})
    if day < today - timedelta(days=MAX_DAYS_BACK):
        raise Invalid(f"A business day more than {MAX_DAYS_BACK} days ago cannot be closed",
                      code="invalid_date", details={"field": "business_day"})
    return day


def _figures(t: Takings, opening_float: Decimal, counted_cash: Decimal | None) -> dict:
    expected = terms.cents(opening_float + t.takings.get("cash", terms.ZERO))
    return {"desk": t.desk, "business_day": t.business_day, "opening_float": opening_float,
            "takings": t.takings, "total": sum(t.takings.values(), terms.ZERO),
            "expected_cash": expected, "counted_cash": counted_cash,
            "difference": None if counted_cash is None else terms.cents(counted_cash - expected)}


def closeout_preview(session: Session, *, actor: Actor, desk: str,
                     business_day: date | None = None, opening_float: Decimal = terms.ZERO,
                     counted_cash: Decimal | None = None) -> dict:
    """The close-out as it would be written now (nothing is stored); `closed` if it was."""
    day = _check_day(session, actor, business_day)
    first = _existing(session, actor.club_id, desk, day)
    figures = _figures(_takings(session, actor=actor, desk=desk, business_day=day),
                       terms.cents(opening_float),
                       None if counted_cash is None else terms.cents(counted_cash))
    figures["closed"] = closeout_read(first) if first is not None else None
    return figures


def _existing(session: Session, club_id: int, desk: str, day: date) -> DeskCloseout | None:
    return session.scalars(select(DeskCloseout).where(
        DeskCloseout.club_id == club_id, DeskCloseout.desk == desk,
        DeskCloseout.business_day == day)).first()


def closeout_read(row: DeskCloseout) -> dict:
    takings = {k: Decimal(v) for k, v in (row.takings or {}).items()}
    return {"id": row.id, "desk": row.desk, "business_day": row.business_day,
            "opening_float": row.opening_float, "takings": takings,
            "total": sum(takings.values(), terms.ZERO), "expected_cash": row.expected_cash,
            "counted_cash": row.counted_cash, "difference": row.difference,
            "closed_by": row.closed_by, "closed_at": row.closed_at}


def close_desk(session: Session, *, actor: Actor, desk: str, business_day: date | None,
               opening_float: Decimal, counted_cash: Decimal) -> DeskCloseout:
    """Close a desk's business day once: takings by method, expected and counted cash."""
    day = _check_day(session, actor, business_day)
    if opening_float < 0 or counted_cash < 0:
        raise Invalid("Amounts cannot be negative", code="invalid_amount")
    first = _existing(session, actor.club_id, desk, day)
    if first is not None:
        raise _closed_already(first)
    t = _takings(session, actor=actor, desk=desk, business_day=day)
    f = _figures(t, terms.cents(opening_float), terms.cents(counted_cash))
    row = DeskCloseout(
        club_id=actor.club_id, desk=desk, business_day=day, opening_float=f["opening_float"],
        takings={k: str(v) for k, v in t.takings.items()},
        expected_cash=f["expected_cash"], counted_cash=f["counted_cash"],
        difference=f["difference"], closed_by=actor.user_id, closed_at=clock.now())
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # closed by a colleague at the same moment
        raise _closed_already(_existing(session, actor.club_id, desk, day)) from None
    return row


def _closed_already(first: DeskCloseout) -> Conflict:
    read = closeout_read(first)
    return Conflict(f"Desk {first.desk} was closed for {first.business_day.isoformat()} "
                    f"already", code="desk_closed",
                    details={"closeout": {k: (str(v) if v is not None else None)
                                          for k, v in read.items() if k != "takings"}
                             | {"takings": {k: str(v) for k, v in read["takings"].items()}}})


def list_closeouts(session: Session, *, actor: Actor, desk: str | None = None,
                   limit: int = 50, offset: int = 0) -> list[DeskCloseout]:
    """The club's close-outs, newest day first."""
    where = [DeskCloseout.club_id == actor.club_id]
    if desk is not None:
        where.append(DeskCloseout.desk == desk)
    return list(session.scalars(select(DeskCloseout).where(*where)
                                .order_by(DeskCloseout.business_day.desc(), DeskCloseout.id.desc())
                                .limit(limit).offset(offset)))
