"""Delivery of due touchpoints: claim, re-check, send, record — each touchpoint at most once.

1. **Claim** (one short transaction): `WITH due AS MATERIALIZED (SELECT id … WHERE
   status='pending' AND due_at <= now ORDER BY priority DESC, due_at LIMIT n FOR UPDATE SKIP
   LOCKED) UPDATE scheduled_touchpoints SET status='sending', claim_token=… WHERE id IN
   (SELECT id FROM due) RETURNING id`. On PostgreSQL
   concurrent dispatchers skip each other's rows; on SQLite the transaction is `BEGIN
   IMMEDIATE` (one writer), and the `status='pending'` guard makes the claim atomic anyway.
2. **Decide** (one transaction for the batch): stop conditions again (renewed, visited since
   planned, stage left), the member's preferred channel (an email goes out as SMS to a member
   who prefers SMS and agreed to it, and the other way round; "phone" turns the message into a
   call task; "none" skips it), consent and address, quiet hours (wait for the morning), the
   frequency cap (wait a day; skip after `CAP_MAX_WAIT`), then render. Call and trainer tasks are written
   here as CRM tasks. Every outcome is written with a guard on the claim token.
3. **Send** (outside any transaction), then record the attempt and the outcome in a short one:
   sent; or pending again with exponential backoff; or failed after `MAX_ATTEMPTS`.

A row left in `sending` longer than `LEASE` (a crash between sending and recording) is marked
`failed` ("interrupted") and never retried: delivering twice is worse than once too few.
"""
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import lru_cache

from sqlalchemy import bindparam, exists, insert, select
from sqlalchemy.orm import Session, sessionmaker

from app.access.models import Visit
from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core import clock
from app.core.config import Settings, get_settings
from app.core.db import transaction
from app.core.sql import local_at, local_date
from app.core.types import BigId, UTCDateTime
from app.crm.models import Interaction, Task
from app.dues.models import Contract, DunningCase
from app.members.models import Member
from app.memberships.models import Membership, Plan
from app.retention import templates, unsubscribe
from app.retention.channels import Channels, Message, Result
from app.retention.models import (
    MemberStage,
    ScheduledTouchpoint,
    TouchpointAttempt,
    TouchpointDefinition,
)
from app.retention.playbook import Channel, Stage, StopCondition
from app.retention.scheduling import renewed_memberships

MAX_ATTEMPTS = 5
RETRY_BASE = timedelta(minutes=1)
RETRY_FACTOR = 4
LEASE = timedelta(minutes=15)
CAP_MAX_WAIT = timedelta(days=3)
BATCH = 100
MESSAGE_CHANNELS = (Channel.email.value, Channel.sms.value)


def retry_delay(attempts: int) -> timedelta:
    """1 min, 4 min, 16 min, 64 min … after the 1st, 2nd, 3rd, 4th failure."""
    return RETRY_BASE * RETRY_FACTOR ** max(attempts - 1, 0)


@dataclass
class DispatchStats:
    claimed: int = 0
    outcomes: Counter = field(default_factory=Counter)  # sent, skipped:no_consent, deferred:…

    def merge(self, other: "DispatchStats") -> None:
        self.claimed += other.claimed
        self.outcomes.update(other.outcomes)


@dataclass
class _Item:
    tp: ScheduledTouchpoint
    definition: TouchpointDefinition
    member: Member
    stage: MemberStage | None
    club: Club


@dataclass
class _Decision:
    kind: str  # cancel | skip | defer | fail | task | send
    reason: str | None = None
    due_at: datetime | None = None
    subject: str = ""
    body: str = ""
    message: Message | None = None
    channel: str | None = None  # set when the member's preference changed the channel


def in_quiet_hours(at: time, start: time, end: time) -> bool:
    if start == end:
        return False
    if start > end:  # over midnight, e.g. 21:00-09:00
        return at >= start or at < end
    return start <= at < end


