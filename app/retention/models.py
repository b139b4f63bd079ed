"""Retention engine models (see RETENTION.md and docs/retention.md).

- `member_stages`: the lifecycle stage each member is in now (one row per member), with the
  facts the visit listener needs to move an at-risk member back without a query of its own;
- `stage_changes`: every stage change (from, to, effective day, when recorded, why);
- `touchpoint_definitions`: the club's playbook;
- `scheduled_touchpoints`: one row per (member, definition, cycle) — the unique key that makes
  planning idempotent — carrying the delivery state machine
  (pending → sending → sent | skipped | held_out | cancelled | failed);
- `touchpoint_attempts`: one row per delivery attempt (success or error);
- `retention_runs`: one row per club and day, so the daily run happens once;
- `retention_state`: per-club bookkeeping (how far visits have been counted for milestones,
  which settings the member facts were built under);
- `retention_member_facts`: per member, what the stages need from their memberships and
  freezes (tenure start, current membership, freeze), valid until a stored day; marked stale by
  database triggers on `memberships` and `freezes` (migration 0014_retention_state).
"""
from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin, TimestampMixin
from app.core.types import BigId


class MemberStage(IdMixin, Base):
    """The stage a member is in now, since when, in which cycle, and why."""

    __tablename__ = "member_stages"
    __table_args__ = (
        UniqueConstraint("member_id"),
        Index("ix_member_stages_club_stage_since", "club_id", "stage", "since"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(20))
    since: Mapped[date] = mapped_column(Date)
    cycle: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(200))
    # the membership in context: the current one, or the last one that ended
    membership_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("memberships.id", ondelete="SET NULL"))
    # at_risk only: where a recovering visit takes the member, and how many visits it takes
    base_stage: Mapped[str | None] = mapped_column(String(20))
    base_since: Mapped[date | None] = mapped_column(Date)
    base_cycle: Mapped[str | None] = mapped_column(String(40))
    recover_visits: Mapped[int] = mapped_column(Integer, default=0)
    risk_cleared_on: Mapped[date | None] = mapped_column(Date)
    # visits before retention_state.visits_counted_until (visit milestones); -1 = not counted yet
    visits_total: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]


class StageChange(IdMixin, Base):
    """One stage change of one member: from, to, the day it took effect, and why."""

    __tablename__ = "stage_changes"
    __table_args__ = (Index("ix_stage_changes_member_at", "member_id", "at"),
                      Index("ix_stage_changes_club_on", "club_id", "on_date"))

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    from_stage: Mapped[str | None] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    on_date: Mapped[date] = mapped_column(Date)
    at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20), default="daily_run")


class TouchpointDefinition(IdMixin, TimestampMixin, Base):
    """One play of the playbook: when it fires, on which channel, what it says, when it stops."""

    __tablename__ = "touchpoint_definitions"
    __table_args__ = (UniqueConstraint("club_id", "key"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(200))
    stage: Mapped[str | None] = mapped_column(String(20))  # None: any stage with a membership
    trigger: Mapped[str] = mapped_column(String(30))
    days: Mapped[int | None] = mapped_column(Integer)
    visits: Mapped[int | None] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(20))
    subject_template: Mapped[str] = mapped_column(Text, default="")
    body_template: Mapped[str] = mapped_column(Text)
    stop_condition: Mapped[str] = mapped_column(String(30), default="none")
    priority: Mapped[int] = mapped_column(Integer, default=50)
    holdout_share: Mapped[float | None] = mapped_column(Float)  # None: the club's setting
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class ScheduledTouchpoint(IdMixin, Base):
    """A touchpoint planned for one member in one cycle, and where its delivery stands."""

    __tablename__ = "scheduled_touchpoints"
    __table_args__ = (
        UniqueConstraint("member_id", "definition_id", "cycle"),
        Index("ix_scheduled_touchpoints_status_due", "status", "due_at"),
        Index("ix_scheduled_touchpoints_club_status", "club_id", "status", "planned_at"),
        Index("ix_scheduled_touchpoints_member_sent", "member_id", "sent_at"),
        # analytics: touchpoints of the memberships ending in a period (migration 0012_analytics)
        Index("ix_scheduled_touchpoints_membership", "membership_id", "club_id"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    definition_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("touchpoint_definitions.id", ondelete="CASCADE"), index=True)
    cycle: Mapped[str] = mapped_column(String(40))
    stage: Mapped[str | None] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int] = mapped_column(Integer, default=50)
    membership_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("memberships.id", ondelete="SET NULL"))
    trigger_on: Mapped[date] = mapped_column(Date)
    planned_at: Mapped[datetime]
    first_due_at: Mapped[datetime]
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(12), default="pending")
    reason: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime | None]
    claim_token: Mapped[str | None] = mapped_column(String(36))
    sent_at: Mapped[datetime | None]
    recipient: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]


class TouchpointAttempt(IdMixin, Base):
    """One delivery attempt: when, whether the channel accepted it, and the error if not."""

    __tablename__ = "touchpoint_attempts"

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    touchpoint_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("scheduled_touchpoints.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    provider_ref: Mapped[str | None] = mapped_column(String(200))


class RetentionRun(IdMixin, Base):
    """The daily run of one club for one day: unique, so the run happens once per day."""

    __tablename__ = "retention_runs"
    __table_args__ = (UniqueConstraint("club_id", "run_date"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    run_date: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(20), default="scheduler")
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    stats: Mapped[dict] = mapped_column(JSON, default=dict)


class RetentionState(IdMixin, Base):
    """Per-club bookkeeping of the engine."""

    __tablename__ = "retention_state"
    __table_args__ = (UniqueConstraint("club_id"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    visits_counted_until: Mapped[datetime | None]
    # the settings `retention_member_facts` were built under ("g<grace>w<tenure window>");
    # None or different: the next run rebuilds the club's facts
    facts_key: Mapped[str | None] = mapped_column(String(40))


class MemberFacts(Base):
    """One member's membership facts as the stages see them on `computed_on`, unchanged for
    every day before `valid_until` (and before `known_next_at` in instants).

    Stale when `seq` (bumped by the triggers on `memberships` and `freezes` of migration
    0014_retention_state) differs from `computed_seq`, or the day is outside
    [`computed_on`, `valid_until`). No foreign keys: the triggers also fire while a club's or
    member's memberships are deleted with it. Written only by `app.retention.facts`.
    """

    __tablename__ = "retention_member_facts"

    club_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    member_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    computed_seq: Mapped[int | None] = mapped_column(BigInteger)
    computed_on: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)  # None: no change ahead
    known_next_at: Mapped[datetime | None]  # the next membership sold for a later start
    # the memberships known on the day (stages.py, "mm"): started (1 or None), the start of a
    # tenure begun in the look-back window, the current (last-ending started) membership, and
    # (end day, start day) packed as in stages.py
    started: Mapped[int | None] = mapped_column(Integer)
    tenure_start: Mapped[date | None] = mapped_column(Date)
    top_end: Mapped[date | None] = mapped_column(Date)
    top_id: Mapped[int | None] = mapped_column(BigInteger)
    top_plan_id: Mapped[int | None] = mapped_column(BigInteger)
    key_start: Mapped[int | None] = mapped_column(BigInteger)
    latest_start_days: Mapped[int | None] = mapped_column(Integer)
    # the freezes ("fz"): the one covering the day, and the last end before it
    freeze_id: Mapped[int | None] = mapped_column(BigInteger)
    freeze_start: Mapped[date | None] = mapped_column(Date)
    freeze_end: Mapped[date | None] = mapped_column(Date)
