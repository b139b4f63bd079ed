"""Lifecycle stages, computed for a whole club in one set-based statement, written in bulk.

One SELECT (CTEs over memberships, plans, freezes, an 84-day window of visits and the stored
stages) returns, for every member whose stage may change, the stage that applies `as_of` a day,
with the facts behind it. Python then only turns those rows into `member_stages` updates and
`stage_changes` history rows — no query per member. Unchanged members do not come back at all
(except those at risk, whose recovery target is refreshed).

Precedence when several stages apply (first wins):

    frozen > lost > lapsed > onboarding > renewal_due > at_risk > establishing > active

- frozen first: a frozen member is not "missing", and nothing is sent for their membership;
- lost / lapsed: no membership runs today, so nothing else can apply;
- onboarding before renewal_due and at_risk: the first `onboarding_days` have their own
  no-visit plays (no first visit by day 7, fewer than 4 visits by day 14); a short plan that
  would be "due" at once still gets its welcome sequence;
- renewal_due before at_risk: near the end, the renewal conversation is the rescue. A membership
  is due in its last `renewal_notice_days` and only in its second half (so a monthly plan is due
  in its last ~15 days, not all month long);
- at_risk before establishing / active.

Cycles (what makes a scheduled touchpoint unique per member and definition):
prospect → "prospect"; onboarding/establishing → "t<tenure start>" (a returning lost member
starts a new tenure); active → "a<since>"; at_risk → "r<since>" (each episode);
renewal_due, lapsed, lost → "m<membership id>"; frozen → "f<freeze id>".
"""
import math
import time as _clock
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    literal_column,
    not_,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from app.access.models import Visit
from app.clubs.models import Club
from app.clubs.schemas import ClubSettings
from app.core.events import Folded, VisitGranted
from app.core.sql import (
    add_days,
    bulk_insert,
    days_between,
    is_postgres,
    local_date,
    local_day_start,
)
from app.core.types import BigId, UTCDateTime
from app.members.models import Member
from app.memberships.models import Freeze, Membership, Plan
from app.retention.models import MemberFacts, MemberStage, StageChange
from app.retention.playbook import Stage

EPOCH = date(1900, 1, 1)  # day numbers for packed keys
ID_SPAN = 2**40  # ids below ~10^12
DAY_SPAN = 2**20  # day numbers below ~2870 years
TENURE_MARGIN = 30  # tenure starts are looked up this far beyond establishing_days
RECENT_DAYS = 28  # "visits in the last 28 days ..."
PRIOR_DAYS = 56  # "... below half of the member's own average over the 8 weeks before"
WINDOW_DAYS = RECENT_DAYS + PRIOR_DAYS
# stages that only a change of the member's facts can end (`retention_member_facts`)
STABLE = (Stage.lost.value, Stage.prospect.value)


@dataclass
class StageRun:
    """What a stage computation changed."""

    changes: list[tuple[int, str | None, str]] = field(default_factory=list)  # member, from, to
    inserted: int = 0
    updated: int = 0
    rows: int = 0


NOT_COUNTED = datetime(1900, 1, 1, tzinfo=UTC)  # visits_before when totals are left to count


def _params(*, club_id: int, as_of: date, s: ClubSettings, zone: ZoneInfo,
            member_ids: list[int] | None = None, visits_before: datetime | None = None) -> dict:
    """The values the stage statement is executed with (it is built once, with placeholders)."""
    d, n, day = as_of, s.at_risk_no_visit_days, timedelta(days=1)
    params = {
        "club_id": club_id, "d": d,
        "known_until": local_day_start(zone, d + day),
        "recent_from": local_day_start(zone, d - (RECENT_DAYS - 1) * day),
        "window_from": local_day_start(zone, d - (WINDOW_DAYS - 1) * day),
        "nv_from": local_day_start(zone, d - (n - 1) * day),
        "nv_tenure": d - (n - 1) * day, "nv_freeze": d - n * day,
        "history_from": d - (WINDOW_DAYS - 1) * day, "cleared_before": d - n * day,
        "grace_plus": s.grace_days + 1, "d_days": (d - EPOCH).days,
        "tenure_window_from": d - (max(s.establishing_days, WINDOW_DAYS) + TENURE_MARGIN) * day,
        "lost_before": d - s.grace_days * day,
        "onboarding_after": d - s.onboarding_days * day,
        "notice_until": d + s.renewal_notice_days * day,
        "establishing_after": d - s.establishing_days * day,
        "ratio": float(s.at_risk_ratio),
        "visits_before": visits_before or NOT_COUNTED, "count_each": visits_before is not None,
    }
    if member_ids is not None:
        params["member_ids"] = list(member_ids)
    return params