def message_window_opens(zone, now: datetime, club_settings) -> datetime:
    """`now`, or the end of the club's quiet hours when `now` falls inside them."""
    start, end = club_settings.quiet_hours_start, club_settings.quiet_hours_end
    if in_quiet_hours(now.astimezone(zone).time(), start, end):
        return _next_morning(zone, now, end)
    return now


def _next_morning(zone, now: datetime, end: time, *, days: int = 0) -> datetime:
    local = now.astimezone(zone)
    day = local.date() + timedelta(days=days)
    candidate = local_at(zone, day, end)
    if candidate <= now:
        candidate = local_at(zone, day + timedelta(days=1), end)
    return candidate


def dispatch_due(factory: sessionmaker[Session], *, channels: Channels,
                 settings: Settings | None = None, now: datetime | None = None,
                 club_id: int | None = None, batch: int = BATCH) -> DispatchStats:
    """Deliver every touchpoint due by `now` (optionally of one club)."""
    settings = settings or get_settings()
    now = now or clock.now()
    stats = DispatchStats()
    first = True
    while True:
        token = uuid.uuid4().hex
        with transaction(factory) as session:
            if first:
                stale = _fail_stale(session, now=now, club_id=club_id)
                if stale:
                    stats.outcomes["failed:interrupted"] += stale
                first = False
            ids = claim(session, now=now, batch=batch, token=token, club_id=club_id)
        if not ids:
            break
        stats.claimed += len(ids)
        _process(factory, ids, token=token, now=now, channels=channels, settings=settings,
                 stats=stats)
        if len(ids) < batch:
            break
    return stats


@lru_cache(maxsize=2)
def _fail_stale_statement(by_club: bool):
    st = ScheduledTouchpoint.__table__
    now = bindparam("now", type_=UTCDateTime())
    where = [st.c.status == "sending", st.c.claimed_at < bindparam("stale", type_=UTCDateTime())]
    if by_club:
        where.append(st.c.club_id == bindparam("cid", type_=BigId))
    return st.update().where(*where).values(
        status="failed", reason="interrupted", claim_token=None, updated_at=now,
        last_error="the dispatcher stopped while delivering; not retried to avoid a duplicate")


def _fail_stale(session: Session, *, now: datetime, club_id: int | None) -> int:
    params = {"now": now, "stale": now - LEASE}
    if club_id is not None:
        params["cid"] = club_id
    return session.execute(_fail_stale_statement(club_id is not None), params).rowcount


@lru_cache(maxsize=8)
def _claim_statement(by_club: bool, batch: int):
    st = ScheduledTouchpoint.__table__
    now = bindparam("now", type_=UTCDateTime())
    where = [st.c.status == "pending", st.c.due_at <= now]
    if by_club:
        where.append(st.c.club_id == bindparam("cid", type_=BigId))
    # a MATERIALIZED CTE: as a plain IN (subquery) PostgreSQL may rescan the locking subquery
    # once per outer row, locking (and claiming) a new batch each time
    due = (select(st.c.id).where(*where)
           .order_by(st.c.priority.desc(), st.c.due_at, st.c.id).limit(batch)
           .with_for_update(skip_locked=True)
           .cte("due").prefix_with("MATERIALIZED", dialect="postgresql"))
    return (st.update().add_cte(due)
            .where(st.c.id.in_(select(due.c.id)), st.c.status == "pending")
            .values(status="sending", claimed_at=now, claim_token=bindparam("token"),
                    updated_at=now)
            .returning(st.c.id))


def claim(session: Session, *, now: datetime, batch: int, token: str,
          club_id: int | None = None) -> list[int]:
    """Mark up to `batch` due rows as ours (`sending`); rows another dispatcher holds are skipped."""
    params = {"now": now, "token": token}
    if club_id is not None:
        params["cid"] = club_id
    return [r.id for r in session.execute(_claim_statement(club_id is not None, batch), params)]


