"""Members API shapes: what the front desk sends and what it sees."""
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from app.core.schemas import In, Out

MIN_BIRTH_DATE = date(1900, 1, 1)


class Gender(StrEnum):
    female = "female"
    male = "male"
    diverse = "diverse"
    unspecified = "unspecified"


class Channel(StrEnum):
    email = "email"
    sms = "sms"


class PreferredChannel(StrEnum):
    """How the person wants to be contacted ("none": no messages); null means no preference."""

    email = "email"
    sms = "sms"
    phone = "phone"
    none = "none"


def _email(value: str) -> str:
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise PydanticCustomError("invalid_email", "not a valid email address: {reason}",
                                  {"reason": str(exc)}) from None
    return result.normalized.lower()


def _birth_date(value: date) -> date:
    if value < MIN_BIRTH_DATE:
        raise PydanticCustomError("invalid_birth_date", "birth date must be in 1900 or later")
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Email = Annotated[str, StringConstraints(min_length=3, max_length=254), AfterValidator(_email)]
Phone = Annotated[str, StringConstraints(min_length=1, max_length=40)]
Source = Annotated[str, StringConstraints(min_length=1, max_length=50)]
CardCode = Annotated[str, StringConstraints(min_length=1, max_length=100)]
BirthDate = Annotated[date, AfterValidator(_birth_date)]
CustomValues = Annotated[
    dict[Annotated[str, StringConstraints(min_length=1, max_length=40)], Any],
    Field(max_length=100, description="the club's custom fields, {key: value}: text, number, "
                                      "date as YYYY-MM-DD, one of a choice field's choices, or "
                                      "true/false; null clears a value (see GET "
                                      "/api/v1/custom-fields)")]


class ConsentFlags(In):
    """Consents given at the desk; a channel left out is not recorded."""

    email: bool | None = None
    sms: bool | None = None


class MemberCreate(In):
    first_name: Name
    last_name: Name
    email: Email | None = None
    phone: Phone | None = Field(None, description="any format; numbers without +country use "
                                                  "the club's phone_region")
    birth_date: BirthDate | None = None
    gender: Gender | None = None
    source: Source | None = Field(None, description="where the person came from, e.g. walk_in")
    preferred_channel: PreferredChannel | None = None
    card: CardCode | None = Field(None, description="a card code to issue at once")
    consents: ConsentFlags | None = None
    different_person: bool = Field(False, description="create even if email or phone matches "
                                                      "another member")
    custom: CustomValues | None = None

    @field_validator("email", "phone", "source", "card", mode="before")
    @classmethod
    def _blank_is_none(cls, value):
        return None if isinstance(value, str) and not value.strip() else value


class MemberUpdate(In):
    """Any subset of the fields; null clears an optional one."""

    first_name: Name | None = None
    last_name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    birth_date: BirthDate | None = None
    gender: Gender | None = None
    source: Source | None = None
    preferred_channel: PreferredChannel | None = None
    different_person: bool = False
    custom: CustomValues | None = None

    @field_validator("email", "phone", "source", mode="before")
    @classmethod
    def _blank_is_none(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("first_name", "last_name")
    @classmethod
    def _names_cannot_be_cleared(cls, value):
        if value is None:
            raise PydanticCustomError("required", "a name cannot be removed, only changed")
        return value


class CardCreate(In):
    code: CardCode


class CardBlock(In):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class CardReplace(In):
    new_code: CardCode


class ConsentCreate(In):
    channel: Channel
    granted: bool
    source: Source = Field(description="where the statement came from, e.g. front_desk, form")


class NoteCreate(In):
    text: Annotated[str, StringConstraints(min_length=1, max_length=5000)]


class CardRead(Out):
    id: int
    member_id: int
    code: str
    status: str
    blocked_at: datetime | None
    block_reason: str | None
    created_at: datetime


class ConsentRead(Out):
    id: int
    member_id: int
    channel: str
    granted: bool
    source: str
    recorded_at: datetime
    staff_id: int | None


class NoteRead(Out):
    id: int
    member_id: int
    staff_id: int | None
    text: str
    created_at: datetime


class CurrentConsents(Out):
    email: bool
    sms: bool


class MembershipStatus(Out):
    """The membership that matters today (see `app.memberships.rules.summaries`)."""

    status: str = Field(description="active, frozen, pending, expired, cancelled or none")
    membership_id: int | None = None
    plan_name: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    visits_left: int | None = None
    days_left: int | None = None
    frozen_until: date | None = Field(
        default=None, description="the last day of today's freeze, when frozen")


class MemberRead(Out):
    id: int
    first_name: str
    last_name: str
    name: str
    email: str | None
    phone: str | None
    birth_date: date | None
    gender: str | None
    source: str | None
    preferred_channel: str | None = None
    created_at: datetime
    updated_at: datetime
    consents: CurrentConsents
    cards: list[CardRead]
    membership: MembershipStatus
    as_of: date
    custom: dict[str, Any] = Field(default_factory=dict,
                                   description="custom field values by key (archived fields "
                                               "left out)")


class MemberSummary(Out):
    """One search hit: enough to pick the right person and see their status."""

    id: int
    name: str
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    cards: list[str] = Field(description="codes of the member's active cards")
    membership: MembershipStatus
