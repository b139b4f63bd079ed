"""Sales — the single path for selling anything — payments, refunds and member debt.

A sale is one receipt with lines of registered *kinds*. The domain that owns a kind fulfils its
line (creates the membership, books the stock movement, ...) and answers what to put on the
receipt::

    def fulfil(session, *, actor, sale, line_spec) -> LineValues: ...
    register_line_kind("membership", fulfil, spec=MembershipLine)   # in app/wiring.py

`create_sale` writes the sale, asks each kind to fulfil its line, totals the lines and records
the payments, all inside one SAVEPOINT: any failing line leaves nothing written.
"""
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.billing.models import Payment, Sale, SaleLine
from app.billing.schemas import MAX_MONEY, PaymentIn, PaymentMethod
from app.core import clock
from app.core.actors import Actor
from app.core.db import club_row
from app.core.errors import Conflict, Invalid, NotFound
from app.core.types import money
from app.members.models import Member

ZERO = Decimal("0.00")
PAYMENT = "payment"
REFUND = "refund"


# ----------------------------------------------------------------------------- line-kind registry

@dataclass(frozen=True)
class LineValues:
    """What a fulfilled line puts on the receipt; amount = unit_price × quantity."""

    description: str
    unit_price: Decimal
    quantity: int = 1
    item_id: int | None = None


class Fulfil(Protocol):
    def __call__(self, session: Session, *, actor: Actor, sale: Sale,
                 line_spec: Any) -> LineValues: ...


@dataclass(frozen=True)
class LineKind:
    kind: str
    fulfil: Fulfil
    spec: type[BaseModel] | None = None
    lock_key: Callable[[Any], int] | None = None


_LINE_KINDS: dict[str, LineKind] = {}


def register_line_kind(kind: str, fulfil: Fulfil, *, spec: type[BaseModel] | None = None,
                       lock_key: Callable[[Any], int] | None = None) -> None:
    """Let `create_sale` sell lines of `kind`; `spec` (optional) validates a line given as a dict.

    `fulfil(session, *, actor, sale, line_spec)` runs inside the sale's transaction after the
    sale row is flushed (so `sale.id` and `sale.member_id` are set); it raises domain errors to
    refuse the line and returns `LineValues`. Registering the same function again is harmless.
    `lock_key(line_spec)` names the row a line locks (e.g. the product id): lines of a kind are
    fulfilled in that order, so two sales of the same products in opposite order cannot
    deadlock; the receipt keeps the order the lines were given.
    """
    if not kind or len(kind) > 20:
        raise ValueError("a line kind is 1-20 characters")
    known = _LINE_KINDS.get(kind)
    if known is not None and known.fulfil is not fulfil:
        raise ValueError(f"line kind {kind!r} is already registered by {known.fulfil!r}")
    _LINE_KINDS[kind] = LineKind(kind, fulfil, spec, lock_key)


def line_kinds() -> list[str]:
    return sorted(_LINE_KINDS)


# ----------------------------------------------------------------------------- helpers

def invalid_input(exc: ValidationError, *, prefix: Sequence[str | int] = ()) -> Invalid:
    """A Pydantic ValidationError raised inside a service, as the 422 envelope the API uses."""
    errors = [{"field": ".".join(str(p) for p in (*prefix, *e["loc"])) or "request",
               "message": e["msg"], "type": e["type"]} for e in exc.errors()]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return Invalid(f"Please check the input — {summary}", code="validation_error", details=errors)


def require_member(session: Session, *, club_id: int, member_id: int,
                   for_update: bool = False) -> Member:
    """The member in this club, else NotFound.

    `for_update` (FOR NO KEY UPDATE) serialises writers of this member's memberships without
    conflicting with the KEY SHARE locks that inserting sales or visits take, so two sellers
    cannot deadlock.
    """
    return club_row(session, Member, club_id=club_id, row_id=member_id, for_update=for_update,
                    missing=NotFound("Member not found", code="member_not_found"))


