"""Freezing a membership from the member app (`/app/freeze`).

The member picks a membership, a first day and a length. The app's own rules come first:

- the length is at least the club's `freeze_min_days` (default 7) and at most the freeze days
  left — the plan's `freeze_days` minus those used and those asked for and still waiting;
- the first day is at least `freeze_notice_days` (default 0) from the club's today.

Everything else — the plan allows freezing, the freeze falls within the membership, no overlap
with another freeze, the allowance — is `memberships.service.freeze_membership`'s, the one
implementation of a freeze's rules. What happens then is the club's `app_freeze_mode`:

- "instant": the freeze is made at once (`freeze_membership`, no staff member);
- "approval": the request is checked by a dry run of `freeze_membership` (in a savepoint rolled
  back), stored as `pending` with a desk task; the desk approves (the freeze is made then, by
  `freeze_membership`, with the staff member) or declines with a reason (`approve`, `decline`).

Every request is a `MemberFreezeRequest` row with the form's one-time key: the same form sent
twice gives the first answer. The member sees their requests and how they ended on the page;
the staff see them on the member's timeline, in the desk's tasks and through
`GET /api/v1/freeze-requests`.
"""
import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.billing import service as billing_service
from app.clubs import service as clubs_service
from app.clubs.schemas import ClubSettings
from app.core import clock
from app.core.actors import Actor, MemberActor
from app.core.errors import Conflict, Invalid, NotFound
from app.crm import service as crm_service
from app.crm.models import Task
from app.memberapp.models import MemberFreezeRequest
from app.members.models import Member
from app.memberships import service as memberships_service
from app.memberships.service import MembershipView

TIMELINE_KIND = "freeze_request"
STATUSES = ("pending", "applied", "approved", "declined")
KEY = re.compile(r"[A-Za-z0-9_\-]{16,64}")
REASON = "member app"
SHOWN_REQUESTS = 10


@dataclass
class Freezable:
    """A membership the member may freeze, with what they may still ask for."""

    membership: MembershipView
    days_left: int
    """Freeze days left, less those asked for and still waiting."""


@dataclass
class FreezeOptions:
    mode: str
    min_days: int
    notice_days: int
    earliest: date
    today: date
    memberships: list[Freezable] = field(default_factory=list)
    requests: list[MemberFreezeRequest] = field(default_factory=list)


def _settings(session: Session, club_id: int) -> ClubSettings:
    return clubs_service.club_settings(clubs_service.get_club(session, club_id))


def _waiting_days(session: Session, *, club_id: int, member_id: int) -> dict[int, int]:
    """Days asked for and still waiting, per membership."""
    rows = session.execute(
        select(MemberFreezeRequest.membership_id, func.sum(MemberFreezeRequest.days))
        .where(MemberFreezeRequest.club_id == club_id,
               MemberFreezeRequest.member_id == member_id,
               MemberFreezeRequest.status == "pending")
        .group_by(MemberFreezeRequest.membership_id)).all()
    return {membership_id: int(days) for membership_id, days in rows}


def options(session: Session, *, actor: MemberActor) -> FreezeOptions:
    """What the member's freeze page shows: the club's rules, the memberships that can be
    frozen (running or coming, not cancelled, the plan allows freezing) and their requests."""
    settings = _settings(session, actor.club_id)
    today = clubs_service.club_today_by_id(session, actor.club_id)
    views, _ = memberships_service.member_memberships(
        session, club_id=actor.club_id, member_id=actor.member_id, as_of=today, limit=12)
    waiting = _waiting_days(session, club_id=actor.club_id, member_id=actor.member_id)
    freezable = [Freezable(v, max(v.freeze_days_left - waiting.get(v.id, 0), 0))
                 for v in views if v.cancelled_on is None and v.end_date >= today
                 and v.plan.freeze_days > 0]
    requests = list(session.scalars(
        select(MemberFreezeRequest)
        .where(MemberFreezeRequest.club_id == actor.club_id,
               MemberFreezeRequest.member_id == actor.member_id)
        .order_by(MemberFreezeRequest.requested_at.desc(), MemberFreezeRequest.id.desc())
        .limit(SHOWN_REQUESTS)))
    return FreezeOptions(mode=settings.app_freeze_mode, min_days=settings.freeze_min_days,
                         notice_days=settings.freeze_notice_days,
                         earliest=today + timedelta(days=settings.freeze_notice_days),
                         today=today, memberships=freezable, requests=requests)


