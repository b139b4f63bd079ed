import re
from datetime import datetime, time
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints
from pydantic_core import PydanticCustomError

from app.core.actors import Role
from app.core.schemas import In, LocalTime, Out

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
    phone_region: str = Field("DE", min_length=2, max_length=2,
                              description="country for phone numbers written without +prefix")
    # retention engine thresholds (RETENTION.md)
    onboarding_days: int = Field(30, ge=1, le=365)
    establishing_days: int = Field(90, ge=1, le=730)
    at_risk_no_visit_days: int = Field(14, ge=1, le=365)
    at_risk_ratio: float = Field(0.5, gt=0, le=1)
    renewal_notice_days: int = Field(30, ge=1, le=365)
    message_cap: int = Field(2, ge=0, le=50, description="automated messages per member per window")
    message_cap_days: int = Field(7, ge=1, le=90)
    quiet_hours_start: LocalTime = time(21, 0)
    quiet_hours_end: LocalTime = time(9, 0)
    holdout_share: float = Field(0.10, ge=0, le=0.9)
    member_language: Literal["de", "en", "ru"] = Field(
        "en", description="the member app's language (and its emails and SMS) for members whose "
                          "browser asks for none of de, en, ru")
    app_freeze_mode: Literal["instant", "approval"] = Field(
        "approval", description="a freeze asked for in the member app: applied at once "
                                "(instant) or waiting for the desk (approval)")
    freeze_min_days: int = Field(7, ge=1, le=365,
                                 description="the shortest freeze a member may ask for in the app")
    freeze_notice_days: int = Field(0, ge=0, le=90,
                                    description="an app freeze starts at least this many days ahead")
    # members booking classes in the member app (docs/member-app.md, "Classes")
    class_booking_days_ahead: int = Field(
        7, ge=0, le=60, description="members book classes up to this many days ahead (0: today)")
    class_late_cancel_hours: int = Field(
        2, ge=0, le=168, description="a member's cancellation later than this many hours before "
                                     "the class is a late cancellation")
    class_late_cancel_penalty: Literal["none", "visit"] = Field(
        "none", description="a late cancellation by a member: nothing, or one visit used on a "
                            "visit-limited membership")
    online_plans: list[int] = Field(
        default_factory=list, max_length=50,
        description="the recurring plans (ids) people may join or renew in the member app "
                    "(/app/join); none: joining online is off")


class ClubRead(Out):
    id: int
    name: str
    timezone: str
    currency: str


class ClubSettingsUpdate(In):
    """Any subset of the club's settings; validated against `ClubSettings` when merged."""

    anti_passback_minutes: int | None = Field(None, ge=0, le=24 * 60)
    grace_days: int | None = Field(None, ge=0, le=365)
    block_on_debt: bool | None = None
    cancellation_reasons: dict[str, str] | None = None
    phone_region: str | None = Field(None, min_length=2, max_length=2)
    onboarding_days: int | None = Field(None, ge=1, le=365)
    establishing_days: int | None = Field(None, ge=1, le=730)
    at_risk_no_visit_days: int | None = Field(None, ge=1, le=365)
    at_risk_ratio: float | None = Field(None, gt=0, le=1)
    renewal_notice_days: int | None = Field(None, ge=1, le=365)
    message_cap: int | None = Field(None, ge=0, le=50)
    message_cap_days: int | None = Field(None, ge=1, le=90)
    quiet_hours_start: LocalTime | None = None
    quiet_hours_end: LocalTime | None = None
    holdout_share: float | None = Field(None, ge=0, le=0.9)
    member_language: Literal["de", "en", "ru"] | None = None
    app_freeze_mode: Literal["instant", "approval"] | None = None
    freeze_min_days: int | None = Field(None, ge=1, le=365)
    freeze_notice_days: int | None = Field(None, ge=0, le=90)
    class_booking_days_ahead: int | None = Field(None, ge=0, le=60)
    class_late_cancel_hours: int | None = Field(None, ge=0, le=168)
    class_late_cancel_penalty: Literal["none", "visit"] | None = None
    online_plans: list[int] | None = Field(None, max_length=50)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    password_change_required: bool = Field(
        False, description="signed in with a temporary password: the token only works for "
                           "POST /api/v1/me/password until a new one is chosen")


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


# --- staff management (app/clubs/staff.py) ------------------------------------------------------

class StaffRead(Out):
    user_id: int
    email: str
    name: str
    role: Role
    active: bool = Field(description="false: the account is switched off everywhere")
    last_login_at: datetime | None = Field(None, description="last sign-in, if known")
    must_change_password: bool = Field(description="still on a temporary password")


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _staff_email(value: str) -> str:
    """A sign-in name shaped like an email address (as `fitclub create-user` and the history
    import accept it), lower-cased."""
    if not _EMAIL.fullmatch(value):
        raise PydanticCustomError("invalid_email", "not a valid email address (name@domain.tld)")
    return value.lower()


class StaffCreate(In):
    """A colleague by email: they get an invitation to accept (docs/staff.md)."""

    email: Annotated[str, StringConstraints(min_length=3, max_length=254),
                     AfterValidator(_staff_email)]
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    role: Role


class InvitationRead(Out):
    invitation_id: int
    email: str
    name: str = Field(description="as the club wrote it; never taken from an account")
    role: Role
    created_at: datetime
    expires_at: datetime


class StaffInvited(InvitationRead):
    """The same answer whether or not the email already has an account."""

    accept_url: str = Field(description="shown once: the link the invited person opens to accept "
                                        "(signed in as that email) or to create their account; it "
                                        "grants nothing without their own password")


class InvitationInfo(Out):
    club_id: int
    club_name: str
    email: str
    role: Role
    expires_at: datetime


class InvitationAccepted(Out):
    club_id: int
    club_name: str
    role: Role


class InvitationRegister(In):
    """Create the invited email's account (only when it has none) with one's own password."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    password: Annotated[str, StringConstraints(min_length=1, max_length=200,
                                               strip_whitespace=False)]


class StaffRoleUpdate(In):
    role: Role


class PasswordReset(Out):
    user_id: int
    temporary_password: str = Field(description="shown once; they must change it at sign-in")


class PasswordChange(In):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=200,
                                                       strip_whitespace=False)]
    new_password: Annotated[str, StringConstraints(min_length=1, max_length=200,
                                                   strip_whitespace=False)]
