"""Process measures: is the club doing what keeps members (RETENTION.md, "Process as well as
outcome")?

- **Joiners** of the period: members whose first membership (not void) started in it; with
  `plan_id`, those whose first membership was of that plan.
- **First visit within 14 days**: a visit on the join day or the 13 days after (club-local
  days). Counted for joiners whose 14 days are over (join day + 13 < today).
- **A month without visits in the first three**: months are counted from the join day
  (join day … one calendar month later − 1 day, and the two after); a joiner counts when any of
  the three has no visit. Counted for joiners whose three months are over.
- **Staff interactions in the first 30 days**: interactions with a member of staff
  (`staff_id` set; the engine's own entries have none) on the join day or the 29 days after, per
  joiner whose 30 days are over; and the share with four or more.
- **Touchpoints**: those whose trigger day falls in the period, by status; delivery rate =
  sent / (sent + skipped + failed) — held-out ones are the control group, cancelled ones were
  stopped on purpose (renewed, visited, stage left), pending ones are not due yet.
- **Tasks done on time**: tasks due in the period, done with `completed_at` before the end of
  the due day (club time); rate = on time / (due − cancelled). Call tasks are kinds `call` and
  `renewal_offer` (the engine's call plays; staff may create calls too).
- **Cancellations**: memberships whose `cancelled_on` falls in the period (with `plan_id`: of
  that plan), by reason; the share with a reason recorded.
"""
from collections import defaultdict
from datetime import date

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from app.access.models import Visit
from app.analytics import stats
from app.analytics.common import Scope, scope
from app.analytics.retention import first_memberships
from app.analytics.schemas import (
    Cancellations,
    InteractionsFirst30,
    ProcessReport,
    ReasonRow,
    Share,
    TaskRow,
    TouchpointStatusRow,
)
from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core import sql
from app.crm.models import Interaction, Task
from app.memberships.models import Membership
from app.retention.models import ScheduledTouchpoint

CALL_KINDS = ("call", "renewal_offer")
STATUSES = ("sent", "held_out", "skipped", "cancelled", "failed")
NO_REASON = "not_recorded"


def share(count: int, of: int) -> Share:
    return Share(count=count, of=of, share=stats.rate(count, of))


def _sum(condition, value=1):
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)


def joiner_measures(session: Session, s: Scope) -> dict[str, int]:
    f = first_memberships(session, s, s.date_from, s.date_to)
    v, i = Visit.__table__, Interaction.__table__
    join = f.c.start_date

    def visited(lo, hi):
        return exists().where(v.c.member_id == f.c.member_id,
                              v.c.occurred_at >= sql.day_start(lo, s.tz),
                              v.c.occurred_at < sql.day_start(hi, s.tz))

    m1, m2, m3 = (sql.add_months(join, k) for k in (1, 2, 3))
    staff = (select(func.count())
             .where(i.c.member_id == f.c.member_id, i.c.staff_id.is_not(None),
                    i.c.occurred_at >= sql.day_start(join, s.tz),
                    i.c.occurred_at < sql.day_start(sql.add_days(join, 30), s.tz))
             .scalar_subquery())
    # a probe runs only for the joiners whose window is over (the only ones it is summed for)
    obs14, obs3 = sql.add_days(join, 13) < s.as_of, m3 <= s.as_of
    obs30 = sql.add_days(join, 29) < s.as_of
    per = select(
        case((obs14, 1), else_=0).label("obs14"),
        case((and_(obs14, visited(join, sql.add_days(join, 14))), 1), else_=0).label("first14"),
        case((obs3, 1), else_=0).label("obs3"),
        case((and_(obs3, or_(~visited(join, m1), ~visited(m1, m2), ~visited(m2, m3))), 1),
             else_=0).label("gap"),
        case((obs30, 1), else_=0).label("obs30"),
        case((obs30, staff), else_=0).label("staff")
    ).cte("per").prefix_with("MATERIALIZED", dialect="postgresql")
    # materialised: each probe runs once per joiner though `staff` is summed twice
    r = session.execute(select(
        func.count().label("joiners"),
        _sum(per.c.obs14 == 1).label("obs14"),
        _sum(and_(per.c.obs14 == 1, per.c.first14 == 1)).label("first14"),
        _sum(per.c.obs3 == 1).label("obs3"),
        _sum(and_(per.c.obs3 == 1, per.c.gap == 1)).label("gap"),
        _sum(per.c.obs30 == 1).label("obs30"),
        _sum(per.c.obs30 == 1, per.c.staff).label("staff"),
        _sum(and_(per.c.obs30 == 1, per.c.staff >= 4)).label("staff4"))).one()
    return {k: int(v) for k, v in r._mapping.items()}


