"""The owner's numbers: leads to sales, average check, member-base growth, visit frequency.

- **Leads to sales per 100 leads**: leads are the people first recorded (`members.created_at`,
  club-local day) in the period — prospects and walk-ins alike, until the CRM keeps a lead
  pipeline of its own. A lead *converted* when a membership (not void) was sold to them
  (`memberships.created_at`) within 30 × 24 hours of being recorded. A lead not converted whose
  30 days are not over by the end of today is *open* and left out: per 100 = 100 × converted /
  (leads − open).
- **Average check**: the average `total` of the receipts (sales) made in the period, before
  refunds, to the cent (half up). By kind: a receipt whose lines are all of one kind
  (membership, pt_package, product, …) counts for that kind; one with several kinds is `mixed`.
- **Member base**: members with a membership valid on the first day of each month, and the
  growth to the next month's first day (see `/retention/monthly`).
- **Visit frequency**: for each member with a membership valid on at least one day of the
  period, visits in the period × 7 / the days of the period they held a valid membership (frozen
  days included), in half-open bands 0 (no visit), (0, 1), [1, 2), … [4, 5), 5+.
"""
from collections import defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.orm import Session

from app.access.models import Visit
from app.analytics import stats
from app.analytics.common import Scope, not_void, scope
from app.analytics.retention import facts, monthly_figures
from app.analytics.schemas import (
    BaseMonth,
    CheckRow,
    FrequencyBin,
    KpiReport,
    Leads,
    VisitFrequency,
)
from app.analytics.sql import not_indexed
from app.billing.models import Sale, SaleLine
from app.core import sql
from app.members.models import Member
from app.memberships.models import Membership

CONVERSION_SECONDS = 30 * 24 * 3600
FREQUENCY_BANDS = ("0", "0-1", "1-2", "2-3", "3-4", "4-5", "5+")
CENT = Decimal("0.01")


def _bounds(s: Scope) -> tuple:
    return (sql.local_day_start(s.zone, s.date_from),
            sql.local_day_start(s.zone, s.date_to + timedelta(days=1)))


def leads(session: Session, s: Scope) -> Leads:
    mem, n = Member.__table__, Membership.__table__.alias("n")
    lo, hi = _bounds(s)
    deadline = sql.add_seconds(mem.c.created_at, CONVERSION_SECONDS)
    converted = exists().where(n.c.member_id == mem.c.id, not_indexed(n.c.club_id) == s.club_id,
                               not_void(n), n.c.created_at <= deadline)
    end_of_today = sql.local_day_start(s.zone, s.as_of + timedelta(days=1))
    r = session.execute(
        select(func.count().label("leads"),
               func.coalesce(func.sum(case((converted, 1), else_=0)), 0).label("converted"),
               # the deadline first: the EXISTS runs again only for the last 30 days' leads
               func.coalesce(func.sum(case((and_(deadline > end_of_today, ~converted), 1),
                                           else_=0)), 0).label("open"))
        .where(mem.c.club_id == s.club_id, mem.c.created_at >= lo, mem.c.created_at < hi)).one()
    total, won, open_ = int(r.leads), int(r.converted), int(r.open)
    decided = total - open_
    return Leads(leads=total, converted=won, open=open_,
                 per_100=round(100 * won / decided, 2) if decided else None)


def _average(total_cents: int, count: int) -> Decimal | None:
    if not count:
        return None
    return (Decimal(total_cents) / 100 / count).quantize(CENT, rounding=ROUND_HALF_UP)


def _check(kind: str, count: int, total_cents: int) -> CheckRow:
    return CheckRow(kind=kind, sales=count, total=(Decimal(total_cents) / 100).quantize(CENT),
                    average=_average(total_cents, count))


