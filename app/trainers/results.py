"""Trainers' results: PT sessions, package sales, classes and their clients' renewals per period."""
from datetime import date, datetime

from sqlalchemy import and_, case, distinct, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from app.clubs import service as clubs_service
from app.core import clock
from app.core.actors import MANAGERS, Actor, Role
from app.core.errors import Forbidden, Invalid
from app.core.sql import add_days
from app.core.types import money
from app.memberships.models import Membership
from app.trainers.models import ClassBooking, ClassOccurrence, PtPackage, PtSession, TrainerProfile
from app.trainers.schemas import TrainerResults
from app.trainers.service import (
    BOOKED,
    CANCELLED,
    COMPLETED,
    NO_SHOW,
    SCHEDULED,
    day_bounds,
    get_trainer,
    is_self,
    require_own_profile,
    trainer_names,
)

MAX_RESULTS_DAYS = 3 * 366
RENEWAL_EARLY_DAYS = 30


def _results_scope(session: Session, actor: Actor, trainer_id: int | None) -> list[int]:
    if trainer_id is not None:
        trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id)
        if not (actor.role in MANAGERS or is_self(actor, trainer)):
            raise Forbidden("Trainers see their own results only", code="not_your_results")
        return [trainer.id]
    if actor.role in MANAGERS:
        return list(session.scalars(select(TrainerProfile.id)
                                    .where(TrainerProfile.club_id == actor.club_id)))
    if actor.role == Role.trainer:
        return [require_own_profile(session, actor).id]
    raise Forbidden("Trainers' results are for owners, managers and the trainers themselves",
                    code="forbidden_role")


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _count(condition):
    """SQL: how many rows of the group meet `condition` (0, not NULL, for none)."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _session_figures(session: Session, *, club_id: int, ids: list[int], lo: datetime,
                     hi: datetime) -> dict:
    """Per trainer: PT sessions starting in [lo, hi) by outcome, and distinct clients served."""
    s = PtSession
    return {r.trainer_id: r for r in session.execute(
        select(s.trainer_id, _count(s.status == COMPLETED).label("delivered"),
               _count(and_(s.status == COMPLETED, s.complimentary.is_(True))).label("free"),
               _count(s.status == NO_SHOW).label("no_shows"),
               _count(and_(s.status == CANCELLED, s.late_cancel.is_(True))).label("late"),
               func.count(distinct(case((s.status == COMPLETED, s.member_id)))).label("clients"))
        .where(s.club_id == club_id, s.trainer_id.in_(ids), s.starts_at >= lo,
               s.starts_at < hi)
        .group_by(s.trainer_id))}


def _package_figures(session: Session, *, club_id: int, ids: list[int], lo: datetime,
                     hi: datetime) -> dict:
    """Per home trainer: packages sold in [lo, hi), re-purchases among them, their revenue."""
    p, earlier = PtPackage, aliased(PtPackage)
    repurchase = exists(select(earlier.id).where(earlier.club_id == p.club_id,
                                                 earlier.member_id == p.member_id,
                                                 earlier.id < p.id))
    return {r.trainer_id: r for r in session.execute(
        select(p.trainer_id, func.count(p.id).label("sold"), _count(repurchase).label("again"),
               func.coalesce(func.sum(p.price), 0).label("revenue"))
        .where(p.club_id == club_id, p.trainer_id.in_(ids), p.created_at >= lo,
               p.created_at < hi)
        .group_by(p.trainer_id))}


def _class_figures(session: Session, *, club_id: int, ids: list[int], lo: datetime,
                   hi: datetime, now: datetime) -> dict:
    """Per trainer: classes taught that started in [lo, min(hi, now)), seats, attended bookings."""
    o, b = ClassOccurrence, ClassBooking
    per_class = (
        select(o.id.label("oid"), o.trainer_id.label("tid"), o.capacity.label("capacity"),
               func.count(b.id).label("came"))
        .outerjoin(b, and_(b.occurrence_id == o.id, b.status == BOOKED,
                           b.attended_at.is_not(None)))
        .where(o.club_id == club_id, o.trainer_id.in_(ids), o.status == SCHEDULED,
               o.starts_at >= lo, o.starts_at < min(hi, now))
        .group_by(o.id, o.trainer_id, o.capacity)
        .subquery())
    return {r.tid: r for r in session.execute(
        select(per_class.c.tid, func.count().label("held"),
               func.sum(per_class.c.capacity).label("capacity"),
               func.sum(per_class.c.came).label("came"))
        .group_by(per_class.c.tid))}


def _renewal_figures(session: Session, *, club_id: int, ids: list[int], date_from: date,
                     date_to: date, hi: datetime, grace: int) -> dict:
    """Per trainer: their PT clients' memberships ending in the period, and how many renewed."""
    s = PtSession
    clients = (select(s.trainer_id.label("tid"), s.member_id.label("mid"))
               .where(s.club_id == club_id, s.trainer_id.in_(ids), s.status == COMPLETED,
                      s.starts_at < hi)
               .distinct().subquery())
    m, nxt = Membership, aliased(Membership)
    renewed = exists(select(nxt.id).where(
        nxt.club_id == m.club_id, nxt.member_id == m.member_id, nxt.id != m.id,
        nxt.start_date > m.start_date,
        nxt.start_date >= add_days(m.end_date, -RENEWAL_EARLY_DAYS),
        nxt.start_date <= add_days(m.end_date, grace),
        or_(nxt.cancelled_on.is_(None), nxt.cancelled_on > nxt.start_date)))
    return {r.tid: r for r in session.execute(
        select(clients.c.tid, func.count(m.id).label("ended"), _count(renewed).label("renewed"))
        .join(m, and_(m.member_id == clients.c.mid, m.club_id == club_id))
        .where(m.end_date >= date_from, m.end_date <= date_to,
               or_(m.cancelled_on.is_(None), m.cancelled_on > m.end_date))
        .group_by(clients.c.tid))}


