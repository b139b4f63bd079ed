"""Per-membership facts the retention reports scan instead of rebuilding the membership sequence
on every call (issue 19; docs/analytics.md, "Membership facts").

- `analytics_fact_dirty`: the members whose facts are stale, per club, with a `seq` bumped on
  every further change; marked by database triggers on `memberships` (migration
  0013_analytics_facts) whenever a row is inserted or deleted, or its club, member, plan, dates
  or cancellation change — never on `visits_used`, so check-ins do not fire them. Rows written
  by any path (services, imports, tests, SQL) are covered. No foreign key: the triggers also
  fire while a club's or member's memberships are deleted with it.
- `analytics_fact_builds`: per club, the grace window the facts were built under.
- `analytics_membership_facts`: each running (not void) membership of the club with what
  `app.analytics.retention.sequenced` derives from its member's other memberships. Written only
  by `app.analytics.retention.ensure_facts`, which recomputes the dirty members' rows (all of
  the club's when the grace window changed). With them, each membership's renewal outcome
  (`renewed`, and `grace_end` = last day + grace; migration 0015_analytics_outcomes): it too
  depends only on the member's memberships in the club and on grace.
- `analytics_touchpoint_pairs`, `analytics_channel_sends`: touchpoint counts per (membership,
  definition) and per (membership, channel), kept by triggers on `scheduled_touchpoints`
  (migration 0015_analytics_outcomes).
"""
from datetime import date

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base
from app.core.types import BigId


class FactDirty(Base):
    __tablename__ = "analytics_fact_dirty"

    club_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    member_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)


class FactBuild(Base):
    __tablename__ = "analytics_fact_builds"

    club_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("clubs.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    grace: Mapped[int] = mapped_column(Integer)


class MembershipFact(Base):
    __tablename__ = "analytics_membership_facts"
    __table_args__ = (Index("ix_analytics_membership_facts_member", "club_id", "member_id"),
                      Index("ix_analytics_membership_facts_last_day", "club_id", "last_day"))

    club_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("clubs.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    membership_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    member_id: Mapped[int] = mapped_column(BigId)
    plan_id: Mapped[int] = mapped_column(BigId)
    start_date: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    prev_end: Mapped[date | None] = mapped_column(Date)
    next_start: Mapped[date | None] = mapped_column(Date)
    first_start: Mapped[date] = mapped_column(Date)
    entry_plan: Mapped[int] = mapped_column(BigId)
    new_spell: Mapped[int] = mapped_column(Integer)
    cov_from: Mapped[date] = mapped_column(Date)
    spell_end: Mapped[date] = mapped_column(Date)
    before_month: Mapped[date] = mapped_column(Date)  # the months `monthly_figures` groups by
    last_month: Mapped[date] = mapped_column(Date)
    spell_end_month: Mapped[date] = mapped_column(Date)
    start_month: Mapped[date] = mapped_column(Date)
    renewed: Mapped[int] = mapped_column(Integer)  # the renewal outcome (migration 0015)
    grace_end: Mapped[date] = mapped_column(Date)  # last_day + grace: undecided until then


class TouchpointPair(Base):
    """Per membership and touchpoint definition, how many of the touchpoints planned for that
    membership (`scheduled_touchpoints.membership_id`) are sent, held out, and planned at all —
    kept exact by triggers on `scheduled_touchpoints` (migration 0015_analytics_outcomes) on
    every insert, delete and change of its club, membership, definition or status, whatever
    path writes it. The touchpoint report counts these pairs instead of grouping every
    touchpoint row by (definition, membership) on each call. A pair whose counts reach 0 is
    deleted. No foreign keys: the triggers also run while a club's or membership's rows go."""

    __tablename__ = "analytics_touchpoint_pairs"

    club_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    membership_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    definition_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    sent: Mapped[int] = mapped_column(Integer)  # rows with status `sent`
    held: Mapped[int] = mapped_column(Integer)  # rows with status `held_out`
    planned: Mapped[int] = mapped_column(Integer)  # all rows


class ChannelSend(Base):
    """Per membership and channel, how many of the touchpoints planned for that membership were
    delivered (status `sent`) on that channel — kept exact by the same triggers as
    `TouchpointPair` (migration 0015_analytics_outcomes); the renewal breakdown by channel reads
    these instead of grouping every delivered touchpoint per membership. Rows at 0 are deleted."""

    __tablename__ = "analytics_channel_sends"

    club_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    membership_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    sent: Mapped[int] = mapped_column(Integer)