def _process(factory, ids: list[int], *, token: str, now: datetime, channels: Channels,
             settings: Settings, stats: DispatchStats) -> None:
    sends: list[tuple[_Item, _Decision]] = []
    with transaction(factory) as session:
        items = _load(session, ids, token)
        facts = _facts(session, items, now)
        timeline: list[dict] = []
        for item in items:
            decision = _decide(session, item, facts, now=now, channels=channels,
                               settings=settings)
            if decision.kind == "send":
                sends.append((item, decision))
            else:
                _apply(session, item, decision, token=token, now=now, timeline=timeline)
                stats.outcomes[decision.kind if decision.kind in ("task",)
                               else f"{decision.kind}:{decision.reason}"] += 1
        if timeline:
            session.execute(insert(Interaction.__table__), timeline)
    local, remote = [], []
    for pair in sends:
        channel = channels.for_name(pair[1].message.channel)
        (local if getattr(channel, "local", False) else remote).append(pair)
    for item, decision in remote:  # each recorded at once: a crash never sends twice
        result = _send(channels, item, decision)
        with transaction(factory) as session:
            outcome = _record_send(session, item, decision, result, token=token, now=now)
        stats.outcomes[outcome] += 1
    if local:  # in-memory channels (simulations): nothing left the process, record together
        with transaction(factory) as session:
            for item, decision in local:
                result = _send(channels, item, decision)
                stats.outcomes[_record_send(session, item, decision, result, token=token,
                                            now=now)] += 1


def _send(channels: Channels, item: _Item, decision: _Decision) -> Result:
    try:
        return channels.for_name(decision.message.channel).send(decision.message)
    except Exception as exc:  # noqa: BLE001 - a channel bug must not leave the row claimed
        return Result(False, f"{exc.__class__.__name__}: {exc}", retryable=True)


def _load(session: Session, ids: list[int], token: str) -> list[_Item]:
    rows = session.execute(
        select(ScheduledTouchpoint, TouchpointDefinition, Member, MemberStage)
        .join(TouchpointDefinition, TouchpointDefinition.id == ScheduledTouchpoint.definition_id)
        .join(Member, Member.id == ScheduledTouchpoint.member_id)
        .outerjoin(MemberStage, MemberStage.member_id == ScheduledTouchpoint.member_id)
        .where(ScheduledTouchpoint.id.in_(ids), ScheduledTouchpoint.claim_token == token)).all()
    club_ids = {tp.club_id for tp, *_ in rows}
    clubs = {c.id: c for c in session.scalars(select(Club).where(Club.id.in_(club_ids)))}
    items = [_Item(tp, d, m, ms, clubs[tp.club_id]) for tp, d, m, ms in rows]
    items.sort(key=lambda i: (-i.tp.priority, i.tp.due_at, i.tp.id))
    return items


@dataclass
class _Facts:
    renewed: set[int]
    visited: set[int]
    sent_recently: dict[int, list[datetime]]
    memberships: dict[int, tuple[Membership, str]]
    cap_used: Counter = field(default_factory=Counter)
    clubs: dict = field(default_factory=dict)
    settled: set[int] = field(default_factory=set)
    """Touchpoints (stop `payment_settled`) whose member has no open dunning case now."""
    withdrawn: set[int] = field(default_factory=set)
    """Touchpoints (stop `cancellation_withdrawn`) whose membership's contract runs on now."""

    def club(self, club: Club):
        if club.id not in self.clubs:
            self.clubs[club.id] = (clubs_service.club_settings(club), clubs_service.club_zone(club))
        return self.clubs[club.id]


