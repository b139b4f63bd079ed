"""API shapes of the member app's staff side: a member's app sessions."""
from datetime import datetime

from app.core.schemas import Out


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
