"""Custom fields API shapes: what an owner or manager sends to define a field, and what staff see."""
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from app.core.schemas import In, Out
from app.customfields.models import MAX_CHOICE, MAX_KEY, MAX_LABEL

MAX_CHOICES = 100
MAX_POSITION = 10_000


class FieldType(StrEnum):
    text = "text"
    number = "number"
    date = "date"
    choice = "choice"
    yes_no = "yes_no"


Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", min_length=1,
                                       max_length=MAX_KEY)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LABEL)]
Choice = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                          max_length=MAX_CHOICE)]
Position = Annotated[int, Field(ge=0, le=MAX_POSITION)]


def _distinct_choices(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    seen: set[str] = set()
    for choice in value:
        if "\x00" in choice:
            raise PydanticCustomError("nul", "text must not contain NUL characters")
        if choice.casefold() in seen:
            raise PydanticCustomError("duplicate_choice", "choice '{choice}' is listed twice",
                                      {"choice": choice})
        seen.add(choice.casefold())
    return value


class CustomFieldCreate(In):
    key: Key = Field(description="lower-case letters, digits and _, starting with a letter; "
                                 "unique in the club and fixed once created, e.g. shirt_size")
    label: Label = Field(description="what forms and the member page show, e.g. Shirt size")
    type: FieldType
    choices: Annotated[list[Choice], Field(max_length=MAX_CHOICES)] | None = Field(
        None, description="the allowed values of a choice field (required for type choice)")
    required: bool = Field(False, description="a new member must have a value")
    searchable: bool = Field(False, description="staff may find members by this field")
    position: Position | None = Field(None, description="order on forms; default: last")

    @field_validator("choices")
    @classmethod
    def _choices(cls, value):
        return _distinct_choices(value)


class CustomFieldUpdate(In):
    """Any subset; the key and the type cannot change."""

    label: Label | None = None
    choices: Annotated[list[Choice], Field(max_length=MAX_CHOICES)] | None = None
    required: bool | None = None
    searchable: bool | None = None
    position: Position | None = None

    @field_validator("label", "required", "searchable", "position", "choices", mode="before")
    @classmethod
    def _not_null(cls, value):
        if value is None:
            raise PydanticCustomError("required", "leave the field out instead of sending null")
        return value

    @field_validator("choices")
    @classmethod
    def _choices(cls, value):
        return _distinct_choices(value)


class CustomFieldRead(Out):
    id: int
    key: str
    label: str
    type: str
    choices: list[str]
    required: bool
    searchable: bool
    position: int
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime
