from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from app.billing.schemas import PaymentMethod, Payments, PriceIn, RefId, SaleRead
from app.core.schemas import In, Out

COST_STEP = Decimal("0.0001")
MAX_QUANTITY = 100_000
MAX_STOCK_LEVEL = 1_000_000


def _to_cost(value: Decimal) -> Decimal:
    return value.quantize(COST_STEP, rounding=ROUND_HALF_UP)


# A unit cost: up to 8 digits before the point and 4 after (Numeric(12,4)).
UnitCostIn = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=4),
                       AfterValidator(_to_cost)]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY)]
Day = Annotated[date, Field(ge=date(2000, 1, 1), le=date(2100, 12, 31))]


class MovementKind(StrEnum):
    receipt = "receipt"
    sale = "sale"
    return_ = "return"
    write_off = "write_off"
    adjustment = "adjustment"


class WriteOffReason(StrEnum):
    expired = "expired"
    damaged = "damaged"
    staff_use = "staff_use"
    other = "other"


# ----------------------------------------------------------------------------- products

def _sku(value: str) -> str:
    if not value or any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("a SKU is letters, digits and signs without spaces")
    return value.upper()


Sku = Annotated[str, Field(min_length=1, max_length=40), AfterValidator(_sku)]


class ProductCreate(In):
    sku: Sku = Field(description="stock-keeping unit, unique in the club (stored upper-case)")
    name: str = Field(min_length=1, max_length=120)
    category: str = Field("other", min_length=1, max_length=50)
    unit: str = Field("pcs", min_length=1, max_length=20, description="pcs, bottle, scoop …")
    sale_price: PriceIn
    reorder_level: int = Field(0, ge=0, le=MAX_STOCK_LEVEL,
                               description="low stock when on hand is at or below this")
    reorder_quantity: int | None = Field(None, ge=1, le=MAX_STOCK_LEVEL,
                                         description="usual order size; None: suggest by cover")
    active: bool = True


class ProductUpdate(In):
    """Any subset of a product's fields. Cost and stock change only through the ledger."""

    sku: Sku | None = None
    name: str | None = Field(None, min_length=1, max_length=120)
    category: str | None = Field(None, min_length=1, max_length=50)
    unit: str | None = Field(None, min_length=1, max_length=20)
    sale_price: PriceIn | None = None
    reorder_level: int | None = Field(None, ge=0, le=MAX_STOCK_LEVEL)
    reorder_quantity: int | None = Field(None, ge=1, le=MAX_STOCK_LEVEL)
    active: bool | None = None

    @field_validator("sku", "name", "category", "unit", "sale_price", "reorder_level", "active")
    @classmethod
    def _not_null(cls, value):
        if value is None:
            raise ValueError("may be left out but not set to null")
        return value


class ProductRead(Out):
    """What every staff member sees: no cost, no margin."""

    id: int
    sku: str
    name: str
    category: str
    unit: str
    sale_price: Decimal
    reorder_level: int
    reorder_quantity: int | None
    active: bool
    on_hand: int
    low_stock: bool


class ProductCostRead(ProductRead):
    """For owners and managers: with the current average cost and the unit margin."""

    avg_cost: Decimal = Field(description="weighted average cost per unit")
    margin: Decimal = Field(description="sale_price − avg_cost per unit")
    margin_pct: Decimal | None = Field(description="margin as % of the sale price")
    stock_value: Decimal = Field(description="on_hand × avg_cost")


# ----------------------------------------------------------------------------- stock and movements

class StockRead(Out):
    product_id: int
    sku: str
    name: str
    category: str
    unit: str
    active: bool
    on_hand: int
    reorder_level: int
    low_stock: bool


class StockCostRead(StockRead):
    avg_cost: Decimal
    stock_value: Decimal


class ReceiptCreate(In):
    product_id: RefId
    quantity: Quantity
    unit_cost: UnitCostIn
    supplier: str | None = Field(None, min_length=1, max_length=200)
    note: str | None = Field(None, max_length=1000)


class WriteOffCreate(In):
    product_id: RefId
    quantity: Quantity
    reason: WriteOffReason
    note: str | None = Field(None, max_length=1000)


class StockCount(In):
    product_id: RefId
    counted: int = Field(ge=0, le=MAX_STOCK_LEVEL)


class StocktakeCreate(In):
    counts: list[StockCount] = Field(min_length=1, max_length=1000)
    note: str | None = Field(None, max_length=1000)

    @field_validator("counts")
    @classmethod
    def _each_product_once(cls, counts: list[StockCount]) -> list[StockCount]:
        seen: set[int] = set()
        for count in counts:
            if count.product_id in seen:
                raise ValueError(f"product {count.product_id} is counted twice; give one count "
                                 "per product")
            seen.add(count.product_id)
        return counts


