"""Café and bar: products, the stock ledger (receipts, sales, returns, write-offs, stocktakes),
selling through billing (line kind "product"), low-stock tasks and stock analytics.

Stock on hand lives in `stock_levels` and changes only by one guarded UPDATE per movement, in
the transaction that writes the movement::

    UPDATE stock_levels SET on_hand = on_hand - :n WHERE product_id = :p AND on_hand >= :n

Zero rows means there is not enough: the sale is refused (409 `out_of_stock`), never negative.
Receipts and returns change the weighted average cost, so they lock the level row first
(`FOR NO KEY UPDATE`; SQLite's BEGIN IMMEDIATE already serialises writers), compute the new
average in Decimal and write both columns in one UPDATE.
"""
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from app.billing import service as billing_service
from app.billing.models import Sale
from app.billing.schemas import MAX_MONEY, PaymentIn, PaymentMethod
from app.billing.service import LineValues
from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core import clock
from app.core.actors import Actor
from app.core.db import club_row
from app.core.errors import Conflict, Invalid, NotFound
from app.core.types import money
from app.crm.models import Task
from app.inventory.models import Product, StockLevel, StockMovement
from app.inventory.schemas import (
    COST_STEP,
    MovementKind,
    ProductCreate,
    ProductLine,
    ReturnLine,
    StockCount,
    WriteOffReason,
)

PRODUCT = "product"
RECEIPT, SALE, RETURN = MovementKind.receipt.value, MovementKind.sale.value, MovementKind.return_.value
WRITE_OFF, ADJUSTMENT = MovementKind.write_off.value, MovementKind.adjustment.value
STOCKTAKE_REASON = "stocktake"
REORDER_TASK = "reorder"
ZERO = Decimal("0.00")
DEFAULT_PERIOD_DAYS = 28
MAX_PERIOD_DAYS = 3660

M, P, L = StockMovement, Product, StockLevel


def _club(session: Session, club_id: int) -> Club:
    return clubs_service.get_club(session, club_id)


def _cost(value: Decimal) -> Decimal:
    return Decimal(value).quantize(COST_STEP, rounding=ROUND_HALF_UP)


def _cents(value) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _ratio(numerator, denominator, step: str) -> Decimal | None:
    if not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(step),
                                                                rounding=ROUND_HALF_UP)


def weighted_average_cost(on_hand: int, avg_cost: Decimal, quantity: int,
                          unit_cost: Decimal) -> Decimal:
    """(on_hand × avg + quantity × unit_cost) / (on_hand + quantity), to 4 decimals."""
    total = on_hand + quantity
    if total <= 0:
        return _cost(unit_cost)
    return _cost((on_hand * Decimal(avg_cost) + quantity * Decimal(unit_cost)) / total)


# ----------------------------------------------------------------------------- products

@dataclass
class ProductView:
    """A product with its stock level (shape of `ProductRead` / `ProductCostRead`)."""

    product: Product
    on_hand: int
    avg_cost: Decimal

    def __getattr__(self, name):
        if name.startswith("_") or name == "product":
            raise AttributeError(name)
        return getattr(self.product, name)

    @property
    def low_stock(self) -> bool:
        return self.on_hand <= self.product.reorder_level

    @property
    def margin(self) -> Decimal:
        return _cost(self.product.sale_price - self.avg_cost)

    @property
    def margin_pct(self) -> Decimal | None:
        return _ratio(self.margin * 100, self.product.sale_price, "0.1")

    @property
    def stock_value(self) -> Decimal:
        return _cents(self.on_hand * self.avg_cost)


def get_product(session: Session, *, club_id: int, product_id: int,
                for_update: bool = False) -> Product:
    """A product of this club, else NotFound."""
    return club_row(session, Product, club_id=club_id, row_id=product_id, for_update=for_update,
                    missing=NotFound("Product not found", code="product_not_found",
                                     details={"product_id": product_id}))


def _level(session: Session, product_id: int) -> tuple[int, Decimal]:
    row = session.execute(select(L.on_hand, L.avg_cost).where(L.product_id == product_id)).one()
    return row.on_hand, Decimal(row.avg_cost)


def read_product(session: Session, *, club_id: int, product_id: int) -> ProductView:
    product = get_product(session, club_id=club_id, product_id=product_id)
    return ProductView(product, *_level(session, product.id))


def _refuse_taken_sku(session: Session, *, club_id: int, sku: str, except_id: int | None = None):
    where = [Product.club_id == club_id, Product.sku == sku]
    if except_id is not None:
        where.append(Product.id != except_id)
    other = session.scalar(select(Product.id).where(*where))
    if other is not None:
        raise Conflict(f"Another product already has the SKU {sku}", code="sku_taken",
                       details={"field": "sku", "product_id": other})


