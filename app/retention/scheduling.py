"""Planning touchpoints: which definitions fire for which members on a day.

Each trigger is evaluated for the whole club with one query per kind of trigger (a handful of
queries for the whole playbook), not per member. A trigger fires when its day T falls in the
last `LOOKBACK_DAYS` (so a missed daily run is caught up, and nothing older is sent late);
rows are inserted with `INSERT ... ON CONFLICT (member_id, definition_id, cycle) DO NOTHING`,
so planning the same day twice — or two planners at once — plans each touchpoint once.

Held-out members (a deterministic hash of member id and definition key below the holdout
share) get a row with status `held_out` and an interaction on their timeline, and no message.
"""
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import Date, String, and_, bindparam, case, exists, func, literal, or_, select
from sqlalchemy.orm import Session, aliased

from app.access.models import Visit
from app.clubs.schemas import ClubSettings
from app.core.sql import (
    bulk_insert_new,
    in_list,
    is_postgres,
    local_at,
    local_date,
    local_day_start,
    month_day,
)
from app.core.types import BigId, UTCDateTime
from app.crm.models import Interaction, Task
from app.dues.models import Contract, DunningCase
from app.members.models import Member
from app.memberships.models import Membership
from app.retention.models import (
    MemberStage,
    RetentionState,
    ScheduledTouchpoint,
    TouchpointDefinition,
)
from app.retention.playbook import MEMBER_STAGES, TASK_CHANNELS, StopCondition, Trigger

LOOKBACK_DAYS = 7
BIRTHDAY_LOOKBACK_DAYS = 2
CHUNK = 500


