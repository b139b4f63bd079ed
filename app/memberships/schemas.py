import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    ValidationError,
    computed_field,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.billing.schemas import Amount, PaymentMethod, Payments, PriceIn, RefId, SaleRead
from app.core.schemas import In, Out

# Dates people enter: bounded so date arithmetic (months, freezes) can never overflow.
Day = Annotated[date, Field(ge=date(2000, 1, 1), le=date(2100, 12, 31))]

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _parse_hhmm(value: Any) -> Any:
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0)
    if isinstance(value, str) and (m := _HHMM.match(value)):
        return time(int(m[1]), int(m[2]))
    raise PydanticCustomError("time_hhmm", "use HH:MM on a 24-hour clock, e.g. 06:30")


AccessTime = Annotated[time, BeforeValidator(_parse_hhmm),
                       PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str,
                                       when_used="json")]


def field_error(model: str, field: str, message: str, value: Any) -> ValidationError:
    """A validation error located at one field, for checks that involve several fields."""
    return ValidationError.from_exception_data(model, [InitErrorDetails(
        type=PydanticCustomError("value_error", message), loc=(field,), input=value)])


Billing = Literal["prepaid", "recurring"]
BillingPeriod = Literal["month", "4weeks", "year"]
NoticeUnit = Literal["days", "weeks", "months"]
Renewal = Literal["term", "monthly"]
TaxRate = Annotated[Decimal, Field(ge=0, le=99, max_digits=4, decimal_places=2),
                    AfterValidator(lambda v: v.quantize(Decimal("0.01")))]
RECURRING_TERMS = ("billing_period", "minimum_months", "notice_value", "notice_unit", "renewal",
                   "renewal_months", "joining_fee", "tax_rate", "next_price", "next_price_from")
"""The fields only a recurring plan has (a prepaid plan leaves them empty)."""
RECURRING_DEFAULTS = {"minimum_months": 0, "notice_value": 1, "notice_unit": "months",
                      "renewal": "monthly", "renewal_months": 1, "joining_fee": Decimal("0.00")}
"""What a recurring plan gets for the terms it does not give."""


def _check_recurring(model: str, plan: Any) -> None:
    """The recurring terms of a plan (create or the merged update) are complete and consistent;
    fills the defaults of the terms not given."""
    if plan.billing == "prepaid":
        given = [name for name in RECURRING_TERMS if getattr(plan, name) is not None]
        if given:
            raise field_error(model, given[0], f"{given[0]} is only for recurring plans "
                              "(billing: recurring)", getattr(plan, given[0]))
        return
    if plan.billing_period is None:
        raise field_error(model, "billing_period", "a recurring plan needs a billing_period "
                          "(month, 4weeks or year)", None)
    for name, value in RECURRING_DEFAULTS.items():
        if getattr(plan, name) is None:
            setattr(plan, name, value)
    if plan.renewal == "monthly" and plan.renewal_months != 1:
        raise field_error(model, "renewal_months", "renewal_months is 1 when the contract runs "
                          "monthly after the minimum term (renewal: monthly)", plan.renewal_months)
    if (plan.next_price is None) != (plan.next_price_from is None):
        missing = "next_price_from" if plan.next_price_from is None else "next_price"
        raise field_error(model, missing, "a price change needs both next_price and "
                          "next_price_from", None)


class PlanCreate(In):
    name: str = Field(min_length=1, max_length=100)
    category: str | None = Field(None, max_length=50)
    duration_days: int | None = Field(None, ge=1, le=3660)
    duration_months: int | None = Field(None, ge=1, le=120)
    price: PriceIn
    visit_limit: int | None = Field(None, ge=1, le=100_000, description="None: unlimited visits")
    access_start: AccessTime | None = Field(None, description="off-peak plans: first entry HH:MM")
    access_end: AccessTime | None = Field(None, description="last entry HH:MM (before start: "
                                                            "the window runs past midnight)")
    freeze_days: int = Field(0, ge=0, le=366, description="freeze allowance per membership")
    auto_renew: bool = False
    active: bool = True
    billing: Billing = Field("prepaid", description="prepaid: sold and paid once; recurring: "
                                                    "a contract billed each period")
    billing_period: BillingPeriod | None = Field(None, description="recurring: month, 4weeks "
                                                                   "or year")
    minimum_months: int | None = Field(None, ge=0, le=120, description="recurring: the minimum "
                                                                       "term (0: none)")
    notice_value: int | None = Field(None, ge=0, le=365)
    notice_unit: NoticeUnit | None = None
    renewal: Renewal | None = Field(None, description="after the minimum term: term (renews for "
                                                      "renewal_months) or monthly")
    renewal_months: int | None = Field(None, ge=1, le=60)
    joining_fee: PriceIn | None = None
    tax_rate: TaxRate | None = Field(None, description="VAT percent in the price; None: the "
                                                       "club's default")
    next_price: PriceIn | None = Field(None, description="a new price for running contracts")
    next_price_from: Day | None = Field(None, description="from this day (in the future)")

    @model_validator(mode="after")
    def _consistent(self) -> "PlanCreate":
        _check_recurring("PlanCreate", self)
        if self.billing == "recurring":
            if self.duration_days is not None and self.duration_months is not None:
                raise field_error("PlanCreate", "duration_days",
                                  "give at most one of duration_days or duration_months",
                                  self.duration_days)
        elif (self.duration_days is None) == (self.duration_months is None):
            raise field_error("PlanCreate", "duration_days",
                              "give exactly one of duration_days or duration_months",
                              self.duration_days)
        if (self.access_start is None) != (self.access_end is None):
            missing = "access_end" if self.access_end is None else "access_start"
            raise field_error("PlanCreate", missing,
                              "give both access_start and access_end, or neither", None)
        if self.access_start is not None and self.access_start == self.access_end:
            raise field_error("PlanCreate", "access_end",
                              "access_end must differ from access_start", str(self.access_end))
        return self