def create_product(session: Session, *, actor: Actor, data: ProductCreate) -> ProductView:
    """Add a product to the club's catalogue with zero stock (stock arrives by receipts)."""
    _refuse_taken_sku(session, club_id=actor.club_id, sku=data.sku)
    product = Product(club_id=actor.club_id, **data.model_dump())
    session.add(product)
    session.flush()
    session.add(StockLevel(club_id=actor.club_id, product_id=product.id, on_hand=0,
                           avg_cost=Decimal(0), reorder_alerted=False, updated_at=clock.now()))
    session.flush()
    return ProductView(product, 0, Decimal(0))


def update_product(session: Session, *, actor: Actor, product_id: int,
                   changes: dict) -> ProductView:
    """Change some of a product's fields; cost and stock change only through the ledger."""
    product = get_product(session, club_id=actor.club_id, product_id=product_id, for_update=True)
    if changes.get("sku") is not None and changes["sku"] != product.sku:
        _refuse_taken_sku(session, club_id=actor.club_id, sku=changes["sku"],
                          except_id=product.id)
    for name, value in changes.items():
        setattr(product, name, value)
    session.flush()
    on_hand, avg_cost = _level(session, product.id)
    if "reorder_level" in changes and on_hand > product.reorder_level:
        _rearm_low_stock(session, product.id)
    return ProductView(product, on_hand, avg_cost)


def list_products(session: Session, *, club_id: int, active: bool | None = None,
                  category: str | None = None, q: str | None = None, low_stock: bool = False,
                  limit: int = 100, offset: int = 0) -> tuple[list[ProductView], int]:
    """The club's products by category and name, with their stock, and how many match."""
    where = [P.club_id == club_id]
    if active is not None:
        where.append(P.active.is_(active))
    if category:
        where.append(P.category == category)
    if q:
        where.append(or_(P.name.icontains(q, autoescape=True),
                         P.sku.icontains(q, autoescape=True)))
    if low_stock:
        where.append(L.on_hand <= P.reorder_level)
    base = select(P, L.on_hand, L.avg_cost).join(L, L.product_id == P.id).where(*where)
    total = session.scalar(select(func.count()).select_from(base.subquery()))
    rows = session.execute(base.order_by(P.category, P.name, P.id).limit(limit).offset(offset))
    return [ProductView(p, on_hand, Decimal(avg)) for p, on_hand, avg in rows], total


# ----------------------------------------------------------------------------- the ledger

def _locked_level(session: Session, product_id: int) -> tuple[int, Decimal]:
    """Stock and average cost of a product, locked until the transaction ends."""
    row = session.execute(select(L.on_hand, L.avg_cost).where(L.product_id == product_id)
                          .with_for_update(key_share=True)).one()
    return row.on_hand, Decimal(row.avg_cost)


def _add_stock(session: Session, *, product_id: int, quantity: int,
               unit_cost: Decimal) -> tuple[int, Decimal]:
    """Stock comes in at `unit_cost`: on hand and weighted average cost after it."""
    on_hand, avg_cost = _locked_level(session, product_id)
    new_avg = weighted_average_cost(on_hand, avg_cost, quantity, unit_cost)
    after = session.execute(
        update(L).where(L.product_id == product_id)
        .values(on_hand=L.on_hand + quantity, avg_cost=new_avg, updated_at=clock.now())
        .returning(L.on_hand).execution_options(synchronize_session=False)).scalar_one()
    return after, new_avg


def _take_stock(session: Session, *, product_id: int, quantity: int) -> tuple[int, Decimal] | None:
    """Stock goes out: on hand and average cost after it, or None if there is not enough."""
    row = session.execute(
        update(L).where(L.product_id == product_id, L.on_hand >= quantity)
        .values(on_hand=L.on_hand - quantity, updated_at=clock.now())
        .returning(L.on_hand, L.avg_cost).execution_options(synchronize_session=False)).first()
    return None if row is None else (row.on_hand, Decimal(row.avg_cost))


def _units(product: Product, n: int) -> str:
    return f"{n} {product.unit}"