def _facts(session: Session, items: list[_Item], now: datetime) -> _Facts:
    ids = [i.tp.id for i in items]
    renewable = {i.tp.membership_id for i in items
                 if i.definition.stop_condition == StopCondition.renewed and i.tp.membership_id}
    renewed = renewed_memberships(session, renewable, now=now, today=now.date())
    st = ScheduledTouchpoint
    visited = set(session.scalars(select(st.id).where(st.id.in_(ids), exists(
        select(Visit.id).where(Visit.member_id == st.member_id, Visit.occurred_at > st.planned_at,
                               Visit.occurred_at <= now))))) if ids else set()
    members = {i.tp.member_id for i in items}
    longest = max((clubs_service.club_settings(i.club).message_cap_days for i in items), default=7)
    sent: dict[int, list[datetime]] = defaultdict(list)
    if members:
        for member_id, at in session.execute(
                select(st.member_id, st.sent_at).where(
                    st.member_id.in_(members), st.status == "sent",
                    st.channel.in_(MESSAGE_CHANNELS), st.sent_at > now - timedelta(days=longest),
                    st.sent_at <= now)):
            sent[member_id].append(at)
    membership_ids = {i.tp.membership_id for i in items if i.tp.membership_id}
    memberships = {}
    if membership_ids:
        for m, plan_name in session.execute(
                select(Membership, Plan.name).join(Plan, Plan.id == Membership.plan_id)
                .where(Membership.id.in_(membership_ids))):
            memberships[m.id] = (m, plan_name)
    about_payment = {i.tp.member_id for i in items
                     if i.definition.stop_condition == StopCondition.payment_settled}
    owing = set(session.scalars(select(DunningCase.member_id).where(
        DunningCase.member_id.in_(about_payment), DunningCase.closed_on.is_(None)))) \
        if about_payment else set()
    settled = {i.tp.id for i in items if i.tp.member_id in about_payment - owing}
    about_cancel = {i.tp.membership_id for i in items if i.tp.membership_id and
                    i.definition.stop_condition == StopCondition.cancellation_withdrawn}
    cancelled = set(session.scalars(select(Contract.membership_id).where(
        Contract.membership_id.in_(about_cancel), Contract.ends_on.is_not(None)))) \
        if about_cancel else set()
    withdrawn = {i.tp.id for i in items
                 if i.definition.stop_condition == StopCondition.cancellation_withdrawn
                 and i.tp.membership_id not in cancelled}
    return _Facts(renewed, visited, sent, memberships, settled=settled, withdrawn=withdrawn)


def _decide(session: Session, item: _Item, facts: _Facts, *, now: datetime, channels: Channels,
            settings: Settings) -> _Decision:
    tp, x, member, club = item.tp, item.definition, item.member, item.club
    s, zone = facts.club(club)
    if not x.enabled:
        return _Decision("cancel", "disabled")
    if x.stop_condition == StopCondition.renewed and tp.membership_id in facts.renewed:
        return _Decision("cancel", "renewed")
    if x.stop_condition == StopCondition.visited_since_scheduled and tp.id in facts.visited:
        return _Decision("cancel", "visited")
    if x.stop_condition == StopCondition.payment_settled and tp.id in facts.settled:
        return _Decision("cancel", "settled")
    if x.stop_condition == StopCondition.cancellation_withdrawn and tp.id in facts.withdrawn:
        return _Decision("cancel", "withdrawn")
    if tp.stage is not None and (item.stage is None or item.stage.stage != tp.stage
                                 or item.stage.cycle != tp.cycle):
        return _Decision("cancel", "stage_left")
    if member.erased_at is not None:
        return _Decision("skip", "erased")
    channel = _preferred_channel(member, x.channel, channels)
    if channel is None:
        return _Decision("skip", "prefers_no_messages")
    address = None
    if channel == Channel.email:
        if not member.email_consent:
            return _Decision("skip", "no_consent")
        address = member.email
    elif channel == Channel.sms:
        if not member.sms_consent:
            return _Decision("skip", "no_consent")
        address = member.phone
        if channels.sms is None:
            return _Decision("skip", "channel_not_configured")
    if channel in MESSAGE_CHANNELS:
        if not address:
            return _Decision("skip", "no_address")
        if (opens := message_window_opens(zone, now, s)) > now:
            return _Decision("defer", "quiet_hours", due_at=opens)
        window_start = now - timedelta(days=s.message_cap_days)
        used = sum(1 for at in facts.sent_recently.get(member.id, ()) if at > window_start)
        used += facts.cap_used[member.id]
        if used >= s.message_cap:
            if s.message_cap == 0 or now - tp.first_due_at >= CAP_MAX_WAIT:
                return _Decision("skip", "frequency_cap")
            return _Decision("defer", "frequency_cap",
                             due_at=_next_morning(zone, now, s.quiet_hours_end, days=1))
    membership, plan_name = facts.memberships.get(tp.membership_id, (None, None))
    unsubscribe_url = None
    if channel == Channel.email:
        unsubscribe_url = unsubscribe.url(settings.public_base_url, settings.secret_key,
                                          club_id=club.id, member_id=member.id)
    ctx = templates.context(member=member, club=club, membership=membership, plan_name=plan_name,
                            stage=item.stage, today=local_date(zone, now),
                            unsubscribe_url=unsubscribe_url,
                            public_base_url=settings.public_base_url)
    try:
        subject = templates.render(x.subject_template or "", ctx)
        body = templates.render(x.body_template, ctx)
    except templates.RenderError as exc:
        return _Decision("fail", "template_error", body=str(exc))
    if channel not in MESSAGE_CHANNELS:
        return _Decision("task", subject=subject or x.name, body=body,
                         channel=channel if channel != x.channel else None)
    if channel == Channel.email:
        body = (f"{body}\n\n--\nYou receive this email as a member of {club.name}.\n"
                f"Unsubscribe: {unsubscribe_url}\n")
    facts.cap_used[member.id] += 1
    return _Decision("send", subject=subject, body=body, message=Message(
        touchpoint_id=tp.id, club_id=club.id, member_id=member.id, channel=channel, to=address,
        subject=subject, body=body, unsubscribe_url=unsubscribe_url, sender_name=club.name))


