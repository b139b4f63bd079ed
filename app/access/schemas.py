"""Turnstile events, front-desk check-ins, and the attempt and visit logs."""
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError

from app.core.schemas import In, Out

EVENT_ID_MAX = 100
IDEMPOTENCY_KEY_MAX = 100


class DeviceEventIn(In):
    """What a turnstile controller posts: the card it read, and optionally its own event id and clock."""

    card: str = Field(min_length=1, max_length=64, description="card code as read; spaces and case ignored")
    event_id: str | None = Field(
        None, min_length=1, max_length=EVENT_ID_MAX, pattern=r"^[\x21-\x7e]+$",
        description="the device's own record id; a repeat of the same id replays the first answer")
    occurred_at: datetime | None = Field(
        None, description="when the card was read, ISO-8601 with a UTC offset; default now")
    direction: Literal["in", "out"] | None = Field(
        None, description="default: the device's configured direction")

    @field_validator("card")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise PydanticCustomError("card_unprintable", "card must be printable text")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _with_offset(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise PydanticCustomError(
                "timezone_required",
                "give the time with its UTC offset, e.g. 2026-05-16T18:05:00+02:00")
        return value


class CheckInCreate(In):
    """A front-desk check-in; `override_reason` (managers and owners) lets a denied member in."""

    override_reason: str | None = Field(None, min_length=1, max_length=500)


class MemberRef(BaseModel):
    id: int
    name: str


class DecisionRead(BaseModel):
    allow: bool
    reason: str
    message: str
    member: MemberRef | None
    visit_id: int | None


class PaymentProblem(BaseModel):
    """The member's unpaid dues as the desk sees them at check-in."""

    owed: str
    since: str
    reminders: int
    blocked: bool
    text: str


class DeskDecisionRead(DecisionRead):
    access_event_id: int
    payment_problem: PaymentProblem | None = None


class AccessEventRead(Out):
    id: int
    occurred_at: datetime
    received_at: datetime
    allowed: bool
    reason: str
    message: str
    direction: str
    source: str
    card_code: str | None
    device_id: int | None
    member_id: int | None
    member_name: str | None
    membership_id: int | None
    staff_id: int | None
    override_reason: str | None
    identified_by: str | None = Field(
        None, description="card, app_code (the member app's code, in card_code) or member")


class AppCodeResetRead(Out):
    """A member app code's secret was replaced: codes made before are refused from now on."""

    member_id: int
    reset_at: datetime


class VisitRead(Out):
    id: int
    occurred_at: datetime
    member_id: int
    member_name: str
    membership_id: int | None
    access_event_id: int | None


# --- device management (managers) --------------------------------------------------------------

class DeviceRead(Out):
    """A turnstile controller; never its key. `status`: active, pending (a ZKTeco device waiting
    for a manager's approval: `seen_addresses`, `first_seen_at`, `last_seen_at` say where and
    when it called) or revoked."""

    id: int
    name: str
    protocol: str
    serial_number: str | None
    direction: str
    timezone: str | None
    status: Literal["active", "pending", "revoked"]
    allowed_networks: list[str]
    approved_at: datetime | None
    seen_addresses: list[str]
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    revoked_at: datetime | None


class DeviceApprove(In):
    """Approve a quarantined ZKTeco device from `allowed_networks` (required: without it the
    answer is 422 listing the addresses it was seen calling from)."""

    allowed_networks: list[str] | None = Field(
        None, max_length=32, description="CIDR networks or addresses, e.g. 10.20.0.0/16")


class DeviceKeyRead(Out):
    """A new device key: shown once, only its hash is kept."""

    device: DeviceRead
    key: str