def _record(session: Session, *, club_id: int, product_id: int, kind: str, quantity: int,
            unit_cost: Decimal, on_hand_after: int, staff_id: int | None,
            created_at: datetime | None = None, **fields) -> StockMovement:
    cost_value = _cents(quantity * unit_cost)
    if max(abs(cost_value), abs(fields.get("revenue", ZERO))) > MAX_MONEY:
        raise Invalid(f"{abs(quantity)} units at this price or cost come to more than the "
                      f"largest amount that can be booked ({MAX_MONEY})", code="value_too_large",
                      details={"quantity": quantity})
    movement = StockMovement(club_id=club_id, product_id=product_id, kind=kind, quantity=quantity,
                             unit_cost=_cost(unit_cost), cost_value=cost_value,
                             on_hand_after=on_hand_after, staff_id=staff_id,
                             created_at=created_at or clock.now(), **{"revenue": ZERO} | fields)
    session.add(movement)
    session.flush()
    return movement


# ----------------------------------------------------------------------------- low stock

def _raise_low_stock_task(session: Session, *, club_id: int, product: Product, on_hand: int,
                          created_by: int | None) -> Task:
    """A CRM task for the managers: reorder this product (raised once per shortage)."""
    now = clock.now()
    order = (f"usual order {_units(product, product.reorder_quantity)}"
             if product.reorder_quantity else
             "see /api/v1/inventory/analytics/low-stock for a suggested quantity")
    task = Task(club_id=club_id, member_id=None,
                title=f"Reorder {product.name} ({product.sku})"[:200],
                details=(f"{_units(product, on_hand)} left, reorder level "
                         f"{_units(product, product.reorder_level)}; {order}."),
                kind=REORDER_TASK, assignee_role="manager",
                due_date=clubs_service.club_today_by_id(session, club_id),
                status="open", created_by=created_by, created_at=now, updated_at=now)
    session.add(task)
    session.flush()
    return task


def _check_low_stock(session: Session, *, club_id: int, product: Product, on_hand: int,
                     staff_id: int | None) -> None:
    """After stock went out: at or below the reorder level raises one task until restocked."""
    if on_hand > product.reorder_level:
        return
    armed = session.execute(
        update(L).where(L.product_id == product.id, L.reorder_alerted.is_(False))
        .values(reorder_alerted=True).returning(L.id)
        .execution_options(synchronize_session=False)).first()
    if armed is not None:
        _raise_low_stock_task(session, club_id=club_id, product=product, on_hand=on_hand,
                              created_by=staff_id)


def _rearm_low_stock(session: Session, product_id: int) -> None:
    session.execute(update(L).where(L.product_id == product_id, L.reorder_alerted.is_(True))
                    .values(reorder_alerted=False).execution_options(synchronize_session=False))


def _after_stock_in(session: Session, *, product: Product, on_hand: int) -> None:
    """Restocked above the reorder level: the next shortage raises a new task."""
    if on_hand > product.reorder_level:
        _rearm_low_stock(session, product.id)


# ----------------------------------------------------------------------------- receipts, write-offs

@dataclass
class ReceiptView:
    movement: StockMovement
    avg_cost: Decimal

    def __getattr__(self, name):
        if name.startswith("_") or name == "movement":
            raise AttributeError(name)
        return getattr(self.movement, name)


def receive_stock(session: Session, *, actor: Actor, product_id: int, quantity: int,
                  unit_cost: Decimal, supplier: str | None = None,
                  note: str | None = None) -> ReceiptView:
    """Goods from a supplier: stock up, weighted average cost updated."""
    if quantity < 1:
        raise Invalid("A receipt brings at least one unit", code="invalid_quantity")
    if unit_cost < 0:
        raise Invalid("A unit cost cannot be negative", code="invalid_cost")
    product = get_product(session, club_id=actor.club_id, product_id=product_id)
    unit_cost = _cost(unit_cost)
    on_hand, avg_cost = _add_stock(session, product_id=product.id, quantity=quantity,
                                   unit_cost=unit_cost)
    movement = _record(session, club_id=actor.club_id, product_id=product.id, kind=RECEIPT,
                       quantity=quantity, unit_cost=unit_cost, on_hand_after=on_hand,
                       staff_id=actor.user_id, supplier=supplier, note=note)
    _after_stock_in(session, product=product, on_hand=on_hand)
    return ReceiptView(movement, avg_cost)


def _not_enough(product: Product, wanted: int, left: int, *, code: str, doing: str) -> Conflict:
    return Conflict(f"Not enough {product.name} ({product.sku}) in stock: {_units(product, left)} "
                    f"left, {doing} {_units(product, wanted)}", code=code,
                    details={"product_id": product.id, "sku": product.sku, "on_hand": left,
                             "requested": wanted})