class PlanUpdate(In):
    """Any subset of a plan's fields; the result is checked like a new plan. Setting one duration
    clears the other."""

    name: str | None = Field(None, min_length=1, max_length=100)
    category: str | None = Field(None, max_length=50)
    duration_days: int | None = Field(None, ge=1, le=3660)
    duration_months: int | None = Field(None, ge=1, le=120)
    price: PriceIn | None = None
    visit_limit: int | None = Field(None, ge=1, le=100_000)
    access_start: AccessTime | None = None
    access_end: AccessTime | None = None
    freeze_days: int | None = Field(None, ge=0, le=366)
    auto_renew: bool | None = None
    active: bool | None = None
    billing: Billing | None = None
    billing_period: BillingPeriod | None = None
    minimum_months: int | None = Field(None, ge=0, le=120)
    notice_value: int | None = Field(None, ge=0, le=365)
    notice_unit: NoticeUnit | None = None
    renewal: Renewal | None = None
    renewal_months: int | None = Field(None, ge=1, le=60)
    joining_fee: PriceIn | None = None
    tax_rate: TaxRate | None = None
    next_price: PriceIn | None = None
    next_price_from: Day | None = None


class PlanRead(Out):
    id: int
    name: str
    category: str | None
    duration_days: int | None
    duration_months: int | None
    price: Decimal
    visit_limit: int | None
    access_start: AccessTime | None
    access_end: AccessTime | None
    freeze_days: int
    auto_renew: bool
    active: bool
    billing: str
    billing_period: str | None
    minimum_months: int | None
    notice_value: int | None
    notice_unit: str | None
    renewal: str | None
    renewal_months: int | None
    joining_fee: Decimal | None
    tax_rate: Decimal | None
    next_price: Decimal | None
    next_price_from: date | None


class MembershipLine(In):
    """A sale line of kind "membership" (POST /sales, or built by the membership endpoints)."""

    kind: Literal["membership"] = "membership"
    plan_id: RefId
    start_date: Day | None = Field(None, description="default today; the past only for managers")
    price: PriceIn | None = Field(None, description="override the plan's price (managers only)")
    renews_id: RefId | None = Field(None, description="the membership this one renews")


class MembershipSell(In):
    plan_id: RefId
    start_date: Day | None = Field(None, description="default today (club time); the past only "
                                                     "for managers")
    price: PriceIn | None = Field(None, description="override the plan's price (managers only)")
    payments: Payments = Field(default_factory=list)
    note: str | None = Field(None, max_length=1000)


class MembershipRenew(In):
    plan_id: RefId | None = Field(None, description="default: the plan of the renewed membership")
    price: PriceIn | None = Field(None, description="override the plan's price (managers only)")
    payments: Payments = Field(default_factory=list)
    note: str | None = Field(None, max_length=1000)


class FreezeCreate(In):
    start_date: Day
    end_date: Day
    reason: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _ordered(self) -> "FreezeCreate":
        if self.end_date < self.start_date:
            raise field_error("FreezeCreate", "end_date", "end_date must not be before start_date",
                              self.end_date.isoformat())
        return self


class FreezeEnd(In):
    on: Day | None = Field(None, description="first day the member is back; default today")


class RefundIn(In):
    amount: Amount
    method: PaymentMethod


class MembershipCancel(In):
    reason: str = Field(min_length=1, max_length=50,
                        description="one of the club's cancellation_reasons keys")
    note: str | None = Field(None, max_length=1000)
    effective_on: Day | None = Field(None, description="first day it no longer counts; "
                                                       "default today")
    refund: RefundIn | None = None


class PlanBrief(Out):
    id: int
    name: str
    category: str | None


class FreezeRead(Out):
    id: int
    membership_id: int
    start_date: date
    end_date: date
    reason: str | None
    created_at: datetime

    @computed_field
    @property
    def days(self) -> int:
        return (self.end_date - self.start_date).days + 1


class MembershipRead(Out):
    id: int
    member_id: int
    plan: PlanBrief
    status: str = Field(description="pending, active, frozen, expired or cancelled on as_of")
    as_of: date
    start_date: date
    end_date: date
    original_end_date: date
    price: Decimal
    visit_limit: int | None
    visits_used: int
    visits_left: int | None
    renews_id: int | None
    renewed_by_id: int | None
    sale_id: int | None
    cancelled_on: date | None
    cancel_reason: str | None
    cancel_note: str | None
    refund_amount: Decimal | None
    freeze_days_allowed: int
    freeze_days_used: int
    freeze_days_left: int
    freezes: list[FreezeRead]


class MembershipSold(MembershipRead):
    """A membership just sold, with its receipt."""

    sale: SaleRead


class FreezeResult(Out):
    freeze: FreezeRead | None = Field(description="None when an unfreeze removed a freeze that "
                                                  "had not started")
    days_returned: int = 0
    membership: MembershipRead

