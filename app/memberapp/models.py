"""The member app's tables: sign-in challenges, members' device sessions, cancellations received,
freezes asked for.

Secrets are stored only as SHA-256 digests (`app.core.security.digest`): the email link's token,
the SMS challenge's handle (a random cookie of the browser that asked) and its 6-digit code
(digested together with the handle), the club choice of a member of several clubs, the session
cookie.
"""
from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin
from app.core.types import BigId


class MemberSignIn(IdMixin, Base):
    """One sign-in request: a link sent by email or a code sent by SMS, valid for minutes, once.

    Not tied to a club: an email or phone number may belong to members of several clubs, who
    choose the club after the link (`choice_hash`). `member_ids` are the members the message was
    sent for (empty when the address matched nobody: the request looks the same, nothing is
    sent). Rows are deleted a day after they expire.
    """

    __tablename__ = "member_sign_ins"
    __table_args__ = (Index("ix_member_sign_ins_expires_at", "expires_at"),)

    channel: Mapped[str] = mapped_column(String(10))
    """email (a link) or sms (a code)."""
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """The link's token (email), or the asking browser's handle (sms)."""
    code_hash: Mapped[str | None] = mapped_column(String(64))
    """sms: the digest of "<handle>:<code>"."""
    member_ids: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Wrong codes entered; the challenge dies at `MAX_CODE_ATTEMPTS`."""
    choice_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    """After a link or code that stands for members of several clubs: the chooser's cookie."""


class MemberSession(IdMixin, Base):
    """A member signed in on one device (the `fitclub_member` cookie). Separate from the staff's
    `auth_tokens`: neither authorises the other's endpoints."""

    __tablename__ = "member_app_sessions"
    __table_args__ = (Index("ix_member_app_sessions_member", "member_id", "revoked_at"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(10))
    """How the member signed in: email or sms."""
    device: Mapped[str | None] = mapped_column(String(60))
    """A short label from the browser's User-Agent ("Chrome on Android")."""
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(10))
    """member (signed out), staff (the desk) or erasure."""
    revoked_by_staff: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))


class MemberCancellation(IdMixin, Base):
    """A contract cancellation received through the app (§312k BGB), signed in or not: when it
    arrived, what was declared, whom it identified and what came of it. Kept as the club's
    record of receipt; `club_id` and `member_id` are empty when the details matched nobody."""

    __tablename__ = "member_app_cancellations"
    __table_args__ = (Index("ix_member_app_cancellations_club_received", "club_id",
                            "received_at"),
                      Index("ix_member_app_cancellations_member", "member_id"))

    club_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("members.id", ondelete="SET NULL"))
    contract_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("dues_contracts.id", ondelete="SET NULL"))
    received_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(15))
    """ordinary, or extraordinary (for an important reason, given in `reason`)."""
    reason: Mapped[str | None] = mapped_column(Text)
    member_number: Mapped[str | None] = mapped_column(String(64))
    """As typed on the page without sign-in."""
    contact: Mapped[str | None] = mapped_column(String(254))
    """The email or phone typed on the page without sign-in."""
    signed_in: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str] = mapped_column(String(20))
    """cancelled, already_cancelled, no_contract or not_matched."""
    ends_on: Mapped[date | None] = mapped_column(Date)


class MemberFreezeRequest(IdMixin, Base):
    """A freeze a member asked for in the app (`app.memberapp.freeze`). With the club's
    `app_freeze_mode` "instant" it is applied at once (status `applied`, `freeze_id` set); with
    "approval" it waits (`pending`) until the desk approves (`approved`, the freeze made through
    `memberships.service.freeze_membership`) or declines it (`declined`, with a reason).
    `request_key` is the form's one-time key: a form sent twice makes one request."""

    __tablename__ = "member_app_freeze_requests"
    __table_args__ = (UniqueConstraint("club_id", "request_key"),
                      Index("ix_member_app_freeze_requests_club_status", "club_id", "status"),
                      Index("ix_member_app_freeze_requests_member", "member_id"))

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    membership_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("memberships.id", ondelete="CASCADE"))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    days: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10))
    """pending, applied (instant), approved or declined."""
    request_key: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    decline_reason: Mapped[str | None] = mapped_column(String(200))
    freeze_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("freezes.id", ondelete="SET NULL"))
    task_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("tasks.id", ondelete="SET NULL"))
    """The desk's task to decide (approval mode), closed with the decision."""


class MemberSignature(IdMixin, Base):
    """A contract signed in the member app (`app.memberapp.join`): joining online or renewing.
    The terms exactly as shown (`terms_text`, in the page's language), the full name the person
    typed, when (the clock), from which address, for which plan, member and contract.
    `request_key` is the form's one-time key: a form sent twice signs once. `status` is
    `pending` until the first payment is taken at the desk (the desk's task)."""

    __tablename__ = "member_app_signatures"
    __table_args__ = (UniqueConstraint("club_id", "request_key"),
                      Index("ix_member_app_signatures_member", "member_id"))

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    plan_id: Mapped[int] = mapped_column(BigId, ForeignKey("plans.id", ondelete="RESTRICT"))
    contract_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("dues_contracts.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(10))
    """join (a new member) or renew (a signed-in member)."""
    status: Mapped[str] = mapped_column(String(10))
    """pending: the first payment is still to be taken at the desk."""
    request_key: Mapped[str] = mapped_column(String(64))
    terms_text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(5))
    typed_name: Mapped[str] = mapped_column(String(210))
    signed_at: Mapped[datetime]
    ip_address: Mapped[str | None] = mapped_column(String(64))
    lead_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("leads.id", ondelete="SET NULL"))
    """The open CRM lead this person was (won by the sale)."""
    task_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("tasks.id", ondelete="SET NULL"))
    """The desk's task: take the first payment, check the ID."""
