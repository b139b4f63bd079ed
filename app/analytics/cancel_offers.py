"""Cancel offers: did the member stay? Contacted against held out, per `contract_cancelled` play.

The renewal report (`/touchpoints`) counts memberships that *ended*; a cancellation that is
withdrawn never ends, so it would drop out of that report exactly when the offer worked. Here the
unit is the cancelled contract's membership (the membership the play was planned for) and the
outcome is whether the member stayed — defined once, in `stayed_outcome` and docs/retention.md.
"""
from datetime import date

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from app.analytics import stats, verdicts
from app.analytics.common import scope
from app.analytics.schemas import CancelOfferReport, CancelOfferRow
from app.core import sql
from app.dues.models import Contract
from app.memberships.models import Membership
from app.retention.models import ScheduledTouchpoint, TouchpointDefinition
from app.retention.playbook import Trigger

STAY_DAYS = 30
STAYED, LEFT, UNDECIDED = "stayed", "left", "undecided"


def stayed_outcome(as_of: date):
    """The outcome of a cancelled contract `ct` (SQL, for `Contract.__table__`):

    - stayed: the cancellation was withdrawn (`ends_on` is NULL again: the contract runs on), or
      the member has another membership starting after the cancelled one's start and at the
      latest STAY_DAYS days after the contract's last day (not cancelled before it started);
    - left: neither, and more than STAY_DAYS days have passed since the last day;
    - undecided: neither yet, and the window is still open.
    """
    ct = Contract.__table__
    m1, m2 = Membership.__table__.alias("m1"), Membership.__table__.alias("m2")
    came_back = exists(select(m2.c.id).select_from(m1.join(m2, m2.c.member_id == m1.c.member_id))
                       .where(m1.c.id == ct.c.membership_id, m2.c.id != m1.c.id,
                              m2.c.start_date > m1.c.start_date,
                              m2.c.start_date <= sql.add_days(ct.c.ends_on, STAY_DAYS),
                              or_(m2.c.cancelled_on.is_(None),
                                  m2.c.cancelled_on > m2.c.start_date)))
    return case((ct.c.ends_on.is_(None), STAYED), (came_back, STAYED),
                (sql.add_days(ct.c.ends_on, STAY_DAYS) < as_of, LEFT), else_=UNDECIDED)


def cancel_offer_effectiveness(session: Session, *, club_id: int, as_of: date | None = None,
                               date_from: date | None = None,
                               date_to: date | None = None) -> CancelOfferReport:
    """Per `contract_cancelled` definition, among the cancellations whose play's trigger day is
    in the period: the share that stayed of those contacted (a touchpoint sent) against those
    held out, and of those assigned (planned, not held out: intention to treat)."""
    s = scope(session, club_id=club_id, as_of=as_of, date_from=date_from, date_to=date_to)
    st, d, ct = (ScheduledTouchpoint.__table__, TouchpointDefinition.__table__,
                 Contract.__table__)
    plays = select(d.c.id).where(d.c.club_id == s.club_id,
                                 d.c.trigger == Trigger.contract_cancelled.value)
    per_pair = (select(st.c.definition_id, st.c.membership_id,
                       func.max(case((st.c.status == "sent", 1), else_=0)).label("sent"),
                       func.max(case((st.c.status == "held_out", 1), else_=0)).label("held"),
                       func.max(case((st.c.status != "held_out", 1), else_=0)).label("assigned"))
                .where(st.c.club_id == s.club_id, st.c.definition_id.in_(plays),
                       st.c.membership_id.is_not(None),
                       st.c.trigger_on >= s.date_from, st.c.trigger_on <= s.date_to)
                .group_by(st.c.definition_id, st.c.membership_id).subquery())
    outcome = stayed_outcome(s.as_of).label("outcome")
    pairs = (select(per_pair, outcome)
             .join(ct, ct.c.membership_id == per_pair.c.membership_id).subquery())
    decided, won = pairs.c.outcome != UNDECIDED, pairs.c.outcome == STAYED
    held_only = and_(pairs.c.held == 1, pairs.c.assigned == 0)
    sent_only = and_(pairs.c.sent == 1, pairs.c.held == 0)
    assigned_only = and_(pairs.c.assigned == 1, pairs.c.held == 0)

    def n(*conditions):
        return func.coalesce(func.sum(case((and_(*conditions), 1), else_=0)), 0)

    agg = (select(pairs.c.definition_id,
                  n(sent_only, decided).label("contacted"), n(sent_only, won).label("c_won"),
                  n(held_only, decided).label("held"), n(held_only, won).label("h_won"),
                  n(assigned_only, decided).label("assigned"),
                  n(assigned_only, won).label("a_won"),
                  n(~decided, pairs.c.held + pairs.c.assigned == 1).label("undecided"),
                  n(pairs.c.held == 1, pairs.c.assigned == 1).label("mixed"))
           .group_by(pairs.c.definition_id).subquery())
    rows = session.execute(
        select(d.c.id, d.c.key, d.c.name, d.c.channel, d.c.enabled, agg)
        .outerjoin(agg, agg.c.definition_id == d.c.id)
        .where(d.c.club_id == s.club_id, d.c.trigger == Trigger.contract_cancelled.value)
        .order_by(d.c.days, d.c.key)).all()
    tallies = [{k: int(getattr(r, k) or 0) for k in (
        "contacted", "c_won", "held", "h_won", "assigned", "a_won", "undecided", "mixed")}
        for r in rows]
    family = verdicts.judge(
        [p for v in tallies for p in ((v["c_won"], v["contacted"], v["h_won"], v["held"]),
                                      (v["a_won"], v["assigned"], v["h_won"], v["held"]))],
        months=verdicts.months_between(s.date_from, s.date_to))
    items = [CancelOfferRow(
        definition_id=r.id, key=r.key, name=r.name, channel=r.channel, enabled=r.enabled,
        contacted=v["contacted"], contacted_stayed=v["c_won"], contacted_rate=pp.raw.rate1,
        held_out=v["held"], held_out_stayed=v["h_won"], held_out_rate=pp.raw.rate2,
        difference=pp.raw.difference, ci_low=pp.raw.ci_low, ci_high=pp.raw.ci_high,
        verdict=pp.verdict, assigned=v["assigned"], assigned_stayed=v["a_won"],
        assigned_rate=stats.rate(v["a_won"], v["assigned"]), itt_verdict=itt.verdict,
        undecided=v["undecided"], mixed=v["mixed"])
        for r, v, pp, itt in zip(rows, tallies, family.items[::2], family.items[1::2],
                                 strict=True)]
    return CancelOfferReport(as_of=s.as_of, date_from=s.date_from, date_to=s.date_to,
                             grace_days=s.grace, method=verdicts.METHOD,
                             min_group=stats.MIN_GROUP, stay_days=STAY_DAYS, items=items)