def _figure(row, name: str) -> int:
    """One figure of a trainer's grouped row; 0 when the trainer has no row."""
    return int(getattr(row, name) or 0) if row is not None else 0


def _results_row(*, trainer_id: int, name: str, date_from: date, date_to: date, sessions,
                 packages, classes, renewals) -> TrainerResults:
    capacity, came = _figure(classes, "capacity"), _figure(classes, "came")
    ended, again = _figure(renewals, "ended"), _figure(renewals, "renewed")
    return TrainerResults(
        trainer_id=trainer_id, trainer_name=name, date_from=date_from, date_to=date_to,
        sessions_delivered=_figure(sessions, "delivered"),
        complimentary_sessions=_figure(sessions, "free"),
        no_shows=_figure(sessions, "no_shows"), late_cancellations=_figure(sessions, "late"),
        distinct_clients=_figure(sessions, "clients"),
        package_sales=_figure(packages, "sold"), package_repurchases=_figure(packages, "again"),
        package_revenue=money(packages.revenue) if packages is not None else money(0),
        classes_held=_figure(classes, "held"), class_capacity=capacity, class_attendance=came,
        class_fill_rate=_rate(came, capacity), memberships_ended=ended,
        memberships_renewed=again, renewal_rate=_rate(again, ended))


def trainer_results(session: Session, *, actor: Actor, date_from: date, date_to: date,
                    trainer_id: int | None = None, now: datetime | None = None
                    ) -> list[TrainerResults]:
    """Each trainer's figures for club-local days [from, to], in five set-based queries.

    - PT sessions by start time: completed (delivered), complimentary, no-shows, late
      cancellations, distinct clients (members with a completed session);
    - packages sold in the period naming the trainer as home trainer, of which re-purchases
      (the member had a package before), and their revenue;
    - classes they taught that started in the period (and by now): capacity, attended, fill rate;
    - memberships of their PT clients (a completed session before the period ends) whose end date
      falls in the period (not cancelled before it), and how many were renewed: another
      membership starting between 30 days before that end and the club's grace days after it.
    """
    now = now or clock.now()
    if date_to < date_from:
        raise Invalid("'to' must not be before 'from'", code="invalid_period")
    if (date_to - date_from).days > MAX_RESULTS_DAYS:
        raise Invalid("Ask for at most three years at a time", code="period_too_long")
    ids = _results_scope(session, actor, trainer_id)
    club = clubs_service.get_club(session, actor.club_id)
    club_id = club.id
    lo, hi = day_bounds(clubs_service.club_zone(club), date_from, date_to)
    grace = clubs_service.club_settings(club).grace_days
    if not ids:
        return []
    span = {"club_id": club_id, "ids": ids, "lo": lo, "hi": hi}
    sessions = _session_figures(session, **span)
    packages = _package_figures(session, **span)
    classes = _class_figures(session, **span, now=now)
    renewals = _renewal_figures(session, club_id=club_id, ids=ids, date_from=date_from,
                                date_to=date_to, hi=hi, grace=grace)
    names = trainer_names(session, set(ids))
    out = [_results_row(trainer_id=tid, name=names.get(tid, "?"), date_from=date_from,
                        date_to=date_to, sessions=sessions.get(tid), packages=packages.get(tid),
                        classes=classes.get(tid), renewals=renewals.get(tid)) for tid in ids]
    return sorted(out, key=lambda r: (r.trainer_name.lower(), r.trainer_id))