def _period(start: date, end: date, days: int) -> str:
    return f"from {start.isoformat()} to {end.isoformat()} ({days} day{'s' if days != 1 else ''})"


def request_freeze(session: Session, *, actor: MemberActor, membership_id: int,
                   start_date: date, days: int, key: str) -> MemberFreezeRequest:
    """The member asks to freeze one of their memberships; applied at once or waiting for the
    desk (the club's `app_freeze_mode`). The same `key` again returns the first request."""
    if not KEY.fullmatch(key or ""):
        raise Invalid("The form is out of date; open it again", code="freeze_form_stale")
    club_id = actor.club_id
    member = billing_service.require_member(session, club_id=club_id,
                                            member_id=actor.member_id, for_update=True)
    earlier = session.scalar(select(MemberFreezeRequest).where(
        MemberFreezeRequest.club_id == club_id, MemberFreezeRequest.request_key == key))
    if earlier is not None:
        if earlier.member_id != actor.member_id:
            raise Invalid("The form is out of date; open it again", code="freeze_form_stale")
        return earlier
    try:
        view = memberships_service.read_membership(session, club_id=club_id,
                                                   membership_id=membership_id)
    except NotFound:
        view = None
    if view is None or view.member_id != actor.member_id:
        raise NotFound("Membership not found", code="membership_not_found")
    settings = _settings(session, club_id)
    today = clubs_service.club_today_by_id(session, club_id)
    if days < settings.freeze_min_days:
        raise Invalid(f"A freeze lasts at least {settings.freeze_min_days} days",
                      code="freeze_too_short", details={"min": settings.freeze_min_days})
    earliest = today + timedelta(days=settings.freeze_notice_days)
    if start_date < earliest:
        raise Invalid(f"A freeze starts on {earliest.isoformat()} or later",
                      code="freeze_too_soon", details={"earliest": earliest.isoformat()})
    waiting = _waiting_days(session, club_id=club_id, member_id=actor.member_id)
    left = view.freeze_days_left - waiting.get(view.id, 0)
    if waiting.get(view.id) and days > left:
        raise Conflict("Freeze days are already asked for and waiting for the club",
                       code="freeze_request_pending")
    try:
        end_date = start_date + timedelta(days=days - 1)
    except OverflowError:  # 9999-12-31: no membership runs that far
        raise Invalid("The freeze must fall within your membership",
                      code="freeze_outside_membership") from None
    overlapping = session.scalar(select(MemberFreezeRequest.id).where(
        MemberFreezeRequest.club_id == club_id, MemberFreezeRequest.membership_id == view.id,
        MemberFreezeRequest.status == "pending", MemberFreezeRequest.start_date <= end_date,
        MemberFreezeRequest.end_date >= start_date).limit(1))
    if overlapping is not None:  # the desk could approve only one of them
        raise Conflict("This overlaps a freeze you asked for that is waiting for the club",
                       code="freeze_request_pending")
    row = MemberFreezeRequest(club_id=club_id, member_id=actor.member_id,
                              membership_id=view.id, start_date=start_date, end_date=end_date,
                              days=days, request_key=key, requested_at=clock.now())
    name = f"{member.first_name} {member.last_name}".strip()
    period = _period(start_date, end_date, days)
    if settings.app_freeze_mode == "instant":
        outcome = memberships_service.freeze_membership(
            session, actor=actor, membership_id=view.id, start_date=start_date,
            end_date=end_date, reason=REASON)
        row.status, row.freeze_id = "applied", outcome.freeze.id
        summary = f"Froze {view.plan.name} in the member app {period}"
    else:
        _dry_run(session, actor=actor, membership_id=view.id, start=start_date, end=end_date)
        row.status = "pending"
        row.task_id = crm_service.desk_task(
            session, club_id=club_id, member_id=actor.member_id,
            title=f"Approve or decline {name}'s freeze request (member app)",
            details=f"{view.plan.name}: {period}").id
        summary = f"Asked in the member app to freeze {view.plan.name} {period}; waiting for " \
                  f"the desk"
    session.add(row)
    crm_service.record(session, club_id=club_id, member_id=actor.member_id, kind=TIMELINE_KIND,
                       channel=crm_service.MEMBER_CHANNEL, summary=summary)
    session.flush()
    return row


