from enum import StrEnum

from pydantic import BaseModel, Field

from app.core.schemas import In, Out


class Role(StrEnum):
    owner = "owner"
    manager = "manager"
    front_desk = "front_desk"
    trainer = "trainer"


MANAGERS = (Role.owner, Role.manager)
DESK = (Role.owner, Role.manager, Role.front_desk)
STAFF = (Role.owner, Role.manager, Role.front_desk, Role.trainer)

DEFAULT_CANCELLATION_REASONS = {
    "moved_away": "Moved away",
    "price": "Price",
    "health": "Health",
    "not_using": "Not using it",
    "unhappy_service": "Unhappy with service",
    "other": "Other",
}


class ClubSettings(BaseModel):
    """Per-club rules; stored as JSON on the club, defaults filled in on read."""

    anti_passback_minutes: int = Field(5, ge=0, le=24 * 60)
    grace_days: int = Field(30, ge=0, le=365)
    block_on_debt: bool = False
    cancellation_reasons: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_CANCELLATION_REASONS)
    )


class ClubRead(Out):
    id: int
    name: str
    timezone: str
    currency: str


class ClubSettingsUpdate(In):
    anti_passback_minutes: int | None = Field(None, ge=0, le=24 * 60)
    grace_days: int | None = Field(None, ge=0, le=365)
    block_on_debt: bool | None = None
    cancellation_reasons: dict[str, str] | None = None


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class StaffClubRead(Out):
    club_id: int
    role: Role


class MeRead(Out):
    id: int
    email: str
    name: str
    club_id: int
    role: Role
    clubs: list[StaffClubRead]
