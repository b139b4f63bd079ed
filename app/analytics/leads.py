"""Lead KPIs: how fast new leads are contacted, and how many of them buy.

The leads counted are those **created** in the period (club days). For each:

- **first contact**: the earliest of (a) its first move out of `new` to an open stage or to won
  (a move straight to lost is not a contact), and (b) the first call, email or SMS logged by
  staff for the person at or after the lead's creation (engine messages do not count);
- **hours to first contact**: first contact − creation, in hours; `median` and `p90` are
  linear-interpolation percentiles (PostgreSQL's `percentile_cont`) over the contacted leads;
- **won**: the lead is won (a membership was sold to the person) — whenever that happened;
  `conversion_rate` = won / created, overall and per source;
- **lost by reason**: leads created in the period that are lost now, per `lost_reason`.

Counts are grouped in SQL; only the contacted leads' durations come back, for the percentiles.
"""
from datetime import date, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import case, func, select, union_all
from sqlalchemy.orm import Session

from app.analytics import common
from app.analytics.stats import rate
from app.core import sql
from app.crm.leads import CONTACT_KINDS
from app.crm.models import Interaction, Lead, LeadStageChange


class ContactTime(BaseModel):
    contacted: int = Field(description="leads with a first contact")
    median_hours: float | None
    p90_hours: float | None


class SourceRow(BaseModel):
    source: str
    created: int
    won: int
    conversion_rate: float | None


class LostRow(BaseModel):
    reason: str
    lost: int


class LeadReport(BaseModel):
    date_from: date
    date_to: date
    created: int
    contacted: int
    won: int
    lost: int
    open: int = Field(description="neither won nor lost yet")
    conversion_rate: float | None = Field(description="won / created")
    first_contact: ContactTime
    by_source: list[SourceRow]
    lost_by_reason: list[LostRow]


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks (like percentile_cont)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _first_contacts(club_id: int, start, end):
    """(lead_id, first_contact) of the leads created in [start, end)."""
    created = (Lead.club_id == club_id, Lead.created_at >= start, Lead.created_at < end)
    moves = (select(LeadStageChange.lead_id.label("lead_id"), LeadStageChange.at.label("at"))
             .join(Lead, Lead.id == LeadStageChange.lead_id)
             .where(*created, LeadStageChange.from_stage == "new",
                    LeadStageChange.to_stage != "lost"))
    logged = (select(Lead.id, Interaction.occurred_at)
              .join(Interaction, Interaction.member_id == Lead.member_id)
              .where(*created, Interaction.club_id == club_id,
                     Interaction.kind.in_(CONTACT_KINDS), Interaction.staff_id.is_not(None),
                     Interaction.occurred_at >= Lead.created_at))
    both = union_all(moves, logged).subquery("contacts")
    return (select(both.c.lead_id, func.min(both.c.at).label("first_contact"))
            .group_by(both.c.lead_id).subquery("first"))


def lead_report(session: Session, *, club_id: int, date_from: date | None = None,
                date_to: date | None = None) -> LeadReport:
    scope = common.scope(session, club_id=club_id, date_from=date_from, date_to=date_to)
    start = sql.local_day_start(scope.zone, scope.date_from)
    end = sql.local_day_start(scope.zone, scope.date_to + timedelta(days=1))
    first = _first_contacts(club_id, start, end)
    base = (Lead.club_id == club_id, Lead.created_at >= start, Lead.created_at < end)
    won = func.sum(case((Lead.stage == "won", 1), else_=0))
    by_source = session.execute(
        select(Lead.source, func.count(), won, func.sum(case((Lead.stage == "lost", 1), else_=0)),
               func.count(first.c.first_contact))
        .outerjoin(first, first.c.lead_id == Lead.id).where(*base)
        .group_by(Lead.source).order_by(Lead.source)).all()
    lost = session.execute(
        select(Lead.lost_reason, func.count()).where(*base, Lead.stage == "lost")
        .group_by(Lead.lost_reason).order_by(func.count().desc(), Lead.lost_reason)).all()
    durations = session.execute(
        select(Lead.created_at, first.c.first_contact)
        .join(first, first.c.lead_id == Lead.id).where(*base)).all()
    hours = [(contact - created).total_seconds() / 3600 for created, contact in durations]
    created_n = sum(r[1] for r in by_source)
    won_n = sum(int(r[2] or 0) for r in by_source)
    lost_n = sum(int(r[3] or 0) for r in by_source)

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return LeadReport(
        date_from=scope.date_from, date_to=scope.date_to, created=created_n,
        contacted=len(hours), won=won_n, lost=lost_n, open=created_n - won_n - lost_n,
        conversion_rate=rate(won_n, created_n),
        first_contact=ContactTime(contacted=len(hours), median_hours=rounded(
            percentile(hours, 0.5)), p90_hours=rounded(percentile(hours, 0.9))),
        by_source=[SourceRow(source=s, created=n, won=int(w or 0),
                             conversion_rate=rate(int(w or 0), n)) for s, n, w, _, _ in by_source],
        lost_by_reason=[LostRow(reason=r or "unknown", lost=n) for r, n in lost])
