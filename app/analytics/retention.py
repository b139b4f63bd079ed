"""Retention over time: member base, monthly retention and churn, cohorts, tenure survival.

Two ways of joining a member's memberships, both computed by window functions over the
memberships ordered by start (one pass, no loop over members):

- **coverage**: memberships that overlap or follow each other without a day between merge into
  one interval; a member is *in the member base* on a day when an interval covers it (a frozen
  membership still counts: the member has not left);
- **tenure spell**: memberships merge when the next one starts less than `grace` days after the
  last day so far (the same window in which it counts as a renewal). A spell ends at its last
  membership's last day; it is *decided* once today is past that day + grace, before that the
  member may still come back within grace.

The whole-club sequence (every running membership, no plan) is kept in
`analytics_membership_facts` (`facts`): `ensure_facts` recomputes the rows of the members that
triggers on `memberships` marked dirty since (all of them when the grace window changed), so
the reports scan stored rows instead of running both window passes on every call.

Day figures are aggregated per month in SQL (a +1 where intervals start covering a month and a
-1 where they stop); Python only adds up those few dozen monthly rows.
"""
from collections import defaultdict
from datetime import date, timedelta

from sqlalchemy import (
    and_,
    case,
    column,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.orm import Session

from app.analytics import stats
from app.analytics.common import (
    Scope,
    last_day,
    month_end,
    month_label,
    not_void,
    renewed,
    scope,
)
from app.analytics.models import FactBuild, FactDirty, MembershipFact
from app.analytics.schemas import (
    CohortReport,
    CohortRow,
    MonthlyReport,
    MonthRow,
    SurvivalMark,
    SurvivalReport,
    SurvivalRow,
)
from app.analytics.sql import LATER_ROWS, window
from app.core import sql
from app.memberships.models import Membership
from app.memberships.rules import add_months

M = Membership.__table__
F = MembershipFact.__table__
D = FactDirty.__table__
FACT_COLUMNS = ("member_id", "plan_id", "start_date", "last_day", "prev_end", "next_start",
                "first_start", "entry_plan", "new_spell", "cov_from", "spell_end")
MONTH_COLUMNS = ("before_month", "last_month", "spell_end_month", "start_month")
OUTCOME_COLUMNS = ("renewed", "grace_end")  # the renewal outcome (`common.renewed`)
FACTS_LOCK = 0x46414354 << 32  # "FACT": pg_advisory_xact_lock key space of facts rebuilds
SURVIVAL_MARKS = (30, 90, 180, 365, 730)


def memberships(s: Scope, *, since: date | None = None, until: date | None = None,
                members=None, name: str = "ms"):
    """Subquery: the club's memberships that ran (not void) with their last day. `since`: only
    those still running on or after that day; `until`: only those started by then; `members`:
    only those of the members this select returns."""
    m = M.alias("m")
    end = last_day(m)
    where = [m.c.club_id == s.club_id, not_void(m)]
    if since is not None:
        where += [m.c.end_date >= since, end >= since]
    if until is not None:
        where.append(m.c.start_date <= until)
    if members is not None:
        where.append(m.c.member_id.in_(members))
    return (select(m.c.id, m.c.member_id, m.c.plan_id, m.c.start_date, end.label("last_day"))
            .where(*where).subquery(name))


def first_memberships(session: Session, s: Scope, date_from: date, date_to: date, *,
                      name: str = "first"):
    """CTE: each member's first membership (earliest start, then lowest id; not void) when it
    started in [date_from, date_to] — the members who *joined* then (of the plan, if asked).
    From the stored facts: the first is the one without an earlier membership (`prev_end`
    null); a membership that started in the period and ran has its last day in it or later."""
    g = facts(session, s, name="g")
    where = [g.c.prev_end.is_(None), g.c.start_date >= date_from, g.c.start_date <= date_to,
             g.c.last_day >= date_from]
    if s.plan_id is not None:
        where.append(g.c.plan_id == s.plan_id)
    return select(g.c.id, g.c.member_id, g.c.plan_id, g.c.start_date).where(*where).cte(name)


def sequenced(s: Scope, ms, *, plan_id: int | None = None, spells: bool = True,
              firsts: bool = False, name: str = "seq"):
    """Subquery over `ms`: each membership with what its member's earlier and later ones say.

    Level 1 (one window, ordered by start): `prev_end` (latest last day before it), the next
    start (`spells`), the member's first start and entry plan (`firsts`). From these, without
    grouping:

    - `cov_from`: the first day it adds to the member's coverage (its start, or the day after
      the latest earlier last day); the segments [cov_from, last_day] with cov_from ≤ last_day
      are disjoint and their union is every day the member held a membership;
    - `new_spell`: 1 when it starts a tenure spell (no earlier one ended within grace).

    Level 2 (`spells`, same order): `spell_end`, the last day of its spell — the running
    maximum at the spell's last row, i.e. the smallest such value from this row on.
    `plan_id`: `cov_from` is computed among that plan's memberships only (`plan_cov_from`).
    """
    def prior(fn):
        return window(fn, partition_by=ms.c.member_id, order_by=(ms.c.start_date, ms.c.id))

    cols = [ms.c.id, ms.c.member_id, ms.c.plan_id, ms.c.start_date, ms.c.last_day,
            prior(func.max(ms.c.last_day)).label("prev_end")]
    if spells:
        cols.append(prior(func.lead(ms.c.start_date)).label("next_start"))
    if firsts:
        cols += [func.coalesce(prior(func.first_value(ms.c.start_date)),
                               ms.c.start_date).label("first_start"),
                 func.coalesce(prior(func.first_value(ms.c.plan_id)),
                               ms.c.plan_id).label("entry_plan")]
    if plan_id is not None:
        cols.append(prior(func.max(case((ms.c.plan_id == plan_id, ms.c.last_day))))
                    .label("plan_prev_end"))
    w1 = select(*cols).subquery(name + "1")
    cur_max = case((and_(w1.c.prev_end.is_not(None), w1.c.prev_end > w1.c.last_day),
                    w1.c.prev_end), else_=w1.c.last_day)
    new_spell = case((or_(w1.c.prev_end.is_(None),
                          w1.c.start_date > sql.add_days(w1.c.prev_end, s.grace)), 1), else_=0)
    cov_from = case((and_(w1.c.prev_end.is_not(None), w1.c.prev_end >= w1.c.start_date),
                     sql.add_days(w1.c.prev_end, 1)), else_=w1.c.start_date)
    cols = [w1, new_spell.label("new_spell"), cov_from.label("cov_from")]
    if plan_id is not None:
        cols.append(case((and_(w1.c.plan_prev_end.is_not(None),
                               w1.c.plan_prev_end >= w1.c.start_date),
                          sql.add_days(w1.c.plan_prev_end, 1)), else_=w1.c.start_date)
                    .label("plan_cov_from"))
    if spells:
        is_last = or_(w1.c.next_start.is_(None),
                      w1.c.next_start > sql.add_days(cur_max, s.grace))
        cols.append(window(func.min(case((is_last, cur_max))), partition_by=w1.c.member_id,
                               order_by=(w1.c.start_date, w1.c.id), frame=LATER_ROWS)
                    .label("spell_end"))
    return select(*cols).subquery(name)


# --- stored facts: the whole-club sequence, kept exact by trigger-marked members --------------

TODO = table("analytics_fact_todo", column("member_id"), column("seq"))
"""Per rebuild, the dirty marks it read (a temporary table of the transaction)."""


def _grace_built(session: Session, club_id: int) -> int | None:
    return session.execute(select(FactBuild.grace).where(FactBuild.club_id == club_id)).scalar()


def _dirty(session: Session, club_id: int) -> bool:
    return session.execute(select(D.c.member_id).where(D.c.club_id == club_id).limit(1)).first() \
        is not None


def _take_marks(session: Session, club_id: int) -> None:
    """Copy the club's dirty marks, as committed now, into the transaction's `TODO`."""
    if sql.is_postgres(session):
        session.execute(text("CREATE TEMP TABLE IF NOT EXISTS analytics_fact_todo "
                             "(member_id bigint, seq bigint) ON COMMIT DELETE ROWS"))
    else:
        session.execute(text("CREATE TEMP TABLE IF NOT EXISTS analytics_fact_todo "
                             "(member_id INTEGER, seq INTEGER)"))
    session.execute(text("DELETE FROM analytics_fact_todo"))
    session.execute(insert(TODO).from_select(["member_id", "seq"],
                                             select(D.c.member_id, D.c.seq)
                                             .where(D.c.club_id == club_id)))


def ensure_facts(session: Session, s: Scope) -> None:
    """Bring the club's `analytics_membership_facts` up to date: all of them when there are
    none yet or they were built under another grace window, else those of the members that
    triggers marked dirty (`analytics_fact_dirty`) since — a member's facts depend only on
    the member's own memberships in the club, and on grace.

    Exact: every change to a membership the sequence reads marks its member (old and new) in
    the same transaction (triggers, migration 0013_analytics_facts), bumping the mark's `seq`
    when it is already there. The marks are read (into `TODO`) before the statement that
    recomputes, so that statement sees at least those changes; afterwards only marks still at
    the `seq` read are removed — a change committed meanwhile leaves its mark for the next
    report. PostgreSQL: an advisory lock per club keeps two rebuilds apart (SQLite writes one
    transaction at a time anyway).
    """
    grace = _grace_built(session, s.club_id)
    if grace == s.grace and not _dirty(session, s.club_id):
        return
    if sql.is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                        {"key": FACTS_LOCK + s.club_id})
        grace = _grace_built(session, s.club_id)
        if grace == s.grace and not _dirty(session, s.club_id):
            return
    _take_marks(session, s.club_id)
    full = grace != s.grace
    stale = [F.c.club_id == s.club_id]
    if not full:
        stale.append(F.c.member_id.in_(select(TODO.c.member_id)))
    session.execute(delete(F).where(*stale))
    g = sequenced(s, memberships(s, members=None if full else select(TODO.c.member_id)),
                  firsts=True)
    months = _month_columns(g, g.c.cov_from)
    session.execute(insert(F).from_select(
        ["club_id", "membership_id", *FACT_COLUMNS, *MONTH_COLUMNS, *OUTCOME_COLUMNS],
        select(literal(s.club_id), g.c.id, *(g.c[c] for c in FACT_COLUMNS),
               *(months[c] for c in MONTH_COLUMNS), renewed(s, g),
               sql.add_days(g.c.last_day, s.grace))))
    session.execute(delete(D).where(D.c.club_id == s.club_id, select(TODO.c.member_id).where(
        TODO.c.member_id == D.c.member_id, TODO.c.seq == D.c.seq).exists()))
    if full:
        session.execute(delete(FactBuild.__table__).where(FactBuild.club_id == s.club_id))
        session.execute(insert(FactBuild.__table__).values(club_id=s.club_id, grace=s.grace))
        if sql.is_postgres(session):  # statistics now, not at autovacuum's next round
            session.execute(text("ANALYZE analytics_membership_facts"))