def holdout_score(member_id: int, key: str) -> float:
    """A stable number in [0, 1) per member and definition: below the share means held out."""
    digest = hashlib.sha256(f"{member_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_held_out(member_id: int, key: str, share: float) -> bool:
    return share > 0 and holdout_score(member_id, key) < share


@dataclass
class Candidate:
    definition: TouchpointDefinition
    member_id: int
    cycle: str
    stage: str | None
    membership_id: int | None
    trigger_on: date


@dataclass
class PlanResult:
    scheduled: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    held_out: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    candidates: int = 0


def _chunks(items: list, size: int = CHUNK):
    for i in range(0, len(items), size):
        yield items[i:i + size]


# --- visit counting for milestones -------------------------------------------------------------

@lru_cache(maxsize=1)
def _visit_count_statements() -> dict:
    ms, v = MemberStage.__table__, Visit.__table__
    club_id = bindparam("cid", type_=BigId)
    before = bindparam("before", type_=UTCDateTime())
    total = (select(func.count()).select_from(v)
             .where(v.c.member_id == ms.c.member_id, v.c.occurred_at < before)
             .scalar_subquery())
    cutoff = bindparam("cutoff", type_=UTCDateTime())
    end = bindparam("end", type_=UTCDateTime())
    counted = ms.c.visits_total >= 0
    delta = (select(v.c.member_id, func.count().label("n"))
             .where(v.c.club_id == club_id, v.c.occurred_at >= cutoff, v.c.occurred_at < end)
             .group_by(v.c.member_id).subquery("d"))
    # members new to the engine (-1): one GROUP BY over their visits (not a count per member)
    fresh = ms.alias("f")
    first = (select(v.c.member_id,
                    func.sum(case((v.c.occurred_at < cutoff, 1), else_=0)).label("before"),
                    func.count().label("after"))
             .join(fresh, fresh.c.member_id == v.c.member_id)
             .where(fresh.c.club_id == club_id, fresh.c.visits_total < 0, v.c.occurred_at < end)
             .group_by(v.c.member_id).subquery("n"))
    return {
        "recount_all": ms.update().where(ms.c.club_id == club_id).values(visits_total=total),
        "delta": select(delta.c.member_id, delta.c.n, ms.c.visits_total, ms.c.stage)
                 .join(ms, ms.c.member_id == delta.c.member_id).where(counted),
        "apply": ms.update().where(ms.c.member_id == delta.c.member_id, counted)
                   .values(visits_total=ms.c.visits_total + delta.c.n),
        "first": select(first.c.member_id, first.c.before, first.c.after, ms.c.stage)
                 .join(ms, ms.c.member_id == first.c.member_id),
        "apply_first": ms.update().where(ms.c.member_id == first.c.member_id)
                         .values(visits_total=first.c.after),
        "no_visits": ms.update().where(ms.c.club_id == club_id, ms.c.visits_total < 0)
                       .values(visits_total=0),
    }


def visits_cutoff(session: Session, *, club_id: int, zone: ZoneInfo, as_of: date,
                  now: datetime) -> datetime:
    """The instant the club's visit totals count up to when the run for `as_of` starts:
    `retention_state.visits_counted_until`, or before the first run the start of the look-back
    window (the first run counts that window's visits as new)."""
    cutoff = session.scalar(select(RetentionState.visits_counted_until)
                            .where(RetentionState.club_id == club_id))
    if cutoff is not None:
        return cutoff
    end = min(local_day_start(zone, as_of + timedelta(days=1)), now)
    return min(local_day_start(zone, as_of - timedelta(days=LOOKBACK_DAYS - 1)), end)


def count_new_visits(session: Session, *, club_id: int, zone: ZoneInfo, as_of: date,
                     now: datetime) -> list[tuple[int, int, int, str]]:
    """Advance the per-member visit totals; returns (member, total before, total after, stage).

    Totals count visits before `retention_state.visits_counted_until`; each run adds the
    visits since (one GROUP BY over that slice of the visits table) — no full scan per day.
    Members new to the engine (total -1) are counted once, by one GROUP BY over their visits.
    """
    state = session.scalar(select(RetentionState).where(RetentionState.club_id == club_id))
    end = min(local_day_start(zone, as_of + timedelta(days=1)), now)
    if state is None:
        state = RetentionState(club_id=club_id, visits_counted_until=None)
        session.add(state)
    cutoff = visits_cutoff(session, club_id=club_id, zone=zone, as_of=as_of, now=now)
    sql = _visit_count_statements()
    if end < cutoff:  # the clock went back (a run for an earlier day): recount up to then
        session.execute(sql["recount_all"], {"cid": club_id, "before": end})
        state.visits_counted_until = end
        session.flush()
        return []
    state.visits_counted_until = end
    session.flush()
    params = {"cid": club_id, "cutoff": cutoff, "end": end}
    out = []
    if end > cutoff:  # members counted before: add the visits since
        rows = session.execute(sql["delta"], params).all()
        if rows:
            session.execute(sql["apply"], params)
        out = [(r.member_id, r.visits_total, r.visits_total + r.n, r.stage) for r in rows]
    fresh = session.execute(sql["first"], params).all()
    if fresh:
        session.execute(sql["apply_first"], params)
    session.execute(sql["no_visits"], params)
    out += [(r.member_id, r.before, r.after, r.stage) for r in fresh if r.after > r.before]
    return out


# --- candidates per kind of trigger ------------------------------------------------------------

def _stage_entry_candidates(session, club_id, defs, d: date, zone: ZoneInfo) -> list[Candidate]:
    """days_after_stage_entry, no_visit_days, visits_below_by_day: T = since + days."""
    if not defs:
        return []
    lb = LOOKBACK_DAYS
    windows, params = _windows(defs, club_id)
    for i, (_stage, n, _k) in enumerate(windows):
        params[f"lo{i}"], params[f"hi{i}"] = d - timedelta(days=lb + n), d - timedelta(days=n)
    rows = session.execute(_stage_entry_statement(windows), params).all()
    out: list[Candidate] = []
    need_visits: dict[int, date] = {}
    by_entry: dict[tuple[str, date], list] = defaultdict(list)
    for r in rows:
        by_entry[(r.stage, r.since)].append(r)
    for x in defs:
        for back in range(lb):
            t = d - timedelta(days=back)
            for r in by_entry.get((x.stage, t - timedelta(days=x.days)), ()):
                out.append(Candidate(x, r.member_id, r.cycle, r.stage, r.membership_id, t))
                if x.trigger != Trigger.days_after_stage_entry:
                    need_visits[r.member_id] = min(r.since,
                                                   need_visits.get(r.member_id, r.since))
    if not need_visits:
        return out
    visit_days: dict[int, list[date]] = defaultdict(list)
    end = local_day_start(zone, d + timedelta(days=1))
    ids = list(need_visits)
    start = local_day_start(zone, min(need_visits.values()))
    for chunk in _chunks(ids):
        for member_id, at in session.execute(_visits_of_statement(is_postgres(session)),
                                             {"ids": chunk, "start": start, "end": end}):
            visit_days[member_id].append(local_date(zone, at))
    kept = []
    for c in out:
        x = c.definition
        if x.trigger == Trigger.no_visit_days:
            since = c.trigger_on - timedelta(days=x.days)
            if any(since <= day <= d for day in visit_days.get(c.member_id, ())):
                continue  # came in since entering the stage
        elif x.trigger == Trigger.visits_below_by_day:
            since = c.trigger_on - timedelta(days=x.days)
            n = sum(1 for day in visit_days.get(c.member_id, ()) if since <= day < c.trigger_on)
            if n >= x.visits:
                continue
        kept.append(c)
    return kept


def _windows(defs, club_id: int) -> tuple[tuple[tuple[str, int, int], ...], dict]:
    """The (stage, days) windows of these definitions, each with how many definitions share
    it (the statements' cache key), and their ids as parameters (`def<window>_<n>`)."""
    ids: dict[tuple[str, int], list[int]] = defaultdict(list)
    for x in defs:
        ids[(x.stage, x.days)].append(x.id)
    windows = tuple((stage, n, len(ids[(stage, n)])) for stage, n in sorted(ids))
    params: dict = {"cid": club_id}
    for i, (stage, n, _k) in enumerate(windows):
        for j, definition_id in enumerate(sorted(ids[(stage, n)])):
            params[f"def{i}_{j}"] = definition_id
    return windows, params


def _unplanned(i: int, count: int):
    """A member's stage row (its cycle) still lacks a touchpoint of one of window i's
    definitions: what is planned already is left out in SQL, not fetched and dropped."""
    st = ScheduledTouchpoint.__table__
    return or_(*[~exists(select(st.c.id).where(
        st.c.member_id == MemberStage.member_id, st.c.cycle == MemberStage.cycle,
        st.c.definition_id == bindparam(f"def{i}_{j}", type_=BigId))) for j in range(count)])


@lru_cache(maxsize=64)
def _stage_entry_statement(windows: tuple[tuple[str, int, int], ...]):
    cond = or_(*[and_(MemberStage.stage == stage,
                      MemberStage.since > bindparam(f"lo{i}", type_=Date()),
                      MemberStage.since <= bindparam(f"hi{i}", type_=Date()),
                      _unplanned(i, count))
                 for i, (stage, _n, count) in enumerate(windows)])
    return (select(MemberStage.member_id, MemberStage.stage, MemberStage.since,
                   MemberStage.cycle, MemberStage.membership_id)
            .where(MemberStage.club_id == bindparam("cid", type_=BigId), cond))


@lru_cache(maxsize=2)
def _visits_of_statement(pg: bool):
    return (select(Visit.member_id, Visit.occurred_at)
            .where(in_list(Visit.member_id, "ids", pg),
                   Visit.occurred_at >= bindparam("start", type_=UTCDateTime()),
                   Visit.occurred_at < bindparam("end", type_=UTCDateTime())))


@lru_cache(maxsize=64)
def _before_end_statement(windows: tuple[tuple[str, int, int], ...]):
    cond = or_(*[and_(MemberStage.stage == stage,
                      Membership.end_date > bindparam(f"lo{i}", type_=Date()),
                      Membership.end_date <= bindparam(f"hi{i}", type_=Date()),
                      _unplanned(i, count))
                 for i, (stage, _n, count) in enumerate(windows)])
    return (select(MemberStage.member_id, MemberStage.stage, MemberStage.cycle,
                   MemberStage.membership_id, MemberStage.since, Membership.end_date)
            .join(Membership, Membership.id == MemberStage.membership_id)
            .where(MemberStage.club_id == bindparam("cid", type_=BigId),
                   Membership.end_date >= bindparam("d", type_=Date()), cond))


@lru_cache(maxsize=1)
def _birthday_statement():
    return (select(Member.id, MemberStage.stage, MemberStage.membership_id,
                   month_day(Member.birth_date).label("md"))
            .join(MemberStage, MemberStage.member_id == Member.id)
            .where(Member.club_id == bindparam("cid", type_=BigId),
                   Member.birth_date.is_not(None), Member.erased_at.is_(None),
                   month_day(Member.birth_date).in_(bindparam("mds", expanding=True))))


@lru_cache(maxsize=2)
def _renewed_statement(pg: bool):
    m1, m2 = aliased(Membership), aliased(Membership)
    now = bindparam("now", type_=UTCDateTime())
    return select(m1.id).where(in_list(m1.id, "ids", pg), exists(
        select(m2.id).where(m2.member_id == m1.member_id, m2.start_date > m1.start_date,
                            or_(m2.cancelled_on.is_(None), m2.cancelled_on > m2.start_date),
                            or_(m2.created_at <= now,
                                m2.start_date <= bindparam("today", type_=Date())))))


def _before_end_candidates(session, club_id, defs, d: date) -> list[Candidate]:
    """days_before_end: T = the membership's last day - days, while it has not ended.

    T must fall on or after the day the member entered the stage: a reminder meant for 30 days
    before the end is not sent late to a member who became "due" 15 days before it.
    """
    if not defs:
        return []
    lb = LOOKBACK_DAYS
    windows, params = _windows(defs, club_id)
    params["d"] = d
    for i, (_stage, n, _k) in enumerate(windows):
        params[f"lo{i}"] = d - timedelta(days=lb) + timedelta(days=n)
        params[f"hi{i}"] = d + timedelta(days=n)
    rows = session.execute(_before_end_statement(windows), params).all()
    by_end: dict[tuple[str, date], list] = defaultdict(list)
    for r in rows:
        by_end[(r.stage, r.end_date)].append(r)
    out = []
    for x in defs:
        for back in range(lb):
            t = d - timedelta(days=back)
            for r in by_end.get((x.stage, t + timedelta(days=x.days)), ()):
                if t >= r.since:
                    out.append(Candidate(x, r.member_id, r.cycle, r.stage, r.membership_id, t))
    return out


def _birthday_candidates(session, club_id, defs, d: date) -> list[Candidate]:
    if not defs:
        return []
    days = [d - timedelta(days=i) for i in range(BIRTHDAY_LOOKBACK_DAYS)]
    keys: dict[str, date] = {f"{x:%m-%d}": x for x in days}
    for x in days:  # 29 February birthdays are celebrated on the 28th in other years
        if x.month == 2 and x.day == 28 and not _leap(x.year):
            keys["02-29"] = x
    rows = session.execute(_birthday_statement(),
                           {"cid": club_id, "mds": sorted(keys)}).all()
    out = []
    for x in defs:
        stages = (x.stage,) if x.stage else tuple(s.value for s in MEMBER_STAGES)
        for r in rows:
            if r.stage in stages:
                t = keys[r.md]
                out.append(Candidate(x, r.id, f"b{t.year}", None, r.membership_id, t))
    return out


@lru_cache(maxsize=1)
def _payment_problem_statement():
    return (select(DunningCase.id, DunningCase.member_id, DunningCase.opened_on,
                   MemberStage.stage, MemberStage.membership_id)
            .join(Member, Member.id == DunningCase.member_id)
            .outerjoin(MemberStage, MemberStage.member_id == DunningCase.member_id)
            .where(DunningCase.club_id == bindparam("cid", type_=BigId),
                   DunningCase.closed_on.is_(None), Member.erased_at.is_(None),
                   DunningCase.opened_on > bindparam("lo", type_=Date()),
                   DunningCase.opened_on <= bindparam("hi", type_=Date())))


def _payment_problem_candidates(session, club_id, defs, d: date) -> list[Candidate]:
    """payment_problem: T = the day the member's dues payment failed (the dunning case opened)
    + days, while the case is open. One cycle per case ("d<case id>"), and no stage of its own:
    leaving a lifecycle stage does not cancel it, settling the payment does."""
    if not defs:
        return []
    lb = LOOKBACK_DAYS
    longest, shortest = max(x.days for x in defs), min(x.days for x in defs)
    rows = session.execute(_payment_problem_statement(), {
        "cid": club_id, "lo": d - timedelta(days=lb + longest),
        "hi": d - timedelta(days=shortest)}).all()
    out = []
    for x in defs:
        for r in rows:
            t = r.opened_on + timedelta(days=x.days)
            if d - timedelta(days=lb) < t <= d and (x.stage is None or r.stage == x.stage):
                out.append(Candidate(x, r.member_id, f"d{r.id}", None, r.membership_id, t))
    return out


@lru_cache(maxsize=1)
def _contract_cancelled_statement():
    return (select(Contract.id, Contract.member_id, Contract.membership_id,
                   Contract.cancel_received_on, Contract.ends_on, MemberStage.stage)
            .join(Member, Member.id == Contract.member_id)
            .outerjoin(MemberStage, MemberStage.member_id == Contract.member_id)
            .where(Contract.club_id == bindparam("cid", type_=BigId),
                   Contract.ends_on.is_not(None), Member.erased_at.is_(None),
                   Contract.cancel_received_on > bindparam("lo", type_=Date()),
                   Contract.cancel_received_on <= bindparam("hi", type_=Date())))


def _contract_cancelled_candidates(session, club_id, defs, d: date) -> list[Candidate]:
    """contract_cancelled: T = the day a recurring contract's cancellation was received + days,
    while the contract has not ended (T <= its last day). One cycle per cancellation
    ("c<contract id>:<received day>": a cancellation withdrawn and given again is a new one), in
    context of the contract's membership; no stage of its own: withdrawing stops it."""
    if not defs:
        return []
    lb = LOOKBACK_DAYS
    longest, shortest = max(x.days for x in defs), min(x.days for x in defs)
    rows = session.execute(_contract_cancelled_statement(), {
        "cid": club_id, "lo": d - timedelta(days=lb + longest),
        "hi": d - timedelta(days=shortest)}).all()
    out = []
    for x in defs:
        for r in rows:
            t = r.cancel_received_on + timedelta(days=x.days)
            if (d - timedelta(days=lb) < t <= d and t <= r.ends_on
                    and (x.stage is None or r.stage == x.stage)):
                out.append(Candidate(x, r.member_id, f"c{r.id}:{r.cancel_received_on.isoformat()}",
                                     None, r.membership_id, t))
    return out


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _milestone_candidates(session, defs, d: date,
                          counted: list[tuple[int, int, int, str]]) -> list[Candidate]:
    if not defs or not counted:
        return []
    out = []
    hits = []
    for x in defs:
        stages = (x.stage,) if x.stage else tuple(s.value for s in MEMBER_STAGES)
        for member_id, before, after, stage in counted:
            if before < x.visits <= after and stage in stages:
                hits.append((x, member_id))
    if not hits:
        return []
    memberships = dict(session.execute(
        select(MemberStage.member_id, MemberStage.membership_id)
        .where(MemberStage.member_id.in_({m for _, m in hits}))).all())
    for x, member_id in hits:
        out.append(Candidate(x, member_id, "v", None, memberships.get(member_id), d))
    return out


def renewed_memberships(session: Session, membership_ids: set[int], *, now: datetime,
                        today: date) -> set[int]:
    """Of these memberships, the ones whose member has a later membership (sold or started)."""
    if not membership_ids:
        return set()
    found: set[int] = set()
    for chunk in _chunks(sorted(membership_ids)):
        found.update(session.scalars(_renewed_statement(is_postgres(session)),
                                     {"ids": chunk, "now": now, "today": today}))
    return found


@lru_cache(maxsize=2)
def _existing_statement(pg: bool):
    st = ScheduledTouchpoint.__table__
    return select(st.c.member_id, st.c.definition_id, st.c.cycle).where(
        in_list(st.c.member_id, "ids", pg), in_list(st.c.definition_id, "defs", pg))


@lru_cache(maxsize=1)
def _held_out_timeline():
    st, td, it = (ScheduledTouchpoint.__table__, TouchpointDefinition.__table__,
                  Interaction.__table__)
    now = bindparam("now", type_=UTCDateTime())
    rows = (select(st.c.club_id, st.c.member_id, literal("touchpoint", String()), st.c.channel,
                   td.c.name + literal(": held out (control group)", String()),
                   literal("held_out", String()), now, st.c.id)
            .join_from(st, td, td.c.id == st.c.definition_id)
            .where(st.c.club_id == bindparam("cid", type_=BigId), st.c.status == "held_out",
                   st.c.planned_at == now,
                   ~exists(select(it.c.id).where(it.c.touchpoint_id == st.c.id))))
    return it.insert().from_select(["club_id", "member_id", "kind", "channel", "summary",
                                    "outcome", "occurred_at", "touchpoint_id"], rows)


def plan(session: Session, *, club_id: int, settings: ClubSettings, zone: ZoneInfo,
         as_of: date, now: datetime, definitions: list[TouchpointDefinition],
         counted: list[tuple[int, int, int, str]]) -> PlanResult:
    """Find the touchpoints that fire `as_of` and insert them (idempotently)."""
    result = PlanResult()
    enabled = [x for x in definitions if x.enabled]
    by_trigger: dict[str, list] = defaultdict(list)
    for x in enabled:
        by_trigger[x.trigger].append(x)
    candidates = (
        _stage_entry_candidates(session, club_id,
                                by_trigger[Trigger.days_after_stage_entry]
                                + by_trigger[Trigger.no_visit_days]
                                + by_trigger[Trigger.visits_below_by_day], as_of, zone)
        + _before_end_candidates(session, club_id, by_trigger[Trigger.days_before_end], as_of)
        + _birthday_candidates(session, club_id, by_trigger[Trigger.birthday], as_of)
        + _milestone_candidates(session, by_trigger[Trigger.visit_milestone], as_of, counted)
        + _payment_problem_candidates(session, club_id, by_trigger[Trigger.payment_problem],
                                      as_of)
        + _contract_cancelled_candidates(session, club_id,
                                         by_trigger[Trigger.contract_cancelled], as_of))
    result.candidates = len(candidates)
    if not candidates:
        return result
    # a trigger stays in its look-back window for days: drop what is planned already (the
    # unique key and ON CONFLICT DO NOTHING still guard against a concurrent planner)
    members = sorted({c.member_id for c in candidates})
    definition_ids = sorted({c.definition.id for c in candidates})
    planned_already = set()
    for chunk in _chunks(members, len(members) if is_postgres(session) else CHUNK):
        planned_already.update(tuple(r) for r in session.execute(
            _existing_statement(is_postgres(session)), {"ids": chunk, "defs": definition_ids}))
    candidates = [c for c in candidates
                  if (c.member_id, c.definition.id, c.cycle) not in planned_already]
    if not candidates:
        return result
    # stop condition "renewed" holds already: nothing to plan
    renewable = {c.membership_id for c in candidates
                 if c.definition.stop_condition == StopCondition.renewed and c.membership_id}
    renewed = renewed_memberships(session, renewable, now=now, today=as_of)
    rows = []
    for c in candidates:
        x = c.definition
        if x.stop_condition == StopCondition.renewed and c.membership_id in renewed:
            continue
        share = x.holdout_share if x.holdout_share is not None else settings.holdout_share
        held = is_held_out(c.member_id, x.key, share)
        if x.channel in TASK_CHANNELS:
            due = local_day_start(zone, c.trigger_on)
        else:
            due = local_at(zone, c.trigger_on, settings.quiet_hours_end)
        rows.append({"club_id": club_id, "member_id": c.member_id, "definition_id": x.id,
                     "cycle": c.cycle, "stage": c.stage, "channel": x.channel,
                     "priority": x.priority, "membership_id": c.membership_id,
                     "trigger_on": c.trigger_on, "planned_at": now, "first_due_at": due,
                     "due_at": due, "status": "held_out" if held else "pending",
                     "reason": "holdout" if held else None, "attempts": 0, "updated_at": now})
    if not rows:
        return result
    names = {x.id: x.key for x in enabled}
    for row in rows:
        (result.held_out if row["status"] == "held_out" else result.scheduled)[
            names[row["definition_id"]]] += 1
    table = ScheduledTouchpoint.__table__
    bulk_insert_new(session, table, rows, [table.c.member_id, table.c.definition_id, table.c.cycle])
    # the held-out ones go on the timeline, in one statement
    session.execute(_held_out_timeline(), {"cid": club_id, "now": now})
    return result


# --- stop conditions and expiry, set-based ------------------------------------------------------

@lru_cache(maxsize=1)
def _cancel_statements() -> dict:
    st, td = ScheduledTouchpoint.__table__, TouchpointDefinition.__table__
    m1, m2 = Membership.__table__.alias("m1"), Membership.__table__.alias("m2")
    ms, v, tk = MemberStage.__table__, Visit.__table__, Task.__table__
    club_id = bindparam("cid", type_=BigId)
    now = bindparam("now", type_=UTCDateTime())
    today = bindparam("today", type_=Date())

    def defs_with(stop: StopCondition):
        return select(td.c.id).where(td.c.club_id == club_id, td.c.stop_condition == stop.value)

    renewed = exists(select(m2.c.id).select_from(m1.join(m2, m2.c.member_id == m1.c.member_id))
                     .where(m1.c.id == st.c.membership_id, m2.c.start_date > m1.c.start_date,
                            or_(m2.c.cancelled_on.is_(None), m2.c.cancelled_on > m2.c.start_date),
                            or_(m2.c.created_at <= now, m2.c.start_date <= today)))
    pending = and_(st.c.club_id == club_id, st.c.status == "pending")
    visited = exists(select(v.c.id).where(v.c.member_id == st.c.member_id,
                                          v.c.occurred_at > st.c.planned_at,
                                          v.c.occurred_at <= now))
    still_there = exists(select(ms.c.id).where(ms.c.member_id == st.c.member_id,
                                               ms.c.stage == st.c.stage,
                                               ms.c.cycle == st.c.cycle))
    off = select(td.c.id).where(td.c.club_id == club_id, td.c.enabled.is_(False))
    dc = DunningCase.__table__
    settled = ~exists(select(dc.c.id).where(dc.c.member_id == st.c.member_id,
                                            dc.c.closed_on.is_(None)))
    ct = Contract.__table__
    withdrawn = ~exists(select(ct.c.id).where(ct.c.membership_id == st.c.membership_id,
                                              ct.c.ends_on.is_not(None)))
    return {
        "withdrawn": st.update().where(
            pending, st.c.definition_id.in_(defs_with(StopCondition.cancellation_withdrawn)),
            withdrawn).values(status="cancelled", reason="withdrawn", updated_at=now),
        "withdrawn_tasks": tk.update().where(
            tk.c.club_id == club_id, tk.c.status == "open",
            tk.c.touchpoint_id.in_(select(st.c.id).where(
                st.c.club_id == club_id,
                st.c.definition_id.in_(defs_with(StopCondition.cancellation_withdrawn)),
                withdrawn)))
                           .values(status="cancelled", outcome="withdrawn", updated_at=now),
        "settled": st.update().where(
            pending, st.c.definition_id.in_(defs_with(StopCondition.payment_settled)), settled)
                   .values(status="cancelled", reason="settled", updated_at=now),
        "settled_tasks": tk.update().where(
            tk.c.club_id == club_id, tk.c.status == "open",
            tk.c.touchpoint_id.in_(select(st.c.id).where(
                st.c.club_id == club_id,
                st.c.definition_id.in_(defs_with(StopCondition.payment_settled)), settled)))
                         .values(status="cancelled", outcome="paid", updated_at=now),
        "renewed": st.update().where(pending,
                                     st.c.definition_id.in_(defs_with(StopCondition.renewed)),
                                     renewed)
                   .values(status="cancelled", reason="renewed", updated_at=now),
        "renewal_tasks": tk.update().where(
            tk.c.club_id == club_id, tk.c.status == "open",
            tk.c.touchpoint_id.in_(select(st.c.id).where(
                st.c.club_id == club_id,
                st.c.definition_id.in_(defs_with(StopCondition.renewed)), renewed)))
                         .values(status="cancelled", outcome="renewed", updated_at=now),
        "visited": st.update().where(
            pending, st.c.definition_id.in_(defs_with(StopCondition.visited_since_scheduled)),
            visited).values(status="cancelled", reason="visited", updated_at=now),
        "stage_left": st.update().where(pending, st.c.stage.is_not(None), ~still_there)
                      .values(status="cancelled", reason="stage_left", updated_at=now),
        "disabled": st.update().where(pending, st.c.definition_id.in_(off))
                    .values(status="cancelled", reason="disabled", updated_at=now),
    }


def cancel_obsolete(session: Session, *, club_id: int, now: datetime, today: date,
                    definitions: list[TouchpointDefinition] | None = None) -> dict[str, int]:
    """Cancel pending touchpoints whose stop condition holds or whose stage has passed.

    renewed → the member has a later membership; visited → a visit after planning; settled →
    the member has no open dunning case (its open call tasks close too); withdrawn → the
    contract of the touchpoint's membership is not cancelled any more (its open call tasks
    close too); stage_left →
    the member is no longer in the stage (and cycle) the touchpoint was planned for; disabled →
    the definition was switched off. Open tasks of renewal plays whose member renewed are
    cancelled too.
    """
    sql = _cancel_statements()
    params = {"cid": club_id, "now": now, "today": today}
    # with the club's definitions at hand, a statement that cannot match is not run
    needed = {"renewed", "renewal_tasks", "visited", "stage_left", "disabled", "settled",
              "settled_tasks", "withdrawn", "withdrawn_tasks"}
    if definitions is not None:
        stops = {x.stop_condition for x in definitions}
        if StopCondition.payment_settled not in stops:
            needed -= {"settled", "settled_tasks"}
        if StopCondition.cancellation_withdrawn not in stops:
            needed -= {"withdrawn", "withdrawn_tasks"}
        if StopCondition.renewed not in stops:
            needed -= {"renewed", "renewal_tasks"}
        if StopCondition.visited_since_scheduled not in stops:
            needed.discard("visited")
        if all(x.enabled for x in definitions):
            needed.discard("disabled")
    counts = {}
    for name in ("renewed", "renewal_tasks", "settled", "settled_tasks", "withdrawn",
                 "withdrawn_tasks", "visited", "stage_left", "disabled"):
        n = session.execute(sql[name], params).rowcount if name in needed else 0
        if name not in ("renewal_tasks", "settled_tasks", "withdrawn_tasks"):
            counts[name] = n
    return counts