def _sale_row(session: Session, *, club_id: int, sale_id: int, for_update: bool = False) -> Sale:
    return club_row(session, Sale, club_id=club_id, row_id=sale_id, for_update=for_update,
                    missing=NotFound("Sale not found", code="sale_not_found"))


def _as_payment(value: PaymentIn | Mapping, index: int) -> PaymentIn:
    if isinstance(value, PaymentIn):
        return value
    try:
        return PaymentIn.model_validate(value)
    except ValidationError as exc:
        raise invalid_input(exc, prefix=("payments", index)) from exc


def _as_line(value: BaseModel | Mapping, index: int) -> tuple[LineKind, Any]:
    if isinstance(value, BaseModel):
        kind_name = getattr(value, "kind", None)
        data = value.model_dump()
    else:
        kind_name = value.get("kind")
        data = dict(value)
    kind = _LINE_KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        raise Invalid(f"Line {index + 1}: unknown kind {kind_name!r}; this club sells "
                      f"{', '.join(line_kinds()) or 'nothing yet'}", code="unknown_line_kind",
                      details={"field": f"lines.{index}.kind", "valid_kinds": line_kinds()})
    if kind.spec is None or isinstance(value, kind.spec):
        return kind, value
    if "kind" not in kind.spec.model_fields:
        data.pop("kind", None)
    try:
        return kind, kind.spec.model_validate(data)
    except ValidationError as exc:
        raise invalid_input(exc, prefix=("lines", index)) from exc


# ----------------------------------------------------------------------------- selling

def _lock_order(specs: list[tuple[LineKind, Any]]) -> list[int]:
    """Line indexes in the order their rows are locked: by kind, then by the kind's lock key."""
    def key(index: int) -> tuple:
        kind, spec = specs[index]
        return (kind.kind, kind.lock_key(spec) if kind.lock_key else 0, index)
    return sorted(range(len(specs)), key=key)


def create_sale(session: Session, *, actor: Actor, member_id: int | None,
                lines: Sequence[BaseModel | Mapping], payments: Sequence[PaymentIn | Mapping] = (),
                note: str | None = None, to_account: bool = False) -> Sale:
    """Sell lines of registered kinds with payments (less than the total leaves a debt, or —
    `to_account` — a charge for the member's next dues invoice)."""
    if not lines:
        raise Invalid("A sale needs at least one line", code="empty_sale")
    if to_account and member_id is None:
        raise Invalid("Only a member's sale can be charged to their account",
                      code="account_needs_member")
    specs = [_as_line(line, i) for i, line in enumerate(lines)]
    paid_in = [_as_payment(p, i) for i, p in enumerate(payments)]
    paid = money(sum((p.amount for p in paid_in), ZERO))
    with session.begin_nested():
        if member_id is not None:
            member = require_member(session, club_id=actor.club_id, member_id=member_id)
            if member.erased_at is not None:
                raise Conflict("This member's data was erased; nothing can be sold to them",
                               code="member_erased")
        now = clock.now()
        sale = Sale(club_id=actor.club_id, member_id=member_id, staff_id=actor.user_id,
                    total=ZERO, note=note, to_account=to_account, created_at=now)
        session.add(sale)
        session.flush()
        total = ZERO
        fulfilled: dict[int, LineValues] = {}
        for index in _lock_order(specs):
            kind, spec = specs[index]
            values = kind.fulfil(session, actor=actor, sale=sale, line_spec=spec)
            if values.quantity < 1 or values.unit_price < 0:
                raise Invalid(f"Line {index + 1}: quantity and price cannot be negative",
                              code="invalid_line")
            fulfilled[index] = values
        for index, (kind, _spec) in enumerate(specs):
            values = fulfilled[index]
            amount = money(values.unit_price * values.quantity)
            session.add(SaleLine(club_id=actor.club_id, sale_id=sale.id, kind=kind.kind,
                                 item_id=values.item_id, description=values.description[:200],
                                 quantity=values.quantity, unit_price=money(values.unit_price),
                                 amount=amount))
            total += amount
        if total > MAX_MONEY:
            raise Invalid("The sale total is too large", code="total_too_large")
        if paid > total:
            raise Invalid(f"Payments ({paid}) exceed the sale total ({total}); take no more "
                          "than the total", code="overpayment",
                          details={"total": str(total), "paid": str(paid)})
        if member_id is None and paid < total:
            raise Invalid("A sale without a member must be paid in full", code="payment_required",
                          details={"total": str(total), "paid": str(paid)})
        sale.total = total
        for p in paid_in:
            session.add(Payment(club_id=actor.club_id, sale_id=sale.id, method=p.method.value,
                                kind=PAYMENT, amount=p.amount, staff_id=actor.user_id,
                                created_at=now))
        session.flush()
    return sale


