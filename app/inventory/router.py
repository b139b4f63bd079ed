from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.billing.schemas import SaleRead
from app.clubs.deps import DeskActor, ManagerActor, StaffActor
from app.core.actors import MANAGERS, Actor
from app.core.csvout import csv_response
from app.core.deps import SessionDep
from app.core.idempotency import Idempotency, run_once
from app.core.schemas import IdPath, LargeLimit, LargeOffset, Page, SmallLimit
from app.inventory import service
from app.inventory.schemas import (
    CoverReport,
    Day,
    InventorySaleCreate,
    LowStockReport,
    MovementKind,
    MovementRead,
    ProductCostRead,
    ProductCreate,
    ProductRead,
    ProductUpdate,
    ReceiptCreate,
    ReceiptRead,
    SaleRefundCreate,
    SaleRefundRead,
    SalesReport,
    ShrinkageReport,
    StockCostRead,
    StockRead,
    StocktakeCreate,
    StocktakeRead,
    StockValueReport,
    WriteOffCreate,
)

router = APIRouter(prefix="/api/v1/inventory", tags=["café and bar"])

From = Annotated[Day | None, Query(alias="from", description="first day (club time); default: "
                                                               "27 days before `to`")]
To = Annotated[Day | None, Query(alias="to", description="last day (club time); default today")]
Category = Annotated[str | None, Query(min_length=1, max_length=50)]
Window = Annotated[int, Query(ge=1, le=365, description="days of sales the rate is taken over")]
CoverDays = Annotated[int, Query(ge=1, le=365, description="days the suggested order should last")]


class Format(StrEnum):
    json = "json"
    csv = "csv"


FormatQ = Annotated[Format, Query(alias="format", description="json (default) or csv")]


def _sees_costs(actor: Actor) -> bool:
    return actor.role in MANAGERS


def _product(actor: Actor, view) -> ProductRead:
    return (ProductCostRead if _sees_costs(actor) else ProductRead).model_validate(view)


# ----------------------------------------------------------------------------- products

@router.post("/products", response_model=ProductCostRead, status_code=201)
def create_product(session: SessionDep, actor: ManagerActor, body: ProductCreate):
    """Add a product (owners and managers); its stock starts at zero and arrives by receipts."""
    return ProductCostRead.model_validate(service.create_product(session, actor=actor, data=body))


@router.get("/products", response_model=Page[ProductCostRead] | Page[ProductRead])
def list_products(session: SessionDep, actor: StaffActor, active: bool | None = None,
                  category: Category = None,
                  q: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
                  low_stock: bool = False, limit: LargeLimit = 100, offset: LargeOffset = 0):
    """The catalogue with stock on hand; cost and margin only for owners and managers."""
    items, total = service.list_products(session, club_id=actor.club_id, active=active,
                                         category=category, q=q, low_stock=low_stock,
                                         limit=limit, offset=offset)
    schema = ProductCostRead if _sees_costs(actor) else ProductRead
    return Page[schema](items=[schema.model_validate(i) for i in items], total=total,
                        limit=limit, offset=offset)


@router.get("/products/{product_id}", response_model=ProductCostRead | ProductRead)
def get_product(session: SessionDep, actor: StaffActor, product_id: IdPath("product id")):
    return _product(actor, service.read_product(session, club_id=actor.club_id,
                                                product_id=product_id))


@router.patch("/products/{product_id}", response_model=ProductCostRead)
def update_product(session: SessionDep, actor: ManagerActor, product_id: IdPath("product id"),
                   body: ProductUpdate):
    """Change a product (owners and managers). Cost and stock change only through the ledger."""
    return ProductCostRead.model_validate(service.update_product(
        session, actor=actor, product_id=product_id, changes=body.model_dump(exclude_unset=True)))


# ----------------------------------------------------------------------------- stock and ledger

@router.get("/stock", response_model=Page[StockCostRead] | Page[StockRead])
def stock(session: SessionDep, actor: StaffActor, category: Category = None,
          low_only: bool = False,
          active: Annotated[bool | None, Query(description="default: active products")] = True,
          limit: LargeLimit = 200, offset: LargeOffset = 0):
    """Stock on hand per product (with average cost and value for owners and managers)."""
    items, total = service.stock(session, club_id=actor.club_id, active=active, category=category,
                                 low_only=low_only, limit=limit, offset=offset)
    schema = StockCostRead if _sees_costs(actor) else StockRead
    return Page[schema](items=[schema.model_validate(i) for i in items], total=total,
                        limit=limit, offset=offset)


@router.post("/receipts", response_model=ReceiptRead, status_code=201)
def receive_stock(session: SessionDep, actor: ManagerActor, body: ReceiptCreate,
                  idem: Idempotency):
    """Goods from a supplier: stock goes up and the weighted average cost is updated.

    Send an `Idempotency-Key` so a retried request never books the goods twice.
    """
    return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=201,
                    action=lambda: ReceiptRead.model_validate(service.receive_stock(
                        session, actor=actor, product_id=body.product_id,
                        quantity=body.quantity, unit_cost=body.unit_cost,
                        supplier=body.supplier, note=body.note)))


@router.post("/write-offs", response_model=MovementRead, status_code=201)
def write_off(session: SessionDep, actor: ManagerActor, body: WriteOffCreate, idem: Idempotency):
    """Stock gone without a sale: expired, damaged, staff use or other (at average cost)."""
    return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=201,
                    action=lambda: MovementRead.model_validate(service.write_off(
                        session, actor=actor, product_id=body.product_id,
                        quantity=body.quantity, reason=body.reason, note=body.note)))


