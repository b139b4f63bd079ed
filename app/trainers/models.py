"""Trainers, personal-training packages, sessions and group classes."""
from datetime import date, datetime, time
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin, TimestampMixin
from app.core.types import BigId, Money

# --- trainers -------------------------------------------------------------------------------------


class TrainerProfile(IdMixin, TimestampMixin, Base):
    """A staff user with the trainer role in a club, and what members see of them.

    `feed_token_hash` is the SHA-256 of the secret in the trainer's calendar-feed URL (rotatable).
    """

    __tablename__ = "trainer_profiles"
    __table_args__ = (UniqueConstraint("club_id", "user_id"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    specialities: Mapped[list] = mapped_column(JSON, default=list)
    bio: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    feed_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    feed_token_created_at: Mapped[datetime | None]


class TrainerHours(IdMixin, Base):
    """One working interval on a weekday (ISO 1 = Monday), wall-clock time in the club's zone."""

    __tablename__ = "trainer_hours"
    __table_args__ = (
        Index("ix_trainer_hours_trainer_weekday", "trainer_id", "weekday"),
        CheckConstraint("weekday BETWEEN 1 AND 7", name="weekday_iso"),
        CheckConstraint("end_time > start_time", name="interval_ordered"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"),
                                         index=True)
    trainer_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("trainer_profiles.id", ondelete="CASCADE"))
    weekday: Mapped[int] = mapped_column(SmallInteger)
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)


class TrainerAbsence(IdMixin, Base):
    """Days a trainer is unavailable (vacation, sick): no sessions may be booked on them."""

    __tablename__ = "trainer_absences"
    __table_args__ = (
        Index("ix_trainer_absences_trainer_start", "trainer_id", "start_date"),
        CheckConstraint("end_date >= start_date", name="dates_ordered"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"),
                                         index=True)
    trainer_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("trainer_profiles.id", ondelete="CASCADE"))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]


class TrainerSettings(IdMixin, Base):
    """The trainer domain's per-club rules (a missing row means the defaults)."""

    __tablename__ = "trainer_settings"

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"),
                                         unique=True)
    pt_cancel_hours: Mapped[int] = mapped_column(Integer, default=24)
    updated_at: Mapped[datetime]


class TrainerClientNote(IdMixin, Base):
    """A trainer's note about a client; only that trainer and managers read it."""

    __tablename__ = "trainer_client_notes"
    __table_args__ = (Index("ix_trainer_client_notes_trainer_member", "trainer_id", "member_id"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"),
                                         index=True)
    trainer_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("trainer_profiles.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("members.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("pt_sessions.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)
    staff_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]


# --- personal training ----------------------------------------------------------------------------


class PtProduct(IdMixin, TimestampMixin, Base):
    """A personal-training package the club sells: n sessions, valid for some days."""

    __tablename__ = "pt_products"

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"),
                                         index=True)
    name: Mapped[str] = mapped_column(String(100))
    sessions: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Money)
    validity_days: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class PtPackage(IdMixin, Base):
    """A package sold to a member; `sessions_left` is the live balance (guarded UPDATEs only)."""

    __tablename__ = "pt_packages"
    __table_args__ = (
        Index("ix_pt_packages_member_valid", "member_id", "valid_until"),
        Index("ix_pt_packages_club_created", "club_id", "created_at"),
        CheckConstraint("sessions_left >= 0", name="balance_not_negative"),
        CheckConstraint("sessions_left <= sessions_total", name="balance_within_total"),
        UniqueConstraint("club_id", "external_ref"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("pt_products.id", ondelete="RESTRICT"), index=True)
    trainer_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("trainer_profiles.id", ondelete="SET NULL"), index=True)
    sale_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("sales.id", ondelete="SET NULL"), index=True)
    sessions_total: Mapped[int] = mapped_column(Integer)
    sessions_left: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Money)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime]
    external_ref: Mapped[str | None] = mapped_column(String(100))
    """The package's id in the club's previous system (history import re-runs on it)."""


