"""Request and response bodies of payers, contracts, the member's dues panel and the club's
dues settings."""
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from app.billing.schemas import PriceIn, RefId
from app.core.schemas import In, Out
from app.members.schemas import Email
from app.memberships.schemas import Day

Relation = Literal["self", "parent", "guardian", "partner", "other"]
Method = Literal["sepa", "card", "desk"]
Channel = Literal["desk", "letter", "email", "online"]
CENT = Decimal("0.01")
Percent = Annotated[Decimal, Field(ge=0, le=100, max_digits=5, decimal_places=2),
                    AfterValidator(lambda v: v.quantize(CENT))]
TaxRate = Annotated[Decimal, Field(ge=0, le=99, max_digits=4, decimal_places=2),
                    AfterValidator(lambda v: v.quantize(CENT))]


class PayerCreate(In):
    member_id: RefId | None = Field(None, description="when the payer is a member of the club")
    name: str | None = Field(None, min_length=1, max_length=140,
                             description="default: the member's name (required without one)")
    email: Email | None = Field(None, description="default: the member's email")
    phone: str | None = Field(None, max_length=32)
    address: str | None = Field(None, max_length=1000)
    note: str | None = Field(None, max_length=1000)


class PayerUpdate(In):
    name: str | None = Field(None, min_length=1, max_length=140)
    email: Email | None = None
    phone: str | None = Field(None, max_length=32)
    address: str | None = Field(None, max_length=1000)
    note: str | None = Field(None, max_length=1000)


class PayerRead(Out):
    id: int
    member_id: int | None
    name: str
    email: str | None
    phone: str | None
    address: str | None
    note: str | None


class ContractLine(In):
    """A sale line of kind "contract": a recurring membership sold with its terms and payer."""

    kind: Literal["contract"] = "contract"
    plan_id: RefId
    start_date: Day | None = Field(None, description="default today (club time); the past only "
                                                     "for managers")
    payer_id: RefId | None = Field(None, description="None: the member pays")
    payer_relation: Relation | None = Field(None, description="the payer to the member; default "
                                                              "self when the member pays, else "
                                                              "other")
    method: Method = "sepa"
    mandate_id: RefId | None = Field(None, description="a SEPA mandate of the payer")
    card_id: RefId | None = Field(None, description="a stored card of the payer")


class ContractCancel(In):
    received_on: Day | None = Field(None, description="the day the cancellation was received; "
                                                      "default today (club time)")
    channel: Channel = "desk"


class ContractPayment(In):
    method: Method
    mandate_id: RefId | None = None
    card_id: RefId | None = None


class ContractRead(Out):
    id: int
    membership_id: int
    member_id: int
    payer_id: int
    payer_relation: str
    method: str
    mandate_id: int | None
    card_id: int | None
    period: str
    price: Decimal
    tax_rate: Decimal
    joining_fee: Decimal
    starts_on: date
    minimum_months: int
    notice_value: int
    notice_unit: str
    renewal: str
    renewal_months: int
    term_end: date
    next_due: date
    next_price: Decimal | None
    next_price_from: date | None
    cancel_received_on: date | None
    ends_on: date | None
    cancelled_by: int | None
    cancel_channel: str | None


class MandateSummary(Out):
    id: int
    reference: str
    account_holder: str
    iban: str = Field(description="masked: country, check digits and the last four")
    signed_on: date
    revoked_on: date | None


class CardSummary(Out):
    id: int
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    ready: bool = Field(description="the payer completed the provider's page")


class OpenInvoice(Out):
    id: int
    number: str
    issued_on: date
    due_on: date
    gross: Decimal
    paid: Decimal
    open: Decimal


class ContractPanel(Out):
    contract: ContractRead
    payer: PayerRead
    mandate: MandateSummary | None
    card: CardSummary | None
    next_charge_on: date | None
    next_charge_amount: Decimal | None


class DuesPanel(Out):
    member_id: int
    contracts: list[ContractPanel]
    open_invoices: list[OpenInvoice]
    invoiced: Decimal = Field(description="gross of the open invoices")
    paid: Decimal = Field(description="paid on the open invoices")
    open: Decimal = Field(description="still owed on them")


class DuesSettingsRead(Out):
    legal_name: str | None
    legal_address: str | None
    vat_registered: bool
    vat_id: str | None
    default_tax_rate: Decimal
    invoice_number_format: str
    creditor_id: str | None
    creditor_name: str | None
    creditor_iban: str | None
    creditor_bic: str | None
    prenotice_days: int
    return_fee: Decimal
    household_discount: Decimal
    freeze_moves_billing: bool
    card_retry_days: int
    sepa_retry_days: int
    max_retries: int
    reminder_days: int
    dunning_fee: Decimal
    dunning_fee_after_days: int
    block_entry_after_days: int | None
    stripe_secret_key_set: bool
    stripe_webhook_secret_set: bool


class DuesSettingsUpdate(In):
    legal_name: str | None = Field(None, max_length=140)
    legal_address: str | None = Field(None, max_length=1000)
    vat_registered: bool | None = None
    vat_id: str | None = Field(None, max_length=30)
    default_tax_rate: TaxRate | None = None
    invoice_number_format: str | None = Field(None, min_length=5, max_length=60)
    creditor_id: str | None = Field(None, max_length=35)
    creditor_name: str | None = Field(None, max_length=70)
    creditor_iban: str | None = Field(None, max_length=34)
    creditor_bic: str | None = Field(None, max_length=11)
    prenotice_days: int | None = Field(None, ge=1, le=30)
    return_fee: PriceIn | None = None
    household_discount: Percent | None = None
    freeze_moves_billing: bool | None = None
    card_retry_days: int | None = Field(None, ge=1, le=60)
    sepa_retry_days: int | None = Field(None, ge=1, le=60)
    max_retries: int | None = Field(None, ge=0, le=10)
    reminder_days: int | None = Field(None, ge=0, le=60)
    dunning_fee: PriceIn | None = None
    dunning_fee_after_days: int | None = Field(None, ge=0, le=365)
    block_entry_after_days: int | None = Field(None, ge=1, le=365)
    stripe_secret_key: str | None = Field(None, max_length=200)
    stripe_webhook_secret: str | None = Field(None, max_length=200)

    @field_validator("creditor_id", "creditor_iban", "creditor_bic", "vat_id")
    @classmethod
    def _compact(cls, value: str | None) -> str | None:
        return value.replace(" ", "").upper() if value else value