# long: one SQL statement (the whole stage computation, set-based), built once and cached;
# its CTEs are named and commented in order, and splitting it would scatter one query
@lru_cache(maxsize=4)
def _statement(filtered: bool):
    """The stage statement (built once; see `_params` for the values it takes)."""
    v, mb, ms = Visit.__table__, Member.__table__, MemberStage.__table__
    P = bindparam
    d = P("d", type_=Date())
    club_id = P("club_id", type_=BigId)
    known_until = P("known_until", type_=UTCDateTime())
    ids = P("member_ids", expanding=True) if filtered else None

    def dp(name):
        return P(name, type_=Date())

    # the membership and freeze facts: reduced from the member's rows (one member, for an
    # event), or stored per member and kept up to date by `facts.refresh` (the daily run)
    k = _reduced(ids) if filtered else _stored()

    # visits: one pass over the last 84 days
    v_where = [v.c.club_id == club_id,
               v.c.occurred_at >= P("window_from", type_=UTCDateTime()),
               v.c.occurred_at < known_until]
    if filtered:
        v_where.append(v.c.member_id.in_(ids))
    recent_from = P("recent_from", type_=UTCDateTime())
    va = (select(v.c.member_id,
                 func.sum(case((v.c.occurred_at >= recent_from, 1), else_=0)).label("recent"),
                 func.count().label("in_window"),
                 func.max(v.c.occurred_at).label("last_visit"))
          .where(*v_where).group_by(v.c.member_id).cte("va"))

    no_visit = and_(or_(va.c.last_visit.is_(None),
                        va.c.last_visit < P("nv_from", type_=UTCDateTime())),
                    or_(k.tenure_start.is_(None), k.tenure_start <= dp("nv_tenure")),
                    or_(k.freeze_end.is_(None), k.freeze_end <= dp("nv_freeze")))
    recent = func.coalesce(va.c.recent, 0)
    prior = func.coalesce(va.c.in_window, 0) - recent
    history_from = dp("history_from")
    below_usual = and_(or_(k.tenure_start.is_(None), k.tenure_start <= history_from),
                       or_(k.freeze_end.is_(None), k.freeze_end < history_from),
                       or_(ms.c.risk_cleared_on.is_(None),
                           ms.c.risk_cleared_on <= dp("cleared_before")),
                       recent * 2 < P("ratio", type_=Float()) * prior)

    stage = case(
        (k.started.is_(None), Stage.prospect.value),
        (and_(k.top_end >= d, k.freeze_id.is_not(None)), Stage.frozen.value),
        (k.top_end < dp("lost_before"), Stage.lost.value),
        (k.top_end < d, Stage.lapsed.value),
        (k.tenure_start > dp("onboarding_after"), Stage.onboarding.value),
        (and_(k.top_auto == 0, k.latest_start_days <= k.top_start_days,
              k.top_end <= dp("notice_until"),
              # and in the second half of the membership: a monthly plan is not "due" all month
              (k.top_end_days - P("d_days", type_=Integer())) * 2 <
              k.top_end_days - k.top_start_days + 1),
         Stage.renewal_due.value),
        (or_(no_visit, below_usual), Stage.at_risk.value),
        (k.tenure_start > dp("establishing_after"), Stage.establishing.value),
        else_=Stage.active.value)

    vb = v.alias("vb")
    visits_before = (select(func.count()).select_from(vb)
                     .where(vb.c.member_id == mb.c.id,
                            vb.c.occurred_at < P("visits_before", type_=UTCDateTime()))
                     .scalar_subquery())
    mb_where = [mb.c.club_id == club_id, mb.c.erased_at.is_(None),
                or_(k.started.is_not(None), mb.c.created_at < known_until)]
    if filtered:
        mb_where.append(mb.c.id.in_(ids))
    else:
        # lost and prospect are stable while the member's facts are: with facts not
        # recomputed today, such a member's stage, cycle and membership cannot have changed
        mb_where.append(or_(ms.c.stage.is_(None), ms.c.stage.not_in(STABLE),
                            k.computed_on >= d))
    inner = (select(mb.c.id.label("member_id"), k.tenure_start, k.top_id.label("top_id"),
                    add_days(literal(EPOCH, Date()), k.top_start_days).label("top_start"),
                    k.top_end, k.freeze_id, k.freeze_start, k.freeze_end,
                    recent.label("recent"), prior.label("prior"), va.c.last_visit,
                    ms.c.id.label("row_id"), ms.c.stage.label("old_stage"),
                    ms.c.cycle.label("old_cycle"),
                    ms.c.membership_id.label("old_membership_id"),
                    ms.c.recover_visits.label("old_recover"),
                    ms.c.base_stage.label("old_base_stage"),
                    stage.label("stage"),
                    case((no_visit, 1), else_=0).label("no_visit"),
                    # a member new to the engine: their visit total (milestones), counted once
                    case((and_(ms.c.id.is_(None), P("count_each", type_=Boolean())),
                          visits_before)).label("visits_before"),
                    case((below_usual, 1), else_=0).label("below_usual"))
             .select_from(mb)
             .outerjoin(k.source, k.on(mb.c.id))
             .outerjoin(va, va.c.member_id == mb.c.id)
             .outerjoin(ms, ms.c.member_id == mb.c.id)
             .where(*mb_where)
             # materialized: flattened, PostgreSQL would evaluate the stage CASE once per use
             .cte("s").prefix_with("MATERIALIZED", dialect="postgresql"))
    c = inner.c
    cycle = case(
        (c.stage == Stage.prospect.value, literal("prospect", String)),
        (c.stage == Stage.frozen.value, literal("f", String) + cast(c.freeze_id, String)),
        (c.stage.in_((Stage.lost.value, Stage.lapsed.value, Stage.renewal_due.value)),
         literal("m", String) + cast(c.top_id, String)),
        (c.stage.in_((Stage.onboarding.value, Stage.establishing.value)),
         literal("t", String) + cast(c.tenure_start, String)),
        else_=null())
    changed = or_(c.old_stage.is_(None), c.stage != c.old_stage,
                  and_(cycle.is_not(None), cycle != c.old_cycle),
                  c.stage == Stage.at_risk.value,
                  func.coalesce(c.top_id, 0) != func.coalesce(c.old_membership_id, 0))
    return select(inner, cycle.label("cycle")).where(changed)