def write_off(session: Session, *, actor: Actor, product_id: int, quantity: int,
              reason: WriteOffReason | str, note: str | None = None) -> StockMovement:
    """Stock gone without a sale (expired, damaged, staff use, other), valued at average cost."""
    reason = WriteOffReason(reason)
    if quantity < 1:
        raise Invalid("A write-off removes at least one unit", code="invalid_quantity")
    product = get_product(session, club_id=actor.club_id, product_id=product_id)
    taken = _take_stock(session, product_id=product.id, quantity=quantity)
    if taken is None:
        raise _not_enough(product, quantity, _level(session, product.id)[0],
                          code="insufficient_stock", doing="cannot write off")
    on_hand, avg_cost = taken
    movement = _record(session, club_id=actor.club_id, product_id=product.id, kind=WRITE_OFF,
                       quantity=-quantity, unit_cost=avg_cost, on_hand_after=on_hand,
                       staff_id=actor.user_id, reason=reason.value, note=note)
    _check_low_stock(session, club_id=actor.club_id, product=product, on_hand=on_hand,
                     staff_id=actor.user_id)
    return movement


@dataclass
class StocktakeLineView:
    product_id: int
    sku: str
    name: str
    expected: int
    counted: int
    avg_cost: Decimal
    movement_id: int | None

    @property
    def difference(self) -> int:
        return self.counted - self.expected

    @property
    def value(self) -> Decimal:
        return _cents(self.difference * self.avg_cost)


@dataclass
class StocktakeView:
    lines: list[StocktakeLineView]

    @property
    def adjusted(self) -> int:
        return sum(1 for line in self.lines if line.difference)

    @property
    def units_difference(self) -> int:
        return sum(line.difference for line in self.lines)

    @property
    def value_difference(self) -> Decimal:
        return _cents(sum((line.value for line in self.lines), ZERO))


def stocktake(session: Session, *, actor: Actor, counts: Sequence[StockCount],
              note: str | None = None) -> StocktakeView:
    """Counted quantities: one adjustment movement per product whose count differs, at average
    cost; all products in one transaction, locked in id order while they are set."""
    if not counts:
        raise Invalid("A stocktake needs at least one count", code="empty_stocktake")
    wanted = {c.product_id: c.counted for c in counts}
    if len(wanted) != len(counts):
        raise Invalid("Each product may be counted once per stocktake", code="duplicate_count")
    if any(n < 0 for n in wanted.values()):
        raise Invalid("A count cannot be negative", code="invalid_count")
    products = {p.id: p for p in session.scalars(
        select(Product).where(Product.club_id == actor.club_id, Product.id.in_(list(wanted))))}
    missing = sorted(set(wanted) - set(products))
    if missing:
        raise NotFound(f"Product not found: {', '.join(map(str, missing))}",
                       code="product_not_found", details={"product_ids": missing})
    levels = session.execute(select(L.product_id, L.on_hand, L.avg_cost)
                             .where(L.product_id.in_(list(wanted))).order_by(L.product_id)
                             .with_for_update(key_share=True)).all()
    now = clock.now()
    lines = []
    for product_id, expected, avg_cost in levels:
        product, counted, avg_cost = products[product_id], wanted[product_id], Decimal(avg_cost)
        movement_id = None
        if counted != expected:
            set_to = session.execute(
                update(L).where(L.product_id == product_id, L.on_hand == expected)
                .values(on_hand=counted, updated_at=now).returning(L.on_hand)
                .execution_options(synchronize_session=False)).scalar()
            if set_to is None:  # cannot happen while we hold the lock; never write a guess
                raise Conflict("Stock changed while the count was saved; count again",
                               code="stock_changed")
            movement = _record(session, club_id=actor.club_id, product_id=product_id,
                               kind=ADJUSTMENT, quantity=counted - expected, unit_cost=avg_cost,
                               on_hand_after=counted, staff_id=actor.user_id, counted=counted,
                               reason=STOCKTAKE_REASON, note=note, created_at=now)
            movement_id = movement.id
            if counted < expected:
                _check_low_stock(session, club_id=actor.club_id, product=product,
                                 on_hand=counted, staff_id=actor.user_id)
            else:
                _after_stock_in(session, product=product, on_hand=counted)
        lines.append(StocktakeLineView(product_id, product.sku, product.name, expected, counted,
                                       avg_cost, movement_id))
    order = {c.product_id: i for i, c in enumerate(counts)}
    lines.sort(key=lambda line: order[line.product_id])
    return StocktakeView(lines)