def _preferred_channel(member: Member, channel: str, channels: Channels) -> str | None:
    """The channel a message goes out on, given the member's preference (None: do not send).

    Only email and SMS touchpoints are redirected: to the other one when the member prefers it,
    agreed to it, has the address and the channel is configured; to a call task when they
    prefer the phone. Otherwise the touchpoint's own channel (and its consent rules) apply.
    """
    preferred = member.preferred_channel
    if channel not in MESSAGE_CHANNELS or not preferred or preferred == channel:
        return channel
    if preferred == "none":
        return None
    if preferred == "phone":
        return Channel.call_task.value
    if preferred == Channel.sms and member.sms_consent and member.phone and channels.sms:
        return Channel.sms.value
    if preferred == Channel.email and member.email_consent and member.email and channels.email:
        return Channel.email.value
    return channel


@lru_cache(maxsize=32)
def _guarded_statement(keys: tuple[str, ...]):
    st = ScheduledTouchpoint.__table__
    return (st.update()
            .where(st.c.id == bindparam("tp_id"), st.c.claim_token == bindparam("tok"),
                   st.c.status == "sending")
            .values({k: bindparam(f"v_{k}") for k in keys}))


def _guarded(session: Session, item: _Item, token: str, **values) -> bool:
    """Write an outcome only while the claim is still ours."""
    keys = tuple(sorted(values))
    params = {f"v_{k}": values[k] for k in keys}
    params.update(tp_id=item.tp.id, tok=token)
    return session.execute(_guarded_statement(keys), params).rowcount == 1


_TASK_ROLES = {Channel.call_task.value: "front_desk", Channel.trainer_task.value: "trainer"}
_SKIP_TEXT = {"no_consent": "no consent for this channel", "no_address": "no address on file",
              "frequency_cap": "frequency cap reached", "erased": "member data erased",
              "channel_not_configured": "channel not configured",
              "prefers_no_messages": "the member prefers no messages"}


def _interaction(item: _Item, *, now: datetime, summary: str, outcome: str,
                 task_id: int | None = None, channel: str | None = None) -> dict:
    return {"club_id": item.tp.club_id, "member_id": item.tp.member_id, "kind": "touchpoint",
            "channel": channel or item.definition.channel, "summary": summary[:500],
            "outcome": outcome,
            "staff_id": None, "occurred_at": now, "touchpoint_id": item.tp.id,
            "task_id": task_id}


