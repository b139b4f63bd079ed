"""CRM models: staff tasks, interactions (the timeline), leads and the website form."""
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core import clock
from app.core.db import Base, IdMixin
from app.core.types import BigId


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
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


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
    next_step: Mapped[str | None] = mapped_column(String(500))
    staff_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    occurred_at: Mapped[datetime] = mapped_column(default=clock.now)
    touchpoint_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("scheduled_touchpoints.id", ondelete="SET NULL"), index=True)
    task_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("tasks.id", ondelete="SET NULL"))


class Lead(IdMixin, Base):
    """A prospect in the sales pipeline: one row per person (a member without a membership).

    Stages: new → contacted → trial_booked → trial_done → won | lost (see `app.crm.leads`).
    """

    __tablename__ = "leads"
    __table_args__ = (
        UniqueConstraint("member_id"),
        Index("ix_leads_club_created", "club_id", "created_at"),
        Index("ix_leads_club_stage", "club_id", "stage"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(20), default="new")
    source: Mapped[str] = mapped_column(String(20))
    source_detail: Mapped[str | None] = mapped_column(String(200))
    utm_source: Mapped[str | None] = mapped_column(String(100))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))
    assignee_user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    trial_date: Mapped[date | None] = mapped_column(Date)
    lost_reason: Mapped[str | None] = mapped_column(String(30))
    lost_note: Mapped[str | None] = mapped_column(String(500))
    first_contact_at: Mapped[datetime | None]
    won_at: Mapped[datetime | None]
    won_membership_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("memberships.id", ondelete="SET NULL"))
    lost_at: Mapped[datetime | None]
    created_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class LeadStageChange(IdMixin, Base):
    """One move of a lead through the pipeline (from_stage None: the lead was created)."""

    __tablename__ = "lead_stage_changes"

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(BigId, ForeignKey("leads.id", ondelete="CASCADE"),
                                         index=True)
    from_stage: Mapped[str | None] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    lost_reason: Mapped[str | None] = mapped_column(String(30))
    note: Mapped[str | None] = mapped_column(String(500))
    staff_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=clock.now)


class WebsiteKey(IdMixin, Base):
    """An API key the club's website sends with form submissions; only its SHA-256 is kept."""

    __tablename__ = "website_keys"
    __table_args__ = (UniqueConstraint("key_hash"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"),
                                         index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    revoked_at: Mapped[datetime | None]


class WebsiteSubmission(IdMixin, Base):
    """One website form received; `form_id` (unique per club) makes a resubmission a no-op."""

    __tablename__ = "website_submissions"
    __table_args__ = (
        UniqueConstraint("club_id", "form_id"),
        Index("ix_website_submissions_club_created", "club_id", "created_at"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    key_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("website_keys.id", ondelete="SET NULL"))
    form_id: Mapped[str | None] = mapped_column(String(100))
    member_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("members.id", ondelete="CASCADE"), index=True)
    lead_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("leads.id", ondelete="SET NULL"))
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
