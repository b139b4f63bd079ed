"""Request and response bodies of invoices as documents and the billing run."""
from datetime import date
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from app.core.schemas import In, Out
from app.core.types import MAX_ID

LineId = Annotated[int, Field(ge=1, le=MAX_ID)]


class InvoiceLineRead(Out):
    id: int
    charge_key: str
    kind: str
    description: str
    contract_id: int | None
    member_id: int | None
    sale_id: int | None
    period_start: date | None
    period_end: date | None
    quantity: int
    unit_price: Decimal
    tax_rate: Decimal
    net: Decimal
    tax: Decimal
    gross: Decimal


class DuesPaymentRead(Out):
    id: int
    kind: str
    method: str
    amount: Decimal
    occurred_on: date
    reference: str | None


class InvoiceRead(Out):
    id: int
    number: str
    kind: str
    corrects_id: int | None
    payer_id: int
    payer_name: str | None
    issued_on: date
    due_on: date
    method: str
    currency: str
    net: Decimal
    tax: Decimal
    gross: Decimal
    paid: Decimal
    open: Decimal


class InvoiceDetail(InvoiceRead):
    payer: dict
    seller: dict
    lines: list[InvoiceLineRead]
    payments: list[DuesPaymentRead]
    credited_line_ids: list[int]


class CreditNoteCreate(In):
    """Credit the whole invoice (no `line_ids`) or the lines named, with a reason."""

    line_ids: Annotated[list[LineId], Field(max_length=500)] | None = None
    reason: Annotated[str, Field(min_length=1, max_length=120)]


class BillingRunRead(Out):
    club_id: int
    day: date
    invoices: int
    lines: int
    renewed: int
    collections: int
    notices: int
    done_before: bool
