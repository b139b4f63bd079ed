"""Renewal rate, its breakdowns, the before/after view and which touchpoints lift renewals.

**Ended**: a membership *ends* on its last day — the end date (moved out by freezes), or the day
before `cancelled_on` when it was cancelled before its end. One cancelled on or before its first
day never ran and counts nowhere (neither as ended nor as a renewal). A membership belongs to a
period when its last day falls in it (and is not after today).

**Renewed**: the member started *another* membership (not void, starting later than this one
started) between 30 days before and `grace` days after the last day. A membership bought while
another runs, an upgrade after a cancellation, and a return within grace all count; a parallel
membership that started the same day does not, nor a return after grace.

**In grace** (undecided): not renewed, and today is not yet past the last day + grace: a renewal
may still come. **Lost**: not renewed and the window has closed. The renewal rate is
renewed / (renewed + lost) — undecided memberships are left out, so a recent period shows a
provisional rate until `in_grace` reaches 0.

Each figure is one set-based statement over the ended memberships of the period, read with their
outcome from the stored facts (`retention.facts`: the renewal is decided when the facts are
built, `common.renewed`), grouped.
"""
from datetime import date, timedelta
from enum import StrEnum

from sqlalchemy import and_, case, exists, func, literal, select, union_all
from sqlalchemy.orm import Session

from app.access.models import Visit
from app.analytics import money, stats, verdicts
from app.analytics.common import Scope, month_label, scope
from app.analytics.models import ChannelSend, TouchpointPair
from app.analytics.retention import facts
from app.analytics.schemas import (
    BeforeAfterReport,
    BeforeAfterRow,
    MembershipOutcome,
    RenewalBreakdown,
    RenewalCounts,
    RenewalReport,
    RenewalRow,
    TouchpointReport,
    TouchpointRow,
)
from app.analytics.sql import not_indexed
from app.clubs.models import StaffUser
from app.core import sql
from app.core.errors import Invalid
from app.memberships.models import Plan
from app.memberships.rules import add_months
from app.retention.models import StageChange, TouchpointDefinition
from app.trainers.models import PtPackage, PtSession, TrainerProfile

RENEWED, IN_GRACE, LOST = "renewed", "in_grace", "lost"
ATTENDANCE_DAYS = 56  # the last 8 weeks of a membership
ATTENDANCE_BANDS = (("0-1", "under 1 visit a week"), ("1-2", "1 to under 2 a week"),
                    ("2-3", "2 to under 3 a week"), ("3+", "3 or more a week"))
CHANNELS = ("email", "sms", "call_task", "trainer_task")

SENT, HELD_OUT = "sent", "held_out"


class By(StrEnum):
    month = "month"
    plan = "plan"
    cohort = "cohort"
    trainer = "trainer"
    attendance = "attendance"
    stage = "stage"
    channel = "channel"
    dues = "dues"


def ended(session: Session, s: Scope, date_from: date, date_to: date, *, name: str = "ended",
          cohort: bool = False, instants: bool = False, materialized: bool = False):
    """CTE: the memberships whose last day is in [date_from, date_to] and their outcome.

    Read from the club's stored facts (`retention.facts`, brought up to date first): each
    running membership's last day and renewal outcome (`common.renewed`, stored with the facts
    because it depends only on the member's memberships and on grace) — renewed, else in grace
    while today is not past `grace_end` (last day + grace), else lost.

    `cohort` adds the member's first start; `instants` adds the UTC instants of the
    membership's first day, of the start of its attendance window and of the day after its last
    day, and materialises the CTE on PostgreSQL so they are computed once per membership;
    `materialized` materialises it without them (for a CTE read several times).
    """
    w = facts(session, s, name="w")
    outcome = case((w.c.renewed == 1, RENEWED), (w.c.grace_end >= s.as_of, IN_GRACE),
                   else_=LOST)
    period = [w.c.last_day >= date_from, w.c.last_day <= min(date_to, s.as_of)]
    if s.plan_id is not None:
        period.append(w.c.plan_id == s.plan_id)
    out = [w.c.id, w.c.member_id, w.c.plan_id, w.c.start_date, w.c.last_day,
           outcome.label("outcome")]
    if cohort:
        out.append(w.c.first_start)
    if instants:
        window_first = sql.greatest(w.c.start_date,
                                    sql.add_days(w.c.last_day, 1 - ATTENDANCE_DAYS))
        out += [sql.day_start(w.c.start_date, s.tz).label("t_start"),
                sql.day_start(window_first, s.tz).label("t_window"),
                sql.day_start(sql.add_days(w.c.last_day, 1), s.tz).label("t_end"),
                (sql.days_between(w.c.last_day, window_first) + 1).label("window_days")]
    cte = select(*out).where(*period).cte(name)
    if instants or materialized:
        cte = cte.prefix_with("MATERIALIZED", dialect="postgresql")
    return cte