def facts(session: Session, s: Scope, *, name: str = "seq"):
    """Subquery: the club's stored sequence (`sequenced(s, memberships(s), firsts=True)`'s
    columns) and renewal outcomes, brought up to date first."""
    ensure_facts(session, s)
    return (select(F.c.membership_id.label("id"),
                   *(F.c[c] for c in (*FACT_COLUMNS, *MONTH_COLUMNS, *OUTCOME_COLUMNS)))
            .where(F.c.club_id == s.club_id).subquery(name))


def _period(s: Scope) -> dict:
    return {"as_of": s.as_of, "date_from": s.date_from, "date_to": s.date_to,
            "grace_days": s.grace, "plan_id": s.plan_id}


def _cumulate(deltas: dict[int, int], upto: int) -> dict[int, int]:
    """Running totals of {month: delta} for every month from the first delta to `upto`."""
    if not deltas:
        return {}
    total, out = 0, {}
    for month in range(min(deltas), upto + 1):
        total += deltas.get(month, 0)
        out[month] = total
    return out


# --- member base, monthly retention and churn ----------------------------------------------------

def _month_columns(g, start) -> dict:
    """The months `monthly_figures` groups by: the month holding the day before a coverage
    segment's `start`, its last day's, its spell end's and the membership's start's."""
    return {"before_month": sql.month_start(sql.add_days(start, -1)),
            "last_month": sql.month_start(g.c.last_day),
            "spell_end_month": sql.month_start(g.c.spell_end),
            "start_month": sql.month_start(g.c.start_date)}


