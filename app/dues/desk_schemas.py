"""Request and response bodies of the desk's dues payments, close-outs and dunning cases."""
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from app.billing.schemas import Amount, PriceIn
from app.core.schemas import In, Out

DeskName = Field("main", min_length=1, max_length=40, pattern=r"^[\w .\-]+$",
                 description="the desk's name (one close-out per desk and day)")


class InvoicePaymentCreate(In):
    """Money for an open invoice taken at the desk; part payments are allowed."""

    amount: Amount
    method: Literal["cash", "card_terminal", "transfer"]
    desk: str = DeskName


class InvoicePaymentRead(Out):
    id: int
    invoice_id: int
    amount: Decimal
    method: str
    occurred_on: date
    desk: str | None
    staff_id: int | None
    open_after: Decimal
    case_closed: bool


class DunningCaseRead(Out):
    id: int
    invoice_id: int
    invoice_number: str
    payer_id: int
    payer_name: str
    member_id: int | None
    opened_on: date
    amount: Decimal
    retries: int
    reminders: int
    fee_charged: bool
    next_step_on: date | None
    blocks_entry_from: date | None
    closed_on: date | None
    outcome: str | None


class CloseoutCreate(In):
    desk: str = DeskName
    business_day: date | None = Field(None, description="club-local day; default today")
    opening_float: PriceIn
    counted_cash: PriceIn


class CloseoutRead(Out):
    id: int
    desk: str
    business_day: date
    opening_float: Decimal
    takings: dict[str, Decimal]
    total: Decimal
    expected_cash: Decimal
    counted_cash: Decimal
    difference: Decimal
    closed_by: int | None
    closed_at: datetime


class CloseoutPreview(Out):
    desk: str
    business_day: date
    opening_float: Decimal
    takings: dict[str, Decimal]
    total: Decimal
    expected_cash: Decimal
    counted_cash: Decimal | None
    difference: Decimal | None
    closed: CloseoutRead | None