def list_movements(session: Session, *, club_id: int, product_id: int | None = None,
                   kind: str | None = None, date_from: date | None = None,
                   date_to: date | None = None, limit: int = 100,
                   offset: int = 0) -> tuple[list[StockMovement], int]:
    """The ledger, newest first, optionally for one product, kind and period (club days)."""
    where = [M.club_id == club_id]
    if product_id is not None:
        get_product(session, club_id=club_id, product_id=product_id)
        where.append(M.product_id == product_id)
    if kind:
        where.append(M.kind == kind)
    if date_from is not None or date_to is not None:
        start, end = _bounds(_club(session, club_id), date_from or date(2000, 1, 1),
                             date_to or date(2100, 12, 31))
        where += [M.created_at >= start, M.created_at < end]
    total = session.scalar(select(func.count()).select_from(M).where(*where))
    rows = list(session.scalars(select(M).where(*where).order_by(M.created_at.desc(), M.id.desc())
                                .limit(limit).offset(offset)))
    return rows, total


# ----------------------------------------------------------------------------- selling

def fulfil_product_line(session: Session, *, actor: Actor, sale: Sale,
                        line_spec: ProductLine) -> LineValues:
    """Line kind "product": take the units from stock (never below zero) at the sale price,
    recording the average cost at this moment."""
    product = get_product(session, club_id=actor.club_id, product_id=line_spec.product_id)
    if not product.active:
        raise Invalid(f"{product.name} ({product.sku}) is no longer sold", code="product_inactive",
                      details={"product_id": product.id})
    quantity = line_spec.quantity
    taken = _take_stock(session, product_id=product.id, quantity=quantity)
    if taken is None:
        left = _level(session, product.id)[0]
        raise _not_enough(product, quantity, left, code="out_of_stock", doing="asked for")
    on_hand, avg_cost = taken
    price = money(product.sale_price)
    _record(session, club_id=actor.club_id, product_id=product.id, kind=SALE, quantity=-quantity,
            unit_cost=avg_cost, on_hand_after=on_hand, staff_id=actor.user_id, sale_id=sale.id,
            unit_price=price, revenue=money(price * quantity), created_at=sale.created_at)
    _check_low_stock(session, club_id=actor.club_id, product=product, on_hand=on_hand,
                     staff_id=actor.user_id)
    return LineValues(description=f"{product.name} ({product.sku})", unit_price=price,
                      quantity=quantity, item_id=product.id)


def product_lock_key(line: ProductLine) -> int:
    """Lines of one sale lock their products in id order (no deadlock between two sales)."""
    return line.product_id


def sell_products(session: Session, *, actor: Actor, member_id: int | None,
                  items: Sequence[ProductLine], payments: Sequence[PaymentIn] = (),
                  note: str | None = None) -> billing_service.SaleView:
    """A café sale through billing's single sale path; all lines or none."""
    lines = [{"kind": PRODUCT, "product_id": i.product_id, "quantity": i.quantity} for i in items]
    sale = billing_service.create_sale(session, actor=actor, member_id=member_id, lines=lines,
                                       payments=payments, note=note)
    return billing_service.get_sale(session, club_id=actor.club_id, sale_id=sale.id)


@dataclass
class ReturnedView:
    product_id: int
    quantity: int
    unit_price: Decimal
    amount: Decimal
    movement_id: int


@dataclass
class RefundView:
    returned: list[ReturnedView]
    goods_value: Decimal
    refunded: Decimal
    not_refunded: Decimal
    sale: billing_service.SaleView


