from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.core.schemas import In, Out
from app.core.types import MAX_ID

CENT = Decimal("0.01")
MAX_MONEY = Decimal("9999999999.99")


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT)


# Money in request bodies: at most 12 digits with 2 decimals, normalised to cents ("10" == "10.00").
Amount = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2), AfterValidator(_cents)]
PriceIn = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2), AfterValidator(_cents)]
RefId = Annotated[int, Field(ge=1, le=MAX_ID)]


class PaymentMethod(StrEnum):
    cash = "cash"
    card = "card"
    transfer = "transfer"


class PaymentIn(In):
    method: PaymentMethod
    amount: Amount


Payments = Annotated[list[PaymentIn], Field(max_length=10)]


class SaleLineIn(In):
    """One line of a sale: `kind` names the domain that fulfils it, the rest is that kind's spec."""

    model_config = ConfigDict(extra="allow")

    kind: str = Field(min_length=1, max_length=20)


class SaleCreate(In):
    member_id: RefId | None = Field(None, description="None for a walk-in sale paid in full")
    lines: list[SaleLineIn] = Field(min_length=1, max_length=50)
    payments: Payments = Field(default_factory=list)
    note: str | None = Field(None, max_length=1000)
    to_account: bool = Field(False, description=(
        "charge what is not paid now to the member's account: the payer of the member's "
        "recurring contract gets it on the next dues invoice (without a contract it stays a "
        "debt to settle at the desk)"))


class SalePaymentCreate(In):
    """Pay (part of) what is still owed on a sale."""

    method: PaymentMethod
    amount: Amount


class SaleLineRead(Out):
    id: int
    kind: str
    item_id: int | None
    description: str
    quantity: int
    unit_price: Decimal
    amount: Decimal


class PaymentRead(Out):
    id: int
    method: str
    kind: str
    amount: Decimal
    staff_id: int | None
    created_at: datetime


class SaleRead(Out):
    id: int
    member_id: int | None
    staff_id: int | None
    total: Decimal
    paid: Decimal = Field(description="sum of payments (refunds not subtracted)")
    refunded: Decimal = Field(description="sum of refunds, as a positive amount")
    debt: Decimal = Field(description="total - paid: what the member still owes on this sale")
    note: str | None
    to_account: bool = Field(False, description="charged to the member's account (next dues "
                                                "invoice)")
    created_at: datetime
    lines: list[SaleLineRead]
    payments: list[PaymentRead]


class BalanceRead(BaseModel):
    member_id: int
    total_sales: Decimal
    paid: Decimal
    refunded: Decimal
    debt: Decimal