def _paid_refunded(session: Session, sale_id: int) -> tuple[Decimal, Decimal]:
    row = session.execute(
        select(func.coalesce(func.sum(Payment.amount).filter(Payment.kind == PAYMENT), 0),
               func.coalesce(-func.sum(Payment.amount).filter(Payment.kind == REFUND), 0))
        .where(Payment.sale_id == sale_id)
    ).one()
    return money(row[0]), money(row[1])


def add_payment(session: Session, *, actor: Actor, sale_id: int, method: PaymentMethod | str,
                amount: Decimal) -> Sale:
    """Pay (part of) the debt on a sale; never more than is still owed."""
    method = PaymentMethod(method)
    amount = money(amount)
    if amount <= 0:
        raise Invalid("A payment must be more than zero", code="invalid_amount")
    sale = _sale_row(session, club_id=actor.club_id, sale_id=sale_id, for_update=True)
    paid, _refunded = _paid_refunded(session, sale.id)
    owed = money(sale.total - paid)
    if owed <= 0:
        raise Invalid("Nothing is owed on this sale", code="nothing_owed",
                      details={"total": str(sale.total), "paid": str(paid)})
    if amount > owed:
        raise Invalid(f"Only {owed} is owed on this sale; {amount} is too much", code="overpayment",
                      details={"owed": str(owed), "amount": str(amount)})
    session.add(Payment(club_id=actor.club_id, sale_id=sale.id, method=method.value, kind=PAYMENT,
                        amount=amount, staff_id=actor.user_id, created_at=clock.now()))
    session.flush()
    return sale


def refund(session: Session, *, actor: Actor, sale_id: int, amount: Decimal,
           method: PaymentMethod | str, max_amount: Decimal | None = None) -> Payment:
    """Give money back on a sale (a negative payment): at most what was paid and not yet refunded,
    and at most `max_amount` (e.g. the price of the line being refunded)."""
    method = PaymentMethod(method)
    amount = money(amount)
    if amount <= 0:
        raise Invalid("A refund must be more than zero", code="invalid_amount")
    sale = _sale_row(session, club_id=actor.club_id, sale_id=sale_id, for_update=True)
    paid, refunded = _paid_refunded(session, sale.id)
    limit = paid - refunded
    if max_amount is not None:
        limit = min(limit, money(max_amount))
    limit = max(money(limit), ZERO)
    if amount > limit:
        raise Invalid(f"A refund of {amount} is more than was paid for it; at most {limit} can be "
                      "refunded", code="refund_exceeds_paid",
                      details={"refundable": str(limit), "amount": str(amount)})
    payment = Payment(club_id=actor.club_id, sale_id=sale.id, method=method.value, kind=REFUND,
                      amount=-amount, staff_id=actor.user_id, created_at=clock.now())
    session.add(payment)
    session.flush()
    return payment


# ----------------------------------------------------------------------------- reading

@dataclass
class SaleView:
    """A sale with its lines, payments and what is still owed (shape of `SaleRead`)."""

    id: int
    member_id: int | None
    staff_id: int | None
    total: Decimal
    note: str | None
    created_at: datetime
    lines: list[SaleLine] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    to_account: bool = False

    @property
    def paid(self) -> Decimal:
        return money(sum((p.amount for p in self.payments if p.kind == PAYMENT), ZERO))

    @property
    def refunded(self) -> Decimal:
        return money(-sum((p.amount for p in self.payments if p.kind == REFUND), ZERO))

    @property
    def debt(self) -> Decimal:
        return max(money(self.total - self.paid), ZERO)