def _pivot(rows) -> dict:
    """Rows (key, outcome, n) → {key: {outcome: n}}."""
    found: dict = {}
    for key, outcome, n in rows:
        found.setdefault(key, {RENEWED: 0, IN_GRACE: 0, LOST: 0})[outcome] += int(n)
    return found


def counts(ended_: int, renewed: int, in_grace: int, lost: int) -> RenewalCounts:
    return RenewalCounts(ended=ended_, renewed=renewed, in_grace=in_grace, lost=lost,
                         renewal_rate=stats.rate(renewed, renewed + lost))


def _row(key: str, label: str, c: dict) -> RenewalRow:
    renewed, in_grace, lost = c[RENEWED], c[IN_GRACE], c[LOST]
    return RenewalRow(key=key, label=label, ended=renewed + in_grace + lost, renewed=renewed,
                      in_grace=in_grace, lost=lost,
                      renewal_rate=stats.rate(renewed, renewed + lost))


def _totals(rows: list[RenewalRow]) -> RenewalCounts:
    return counts(sum(r.ended for r in rows), sum(r.renewed for r in rows),
                  sum(r.in_grace for r in rows), sum(r.lost for r in rows))


def _period(s: Scope) -> dict:
    return {"as_of": s.as_of, "date_from": s.date_from, "date_to": s.date_to,
            "grace_days": s.grace, "plan_id": s.plan_id}


# --- the renewal rate ----------------------------------------------------------------------------

def outcomes(session: Session, *, club_id: int, as_of: date | None = None,
             date_from: date | None = None, date_to: date | None = None,
             plan_id: int | None = None) -> list[MembershipOutcome]:
    """Each membership that ended in the period with its outcome (renewed, in_grace, lost)."""
    s = scope(session, club_id=club_id, as_of=as_of, date_from=date_from, date_to=date_to,
              plan_id=plan_id)
    e = ended(session, s, s.date_from, s.date_to)
    rows = session.execute(select(e).order_by(e.c.last_day, e.c.id)).all()
    return [MembershipOutcome(membership_id=r.id, member_id=r.member_id, plan_id=r.plan_id,
                              start_date=r.start_date, last_day=r.last_day, outcome=r.outcome)
            for r in rows]


def renewal_report(session: Session, *, club_id: int, as_of: date | None = None,
                   date_from: date | None = None, date_to: date | None = None,
                   plan_id: int | None = None) -> RenewalReport:
    """Renewal counts and rate for the period, and per month of the last day."""
    s = scope(session, club_id=club_id, as_of=as_of, date_from=date_from, date_to=date_to,
              plan_id=plan_id)
    items = _breakdown_rows(session, s, By.month)
    return RenewalReport(**_period(s), totals=_totals(items), items=items)


def renewal_breakdown(session: Session, *, club_id: int, by: By | str, as_of: date | None = None,
                      date_from: date | None = None, date_to: date | None = None,
                      plan_id: int | None = None) -> RenewalBreakdown:
    """Renewal counts and rate per plan, join cohort, home trainer, attendance band, stage
    history or touchpoint channel."""
    by = By(by)
    s = scope(session, club_id=club_id, as_of=as_of, date_from=date_from, date_to=date_to,
              plan_id=plan_id)
    items = _breakdown_rows(session, s, by)
    if by is By.channel:
        totals = _overall(session, s)
        note = ("groups overlap: a membership whose member got touchpoints on two channels is in "
                "both rows; 'none' = no touchpoint delivered for it")
    else:
        totals, note = _totals(items), None
    return RenewalBreakdown(**_period(s), by=by.value, note=note, totals=totals, items=items)