def refund_sale(session: Session, *, actor: Actor, sale_id: int,
                lines: Sequence[ReturnLine] | None = None,
                method: PaymentMethod | str = PaymentMethod.cash) -> RefundView:
    """Take products back from a sale: stock returns at the cost it left with, and the money
    paid for them goes back through billing (never more than was paid, nor than was sold)."""
    method = PaymentMethod(method)
    club_id = actor.club_id
    sale = session.scalar(select(Sale).where(Sale.id == sale_id, Sale.club_id == club_id)
                          .with_for_update(key_share=True))  # one refund of a sale at a time
    if sale is None:
        raise NotFound("Sale not found", code="sale_not_found")
    sold = {r.product_id: r for r in session.execute(
        select(M.product_id, (-func.sum(M.quantity)).label("remaining"),
               func.max(M.unit_cost).filter(M.kind == SALE).label("unit_cost"),
               func.max(M.unit_price).filter(M.kind == SALE).label("unit_price"))
        .where(M.club_id == club_id, M.sale_id == sale.id, M.kind.in_((SALE, RETURN)))
        .group_by(M.product_id).order_by(M.product_id))}
    if not sold:
        raise Invalid("This sale has no café products to return", code="no_products_in_sale")
    if lines is None:
        wanted = [(pid, row.remaining) for pid, row in sold.items() if row.remaining > 0]
        if not wanted:
            raise Conflict("Everything on this sale was already returned",
                           code="already_returned")
    else:
        if len({line.product_id for line in lines}) != len(lines):
            raise Invalid("Give each product once, with the total quantity returned",
                          code="duplicate_line")
        wanted = []
        for line in lines:
            row = sold.get(line.product_id)
            if row is None:
                raise Invalid(f"Product {line.product_id} was not sold on this sale",
                              code="product_not_in_sale",
                              details={"product_id": line.product_id})
            if line.quantity < 1 or line.quantity > row.remaining:
                raise Invalid(f"Only {row.remaining} of product {line.product_id} can still be "
                              f"returned from this sale; {line.quantity} was asked",
                              code="return_exceeds_sold",
                              details={"product_id": line.product_id, "returnable": row.remaining,
                                       "requested": line.quantity})
            wanted.append((line.product_id, line.quantity))
        wanted.sort()
    products = {p.id: p for p in session.scalars(
        select(Product).where(Product.id.in_([pid for pid, _ in wanted])))}
    now = clock.now()
    returned = []
    for product_id, quantity in wanted:
        row, product = sold[product_id], products[product_id]
        unit_cost, price = Decimal(row.unit_cost), money(row.unit_price)
        on_hand, _avg = _add_stock(session, product_id=product_id, quantity=quantity,
                                   unit_cost=unit_cost)
        amount = money(price * quantity)
        movement = _record(session, club_id=club_id, product_id=product_id, kind=RETURN,
                           quantity=quantity, unit_cost=unit_cost, on_hand_after=on_hand,
                           staff_id=actor.user_id, sale_id=sale.id, unit_price=price,
                           revenue=-amount, created_at=now)
        _after_stock_in(session, product=product, on_hand=on_hand)
        returned.append(ReturnedView(product_id, quantity, price, amount, movement.id))
    value = money(sum((r.amount for r in returned), ZERO))
    view = billing_service.get_sale(session, club_id=club_id, sale_id=sale.id)
    amount = min(value, max(money(view.paid - view.refunded), ZERO))
    if amount > 0:
        billing_service.refund(session, actor=actor, sale_id=sale.id, amount=amount,
                               method=method, max_amount=value)
        view = billing_service.get_sale(session, club_id=club_id, sale_id=sale.id)
    return RefundView(returned, value, amount, money(value - amount), view)


# ----------------------------------------------------------------------------- stock

def stock(session: Session, *, club_id: int, active: bool | None = True,
          category: str | None = None, low_only: bool = False, limit: int = 200,
          offset: int = 0) -> tuple[list[dict], int]:
    """Stock on hand per product (with average cost and value, for those who may see them)."""
    where = [P.club_id == club_id]
    if active is not None:
        where.append(P.active.is_(active))
    if category:
        where.append(P.category == category)
    if low_only:
        where.append(L.on_hand <= P.reorder_level)
    base = (select(P.id.label("product_id"), P.sku, P.name, P.category, P.unit, P.active,
                   L.on_hand, P.reorder_level, (L.on_hand <= P.reorder_level).label("low_stock"),
                   L.avg_cost)
            .join(L, L.product_id == P.id).where(*where))
    total = session.scalar(select(func.count()).select_from(base.subquery()))
    rows = session.execute(base.order_by(P.category, P.name, P.id).limit(limit).offset(offset))
    items = [row._asdict() | {"low_stock": bool(row.low_stock), "avg_cost": Decimal(row.avg_cost),
                              "stock_value": _cents(row.on_hand * Decimal(row.avg_cost))}
             for row in rows]
    return items, total


# ----------------------------------------------------------------------------- analytics

def _bounds(club: Club, date_from: date, date_to: date) -> tuple[datetime, datetime]:
    """Club days [from, to] as UTC instants [start, end)."""
    zone = clubs_service.club_zone(club)
    start = datetime.combine(date_from, time.min, tzinfo=zone).astimezone(UTC)
    end = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=zone).astimezone(UTC)
    return start, end


def period(session: Session, *, club_id: int, date_from: date | None,
           date_to: date | None) -> tuple[date, date]:
    """The days a report covers: default the last 28 days up to today in the club."""
    date_to = date_to or clubs_service.club_today_by_id(session, club_id)
    date_from = date_from or date_to - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if date_from > date_to:
        raise Invalid(f"The period starts ({date_from}) after it ends ({date_to})",
                      code="invalid_period", details={"field": "from"})
    if (date_to - date_from).days >= MAX_PERIOD_DAYS:
        raise Invalid(f"A report covers at most {MAX_PERIOD_DAYS} days", code="period_too_long",
                      details={"field": "from"})
    return date_from, date_to


