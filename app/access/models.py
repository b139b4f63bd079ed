from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin
from app.core.types import BigId


class AccessEvent(IdMixin, Base):
    """Every check-in attempt, granted or denied, with its reason.

    `dedup_key` is unique per club: a device's own event id (or serial+PIN+time), or a desk
    Idempotency-Key, so a retried or replayed event finds the original decision.
    """

    __tablename__ = "access_events"
    __table_args__ = (
        UniqueConstraint("club_id", "dedup_key"),
        Index("ix_access_events_club_occurred", "club_id", "occurred_at"),
        Index("ix_access_events_card_occurred", "club_id", "card_code", "occurred_at"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    device_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("devices.id", ondelete="SET NULL"))
    dedup_key: Mapped[str | None] = mapped_column(String(200))
    card_code: Mapped[str | None] = mapped_column(String(64))
    member_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("members.id", ondelete="SET NULL"), index=True)
    membership_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("memberships.id", ondelete="SET NULL"))
    direction: Mapped[str] = mapped_column(String(5), default="in")
    source: Mapped[str] = mapped_column(String(20))
    allowed: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    staff_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    override_reason: Mapped[str | None] = mapped_column(Text)
    identified_by: Mapped[str | None] = mapped_column(String(10))
    """How the person was named: `card`, `app_code` (the member app's rotating code, kept in
    `card_code`) or `member` (a device PIN / employee number, or the desk); NULL before 0017."""


class Visit(IdMixin, Base):
    """A granted entry: one row per visit, the table analytics and the retention engine scan."""

    __tablename__ = "visits"
    __table_args__ = (
        Index("ix_visits_member_occurred", "member_id", "occurred_at"),
        Index("ix_visits_club_occurred", "club_id", "occurred_at"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    membership_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("memberships.id", ondelete="SET NULL"))
    access_event_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("access_events.id", ondelete="SET NULL"), unique=True)
    occurred_at: Mapped[datetime]


class MemberAppCode(IdMixin, Base):
    """A member's secret for the rotating "get in" code of the member app (`member_codes`).

    `key` (8 digits, unique per club) is the fixed part of every code and names the member;
    `secret` makes the changing part. Created on first use; staff replace the secret when a
    phone is lost (`reset_at`, `reset_by`), which refuses every code made from the old one.
    """

    __tablename__ = "member_app_codes"
    __table_args__ = (UniqueConstraint("club_id", "key"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("members.id", ondelete="CASCADE"), unique=True)
    key: Mapped[str] = mapped_column(String(8))
    secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    reset_at: Mapped[datetime | None]
    reset_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))


# the device-protocol tables (device_commands, device_protocol_settings) join the schema here
from app.access.protocols import models as _protocol_models  # noqa: F401
