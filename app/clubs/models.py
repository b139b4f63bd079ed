from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import Base, IdMixin, TimestampMixin
from app.core.types import BigId


class Club(IdMixin, TimestampMixin, Base):
    __tablename__ = "clubs"

    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    settings: Mapped[dict] = mapped_column(JSON, default=dict)


class StaffUser(IdMixin, TimestampMixin, Base):
    __tablename__ = "staff_users"

    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    # a temporary password (new staff, reset): the user must choose their own before working
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False,
                                                       server_default=false())
    last_login_at: Mapped[datetime | None]

    clubs: Mapped[list["ClubStaff"]] = relationship(back_populates="user", lazy="raise")


class ClubStaff(IdMixin, Base):
    """A staff user's role in one club; a user may work in several clubs."""

    __tablename__ = "club_staff"
    __table_args__ = (UniqueConstraint("club_id", "user_id"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))

    user: Mapped[StaffUser] = relationship(back_populates="clubs", lazy="raise")


class StaffInvitation(IdMixin, Base):
    """An invitation to work in a club: the role is given only when the invited person accepts it
    signed in as the account of that email (or creates the account through it). Only the SHA-256
    of the link's token is stored; the inviting club never sees the account."""

    __tablename__ = "staff_invitations"

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    name: Mapped[str] = mapped_column(String(200))  # as the inviter wrote it (a new account's name)
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    accepted_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"), index=True)
    cancelled_at: Mapped[datetime | None]


class LoginFailure(IdMixin, Base):
    """Failed sign-ins per client address (a digest of it) and 15-minute window, counted with one
    upsert so the throttle holds across workers; rows of past windows are deleted."""

    __tablename__ = "login_failures"
    __table_args__ = (UniqueConstraint("address", "window_start"),)

    address: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[datetime] = mapped_column(index=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)


class AuthToken(IdMixin, Base):
    """An opaque bearer token, stored as its SHA-256; revocable and short-lived."""

    __tablename__ = "auth_tokens"

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="bearer")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Device(IdMixin, TimestampMixin, Base):
    """An access-control device (turnstile controller) with a hashed key, scoped to one club."""

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("club_id", "name"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(10), default="in")
    protocol: Mapped[str] = mapped_column(String(20), default="native")
    serial_number: Mapped[str | None] = mapped_column(String(64), unique=True)
    timezone: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    revoked_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
