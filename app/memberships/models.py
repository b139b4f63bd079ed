from datetime import date, datetime, time
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin, TimestampMixin
from app.core.types import BigId, Money


class Plan(IdMixin, TimestampMixin, Base):
    """What a club sells: duration, price, visit limit, access hours, freeze allowance."""

    __tablename__ = "plans"
    __table_args__ = (UniqueConstraint("club_id", "external_ref"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str | None] = mapped_column(String(50))
    duration_days: Mapped[int | None] = mapped_column(Integer)
    duration_months: Mapped[int | None] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Money)
    visit_limit: Mapped[int | None] = mapped_column(Integer)
    access_start: Mapped[time | None] = mapped_column(Time)
    access_end: Mapped[time | None] = mapped_column(Time)
    freeze_days: Mapped[int] = mapped_column(Integer, default=0)
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=False)
    billing: Mapped[str] = mapped_column(String(10), default="prepaid")
    """prepaid (sold and paid once) or recurring (a contract billed each period: the terms
    below; app.dues)."""
    billing_period: Mapped[str | None] = mapped_column(String(10))
    """month, 4weeks or year (recurring plans)."""
    minimum_months: Mapped[int | None] = mapped_column(Integer)
    notice_value: Mapped[int | None] = mapped_column(Integer)
    notice_unit: Mapped[str | None] = mapped_column(String(10))
    """days, weeks or months."""
    renewal: Mapped[str | None] = mapped_column(String(10))
    """After the minimum term: term (renews for renewal_months) or monthly (one month's
    notice)."""
    renewal_months: Mapped[int | None] = mapped_column(Integer)
    joining_fee: Mapped[Decimal | None] = mapped_column(Money)
    tax_rate: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    next_price: Mapped[Decimal | None] = mapped_column(Money)
    next_price_from: Mapped[date | None] = mapped_column(Date)
    """A price change for running contracts, announced with notice, from this day."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    external_ref: Mapped[str | None] = mapped_column(String(100))
    """The plan's id in the club's previous system (history import re-runs on it)."""


class Membership(IdMixin, TimestampMixin, Base):
    """A plan sold to a member for a date range; its status on any day is derived, not stored."""

    __tablename__ = "memberships"
    __table_args__ = (
        Index("ix_memberships_member_dates", "member_id", "start_date", "end_date"),
        Index("ix_memberships_club_end", "club_id", "end_date"),
        UniqueConstraint("club_id", "external_ref"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    plan_id: Mapped[int] = mapped_column(BigId, ForeignKey("plans.id", ondelete="RESTRICT"), index=True)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    original_end_date: Mapped[date] = mapped_column(Date)
    price: Mapped[Decimal] = mapped_column(Money)
    visit_limit: Mapped[int | None] = mapped_column(Integer)
    visits_used: Mapped[int] = mapped_column(Integer, default=0)
    renews_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("memberships.id", ondelete="SET NULL"), index=True)
    sale_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("sales.id", ondelete="SET NULL"))
    cancelled_on: Mapped[date | None] = mapped_column(Date)
    cancel_reason: Mapped[str | None] = mapped_column(String(50))
    cancel_note: Mapped[str | None] = mapped_column(Text)
    refund_amount: Mapped[Decimal | None] = mapped_column(Money)
    external_ref: Mapped[str | None] = mapped_column(String(100))
    """The membership's id in the club's previous system (history import re-runs on it)."""


class Freeze(IdMixin, Base):
    """A pause: the membership's end moves out by the frozen days; an early end gives days back."""

    __tablename__ = "freezes"
    __table_args__ = (UniqueConstraint("club_id", "external_ref"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"), index=True)
    membership_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("memberships.id", ondelete="CASCADE"), index=True)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(String(200))
    staff_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    external_ref: Mapped[str | None] = mapped_column(String(100))
    """The freeze's id in the club's previous system (history import re-runs on it)."""