def _overall(session: Session, s: Scope) -> RenewalCounts:
    e = ended(session, s, s.date_from, s.date_to)
    found = _pivot(session.execute(select(literal("all"), e.c.outcome, func.count())
                                   .group_by(e.c.outcome)))
    c = found.get("all", {RENEWED: 0, IN_GRACE: 0, LOST: 0})
    return counts(sum(c.values()), c[RENEWED], c[IN_GRACE], c[LOST])


def _grouped(session: Session, key, outcome, *where, select_from=None) -> dict:
    stmt = select(key.label("k"), outcome, func.count())
    if select_from is not None:
        stmt = stmt.select_from(select_from)
    return _pivot(session.execute(stmt.where(*where).group_by(key, outcome)))


def _breakdown_rows(session: Session, s: Scope, by: By) -> list[RenewalRow]:
    if by is By.month:
        e = ended(session, s, s.date_from, s.date_to)
        found = _grouped(session, sql.month_start(e.c.last_day), e.c.outcome)
    elif by is By.plan:
        e = ended(session, s, s.date_from, s.date_to)
        found = _grouped(session, e.c.plan_id, e.c.outcome)
    elif by is By.cohort:
        e = ended(session, s, s.date_from, s.date_to, cohort=True)
        found = _grouped(session, sql.month_start(e.c.first_start), e.c.outcome)
    elif by is By.trainer:
        found = _by_trainer(session, s)
    elif by is By.attendance:
        found = _by_attendance(session, s)
    elif by is By.stage:
        found = _by_stage(session, s)
    elif by is By.channel:
        found = _by_channel(session, s)
    elif by is By.dues:
        e = ended(session, s, s.date_from, s.date_to)
        found = _grouped(session, money.ending_kind(s.club_id, e.c.id, e.c.member_id,
                                                    e.c.last_day), e.c.outcome)
    else:
        raise ValueError(by)
    return _label(session, s, by, found)


def _by_stage(session: Session, s: Scope) -> dict:
    """Ever at risk during the membership: an `at_risk` stage change dated in it."""
    e = ended(session, s, s.date_from, s.date_to)
    c = StageChange.__table__
    at_risk = exists().where(c.c.member_id == e.c.member_id, not_indexed(c.c.club_id) == s.club_id,
                             c.c.to_stage == "at_risk", c.c.on_date >= e.c.start_date,
                             c.c.on_date <= e.c.last_day)
    both = union_all(
        select(literal("at_risk").label("k"), e.c.outcome).where(at_risk),
        select(literal("never_at_risk").label("k"), e.c.outcome).where(~at_risk)).subquery()
    return _grouped(session, both.c.k, both.c.outcome)


def home_trainer(s: Scope, e):
    """(select_from, key): the member's home trainer for a membership.

    The trainer named on the member's PT package whose validity overlaps the membership (the
    latest `valid_from`, then the latest sold); without one, the trainer of the member's last
    completed PT session during the membership (club-local days); otherwise none.
    """
    p, t = PtPackage.__table__, PtSession.__table__
    by_package = (select(e.c.id.label("eid"), p.c.trainer_id,
                         func.row_number().over(partition_by=e.c.id,
                                                order_by=(p.c.valid_from.desc(), p.c.id.desc()))
                         .label("rn"))
                  .join(p, and_(p.c.member_id == e.c.member_id, p.c.club_id == s.club_id,
                                p.c.trainer_id.is_not(None), p.c.valid_from <= e.c.last_day,
                                p.c.valid_until >= e.c.start_date))
                  .subquery("by_package"))
    by_session = (select(e.c.id.label("eid"), t.c.trainer_id,
                         func.row_number().over(partition_by=e.c.id,
                                                order_by=(t.c.starts_at.desc(), t.c.id.desc()))
                         .label("rn"))
                  .join(t, and_(t.c.member_id == e.c.member_id, t.c.club_id == s.club_id,
                                t.c.status == "completed",
                                t.c.starts_at >= sql.day_start(e.c.start_date, s.tz),
                                t.c.starts_at < sql.day_start(sql.add_days(e.c.last_day, 1),
                                                              s.tz)))
                  .subquery("by_session"))
    joined = (e.outerjoin(by_package, and_(by_package.c.eid == e.c.id, by_package.c.rn == 1))
              .outerjoin(by_session, and_(by_session.c.eid == e.c.id, by_session.c.rn == 1)))
    return joined, func.coalesce(by_package.c.trainer_id, by_session.c.trainer_id)


def _by_trainer(session: Session, s: Scope) -> dict:
    # the session bounds are computed per candidate session in the join, not per membership
    e = ended(session, s, s.date_from, s.date_to, materialized=True)
    joined, key = home_trainer(s, e)
    return _grouped(session, key, e.c.outcome, select_from=joined)


def _by_attendance(session: Session, s: Scope) -> dict:
    """Visits per week over the membership's last 8 weeks (its whole length when shorter),
    counted on club-local days; half-open bands [0, 1), [1, 2), [2, 3), [3, ∞)."""
    e = ended(session, s, s.date_from, s.date_to, instants=True)
    v = Visit.__table__
    # the member's visits in the window: an index-only range scan of (member_id, occurred_at)
    # per membership (a member's visits are all in the member's club)
    visits = (select(func.count())
              .where(v.c.member_id == e.c.member_id, v.c.occurred_at >= e.c.t_window,
                     v.c.occurred_at < e.c.t_end)
              .scalar_subquery())
    per = (select(e.c.outcome, e.c.window_days.label("days"), visits.label("n")).cte("per")
           .prefix_with("MATERIALIZED", dialect="postgresql"))  # count once, not per band
    per7, days = per.c.n * 7, per.c.days
    band = case((per7 < days, "0-1"), (per7 < 2 * days, "1-2"), (per7 < 3 * days, "2-3"),
                else_="3+")
    return _grouped(session, band, per.c.outcome)


def _by_channel(session: Session, s: Scope) -> dict:
    """Per membership, the channels of the touchpoints delivered for it: the stored
    (membership, channel) rows with a sent count (`analytics_channel_sends`, kept by triggers,
    migration 0015_analytics_outcomes), one pass. A row per membership and channel, so each
    named channel's rows count memberships; of a membership's other channels only the first
    counts (`other`); a membership without a row is `none`."""
    e = ended(session, s, s.date_from, s.date_to)
    c, c2 = ChannelSend.__table__, ChannelSend.__table__.alias("c2")
    earlier_other = exists().where(c2.c.club_id == c.c.club_id,
                                   c2.c.membership_id == c.c.membership_id,
                                   c2.c.channel < c.c.channel, c2.c.channel.not_in(CHANNELS))
    key = case((c.c.channel.is_(None), "none"), (c.c.channel.in_(CHANNELS), c.c.channel),
               (~earlier_other, "other"))
    per = (select(key.label("k"), e.c.outcome)
           .select_from(e.outerjoin(c, and_(c.c.membership_id == e.c.id,
                                            c.c.club_id == s.club_id, c.c.sent > 0)))
           .subquery("per"))
    return _grouped(session, per.c.k, per.c.outcome, per.c.k.is_not(None))


def _label(session: Session, s: Scope, by: By, found: dict) -> list[RenewalRow]:
    if by in (By.month, By.cohort):
        return [_row(month_label(sql.index_of(k)), month_label(sql.index_of(k)), found[k])
                for k in sorted(found)]
    if by is By.plan:
        names = {i: name for i, name in session.execute(
            select(Plan.id, Plan.name).where(Plan.club_id == s.club_id))}
        return sorted((_row(str(k), names.get(k, "?"), c) for k, c in found.items()),
                      key=lambda row: (row.label, row.key))
    if by is By.trainer:
        names = {i: name for i, name in session.execute(
            select(TrainerProfile.id, StaffUser.name)
            .join(StaffUser, StaffUser.id == TrainerProfile.user_id)
            .where(TrainerProfile.club_id == s.club_id))}
        out = [_row(str(k) if k is not None else "none",
                    names.get(k, "?") if k is not None else "no PT", c) for k, c in found.items()]
        return sorted(out, key=lambda row: (row.key == "none", row.label, row.key))
    if by is By.attendance:
        return [_row(k, label, found[k]) for k, label in ATTENDANCE_BANDS if k in found]
    if by is By.stage:
        labels = {"at_risk": "at risk at some point", "never_at_risk": "never at risk"}
        return [_row(k, labels[k], found[k]) for k in labels if k in found]
    if by is By.channel:
        order = {c: i for i, c in enumerate((*CHANNELS, "none"))}
        out = [_row(k, k.replace("_", " "), c) for k, c in found.items()]
        return sorted(out, key=lambda row: (order.get(row.key, len(order)), row.key))
    if by is By.dues:
        labels = {"involuntary": "ended with unpaid dues", "voluntary": "cancelled by notice",
                  "other": "other"}
        return [_row(k, labels[k], found[k]) for k in labels if k in found]
    raise ValueError(by)