def touchpoint_statuses(session: Session, s: Scope) -> list[TouchpointStatusRow]:
    t = ScheduledTouchpoint.__table__
    found: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for channel, status, n in session.execute(
            select(t.c.channel, t.c.status, func.count())
            .where(t.c.club_id == s.club_id, t.c.trigger_on >= s.date_from,
                   t.c.trigger_on <= s.date_to)
            .group_by(t.c.channel, t.c.status)):
        found[channel][status] += int(n)
    rows = [_status_row(channel, found[channel]) for channel in sorted(found)]
    total: dict[str, int] = defaultdict(int)
    for counts in found.values():
        for status, n in counts.items():
            total[status] += n
    return [_status_row("all", total), *rows]


def _status_row(channel: str, counts: dict[str, int]) -> TouchpointStatusRow:
    values = {k: counts.get(k, 0) for k in STATUSES}
    planned = sum(counts.values())
    pending = planned - sum(values.values())  # pending and sending
    attempted = values["sent"] + values["skipped"] + values["failed"]
    return TouchpointStatusRow(channel=channel, planned=planned, pending=pending, **values,
                               delivery_rate=stats.rate(values["sent"], attempted))


def task_rows(session: Session, s: Scope) -> tuple[TaskRow, list[TaskRow]]:
    k = Task.__table__
    on_time = and_(k.c.status == "done", k.c.completed_at.is_not(None),
                   k.c.completed_at < sql.day_start(sql.add_days(k.c.due_date, 1), s.tz))
    rows = session.execute(
        select(k.c.kind, func.count().label("due"), _sum(k.c.status == "done").label("done"),
               _sum(on_time).label("on_time"), _sum(k.c.status == "cancelled").label("cancelled"),
               _sum(k.c.status == "open").label("open"))
        .where(k.c.club_id == s.club_id, k.c.due_date >= s.date_from,
               k.c.due_date <= s.date_to)
        .group_by(k.c.kind).order_by(k.c.kind)).all()
    by_kind = [_task_row(r.kind, int(r.due), int(r.done), int(r.on_time), int(r.cancelled),
                         int(r.open)) for r in rows]
    calls = [r for r in by_kind if r.kind in CALL_KINDS]
    call_row = _task_row("calls", *(sum(getattr(r, f) for r in calls)
                                    for f in ("due", "done", "done_on_time", "cancelled",
                                              "open")))
    return call_row, by_kind


def _task_row(kind: str, due: int, done: int, on_time: int, cancelled: int, open_: int) -> TaskRow:
    return TaskRow(kind=kind, due=due, done=done, done_on_time=on_time, cancelled=cancelled,
                   open=open_, on_time_rate=stats.rate(on_time, due - cancelled))


def cancellations(session: Session, s: Scope) -> Cancellations:
    m = Membership.__table__
    where = [m.c.club_id == s.club_id, m.c.cancelled_on >= s.date_from,
             m.c.cancelled_on <= s.date_to]
    if s.plan_id is not None:
        where.append(m.c.plan_id == s.plan_id)
    found: dict[str, int] = defaultdict(int)
    for reason, n in session.execute(select(m.c.cancel_reason, func.count()).where(*where)
                                     .group_by(m.c.cancel_reason)):
        key = reason.strip() if reason and reason.strip() else NO_REASON
        found[key] += int(n)
    labels = clubs_service.club_settings(session.get(Club, s.club_id)).cancellation_reasons
    total = sum(found.values())
    recorded = total - found.get(NO_REASON, 0)
    rows = [ReasonRow(reason=k, label="not recorded" if k == NO_REASON else labels.get(k, k),
                      count=n, share=stats.rate(n, total))
            for k, n in sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))]
    return Cancellations(total=total, with_reason=share(recorded, total), by_reason=rows)


def process_report(session: Session, *, club_id: int, as_of: date | None = None,
                   date_from: date | None = None, date_to: date | None = None,
                   plan_id: int | None = None) -> ProcessReport:
    """The process measures of the period (see the module docstring for each definition)."""
    s = scope(session, club_id=club_id, as_of=as_of, date_from=date_from, date_to=date_to,
              plan_id=plan_id)
    j = joiner_measures(session, s)
    statuses = touchpoint_statuses(session, s)
    calls, by_kind = task_rows(session, s)
    return ProcessReport(
        as_of=s.as_of, date_from=s.date_from, date_to=s.date_to, grace_days=s.grace,
        plan_id=s.plan_id, joiners=j["joiners"],
        first_visit_14d=share(j["first14"], j["obs14"]),
        month_without_visits=share(j["gap"], j["obs3"]),
        staff_interactions_30d=InteractionsFirst30(
            members=j["obs30"], interactions=j["staff"],
            per_member=stats.rate(j["staff"], j["obs30"], 2),
            four_or_more=share(j["staff4"], j["obs30"])),
        touchpoints=statuses[0], touchpoints_by_channel=statuses[1:],
        call_tasks=calls, tasks_by_kind=by_kind, cancellations=cancellations(session, s))
