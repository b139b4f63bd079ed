"""API shapes of the member app's staff side: a member's app sessions, freeze requests."""
from datetime import date, datetime

from pydantic import Field

from app.core.schemas import In, Out


class MemberAppSessionRead(Out):
    id: int
    channel: str
    device: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


class MemberAppSessions(Out):
    member_id: int
    items: list[MemberAppSessionRead]


class AppSessionsRevoked(Out):
    member_id: int
    revoked: int


class FreezeRequestRead(Out):
    """A freeze asked for in the member app (`app.memberapp.freeze`)."""

    id: int
    member_id: int
    member_name: str
    membership_id: int
    start_date: date
    end_date: date
    days: int
    status: str = Field(description="pending, applied (instant mode), approved or declined")
    requested_at: datetime
    decided_at: datetime | None
    decided_by: int | None
    decline_reason: str | None
    freeze_id: int | None


class FreezeRequestPage(Out):
    items: list[FreezeRequestRead]
    total: int


class FreezeDecline(In):
    reason: str | None = Field(None, max_length=200, description="shown to the member")