def monthly_figures(session: Session, s: Scope) -> list[MonthRow]:
    if s.plan_id is None:
        g = facts(session, s)
        months = {name: g.c[name] for name in MONTH_COLUMNS}
        segment_rows, joiner = [g.c.cov_from <= g.c.last_day], [g.c.prev_end.is_(None)]
    else:  # coverage among the plan's memberships only: not in the stored sequence
        g = sequenced(s, memberships(s), plan_id=s.plan_id)
        months = _month_columns(g, g.c.plan_cov_from)
        segment_rows = [g.c.plan_cov_from <= g.c.last_day, g.c.plan_id == s.plan_id]
        joiner = [g.c.prev_end.is_(None), g.c.plan_id == s.plan_id]
    # a segment [start, last_day] covers the first days of months a … b, where a is the month
    # after the one holding the day before `start`, and b the month of last_day
    before, b = months["before_month"], months["last_month"]
    h = (select(before.label("before"), b.label("b"),
                case((months["spell_end_month"] == b, 1), else_=0).label("ends"),
                case((g.c.spell_end < s.as_of - timedelta(days=s.grace), 1), else_=0)
                .label("decided"),
                case((and_(*joiner), months["start_month"])).label("joined"))
         .where(*segment_rows).subquery("h"))
    # one pass: rows grouped by their (few hundred) combinations; Python adds them up by month
    deltas: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for before_, b_, ends, decided, joined, n in session.execute(
            select(h.c.before, h.c.b, h.c.ends, h.c.decided, h.c.joined, func.count())
            .where(or_(h.c.before < h.c.b, h.c.joined.is_not(None)))
            .group_by(h.c.before, h.c.b, h.c.ends, h.c.decided, h.c.joined)):
        n = int(n)
        if joined is not None:
            deltas["joined"][sql.index_of(joined)] += n
        a_, b_ = sql.index_of(before_) + 1, sql.index_of(b_)
        if a_ <= b_:
            deltas["in"][a_] += n
            deltas["out"][b_ + 1] += n
            if ends:
                deltas["churned" if decided else "undecided"][b_] += n

    first_month = sql.index_of(s.date_from)
    last_month = sql.index_of(s.date_to)
    delta = defaultdict(int)
    for month, n in deltas["in"].items():
        delta[month] += n
    for month, n in deltas["out"].items():
        delta[month] -= n
    base = _cumulate(delta, sql.index_of(s.as_of) + 1)
    rows = []
    for month in range(first_month, last_month + 1):
        at_start = base.get(month, 0)
        complete = sql.month_of(month + 1) <= s.as_of
        at_end = base.get(month + 1, 0) if complete else None
        churned = deltas["churned"].get(month, 0)
        undecided = deltas["undecided"].get(month, 0)
        retained = at_start - churned - undecided
        decided = retained + churned
        rows.append(MonthRow(
            month=month_label(month), first_day=sql.month_of(month),
            members_at_start=at_start, members_at_end=at_end,
            growth=None if at_end is None else at_end - at_start,
            growth_pct=(round(100 * (at_end - at_start) / at_start, 2)
                        if at_end is not None and at_start else None),
            joined=deltas["joined"].get(month, 0),
            retained=retained if complete else None, churned=churned if complete else None,
            undecided=undecided if complete else None,
            retention_rate=stats.rate(retained, decided) if complete else None,
            churn_rate=stats.rate(churned, decided) if complete else None))
    return rows