@router.post("/stocktakes", response_model=StocktakeRead, status_code=201)
def stocktake(session: SessionDep, actor: ManagerActor, body: StocktakeCreate,
              idem: Idempotency):
    """Counted quantities; every product whose count differs gets one adjustment, all at once."""
    return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=201,
                    action=lambda: StocktakeRead.model_validate(service.stocktake(
                        session, actor=actor, counts=body.counts, note=body.note)))


@router.get("/movements", response_model=Page[MovementRead])
def movements(session: SessionDep, actor: ManagerActor,
              product_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
              kind: MovementKind | None = None, date_from: From = None, date_to: To = None,
              limit: LargeLimit = 100, offset: LargeOffset = 0):
    """The stock ledger, newest first (owners and managers)."""
    items, total = service.list_movements(session, club_id=actor.club_id, product_id=product_id,
                                          kind=kind.value if kind else None,
                                          date_from=date_from, date_to=date_to, limit=limit,
                                          offset=offset)
    return Page[MovementRead](items=[MovementRead.model_validate(m) for m in items], total=total,
                              limit=limit, offset=offset)


# ----------------------------------------------------------------------------- selling

@router.post("/sales", response_model=SaleRead, status_code=201)
def sell(session: SessionDep, actor: DeskActor, body: InventorySaleCreate, idem: Idempotency):
    """A café sale: the same as `POST /api/v1/sales` with lines of kind "product".

    Without `member_id` it must be paid in full; with one, what is not paid is the member's debt.
    """
    return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=201,
                    action=lambda: SaleRead.model_validate(service.sell_products(
                        session, actor=actor, member_id=body.member_id, items=body.items,
                        payments=body.payments, note=body.note)))


@router.post("/sales/{sale_id}/refund", response_model=SaleRefundRead, status_code=201)
def refund(session: SessionDep, actor: ManagerActor, sale_id: IdPath("sale id"),
           body: SaleRefundCreate, idem: Idempotency):
    """Take products back (some lines, or everything not yet returned; owners and managers):
    stock returns at its original cost, the money paid for them goes back."""
    return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=201,
                    action=lambda: SaleRefundRead.model_validate(service.refund_sale(
                        session, actor=actor, sale_id=sale_id, lines=body.lines,
                        method=body.method)))


# ----------------------------------------------------------------------------- analytics

def _report(report: BaseModel, fmt: Format, name: str):
    if fmt is Format.json:
        return report
    items = report.items
    row_model = type(report).model_fields["items"].annotation.__args__[0]
    columns = list(row_model.model_fields)
    return csv_response(name, columns, ([getattr(item, c) for c in columns] for item in items))


CSV_RESPONSE = {200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with ?format=csv"}}


@router.get("/analytics/stock-value", response_model=StockValueReport, responses=CSV_RESPONSE)
def stock_value(session: SessionDep, actor: ManagerActor, fmt: FormatQ = Format.json):
    """Stock on hand and its value at weighted average cost, per product."""
    return _report(StockValueReport.model_validate(
        service.stock_value(session, club_id=actor.club_id)), fmt, "stock-value")


@router.get("/analytics/sales", response_model=SalesReport, responses=CSV_RESPONSE)
def sales(session: SessionDep, actor: ManagerActor, date_from: From = None, date_to: To = None,
          group_by: Annotated[str, Query(pattern="^(product|category)$")] = "product",
          fmt: FormatQ = Format.json):
    """Units, revenue, cost of goods (as recorded at each sale) and margin for a period."""
    return _report(SalesReport.model_validate(service.sales_report(
        session, club_id=actor.club_id, date_from=date_from, date_to=date_to,
        group_by=group_by)), fmt, f"sales-by-{group_by}")


@router.get("/analytics/top-sellers", response_model=SalesReport, responses=CSV_RESPONSE)
def top_sellers(session: SessionDep, actor: ManagerActor, date_from: From = None,
                date_to: To = None,
                by: Annotated[str, Query(pattern="^(units|revenue|margin)$")] = "units",
                limit: SmallLimit = 10, fmt: FormatQ = Format.json):
    """The best-selling products of a period by units, revenue or margin."""
    return _report(SalesReport.model_validate(service.top_sellers(
        session, club_id=actor.club_id, date_from=date_from, date_to=date_to, by=by,
        limit=limit)), fmt, f"top-sellers-by-{by}")


@router.get("/analytics/turnover", response_model=CoverReport, responses=CSV_RESPONSE)
def turnover(session: SessionDep, actor: ManagerActor, window_days: Window = 28,
             fmt: FormatQ = Format.json):
    """Per product: sales rate over the last `window_days`, days of cover, stock turnover."""
    return _report(CoverReport.model_validate(service.cover_report(
        session, club_id=actor.club_id, window_days=window_days)), fmt, "turnover")


@router.get("/analytics/low-stock", response_model=LowStockReport, responses=CSV_RESPONSE)
def low_stock(session: SessionDep, actor: ManagerActor, window_days: Window = 28,
              cover_days: CoverDays = 14, fmt: FormatQ = Format.json):
    """Products at or below their reorder level, with a suggested order quantity."""
    return _report(LowStockReport.model_validate(service.low_stock(
        session, club_id=actor.club_id, window_days=window_days, cover_days=cover_days)),
        fmt, "low-stock")


@router.get("/analytics/shrinkage", response_model=ShrinkageReport, responses=CSV_RESPONSE)
def shrinkage(session: SessionDep, actor: ManagerActor, date_from: From = None,
              date_to: To = None,
              group_by: Annotated[str, Query(pattern="^(reason|product)$")] = "reason",
              fmt: FormatQ = Format.json):
    """Stock lost other than by selling: write-offs by reason and stocktake differences."""
    return _report(ShrinkageReport.model_validate(service.shrinkage(
        session, club_id=actor.club_id, date_from=date_from, date_to=date_to,
        group_by=group_by)), fmt, f"shrinkage-by-{group_by}")
