"""Base classes for request (In) and response (Out) schemas."""
from datetime import time
from typing import Annotated, Generic, TypeVar

from fastapi import Path
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