def _keys(started, tenure_start, top_end, top_id, top_auto, key_start, latest_start_days,
          freeze_id, freeze_start, freeze_end, source, on, computed_on=None) -> SimpleNamespace:
    """The facts the stage expression reads, and how to join their source to the members."""
    return SimpleNamespace(
        started=started, tenure_start=tenure_start, top_end=top_end, top_id=top_id,
        top_auto=top_auto, latest_start_days=latest_start_days,
        top_start_days=key_start % literal(DAY_SPAN, BigInteger()),
        top_end_days=key_start // literal(DAY_SPAN, BigInteger()),
        freeze_id=freeze_id, freeze_start=freeze_start, freeze_end=freeze_end,
        source=source, on=on, computed_on=computed_on)


def _stored() -> SimpleNamespace:
    """The facts from `retention_member_facts` (brought to the day by `facts.refresh`)."""
    t, p = MemberFacts.__table__, Plan.__table__
    source = t.outerjoin(p, p.c.id == t.c.top_plan_id)
    club_id = bindparam("club_id", type_=BigId)
    return _keys(t.c.started, t.c.tenure_start, t.c.top_end, t.c.top_id,
                 case((p.c.auto_renew, 1), else_=0), t.c.key_start, t.c.latest_start_days,
                 t.c.freeze_id, t.c.freeze_start, t.c.freeze_end, source,
                 lambda member_id: and_(t.c.club_id == club_id, t.c.member_id == member_id),
                 t.c.computed_on)


# long: the membership and freeze reductions for a few members (an event), in SQL; the
# statement's "mm" and "fz" parts, kept whole as `facts._recompute` mirrors them
def _reduced(ids) -> SimpleNamespace:
    """The facts reduced from the members' memberships and freezes as of the day."""
    m, p, f = Membership.__table__, Plan.__table__, Freeze.__table__
    P = bindparam
    d = P("d", type_=Date())
    club_id = P("club_id", type_=BigId)
    known_until = P("known_until", type_=UTCDateTime())

    def dp(name):
        return P(name, type_=Date())

    def effective_end(t):
        gone = and_(t.c.cancelled_on.is_not(None), t.c.cancelled_on <= d)
        return gone, case((and_(gone, t.c.cancelled_on <= t.c.end_date),
                           add_days(t.c.cancelled_on, -1)), else_=t.c.end_date)

    cancelled, eff_end = effective_end(m)
    km_where = [m.c.club_id == club_id,
                or_(m.c.start_date <= d, m.c.created_at < known_until),
                not_(and_(cancelled, m.c.cancelled_on <= m.c.start_date)),
                m.c.member_id.in_(ids)]
    started = m.c.start_date <= d
    started_end = case((started, eff_end))
    epoch = literal(EPOCH, Date())
    end_days = days_between(started_end, epoch)
    start_days = days_between(m.c.start_date, epoch)
    # the started membership that ends last (ties: the higher id), packed into numbers so one
    # GROUP BY finds it without sorting: (end day, id, auto-renew) and (end day, start day)
    key_id = (end_days * literal(2 * ID_SPAN, BigInteger()) + m.c.id * 2
              + case((p.c.auto_renew, 1), else_=0))
    key_start = end_days * literal(DAY_SPAN, BigInteger()) + start_days
    # a recent membership starts a tenure unless an earlier one ran until within the grace days
    # of its start (older tenures only matter as "older than establishing_days")
    q = m.alias("q")
    q_cancelled, q_end = effective_end(q)
    continues = exists(select(q.c.id).where(
        q.c.member_id == m.c.member_id,
        or_(q.c.start_date < m.c.start_date,
            and_(q.c.start_date == m.c.start_date, q.c.id < m.c.id)),
        not_(and_(q_cancelled, q.c.cancelled_on <= q.c.start_date)),
        add_days(q_end, P("grace_plus", type_=Integer())) >= m.c.start_date))
    tenure_from = case((and_(started, m.c.start_date > dp("tenure_window_from")),
                        case((~continues, m.c.start_date))))
    mm = (select(m.c.member_id, func.max(case((started, 1))).label("started"),
                 func.max(tenure_from).label("tenure_start"),
                 func.max(started_end).label("top_end"),
                 func.max(key_id).label("key_id"), func.max(key_start).label("key_start"),
                 func.max(start_days).label("latest_start_days"))
          .join_from(m, p, p.c.id == m.c.plan_id).where(*km_where)
          .group_by(m.c.member_id).subquery("mm"))

    covering = and_(f.c.start_date <= d, f.c.end_date >= d)
    fz_where = [f.c.club_id == club_id, f.c.start_date <= d,
                or_(m.c.cancelled_on.is_(None), m.c.cancelled_on > f.c.start_date),
                m.c.member_id.in_(ids)]
    fz = (select(m.c.member_id,
                 func.max(case((covering, f.c.id))).label("freeze_id"),
                 func.max(case((covering, f.c.start_date))).label("freeze_start"),
                 func.max(case((f.c.end_date < d, f.c.end_date))).label("freeze_end"))
          .join_from(f, m, m.c.id == f.c.membership_id)
          .where(*fz_where).group_by(m.c.member_id).subquery("fz"))

    source = mm.outerjoin(fz, fz.c.member_id == mm.c.member_id)
    return _keys(mm.c.started, mm.c.tenure_start, mm.c.top_end,
                 (mm.c.key_id // 2) % literal(ID_SPAN, BigInteger()), mm.c.key_id % 2,
                 mm.c.key_start, mm.c.latest_start_days, fz.c.freeze_id, fz.c.freeze_start,
                 fz.c.freeze_end, source, lambda member_id: mm.c.member_id == member_id)


def _since(stage: str, r, d: date, s: ClubSettings) -> date:
    """The day the member entered `stage` — from the data where it says so, else today."""
    days = timedelta
    natural = None
    if stage == Stage.onboarding:
        natural = r.tenure_start
    elif stage == Stage.establishing:
        natural = r.tenure_start + days(s.onboarding_days)
    elif stage == Stage.renewal_due:
        length = (r.top_end - r.top_start).days + 1
        natural = max(r.top_end - days(s.renewal_notice_days),
                      r.top_end - days(math.ceil(length / 2) - 1))
        if r.tenure_start is not None:
            natural = max(natural, r.tenure_start + days(s.onboarding_days))
    elif stage == Stage.lapsed:
        natural = r.top_end + days(1)
    elif stage == Stage.lost:
        natural = r.top_end + days(s.grace_days + 1)
    elif stage == Stage.frozen:
        natural = r.freeze_start
    elif stage == Stage.active and r.old_stage in (None, Stage.establishing.value):
        # first seen, or after establishing: the end of establishing, or (a tenure older than
        # the engine looks back) the start of the current membership
        natural = (r.tenure_start + days(s.establishing_days) if r.tenure_start is not None
                   else r.top_start)
    if natural is None or natural > d:
        return d
    return natural


def _reason(stage: str, r, d: date, s: ClubSettings, zone: ZoneInfo) -> str:
    if stage == Stage.prospect:
        return "known to the club, no membership yet"
    if stage == Stage.onboarding:
        if r.old_stage == Stage.lost.value:
            return f"came back: new membership from {r.tenure_start.isoformat()}"
        return f"first {s.onboarding_days} days of the membership started {r.tenure_start.isoformat()}"
    if stage == Stage.establishing:
        return f"day {(d - r.tenure_start).days + 1} of the membership (establishing a routine)"
    if stage == Stage.active:
        if r.old_stage == Stage.at_risk.value:
            return "visiting again"
        if r.old_stage == Stage.renewal_due.value:
            return "renewed"
        if r.old_stage == Stage.lapsed.value:
            return "renewed after the membership ended"
        return f"regular member after day {s.establishing_days}"
    if stage == Stage.at_risk:
        parts = []
        if r.no_visit:
            if r.last_visit is None:
                parts.append(f"no visit for {s.at_risk_no_visit_days}+ days")
            else:
                gap = (d - local_date(zone, r.last_visit)).days
                parts.append(f"no visit for {gap} days")
        if r.below_usual:
            usual = (r.prior or 0) / (PRIOR_DAYS / RECENT_DAYS)
            parts.append(f"{r.recent or 0} visits in the last {RECENT_DAYS} days, usually "
                         f"{usual:.1f}")
        return "; ".join(parts) or "attendance dropped"
    if stage == Stage.renewal_due:
        return (f"membership ends {r.top_end.isoformat()} ({(r.top_end - d).days} days left) "
                "and does not renew automatically")
    if stage == Stage.lapsed:
        return f"membership ended {r.top_end.isoformat()}, not renewed (grace {s.grace_days} days)"
    if stage == Stage.lost:
        return f"no renewal within {s.grace_days} days of the end on {r.top_end.isoformat()}"
    if stage == Stage.frozen:
        return f"membership frozen since {r.freeze_start.isoformat()}"
    return stage


def _recovery(r, d: date, s: ClubSettings) -> dict:
    """For an at-risk member: where a visit takes them back, and how many visits that takes."""
    establishing = (r.tenure_start is not None
                    and r.tenure_start > d - timedelta(days=s.establishing_days))
    need = 1 if r.no_visit else 0
    if r.below_usual:
        threshold = s.at_risk_ratio * (r.prior or 0) / (PRIOR_DAYS / RECENT_DAYS)
        need = max(need, math.ceil(threshold - (r.recent or 0) - 1e-9))
    return {
        "base_stage": Stage.establishing.value if establishing else Stage.active.value,
        "base_since": (r.tenure_start + timedelta(days=s.onboarding_days)) if establishing else None,
        "base_cycle": f"t{r.tenure_start.isoformat()}" if establishing else None,
        "recover_visits": max(need, 1),
    }


_NO_RISK = {"base_stage": None, "base_since": None, "base_cycle": None, "recover_visits": 0}


BATCH = 5000


FRESH_IN_BULK = 2000  # more members new to the engine than this: count their visits in one pass


def compute_and_apply(session: Session, *, club_id: int, as_of: date, now: datetime,
                      settings: ClubSettings, zone: ZoneInfo, source: str = "daily_run",
                      member_ids: list[int] | None = None,
                      visits_before: datetime | None = None,
                      many_new: bool = True) -> StageRun:
    """Recompute stages `as_of` a day and write what changed (stage rows and history).

    On PostgreSQL the rows stream from a server-side cursor in batches (its snapshot does not
    see the writes), so memory stays bounded even when every member is new to the engine.

    `visits_before`: where the club's visit totals stand (`scheduling.visits_cutoff`); a member
    new to the engine gets the count of their visits before it, so the visit count that follows
    only adds the visits since (None: the total is left at -1, counted by the next daily run).
    A few new members are counted in the statement (by index); many (the first run) by one
    GROUP BY over the club's visits. `many_new=False` (the daily run when the club's facts
    were not rebuilt, so this is not its first run) skips counting the new members first and
    counts any in the statement.
    """
    run = StageRun()
    params = _params(club_id=club_id, as_of=as_of, s=settings, zone=zone, member_ids=member_ids,
                     visits_before=visits_before)
    totals = (None if visits_before is None or not many_new
              else _fresh_totals(session, club_id, visits_before))
    if totals is not None:
        params["count_each"] = False
    stmt = _statement(member_ids is not None)

    def total_of(r) -> int:
        if visits_before is None:
            return -1
        return r.visits_before if totals is None else totals.get(r.member_id, 0)

    if is_postgres(session):
        result = session.execute(stmt, params, execution_options={"yield_per": BATCH})
        for rows in result.partitions():
            _apply(session, rows, run, club_id=club_id, as_of=as_of, now=now, settings=settings,
                   zone=zone, source=source, total_of=total_of)
    else:  # SQLite: read everything first (the statement reads the table being written)
        rows = session.execute(stmt, params).all()
        for i in range(0, len(rows), BATCH):
            _apply(session, rows[i:i + BATCH], run, club_id=club_id, as_of=as_of, now=now,
                   settings=settings, zone=zone, source=source, total_of=total_of)
    return run


def _fresh_totals(session: Session, club_id: int, before: datetime) -> dict[int, int] | None:
    """Visit totals before `before` of the club's members, when more than `FRESH_IN_BULK` of
    them have no stage row yet (else None: the stage statement counts the few by index)."""
    mb, ms, v = Member.__table__, MemberStage.__table__, Visit.__table__
    fresh = session.scalar(
        select(func.count()).select_from(mb.outerjoin(ms, ms.c.member_id == mb.c.id))
        .where(mb.c.club_id == club_id, ms.c.id.is_(None)))
    if fresh <= FRESH_IN_BULK:
        return None
    return dict(session.execute(
        select(v.c.member_id, func.count()).join(mb, mb.c.id == v.c.member_id)
        .where(mb.c.club_id == club_id, v.c.occurred_at < before)
        .group_by(v.c.member_id)).all())


def _apply(session: Session, rows, run: StageRun, *, club_id: int, as_of: date, now: datetime,
           settings: ClubSettings, zone: ZoneInfo, source: str, total_of) -> None:
    run.rows += len(rows)
    inserts, updates, history = [], [], []
    for r in rows:
        stage = r.stage
        moved = r.old_stage is None or stage != r.old_stage or (
            r.cycle is not None and r.cycle != r.old_cycle)
        risk = _recovery(r, as_of, settings) if stage == Stage.at_risk else _NO_RISK
        values = {"membership_id": r.top_id, "updated_at": now, **risk}
        if moved:
            since = _since(stage, r, as_of, settings)
            cycle = r.cycle or (("r" if stage == Stage.at_risk else "a") + since.isoformat())
            reason = _reason(stage, r, as_of, settings, zone)
            values.update(stage=stage, since=since, cycle=cycle, reason=reason)
            if r.old_stage == Stage.at_risk.value and stage != Stage.at_risk:
                values["risk_cleared_on"] = as_of
            if r.old_stage != stage:
                history.append({"club_id": club_id, "member_id": r.member_id,
                                "from_stage": r.old_stage, "to_stage": stage, "on_date": since,
                                "at": now, "reason": reason[:200], "source": source})
                run.changes.append((r.member_id, r.old_stage, stage))
        elif stage == Stage.at_risk:
            if (r.old_recover == risk["recover_visits"] and r.old_base_stage == risk["base_stage"]
                    and r.old_membership_id == r.top_id):
                continue
            values["reason"] = _reason(stage, r, as_of, settings, zone)
        if r.row_id is None:
            values.update(club_id=club_id, member_id=r.member_id,
                          visits_total=total_of(r))
            values.setdefault("risk_cleared_on", None)
            inserts.append(values)
        else:
            values["id"] = r.row_id
            updates.append(values)
    if inserts:  # COPY on PostgreSQL: the first run inserts a row for every member
        bulk_insert(session, MemberStage.__table__, inserts)
    if updates:
        # bulk UPDATE by primary key, grouped by the set of columns (one executemany each)
        groups: dict[tuple, list[dict]] = {}
        for u in updates:
            groups.setdefault(tuple(sorted(u)), []).append(u)
        for batch in groups.values():
            session.execute(update(MemberStage), batch)
    if history:
        bulk_insert(session, StageChange.__table__, history)
    run.inserted += len(inserts)
    run.updated += len(updates)


def stage_counts(session: Session, *, club_id: int) -> dict[str, int]:
    rows = session.execute(select(MemberStage.stage, func.count())
                           .where(MemberStage.club_id == club_id)
                           .group_by(MemberStage.stage)).all()
    counts = {s.value: 0 for s in Stage}
    counts.update({stage: n for stage, n in rows})
    return counts


# --- the visit handler -------------------------------------------------------------------------

_ZONE_TTL = 300.0
_zones: dict[int, tuple[ZoneInfo, float]] = {}


def _club_zone(session: Session, club_id: int) -> ZoneInfo:
    cached = _zones.get(club_id)
    if cached and cached[1] > _clock.monotonic():
        return cached[0]
    name = session.scalar(select(Club.timezone).where(Club.id == club_id)) or "UTC"
    zone = ZoneInfo(name)
    _zones[club_id] = (zone, _clock.monotonic() + _ZONE_TTL)
    return zone


def _visit_recovery(gate=None):
    """`on_visit`'s statements: the guarded UPDATE of the member's stage and, as a CTE over
    it, the history row it implies (PostgreSQL). `gate` further limits the UPDATE (the check-in
    folds these into its grant statement, gated on the visit being written)."""
    t, h = MemberStage.__table__, StageChange.__table__
    day = bindparam("sr_day", type_=Date())
    at = bindparam("sr_at", type_=t.c.updated_at.type)
    # constants inline, not as bound values: the statement is folded into the check-in's grant,
    # whose SQL must stay under psycopg's 4 kB limit for caching a query's conversion
    done = t.c.recover_visits <= literal_column("1")
    recover = (t.update()
               .where(t.c.member_id == bindparam("sr_member_id", type_=t.c.member_id.type),
                      t.c.club_id == bindparam("sr_club_id", type_=t.c.club_id.type),
                      t.c.stage == Stage.at_risk.value, true() if gate is None else gate)
               .values(recover_visits=case((done, literal_column("0")),
                                           else_=t.c.recover_visits - literal_column("1")),
                       stage=case((done, func.coalesce(t.c.base_stage,
                                                       literal_column(f"'{Stage.active.value}'"))),
                                  else_=t.c.stage),
                       since=case((done, func.coalesce(t.c.base_since, day)), else_=t.c.since),
                       cycle=case((done, func.coalesce(t.c.base_cycle,
                                                       bindparam("sr_cycle", type_=String()))),
                                  else_=t.c.cycle),
                       reason=case((done, literal_column("'visiting again'")),
                                   else_=t.c.reason),
                       risk_cleared_on=case((done, day), else_=t.c.risk_cleared_on),
                       updated_at=at)
               .returning(t.c.stage, t.c.since))
    moved = recover.cte("recovered")
    history = (insert(h).from_select(
        ["club_id", "member_id", "from_stage", "to_stage", "on_date", "at", "reason", "source"],
        select(bindparam("sr_club_id", type_=h.c.club_id.type),
               bindparam("sr_member_id", type_=h.c.member_id.type),
               literal_column(f"'{Stage.at_risk.value}'"), moved.c.stage, moved.c.since, at,
               literal_column("'visiting again'"), literal_column("'visit'"))
        .where(moved.c.stage != Stage.at_risk.value))
        .returning(h.c.id))
    return recover, moved, history


_RECOVER, _moved, _history = _visit_recovery()
_RECOVER_AND_RECORD = _history.add_cte(_moved, nest_here=True)


def _recovery_ctes(gate) -> list:
    _update, moved, history = _visit_recovery(gate)
    return [moved, history.cte("history")]


def _recovery_params(event: VisitGranted) -> dict:
    day = event.day
    if day is None:
        raise ValueError("a folded VisitGranted needs the club-local day")
    return {"sr_club_id": event.club_id, "sr_member_id": event.member_id, "sr_day": day,
            "sr_cycle": f"a{day.isoformat()}", "sr_at": event.occurred_at}


RECOVERY_FOLDED = Folded(_recovery_ctes, _recovery_params)
"""`on_visit` as SQL the check-in folds into its grant statement (`app.core.events.Folded`)."""


def on_visit(session: Session, event: VisitGranted) -> None:
    """`VisitGranted` handler (in the turnstile's transaction): bring an at-risk member back.

    One UPDATE that matches nothing unless the member is at risk; when the visit is the one
    that brings them back, the history row too (PostgreSQL: in the same statement). "We miss
    you" touchpoints still pending are not touched here: the dispatcher skips them lazily (stop
    condition "visited").
    """
    club_id, member_id, occurred_at = event.club_id, event.member_id, event.occurred_at
    day = event.day or local_date(_club_zone(session, club_id), occurred_at)
    params = _recovery_params(VisitGranted(club_id, member_id, occurred_at, day))
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(_RECOVER_AND_RECORD, params)
        return
    row = conn.execute(_RECOVER, params).first()
    if row is not None and row.stage != Stage.at_risk.value:
        conn.execute(insert(StageChange.__table__).values(
            club_id=club_id, member_id=member_id, from_stage=Stage.at_risk.value,
            to_stage=row.stage, on_date=row.since, at=occurred_at, reason="visiting again",
            source="visit"))