def monthly(session: Session, *, club_id: int, as_of: date | None = None,
            date_from: date | None = None, date_to: date | None = None,
            plan_id: int | None = None) -> MonthlyReport:
    """Per calendar month: member base at its start and the next month's start, growth, joiners,
    and retention / churn of the members at its start (tenure spells, grace bridged)."""
    s = scope(session, club_id=club_id, as_of=as_of, date_from=date_from, date_to=date_to,
              plan_id=plan_id)
    return MonthlyReport(**_period(s), items=monthly_figures(session, s))


# --- cohorts -------------------------------------------------------------------------------------

def cohorts(session: Session, *, club_id: int, as_of: date | None = None,
            date_from: date | None = None, date_to: date | None = None,
            plan_id: int | None = None) -> CohortReport:
    """Join month × months since joining: the share of the cohort in a tenure spell on the last
    day of each month (k = 0 is the join month itself). Cells whose month has not ended yet are
    left out. `plan_id`: members whose first membership was of that plan."""
    s = scope(session, club_id=club_id, as_of=as_of, date_from=date_from, date_to=date_to,
              plan_id=plan_id)
    g = facts(session, s)
    # a spell [start, spell_end] is in on the last days of months a … b: a is its first month,
    # b the month before the one holding the day after spell_end
    c = sql.month_start(g.c.first_start)
    a = sql.month_start(g.c.start_date)
    after = sql.month_start(sql.add_days(g.c.spell_end, 1))
    cohort_filter = [g.c.first_start >= s.date_from.replace(day=1),
                     g.c.first_start < add_months(s.date_to.replace(day=1), 1),
                     or_(g.c.new_spell == 1, g.c.prev_end.is_(None))]
    if s.plan_id is not None:
        cohort_filter.append(g.c.entry_plan == s.plan_id)
    h = (select(c.label("c"), a.label("a"), after.label("after"), g.c.new_spell,
                case((g.c.prev_end.is_(None), 1), else_=0).label("first"))
         .where(*cohort_filter).subquery("h"))
    size: dict[int, int] = defaultdict(int)
    delta: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for cohort, a_, after_, new_spell, first, n in session.execute(
            select(h.c.c, h.c.a, h.c.after, h.c.new_spell, h.c.first, func.count())
            .group_by(h.c.c, h.c.a, h.c.after, h.c.new_spell, h.c.first)):
        cohort, n = sql.index_of(cohort), int(n)
        a_, b_ = sql.index_of(a_), sql.index_of(after_) - 1
        if first:
            size[cohort] += n
        if new_spell and a_ <= b_:
            delta[cohort][a_] += n
            delta[cohort][b_ + 1] -= n
    items = []
    width = 0
    for cohort in sorted(size):
        still, shares, total = [], [], 0
        k = 0
        while month_end(cohort + k) <= s.as_of:
            total += delta[cohort].get(cohort + k, 0)
            still.append(total)
            shares.append(stats.rate(total, size[cohort]))
            k += 1
        width = max(width, k)
        items.append(CohortRow(cohort=month_label(cohort), members=size[cohort], still=still,
                               share=shares))
    return CohortReport(**_period(s), months=width, items=items)


