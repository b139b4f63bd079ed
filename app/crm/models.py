"""CRM models: staff tasks and interactions (the timeline)."""
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin
from app.core.types import BigId, utcnow


class Task(IdMixin, Base):
    """Something a person on the staff should do: call back, book an intro session, offer renewal.

    Assigned to a role (front_desk, trainer) or a person; a touchpoint creates at most one task
    (`touchpoint_id` is unique).
    """

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_club_status_due", "club_id", "status", "due_date"),
        UniqueConstraint("touchpoint_id"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("members.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    details: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(30))
    assignee_role: Mapped[str | None] = mapped_column(String(20))
    assignee_user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    due_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default="open")
    outcome: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    touchpoint_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("scheduled_touchpoints.id", ondelete="SET NULL"))
    created_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Interaction(IdMixin, Base):
    """One entry of a member's communication history: by staff, or by the engine (staff_id None)."""

    __tablename__ = "interactions"
    __table_args__ = (
        Index("ix_interactions_member_occurred", "member_id", "occurred_at"),
        Index("ix_interactions_club_occurred", "club_id", "occurred_at"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    channel: Mapped[str | None] = mapped_column(String(20))
    summary: Mapped[str] = mapped_column(String(500))
    outcome: Mapped[str | None] = mapped_column(String(200))
    staff_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    touchpoint_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("scheduled_touchpoints.id", ondelete="SET NULL"), index=True)
    task_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("tasks.id", ondelete="SET NULL"))
