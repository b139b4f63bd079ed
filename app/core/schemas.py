"""Base classes for request (In) and response (Out) schemas."""
from datetime import time
from typing import Annotated, Generic, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, WithJsonSchema, field_validator

from app.core.types import MAX_ID


class In(BaseModel):
    """Request bodies: unknown fields are refused (no mass assignment), NUL bytes are refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value):
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("text must not contain NUL characters")
        return value


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# Paging query parameters (with `Page`): `limit: Limit = 50, offset: Offset = 0`. Some lists keep
# other bounds: longer pages (staff, products, stock, movements) take `LargeLimit`; member search
# and a member's notes and consents `SmallLimit` and `SmallOffset`; lists paged by `LargeOffset`
# go deeper (sales, memberships, plans, inventory, staff).
Limit = Annotated[int, Query(ge=1, le=200)]
LargeLimit = Annotated[int, Query(ge=1, le=500)]
SmallLimit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
LargeOffset = Annotated[int, Query(ge=0, le=10**9)]
SmallOffset = Annotated[int, Query(ge=0, le=10_000)]


def IdPath(description: str = "id"):
    return Annotated[int, Path(ge=1, le=MAX_ID, description=description)]


# A wall-clock time of day. Pydantic documents `time` as JSON-Schema format "time", which is
# RFC 3339 full-time and requires a UTC offset; ours are local times without one ("21:00:00").
LocalTime = Annotated[time, WithJsonSchema({
    "type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?$",
    "description": "local time of day, HH:MM[:SS]", "examples": ["21:00"]})]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