class MovementRead(Out):
    id: int
    product_id: int
    kind: str
    quantity: int = Field(description="signed change of stock on hand")
    unit_cost: Decimal
    cost_value: Decimal = Field(description="quantity × unit_cost, signed like quantity")
    unit_price: Decimal | None
    revenue: Decimal
    on_hand_after: int
    reason: str | None
    counted: int | None
    supplier: str | None
    note: str | None
    sale_id: int | None
    staff_id: int | None
    created_at: datetime


class ReceiptRead(MovementRead):
    avg_cost: Decimal = Field(description="the product's weighted average cost after the receipt")


class StocktakeLine(Out):
    product_id: int
    sku: str
    name: str
    expected: int
    counted: int
    difference: int
    value: Decimal = Field(description="difference × avg cost (negative: stock lost)")
    movement_id: int | None


class StocktakeRead(Out):
    lines: list[StocktakeLine]
    adjusted: int = Field(description="products whose count differed")
    units_difference: int
    value_difference: Decimal


# ----------------------------------------------------------------------------- selling

class ProductLine(In):
    """Line kind "product" of a sale (`POST /api/v1/sales`): `{"kind": "product", ...}`."""

    product_id: RefId
    quantity: Quantity = 1


class InventorySaleCreate(In):
    member_id: RefId | None = Field(None, description="None for a walk-in sale paid in full")
    items: list[ProductLine] = Field(min_length=1, max_length=50)
    payments: Payments = Field(default_factory=list)
    note: str | None = Field(None, max_length=1000)


class ReturnLine(In):
    product_id: RefId
    quantity: Quantity


class SaleRefundCreate(In):
    lines: list[ReturnLine] | None = Field(
        None, min_length=1, max_length=50,
        description="what comes back; leave out to return everything not yet returned")
    method: PaymentMethod = PaymentMethod.cash

    @field_validator("lines")
    @classmethod
    def _each_product_once(cls, lines: list[ReturnLine] | None) -> list[ReturnLine] | None:
        if lines is not None and len({line.product_id for line in lines}) != len(lines):
            raise ValueError("give each product once, with the total quantity returned")
        return lines


class ReturnedLine(Out):
    product_id: int
    quantity: int
    unit_price: Decimal
    amount: Decimal
    movement_id: int


class SaleRefundRead(Out):
    returned: list[ReturnedLine]
    goods_value: Decimal = Field(description="selling value of what came back")
    refunded: Decimal = Field(description="money paid back now (at most what was paid)")
    not_refunded: Decimal = Field(description="value of returned goods that was never paid, so "
                                              "no money went back for it")
    sale: SaleRead


# ----------------------------------------------------------------------------- analytics

class StockValueRow(Out):
    product_id: int
    sku: str
    name: str
    category: str
    on_hand: int
    avg_cost: Decimal
    value: Decimal


class StockValueReport(Out):
    as_of: datetime
    items: list[StockValueRow]
    total_units: int
    total_value: Decimal


class SalesRow(Out):
    product_id: int | None = None
    sku: str | None = None
    name: str | None = None
    category: str
    units: int = Field(description="units sold less units returned")
    revenue: Decimal
    cost: Decimal = Field(description="cost of goods sold, at the cost recorded with each sale")
    margin: Decimal
    margin_pct: Decimal | None


class SalesReport(Out):
    date_from: date
    date_to: date
    group_by: str
    items: list[SalesRow]
    units: int
    revenue: Decimal
    cost: Decimal
    margin: Decimal
    margin_pct: Decimal | None


class CoverRow(Out):
    product_id: int
    sku: str
    name: str
    category: str
    on_hand: int
    sold: int = Field(description="units sold (less returns) in the window")
    per_day: Decimal
    days_of_cover: Decimal | None = Field(description="on_hand ÷ per_day; None when nothing sold")
    opening: int = Field(description="on hand when the window began")
    turnover: Decimal | None = Field(description="sold ÷ average of opening and closing stock")


class CoverReport(Out):
    as_of: datetime
    window_days: int
    items: list[CoverRow]


class LowStockRow(Out):
    product_id: int
    sku: str
    name: str
    category: str
    unit: str
    on_hand: int
    reorder_level: int
    reorder_quantity: int | None
    sold: int
    per_day: Decimal
    days_of_cover: Decimal | None
    suggested_order: int


class LowStockReport(Out):
    as_of: datetime
    window_days: int
    cover_days: int
    items: list[LowStockRow]


class ShrinkageRow(Out):
    kind: str
    reason: str
    product_id: int | None = None
    sku: str | None = None
    name: str | None = None
    movements: int
    units_lost: int = Field(description="units gone (negative: a count found more than expected)")
    value_lost: Decimal


class ShrinkageReport(Out):
    date_from: date
    date_to: date
    group_by: str
    items: list[ShrinkageRow]
    units_lost: int
    value_lost: Decimal