# --- before / after ------------------------------------------------------------------------------

def before_after(session: Session, *, club_id: int, on: date, as_of: date | None = None,
                 date_from: date | None = None, date_to: date | None = None,
                 plan_id: int | None = None) -> BeforeAfterReport:
    """Renewal rate of memberships ending before `on` against those ending on or after it.

    Defaults: six months either side (`from` = on − 6 months, `to` = on + 6 months − 1 day,
    never after today). Not a controlled comparison: seasons and prices change too.
    """
    s = scope(session, club_id=club_id, as_of=as_of,
              date_from=date_from or add_months(on, -6),
              date_to=date_to or add_months(on, 6) - timedelta(days=1), plan_id=plan_id)
    if not s.date_from < on <= s.date_to:
        raise Invalid(f"The date ({on}) must fall after 'from' ({s.date_from}) and by 'to' "
                      f"({s.date_to}, never after today)", code="invalid_period")
    e = ended(session, s, s.date_from, s.date_to)
    found = _grouped(session, case((e.c.last_day < on, "before"), else_="after"), e.c.outcome)
    bounds = {"before": (s.date_from, on - timedelta(days=1)), "after": (on, s.date_to)}
    rows = []
    for key in ("before", "after"):
        c = found.get(key, {RENEWED: 0, IN_GRACE: 0, LOST: 0})
        values = counts(sum(c.values()), c[RENEWED], c[IN_GRACE], c[LOST])
        rows.append(BeforeAfterRow(key=key, date_from=bounds[key][0], date_to=bounds[key][1],
                                   **values.model_dump()))
    b, a = rows
    j = verdicts.judge_one(a.renewed, a.renewed + a.lost, b.renewed, b.renewed + b.lost)
    return BeforeAfterReport(as_of=s.as_of, date=on, grace_days=s.grace, plan_id=s.plan_id,
                             items=rows, difference=j.raw.difference, ci_low=j.raw.ci_low,
                             ci_high=j.raw.ci_high, verdict=j.verdict,
                             method=verdicts.METHOD_ONE, adjusted_low=j.adjusted_low,
                             adjusted_high=j.adjusted_high)


# --- touchpoint effectiveness --------------------------------------------------------------------

