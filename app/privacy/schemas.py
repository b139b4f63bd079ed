"""Requests and answers of the privacy routes: audit log, duplicates and merge, export, erasure."""
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.core.schemas import In, Out
from app.core.types import MAX_ID
from app.members.schemas import MemberRead

RefId = Field(ge=1, le=MAX_ID)


class AuditAction(StrEnum):
    viewed = "viewed"
    created = "created"
    updated = "updated"
    exported = "exported"
    erased = "erased"
    merged = "merged"
    consent_changed = "consent_changed"
    note_added = "note_added"
    imported = "imported"


class AuditRead(Out):
    id: int
    at: datetime
    staff_id: int | None
    actor_label: str | None = Field(description="a device, API key or 'system' when not staff")
    action: str
    entity: str
    entity_id: int
    fields: list[str] = Field(description="names of the fields viewed or changed, never values")
    detail: dict[str, Any] | None


class Side(StrEnum):
    keep = "keep"
    duplicate = "duplicate"


class MergeTake(In):
    """Whose value the kept member ends with, per field; unset: the kept member's, or the
    duplicate's where the kept member has none."""

    name: Side | None = None
    email: Side | None = None
    phone: Side | None = None
    birth_date: Side | None = None
    gender: Side | None = None


class MergeRequest(In):
    duplicate_id: int = RefId
    take: MergeTake | None = None


class MergeResult(BaseModel):
    kept_member_id: int
    merged_member_id: int
    taken: list[str] = Field(description="fields whose value came from the duplicate")
    moved: dict[str, int] = Field(description="rows moved to the kept member, per table")
    dropped: dict[str, int] = Field(
        description="duplicate rows deleted because the kept member already had one, per table")
    warnings: list[str]
    member: MemberRead


class DuplicateSide(BaseModel):
    id: int
    name: str
    email: str | None
    phone: str | None
    birth_date: date | None
    created_at: datetime
    memberships: int
    visits: int
    last_visit_at: datetime | None


class DuplicatePair(BaseModel):
    member: DuplicateSide
    other: DuplicateSide
    reasons: list[Literal["email", "phone", "same_name", "swapped_name", "similar_name"]]
    explanation: str


class DismissalCreate(In):
    """Two members the staff checked: they are different people."""

    member_id: int = RefId
    other_member_id: int = RefId


class DismissalRead(Out):
    member_a_id: int
    member_b_id: int
    staff_id: int | None
    at: datetime


class PrivacyExport(BaseModel):
    generated_at: datetime
    club_id: int
    member_id: int
    erased: bool
    profile: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]] = Field(
        description="every row that belongs to the person, by table")
    merged_member_ids: list[int]
    audit: list[dict[str, Any]]


class EraseRequest(In):
    reason: str = Field(min_length=3, max_length=500,
                        description="why (e.g. 'request by email of 2026-11-20'); identifiers "
                                    "of the person are removed from it")
    confirm: bool = Field(False, description="must be true: erasure cannot be undone")


class EraseResult(BaseModel):
    member_id: int
    erased_at: datetime
    reason: str
    counts: dict[str, int] = Field(description="rows deleted, blanked or scrubbed, per table")
