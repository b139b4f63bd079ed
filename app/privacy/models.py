"""Privacy records: the audit log, merges of duplicate members, dismissed duplicate pairs, erasures.

None of these tables holds personal data: the audit log names the fields that were viewed or
changed, never their values; merges and erasures keep ids and per-table row counts. Member ids
in `audit_log`, `member_merges` and `member_erasures` are plain numbers (no foreign key): the
record must outlive the member row a merge deletes, and a merge must not move it.
"""
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core import clock
from app.core.db import Base, IdMixin
from app.core.types import BigId


class MemberMerge(IdMixin, Base):
    """One merge: the duplicate's rows moved to the kept member, and how many per table."""

    __tablename__ = "member_merges"
    __table_args__ = (
        UniqueConstraint("club_id", "merged_member_id"),
        Index("ix_member_merges_club_kept", "club_id", "kept_member_id"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    kept_member_id: Mapped[int] = mapped_column(BigId)
    merged_member_id: Mapped[int] = mapped_column(BigId)
    staff_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    taken: Mapped[list] = mapped_column(JSON, default=list)  # fields taken from the duplicate
    moved: Mapped[dict] = mapped_column(JSON, default=dict)  # {table: rows moved}
    dropped: Mapped[dict] = mapped_column(JSON, default=dict)  # {table: duplicate rows deleted}


class DuplicateDismissal(IdMixin, Base):
    """A pair the staff said are two different people: the finder does not show it again."""

    __tablename__ = "duplicate_dismissals"
    __table_args__ = (UniqueConstraint("member_a_id", "member_b_id"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"),
                                         index=True)
    # member_a_id < member_b_id
    member_a_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    member_b_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"),
                                             index=True)
    staff_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=clock.now)


class MemberErasure(IdMixin, Base):
    """One erasure on request: who, when, why (identifiers scrubbed) and rows touched per table."""

    __tablename__ = "member_erasures"
    __table_args__ = (UniqueConstraint("club_id", "member_id"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigId)
    staff_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    reason: Mapped[str] = mapped_column(String(500))
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
