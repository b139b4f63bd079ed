"""Request and response bodies of the SEPA Direct Debit API."""
from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from app.core.schemas import In, Out


class MandateCreate(In):
    iban: str = Field(min_length=5, max_length=50, examples=["DE89 3704 0044 0532 0130 00"])
    bic: str | None = Field(default=None, max_length=11,
                            description="derived from the IBAN when the bank is known")
    account_holder: str = Field(min_length=1, max_length=70)
    signed_on: date
    reference: str | None = Field(default=None, max_length=35,
                                  description="generated when not given; unique in the club")


class MandateIbanChange(In):
    iban: str = Field(min_length=5, max_length=50)
    bic: str | None = Field(default=None, max_length=11)
    account_holder: str | None = Field(default=None, max_length=70)


class MandateRevoke(In):
    revoked_on: date | None = None


class MandateRead(Out):
    id: int
    payer_id: int
    reference: str
    account_holder: str
    iban: str
    bic: str | None
    signed_on: date
    first_collected_on: date | None
    last_collected_on: date | None
    previous_iban: str | None
    revoked_on: date | None
    expires_on: date
    status: str
    """active, revoked or expired (as of today)."""


class DueItem(BaseModel):
    collection_id: int
    invoice_id: int
    invoice_number: str
    payer_id: int
    payer_name: str
    amount: Decimal
    mandate_id: int | None
    mandate_reference: str | None
    sequence: str | None
    blocked: str | None


class DueRead(BaseModel):
    collection_date: date
    count: int
    total: Decimal
    items: list[DueItem]
    blocked: list[DueItem]


class BatchCreate(In):
    collection_date: date


class BatchRead(Out):
    id: int
    collection_date: date
    message_id: str
    count: int
    total: Decimal
    created_at: datetime
    created_by: int | None
    submitted_at: datetime | None
    submitted_by: int | None


class ReturnRowRead(BaseModel):
    end_to_end_id: str | None
    amount: Decimal
    reason_code: str | None
    reason: str
    booked_on: date
    fee: Decimal | None
    source: str
    status: str
    """matched, unknown, already_imported, not_in_a_file or amount_mismatch."""
    collection_id: int | None
    invoice_id: int | None
    payer_name: str | None
    fee_invoice_id: int | None


class ReturnsReport(BaseModel):
    format: str
    filename: str
    dry_run: bool
    counts: dict[str, int]
    rows: list[ReturnRowRead]
    return_fee: Decimal | None