def stock_value(session: Session, *, club_id: int) -> dict:
    """Stock on hand and its value at average cost, per product (active or still in stock)."""
    value = L.on_hand * L.avg_cost
    rows = session.execute(
        select(P.id.label("product_id"), P.sku, P.name, P.category, L.on_hand, L.avg_cost,
               value.label("value"))
        .join(L, L.product_id == P.id)
        .where(P.club_id == club_id, or_(P.active.is_(True), L.on_hand > 0))
        .order_by(P.category, P.name, P.id)).all()
    items = [r._asdict() | {"avg_cost": _cost(r.avg_cost), "value": _cents(r.value)}
             for r in rows]
    return {"as_of": clock.now(), "items": items,
            "total_units": sum(i["on_hand"] for i in items),
            "total_value": _cents(sum((i["value"] for i in items), ZERO))}


_SOLD = (M.kind.in_((SALE, RETURN)))
_UNITS = (-func.sum(M.quantity)).label("units")
_REVENUE = func.sum(M.revenue).label("revenue")
_COST = (-func.sum(M.cost_value)).label("cost")
_MARGIN = (func.sum(M.revenue) + func.sum(M.cost_value)).label("margin")


def _sales_select(session: Session, *, club_id: int, date_from: date | None,
                  date_to: date | None, group_by: str):
    date_from, date_to = period(session, club_id=club_id, date_from=date_from, date_to=date_to)
    start, end = _bounds(_club(session, club_id), date_from, date_to)
    if group_by == "product":
        keys = [P.id.label("product_id"), P.sku, P.name, P.category]
    elif group_by == "category":
        keys = [P.category]
    else:
        raise Invalid("group_by is product or category", code="invalid_group_by")
    stmt = (select(*keys, _UNITS, _REVENUE, _COST, _MARGIN)
            .join(P, P.id == M.product_id)
            .where(M.club_id == club_id, _SOLD, M.created_at >= start, M.created_at < end)
            .group_by(*keys))
    return stmt, date_from, date_to


def _sales_row(row) -> dict:
    data = row._asdict()
    revenue, cost, margin = _cents(row.revenue), _cents(row.cost), _cents(row.margin)
    return data | {"revenue": revenue, "cost": cost, "margin": margin,
                   "margin_pct": _ratio(margin * 100, revenue, "0.1")}


def _sales_report(date_from: date, date_to: date, group_by: str, items: list[dict]) -> dict:
    revenue = _cents(sum((i["revenue"] for i in items), ZERO))
    margin = _cents(sum((i["margin"] for i in items), ZERO))
    return {"date_from": date_from, "date_to": date_to, "group_by": group_by, "items": items,
            "units": sum(i["units"] for i in items), "revenue": revenue,
            "cost": _cents(sum((i["cost"] for i in items), ZERO)), "margin": margin,
            "margin_pct": _ratio(margin * 100, revenue, "0.1")}


def sales_report(session: Session, *, club_id: int, date_from: date | None = None,
                 date_to: date | None = None, group_by: str = "product") -> dict:
    """Units, revenue, cost (as recorded with each sale) and margin by product or category;
    returns count against the period they happen in."""
    stmt, date_from, date_to = _sales_select(session, club_id=club_id, date_from=date_from,
                                             date_to=date_to, group_by=group_by)
    order = [P.category] if group_by == "category" else [P.category, P.name, P.id]
    items = [_sales_row(r) for r in session.execute(stmt.order_by(*order))]
    return _sales_report(date_from, date_to, group_by, items)


TOP_BY = {"units": "units", "revenue": "revenue", "margin": "margin"}


def top_sellers(session: Session, *, club_id: int, date_from: date | None = None,
                date_to: date | None = None, by: str = "units", limit: int = 10) -> dict:
    """The products that sold most in the period, by units, revenue or margin."""
    if by not in TOP_BY:
        raise Invalid("by is units, revenue or margin", code="invalid_order")
    stmt, date_from, date_to = _sales_select(session, club_id=club_id, date_from=date_from,
                                             date_to=date_to, group_by="product")
    sort = {"units": _UNITS, "revenue": _REVENUE, "margin": _MARGIN}[by]
    rows = session.execute(stmt.order_by(sort.desc(), P.sku).limit(limit))
    return _sales_report(date_from, date_to, f"product by {by}", [_sales_row(r) for r in rows])