def _dry_run(session: Session, *, actor: MemberActor, membership_id: int, start: date,
             end: date) -> None:
    """`freeze_membership`'s answer without its effect: refused requests are refused now, not
    when the desk approves."""
    savepoint = session.begin_nested()
    try:
        memberships_service.freeze_membership(session, actor=actor, membership_id=membership_id,
                                              start_date=start, end_date=end, reason=REASON)
    finally:
        savepoint.rollback()


# --- the desk ---------------------------------------------------------------------------------

def list_requests(session: Session, *, club_id: int, status: str | None = None,
                  limit: int = 50, offset: int = 0) -> tuple[list[tuple], int]:
    """The club's freeze requests (oldest waiting first), with the member's name."""
    if status is not None and status not in STATUSES:
        raise Invalid(f"status is one of {', '.join(STATUSES)}", code="invalid_status")
    where = [MemberFreezeRequest.club_id == club_id]
    if status is not None:
        where.append(MemberFreezeRequest.status == status)
    total = session.scalar(select(func.count()).select_from(MemberFreezeRequest).where(*where))
    rows = session.execute(
        select(MemberFreezeRequest, Member.first_name, Member.last_name)
        .join(Member, Member.id == MemberFreezeRequest.member_id)
        .where(*where)
        .order_by(MemberFreezeRequest.requested_at, MemberFreezeRequest.id)
        .limit(limit).offset(offset)).all()
    return [tuple(r) for r in rows], total


def _decidable(session: Session, *, actor: Actor, request_id: int) -> MemberFreezeRequest:
    """The request, read again once its member is locked (the order every writer uses)."""
    def find() -> MemberFreezeRequest:
        row = session.scalar(select(MemberFreezeRequest).where(
            MemberFreezeRequest.id == request_id, MemberFreezeRequest.club_id == actor.club_id)
            .execution_options(populate_existing=True))
        if row is None:
            raise NotFound("Freeze request not found", code="freeze_request_not_found")
        return row

    billing_service.require_member(session, club_id=actor.club_id,
                                   member_id=find().member_id, for_update=True)
    return find()


def _decided(session: Session, *, actor: Actor, row: MemberFreezeRequest, summary: str) -> None:
    """Close the desk's task with the decision (that puts it on the timeline), or put it on the
    timeline directly when the task is gone or was closed by hand."""
    task = session.get(Task, row.task_id) if row.task_id is not None else None
    if task is not None and task.status == "open":
        crm_service.complete_task(session, actor=actor, task_id=task.id, outcome=summary)
    else:
        crm_service.record(session, club_id=row.club_id, member_id=row.member_id,
                           kind=TIMELINE_KIND, staff_id=actor.user_id, summary=summary)


def approve(session: Session, *, actor: Actor, request_id: int) -> MemberFreezeRequest:
    """Approve a waiting request: the freeze is made (`freeze_membership`, by this staff member).
    Approving it again answers the same; a declined request stays declined."""
    row = _decidable(session, actor=actor, request_id=request_id)
    if row.status == "approved":
        return row
    if row.status != "pending":
        raise Conflict(f"This request is already {row.status}", code="freeze_request_decided")
    outcome = memberships_service.freeze_membership(
        session, actor=actor, membership_id=row.membership_id, start_date=row.start_date,
        end_date=row.end_date, reason=REASON)
    row.status, row.freeze_id = "approved", outcome.freeze.id
    row.decided_at, row.decided_by = clock.now(), actor.user_id
    _decided(session, actor=actor, row=row,
             summary=f"Freeze request from the member app approved: "
                     f"{_period(row.start_date, row.end_date, row.days)}")
    session.flush()
    return row


def decline(session: Session, *, actor: Actor, request_id: int,
            reason: str | None = None) -> MemberFreezeRequest:
    """Decline a waiting request (the member sees the reason). Declining it again answers the
    same; an approved request stays approved (end the freeze instead)."""
    reason = (reason or "").strip()[:200] or None
    row = _decidable(session, actor=actor, request_id=request_id)
    if row.status == "declined":
        return row
    if row.status != "pending":
        raise Conflict(f"This request is already {row.status}", code="freeze_request_decided")
    row.status, row.decline_reason = "declined", reason
    row.decided_at, row.decided_by = clock.now(), actor.user_id
    _decided(session, actor=actor, row=row,
             summary=f"Freeze request from the member app declined: "
                     f"{_period(row.start_date, row.end_date, row.days)}"
                     + (f"; reason: {reason}" if reason else ""))
    session.flush()
    return row