class PtSession(IdMixin, TimestampMixin, Base):
    """A personal-training session: booked → completed | no_show | cancelled (exactly once).

    `package_id` is the package it spent a session of (completed, no-show, late cancellation);
    `sequence` counts reschedules (the iCalendar SEQUENCE).
    """

    __tablename__ = "pt_sessions"
    __table_args__ = (
        Index("ix_pt_sessions_trainer_starts", "trainer_id", "starts_at"),
        Index("ix_pt_sessions_member_starts", "member_id", "starts_at"),
        Index("ix_pt_sessions_club_starts", "club_id", "starts_at"),
        CheckConstraint("ends_at > starts_at", name="interval_ordered"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    trainer_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("trainer_profiles.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(12), default="booked")
    complimentary: Mapped[bool] = mapped_column(Boolean, default=False)
    package_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("pt_packages.id", ondelete="SET NULL"), index=True)
    late_cancel: Mapped[bool] = mapped_column(Boolean, default=False)
    cancelled_by: Mapped[str | None] = mapped_column(String(10))
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    task_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("tasks.id", ondelete="SET NULL"))
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    booked_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    closed_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    closed_at: Mapped[datetime | None]


# --- group classes --------------------------------------------------------------------------------


class ClassType(IdMixin, TimestampMixin, Base):
    """A kind of group class (yoga, spinning) with its default capacity and duration."""

    __tablename__ = "class_types"
    __table_args__ = (UniqueConstraint("club_id", "name"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    capacity: Mapped[int] = mapped_column(Integer)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ClassSlot(IdMixin, TimestampMixin, Base):
    """A line of the weekly timetable: class type, weekday (ISO), local start time, trainer."""

    __tablename__ = "class_slots"
    __table_args__ = (CheckConstraint("weekday BETWEEN 1 AND 7", name="weekday_iso"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"),
                                         index=True)
    class_type_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("class_types.id", ondelete="RESTRICT"), index=True)
    trainer_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("trainer_profiles.id", ondelete="RESTRICT"), index=True)
    weekday: Mapped[int] = mapped_column(SmallInteger)
    start_time: Mapped[time] = mapped_column(Time)
    capacity: Mapped[int] = mapped_column(Integer)
    room: Mapped[str | None] = mapped_column(String(50))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ClassOccurrence(IdMixin, Base):
    """One class on one day, generated from a timetable slot (unique per slot and day).

    `booked_count` is the number of confirmed bookings, changed only by guarded UPDATEs.
    """

    __tablename__ = "class_occurrences"
    __table_args__ = (
        UniqueConstraint("slot_id", "day"),
        Index("ix_class_occurrences_club_starts", "club_id", "starts_at"),
        Index("ix_class_occurrences_trainer_starts", "trainer_id", "starts_at"),
        CheckConstraint("booked_count >= 0", name="count_not_negative"),
        CheckConstraint("booked_count <= capacity", name="count_within_capacity"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    slot_id: Mapped[int] = mapped_column(BigId, ForeignKey("class_slots.id", ondelete="CASCADE"))
    class_type_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("class_types.id", ondelete="RESTRICT"), index=True)
    trainer_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("trainer_profiles.id", ondelete="RESTRICT"))
    day: Mapped[date] = mapped_column(Date)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    capacity: Mapped[int] = mapped_column(Integer)
    room: Mapped[str | None] = mapped_column(String(50))
    booked_count: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), default="scheduled")
    created_at: Mapped[datetime]


class ClassBooking(IdMixin, TimestampMixin, Base):
    """A member's place in a class: booked, waitlisted (in `queued_at` order) or cancelled.

    One row per member and class; booking again after a cancellation reuses it.
    """

    __tablename__ = "class_bookings"
    __table_args__ = (
        UniqueConstraint("occurrence_id", "member_id"),
        Index("ix_class_bookings_member_status", "member_id", "status"),
        Index("ix_class_bookings_occurrence_status_queued", "occurrence_id", "status",
              "queued_at"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"),
                                         index=True)
    occurrence_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("class_occurrences.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(12))
    queued_at: Mapped[datetime]
    attended_at: Mapped[datetime | None]
    attendance_source: Mapped[str | None] = mapped_column(String(10))
    promoted_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    booked_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