def touchpoint_effectiveness(session: Session, *, club_id: int, as_of: date | None = None,
                             date_from: date | None = None, date_to: date | None = None,
                             plan_id: int | None = None) -> TouchpointReport:
    """Per touchpoint definition: renewal rate of exposed against held-out memberships.

    The unit is a membership that ended in the period; it is linked to the touchpoints planned
    for it (`scheduled_touchpoints.membership_id`: the membership in context when planned, so
    win-back messages after the end count for the membership that ended). For one definition a
    membership is *exposed* when one of those rows was sent, *held out* when one was held out,
    *assigned* (intention to treat) when one was planned and not held out, whatever became of
    it. Undecided memberships (in grace) are left out of the rates.
    """
    s = scope(session, club_id=club_id, as_of=as_of, date_from=date_from, date_to=date_to,
              plan_id=plan_id)
    e = ended(session, s, s.date_from, s.date_to)
    p, d = TouchpointPair.__table__, TouchpointDefinition.__table__

    def flag(condition):
        return case((condition, 1), else_=0)

    # the (definition, membership) pairs with their touchpoints' counts, kept by triggers
    # (migration 0015_analytics_outcomes) instead of grouping every touchpoint row each time;
    # counted per combination of flags first (a few dozen rows), then summed per definition
    sent, held = flag(p.c.sent > 0), flag(p.c.held > 0)
    assigned = flag(p.c.planned > p.c.held)
    pairs = (select(p.c.definition_id, e.c.outcome, sent.label("sent"), held.label("held"),
                    assigned.label("assigned"), func.count().label("pairs"))
             .join(p, and_(p.c.membership_id == e.c.id, p.c.club_id == s.club_id))
             .group_by(p.c.definition_id, e.c.outcome, sent, held, assigned)
             .subquery())
    decided = pairs.c.outcome != IN_GRACE
    won = pairs.c.outcome == RENEWED
    held_only = and_(pairs.c.held == 1, pairs.c.assigned == 0)
    sent_only = and_(pairs.c.sent == 1, pairs.c.held == 0)
    assigned_only = and_(pairs.c.assigned == 1, pairs.c.held == 0)

    def n(*conditions):
        return func.coalesce(func.sum(case((and_(*conditions), pairs.c.pairs), else_=0)), 0)

    agg = (select(pairs.c.definition_id,
                  n(sent_only, decided).label("exposed"), n(sent_only, won).label("exposed_won"),
                  n(held_only, decided).label("held"), n(held_only, won).label("held_won"),
                  n(assigned_only, decided).label("assigned"),
                  n(assigned_only, won).label("assigned_won"),
                  n(pairs.c.outcome == IN_GRACE, pairs.c.held + pairs.c.assigned == 1)
                  .label("in_grace"),
                  n(pairs.c.held == 1, pairs.c.assigned == 1).label("mixed"))
           .group_by(pairs.c.definition_id).subquery())
    rows = session.execute(
        select(d.c.id, d.c.key, d.c.name, d.c.stage, d.c.channel, d.c.enabled, agg)
        .outerjoin(agg, agg.c.definition_id == d.c.id)
        .where(d.c.club_id == s.club_id).order_by(d.c.stage, d.c.key)).all()
    tallies = [{k: int(getattr(r, k) or 0) for k in (
        "exposed", "exposed_won", "held", "held_won", "assigned", "assigned_won", "in_grace",
        "mixed")} for r in rows]
    family = verdicts.judge(  # one family: both verdicts of every definition
        [p for v in tallies for p in ((v["exposed_won"], v["exposed"], v["held_won"], v["held"]),
                                      (v["assigned_won"], v["assigned"], v["held_won"],
                                       v["held"]))],
        months=verdicts.months_between(s.date_from, s.date_to))
    items = []
    for r, v, pp, itt in zip(rows, tallies, family.items[::2], family.items[1::2], strict=True):
        items.append(TouchpointRow(
            definition_id=r.id, key=r.key, name=r.name, stage=r.stage, channel=r.channel,
            enabled=r.enabled, exposed=v["exposed"], exposed_renewed=v["exposed_won"],
            exposed_rate=pp.raw.rate1, held_out=v["held"], held_out_renewed=v["held_won"],
            held_out_rate=pp.raw.rate2, difference=pp.raw.difference, ci_low=pp.raw.ci_low,
            ci_high=pp.raw.ci_high, verdict=pp.verdict, assigned=v["assigned"],
            assigned_renewed=v["assigned_won"], assigned_rate=itt.raw.rate1,
            itt_difference=itt.raw.difference, itt_ci_low=itt.raw.ci_low,
            itt_ci_high=itt.raw.ci_high, itt_verdict=itt.verdict, in_grace=v["in_grace"],
            mixed=v["mixed"], **_judged(pp, ""), **_judged(itt, "itt_")))
    return TouchpointReport(**_period(s), method=verdicts.METHOD, min_group=stats.MIN_GROUP,
                            alpha=family.alpha, family_size=family.size,
                            discoveries=family.discoveries, adjusted_level=family.level,
                            items=items)


def _judged(j: verdicts.Judged, prefix: str) -> dict:
    """The new fields of a judged comparison (the corrected interval, power) for a report row."""
    return {f"{prefix}adjusted_low": j.adjusted_low, f"{prefix}adjusted_high": j.adjusted_high,
            f"{prefix}detectable": j.detectable, f"{prefix}more_needed": j.more_needed,
            f"{prefix}months_needed": j.months_needed}