def average_check(session: Session, s: Scope) -> tuple[CheckRow, list[CheckRow]]:
    sale, line = Sale.__table__, SaleLine.__table__
    lo, hi = _bounds(s)
    first, last = func.min(line.c.kind), func.max(line.c.kind)  # one kind iff they agree
    per_sale = (select(sale.c.id, sql.cents(sale.c.total).label("cents"),
                       case((first.is_(None), "none"), (first == last, first),
                            else_="mixed").label("kind"))
                .outerjoin(line, line.c.sale_id == sale.c.id)
                .where(sale.c.club_id == s.club_id, sale.c.created_at >= lo,
                       sale.c.created_at < hi)
                .group_by(sale.c.id).subquery())  # the total: one per sale (its key)
    rows = session.execute(select(per_sale.c.kind, func.count(), func.sum(per_sale.c.cents))
                           .group_by(per_sale.c.kind).order_by(per_sale.c.kind)).all()
    by_kind = [_check(kind, int(count), int(cents or 0)) for kind, count, cents in rows]
    overall = _check("all", sum(int(c) for _, c, _ in rows),
                     sum(int(t or 0) for _, _, t in rows))
    return overall, by_kind


def visit_frequency(session: Session, s: Scope) -> VisitFrequency:
    v = Visit.__table__
    lo, hi = _bounds(s)
    # the stored coverage segments: disjoint, their union every day a member held a membership,
    # so the days held in the period are the segments' overlaps with it, summed
    g = facts(session, s)
    clipped = sql.days_between(sql.least(g.c.last_day, s.date_to),
                               sql.greatest(g.c.cov_from, s.date_from)) + 1
    held = (select(g.c.member_id, func.sum(clipped).label("days"))
            .where(g.c.cov_from <= g.c.last_day, g.c.cov_from <= s.date_to,
                   g.c.last_day >= s.date_from)
            .group_by(g.c.member_id).subquery())
    came = (select(v.c.member_id, func.count().label("n"))
            .where(v.c.club_id == s.club_id, v.c.occurred_at >= lo, v.c.occurred_at < hi)
            .group_by(v.c.member_id).subquery())
    visits = func.coalesce(came.c.n, 0)
    per7, days = visits * 7, held.c.days
    band = case((visits == 0, "0"), (per7 < days, "0-1"), (per7 < 2 * days, "1-2"),
                (per7 < 3 * days, "2-3"), (per7 < 4 * days, "3-4"), (per7 < 5 * days, "4-5"),
                else_="5+")
    per_member = (select(band.label("band"), visits.label("visits"), days.label("days"))
                  .select_from(held.outerjoin(came, came.c.member_id == held.c.member_id))
                  .subquery())
    found = defaultdict(lambda: (0, 0, 0))
    for band_, members, visits_, days_ in session.execute(
            select(per_member.c.band, func.count(), func.sum(per_member.c.visits),
                   func.sum(per_member.c.days)).group_by(per_member.c.band)):
        found[band_] = (int(members), int(visits_ or 0), int(days_ or 0))
    members = sum(m for m, _, _ in found.values())
    return VisitFrequency(
        members=members, visits=sum(x for _, x, _ in found.values()),
        member_days=sum(d for _, _, d in found.values()),
        bins=[FrequencyBin(band=b, members=found[b][0], share=stats.rate(found[b][0], members))
              for b in FREQUENCY_BANDS])


def kpi_report(session: Session, *, club_id: int, as_of: date | None = None,
               date_from: date | None = None, date_to: date | None = None) -> KpiReport:
    """Leads to sales, average check, member base by month and visit frequency for a period."""
    s = scope(session, club_id=club_id, as_of=as_of, date_from=date_from, date_to=date_to)
    overall, by_kind = average_check(session, s)
    months = monthly_figures(session, s)
    return KpiReport(
        as_of=s.as_of, date_from=s.date_from, date_to=s.date_to, grace_days=s.grace,
        plan_id=None, leads=leads(session, s), average_check=overall,
        average_check_by_kind=by_kind,
        member_base=[BaseMonth(month=m.month, members_at_start=m.members_at_start,
                               growth_pct=m.growth_pct) for m in months],
        visit_frequency=visit_frequency(session, s))