def _cover_select(club_id: int, since: datetime):
    sold = func.coalesce(-func.sum(M.quantity).filter(_SOLD), 0).label("sold")
    net = func.coalesce(func.sum(M.quantity), 0).label("net")
    keys = [P.id.label("product_id"), P.sku, P.name, P.category, P.unit, P.reorder_level,
            P.reorder_quantity, L.on_hand]
    return (select(*keys, sold, net)
            .join(L, L.product_id == P.id)
            .outerjoin(M, and_(M.product_id == P.id, M.created_at >= since))
            .where(P.club_id == club_id, P.active.is_(True))
            .group_by(*keys)), sold, net


def _cover_fields(row, window_days: int) -> dict:
    sold = int(row.sold)
    per_day = (Decimal(sold) / window_days).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    days = _ratio(row.on_hand * window_days, sold, "0.1") if sold > 0 else None
    return {"sold": sold, "per_day": per_day, "days_of_cover": days}


def cover_report(session: Session, *, club_id: int, window_days: int = 28) -> dict:
    """Per active product: units sold in the last `window_days`, the daily rate, days of cover
    at that rate, and turnover (sold ÷ average of opening and closing stock)."""
    now = clock.now()
    stmt, _sold, _net = _cover_select(club_id, now - timedelta(days=window_days))
    items = []
    for row in session.execute(stmt.order_by(P.category, P.name, P.id)):
        opening = row.on_hand - int(row.net)
        items.append({"product_id": row.product_id, "sku": row.sku, "name": row.name,
                      "category": row.category, "on_hand": row.on_hand, "opening": opening,
                      "turnover": _ratio(2 * int(row.sold), opening + row.on_hand, "0.01")
                      if row.sold > 0 else None}
                     | _cover_fields(row, window_days))
    return {"as_of": now, "window_days": window_days, "items": items}


def low_stock(session: Session, *, club_id: int, window_days: int = 28,
              cover_days: int = 14) -> dict:
    """Active products at or below their reorder level, with what to order: the usual reorder
    quantity if set, else enough for `cover_days` at the recent rate and at least enough to lift
    stock above the reorder level."""
    now = clock.now()
    stmt, sold, _net = _cover_select(club_id, now - timedelta(days=window_days))
    need = case((sold > 0, (sold * cover_days + window_days - 1) // window_days), else_=0)
    floor = P.reorder_level + 1
    target = case((need > floor, need), else_=floor)
    suggested = func.coalesce(P.reorder_quantity, target - L.on_hand).label("suggested_order")
    stmt = (stmt.add_columns(suggested).where(L.on_hand <= P.reorder_level)
            .order_by(L.on_hand - P.reorder_level, P.name, P.id))
    items = [{"product_id": r.product_id, "sku": r.sku, "name": r.name, "category": r.category,
              "unit": r.unit, "on_hand": r.on_hand, "reorder_level": r.reorder_level,
              "reorder_quantity": r.reorder_quantity, "suggested_order": int(r.suggested_order)}
             | _cover_fields(r, window_days)
             for r in session.execute(stmt)]
    return {"as_of": now, "window_days": window_days, "cover_days": cover_days, "items": items}


def shrinkage(session: Session, *, club_id: int, date_from: date | None = None,
              date_to: date | None = None, group_by: str = "reason") -> dict:
    """Stock lost other than by selling: write-offs by reason and stocktake differences, in units
    and at the cost recorded with each movement."""
    date_from, date_to = period(session, club_id=club_id, date_from=date_from, date_to=date_to)
    start, end = _bounds(_club(session, club_id), date_from, date_to)
    keys = [M.kind, M.reason]
    if group_by == "product":
        keys += [P.id.label("product_id"), P.sku, P.name]
    elif group_by != "reason":
        raise Invalid("group_by is reason or product", code="invalid_group_by")
    rows = session.execute(
        select(*keys, func.count(M.id).label("movements"),
               (-func.sum(M.quantity)).label("units_lost"),
               (-func.sum(M.cost_value)).label("value_lost"))
        .join(P, P.id == M.product_id)
        .where(M.club_id == club_id, M.kind.in_((WRITE_OFF, ADJUSTMENT)),
               M.created_at >= start, M.created_at < end)
        .group_by(*keys).order_by(*keys)).all()
    items = [r._asdict() | {"value_lost": _cents(r.value_lost)} for r in rows]
    return {"date_from": date_from, "date_to": date_to, "group_by": group_by, "items": items,
            "units_lost": sum(i["units_lost"] for i in items),
            "value_lost": _cents(sum((i["value_lost"] for i in items), ZERO))}