# --- survival ------------------------------------------------------------------------------------

def survival(session: Session, *, club_id: int, as_of: date | None = None,
             date_from: date | None = None, date_to: date | None = None,
             plan_id: int | None = None) -> SurvivalReport:
    """Kaplan-Meier curve of tenure (days from a spell's first day to its last day).

    A spell is an event once decided (today past its last day + grace); otherwise it is censored
    at today (still running) or at its last day (ended, grace still open). `from` / `to` pick
    spells by their first day (default: every spell that has started); `plan_id`: spells whose
    first membership was of that plan.
    """
    s = scope(session, club_id=club_id, as_of=as_of, date_from=date_from, date_to=date_to,
              plan_id=plan_id, default_start=lambda _to: date(1900, 1, 1), max_days=None)
    g = facts(session, s)
    event = g.c.spell_end < s.as_of - timedelta(days=s.grace)  # decided: grace has passed
    days = case((event, sql.days_between(g.c.spell_end, g.c.start_date) + 1),
                else_=sql.days_between(sql.least(g.c.spell_end, s.as_of), g.c.start_date) + 1)
    where = [g.c.new_spell == 1, g.c.start_date <= s.as_of]
    if date_from is not None:
        where.append(g.c.start_date >= s.date_from)
    if date_to is not None:
        where.append(g.c.start_date <= s.date_to)
    if s.plan_id is not None:
        where.append(g.c.plan_id == s.plan_id)
    h = select(days.label("days"), case((event, 1), else_=0).label("event")).where(
        *where).subquery()
    groups: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for days_, is_event, n in session.execute(
            select(h.c.days, h.c.event, func.count()).group_by(h.c.days, h.c.event)):
        groups[int(days_)][0 if is_event else 1] += int(n)
    points = stats.kaplan_meier({d: (e, c) for d, (e, c) in groups.items()})
    longest = max(groups) if groups else None
    events = sum(e for e, _ in groups.values())
    censored = sum(c for _, c in groups.values())
    marks = [SurvivalMark(day=d, survival=stats.survival_at(points, d, longest or 0)
                          if longest else None) for d in SURVIVAL_MARKS]
    return SurvivalReport(
        as_of=s.as_of, date_from=date_from and s.date_from, date_to=date_to and s.date_to,
        grace_days=s.grace, plan_id=s.plan_id, spells=events + censored, events=events,
        censored=censored, longest_days=longest, median_days=stats.median_survival(points),
        marks=marks, items=[SurvivalRow(day=p.day, at_risk=p.at_risk, events=p.events,
                                        censored=p.censored, survival=p.survival)
                            for p in points])