def _views(session: Session, sales: list[Sale]) -> list[SaleView]:
    views = {s.id: SaleView(s.id, s.member_id, s.staff_id, money(s.total), s.note, s.created_at,
                            to_account=bool(s.to_account))
             for s in sales}
    if views:
        ids = list(views)
        for line in session.scalars(select(SaleLine).where(SaleLine.sale_id.in_(ids))
                                    .order_by(SaleLine.id)):
            views[line.sale_id].lines.append(line)
        for payment in session.scalars(select(Payment).where(Payment.sale_id.in_(ids))
                                       .order_by(Payment.id)):
            views[payment.sale_id].payments.append(payment)
    return [views[s.id] for s in sales]


def get_sale(session: Session, *, club_id: int, sale_id: int) -> SaleView:
    """A sale of this club with its lines and payments."""
    return _views(session, [_sale_row(session, club_id=club_id, sale_id=sale_id)])[0]


def member_sales(session: Session, *, club_id: int, member_id: int, limit: int = 50,
                 offset: int = 0) -> tuple[list[SaleView], int]:
    """A member's sales, newest first, and how many there are."""
    require_member(session, club_id=club_id, member_id=member_id)
    where = (Sale.club_id == club_id, Sale.member_id == member_id)
    total = session.scalar(select(func.count()).select_from(Sale).where(*where))
    sales = list(session.scalars(select(Sale).where(*where)
                                 .order_by(Sale.created_at.desc(), Sale.id.desc())
                                 .limit(limit).offset(offset)))
    return _views(session, sales), total


@dataclass(frozen=True)
class Balance:
    member_id: int
    total_sales: Decimal
    paid: Decimal
    refunded: Decimal
    debt: Decimal


def debt_expression(club_id, member_id):
    """SQL for what a member owes: sales total minus payments (refunds give back paid money,
    they don't create debt). `club_id`/`member_id` may be values or bind parameters."""
    of_member = (Sale.club_id == club_id, Sale.member_id == member_id)
    total = select(func.coalesce(func.sum(Sale.total), 0)).where(*of_member).scalar_subquery()
    paid = (select(func.coalesce(func.sum(Payment.amount), 0))
            .join(Sale, Sale.id == Payment.sale_id)
            .where(*of_member, Payment.kind == PAYMENT).scalar_subquery())
    return total - paid


def _balance_row(session: Session, *, club_id: int, member_id: int):
    of_member = (Sale.club_id == club_id, Sale.member_id == member_id)
    total = select(func.coalesce(func.sum(Sale.total), 0)).where(*of_member).scalar_subquery()
    paid_sum = (select(func.coalesce(func.sum(Payment.amount), 0))
                .join(Sale, Sale.id == Payment.sale_id))
    paid = paid_sum.where(*of_member, Payment.kind == PAYMENT).scalar_subquery()
    refunded = paid_sum.where(*of_member, Payment.kind == REFUND).scalar_subquery()
    return session.execute(select(total, paid, refunded)).one()


def member_balance(session: Session, *, club_id: int, member_id: int) -> Balance:
    """What a member bought, paid, got refunded and still owes (debt = total − paid)."""
    require_member(session, club_id=club_id, member_id=member_id)
    total, paid, refunded = (money(v) for v in _balance_row(session, club_id=club_id,
                                                            member_id=member_id))
    return Balance(member_id, total, paid, -refunded, max(money(total - paid), ZERO))


def member_debt(session: Session, *, club_id: int, member_id: int) -> Decimal:
    """What the member still owes across all sales (0 when nothing); one SQL statement."""
    total, paid, _refunded = _balance_row(session, club_id=club_id, member_id=member_id)
    return max(money(money(total) - money(paid)), ZERO)