def _apply(session: Session, item: _Item, d: _Decision, *, token: str, now: datetime,
           timeline: list[dict]) -> None:
    x = item.definition
    base = {"claim_token": None, "updated_at": now}
    if d.kind == "cancel":
        _guarded(session, item, token, status="cancelled", reason=d.reason, **base)
    elif d.kind == "defer":
        _guarded(session, item, token, status="pending", due_at=d.due_at, reason=d.reason, **base)
    elif d.kind == "skip":
        if _guarded(session, item, token, status="skipped", reason=d.reason, **base):
            timeline.append(_interaction(
                item, now=now, outcome="skipped",
                summary=f"{x.name}: not sent ({_SKIP_TEXT.get(d.reason, d.reason)})"))
    elif d.kind == "fail":
        if _guarded(session, item, token, status="failed", reason=d.reason, last_error=d.body,
                    **base):
            timeline.append(_interaction(item, now=now, outcome="failed",
                                         summary=f"{x.name}: failed ({d.body})"))
    elif d.kind == "task":
        zone = clubs_service.club_zone(item.club)
        channel = d.channel or x.channel
        role = _TASK_ROLES[channel]
        kind = "call" if channel == Channel.call_task else "trainer"
        if x.stage == Stage.renewal_due:
            kind = "renewal_offer"
        if d.channel:  # a message turned into a call by the member's preference
            base["channel"] = d.channel
        if not _guarded(session, item, token, status="sent", sent_at=now, subject=d.subject,
                        body=d.body, recipient=role, reason="task_created",
                        attempts=item.tp.attempts + 1, **base):
            return
        task_id = session.execute(_task_insert(), {
            "club_id": item.tp.club_id, "member_id": item.tp.member_id,
            "title": d.subject[:200], "details": d.body, "kind": kind, "assignee_role": role,
            "assignee_user_id": None, "due_date": local_date(zone, now), "status": "open",
            "touchpoint_id": item.tp.id, "created_at": now, "updated_at": now}).scalar_one()
        timeline.append(_interaction(item, now=now, outcome="task_created", task_id=task_id,
                                     channel=channel,
                                     summary=f"{x.name}: task for {role.replace('_', ' ')} — "
                                             f"{d.subject}"))


@lru_cache(maxsize=1)
def _task_insert():
    return insert(Task.__table__).returning(Task.__table__.c.id)


def _record_send(session: Session, item: _Item, d: _Decision, result: Result, *, token: str,
                 now: datetime) -> str:
    x, tp = item.definition, item.tp
    attempts = tp.attempts + 1
    session.execute(insert(TouchpointAttempt.__table__), {
        "club_id": tp.club_id, "touchpoint_id": tp.id, "attempt": attempts, "at": now,
        "ok": result.ok, "error": result.error, "provider_ref": result.provider_ref or None})
    base = {"claim_token": None, "updated_at": now, "attempts": attempts}
    message = d.message
    if message.channel != x.channel:  # sent on the member's preferred channel
        base["channel"] = message.channel
    timeline = []
    outcome = "sent"
    if result.ok:
        if _guarded(session, item, token, status="sent", sent_at=now, recipient=message.to,
                    subject=message.subject, body=message.body, last_error=None, reason=None,
                    **base):
            timeline.append(_interaction(item, now=now, outcome="sent", channel=message.channel,
                                         summary=f"{x.name}: {message.channel} sent to "
                                                 f"{message.to}"))
    elif result.retryable and attempts < MAX_ATTEMPTS:
        _guarded(session, item, token, status="pending", due_at=now + retry_delay(attempts),
                 last_error=result.error, reason="retrying", **base)
        outcome = "retry"
    else:
        outcome = "failed"
        if _guarded(session, item, token, status="failed", reason="delivery_failed",
                    last_error=result.error, **base):
            timeline.append(_interaction(
                item, now=now, outcome="failed", channel=message.channel,
                summary=f"{x.name}: {message.channel} to {message.to} failed after {attempts} "
                        f"attempt(s): {result.error}"))
    if timeline:
        session.execute(insert(Interaction.__table__), timeline)
    return outcome
