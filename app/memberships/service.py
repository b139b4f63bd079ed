"""Plans, and memberships sold through billing: sell, renew, freeze, unfreeze, cancel."""
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.billing import service as billing_service
from app.billing.models import Sale, SaleLine
from app.billing.schemas import PaymentIn
from app.billing.service import LineValues
from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core import clock, events
from app.core.actors import MANAGERS, Actor, MemberActor
from app.core.db import club_row
from app.core.errors import Conflict, Forbidden, Invalid, NotFound
from app.core.events import MemberChanged, MembershipSold
from app.core.types import money
from app.memberships import rules
from app.memberships.models import Freeze, Membership, Plan
from app.memberships.schemas import RECURRING_TERMS, MembershipLine, PlanCreate

MEMBERSHIP = "membership"


# ----------------------------------------------------------------------------- plans

def create_plan(session: Session, *, actor: Actor, data: PlanCreate) -> Plan:
    """Add a plan to the actor's club."""
    _refuse_past_price_change(session, club_id=actor.club_id, day=data.next_price_from)
    plan = Plan(club_id=actor.club_id, **data.model_dump())
    session.add(plan)
    session.flush()
    return plan


def get_plan(session: Session, *, club_id: int, plan_id: int, for_update: bool = False) -> Plan:
    """A plan of this club, else NotFound."""
    return club_row(session, Plan, club_id=club_id, row_id=plan_id, for_update=for_update,
                    missing=NotFound("Plan not found", code="plan_not_found"))


_PLAN_FIELDS = tuple(PlanCreate.model_fields)


def _refuse_past_price_change(session: Session, *, club_id: int, day: date | None) -> None:
    if day is None:
        return
    today = clubs_service.club_today_by_id(session, club_id)
    if day <= today:
        raise Invalid(f"A price change is announced for a day in the future (after {today}), "
                      f"not {day}", code="price_change_not_future",
                      details={"field": "next_price_from"})


def update_plan(session: Session, *, actor: Actor, plan_id: int, changes: dict) -> Plan:
    """Change some of a plan's fields; memberships already sold keep their terms."""
    plan = get_plan(session, club_id=actor.club_id, plan_id=plan_id, for_update=True)
    changes = dict(changes)
    for one, other in (("duration_days", "duration_months"), ("duration_months", "duration_days")):
        if changes.get(one) is not None and other not in changes:
            changes[other] = None
    if changes.get("billing") == "prepaid":  # a prepaid plan has no recurring terms
        changes |= {name: None for name in RECURRING_TERMS if name not in changes}
    if "next_price_from" in changes:
        _refuse_past_price_change(session, club_id=actor.club_id, day=changes["next_price_from"])
    merged = {name: getattr(plan, name) for name in _PLAN_FIELDS} | changes
    try:
        values = PlanCreate.model_validate(merged)
    except ValidationError as exc:
        raise billing_service.invalid_input(exc) from exc
    for name, value in values.model_dump().items():
        setattr(plan, name, value)
    session.flush()
    return plan


def list_plans(session: Session, *, club_id: int, active: bool | None = None, limit: int = 100,
               offset: int = 0) -> tuple[list[Plan], int]:
    """The club's plans by name (optionally only active or inactive ones) and their count."""
    where = [Plan.club_id == club_id]
    if active is not None:
        where.append(Plan.active.is_(active))
    total = session.scalar(select(func.count()).select_from(Plan).where(*where))
    plans = list(session.scalars(select(Plan).where(*where).order_by(Plan.name, Plan.id)
                                 .limit(limit).offset(offset)))
    return plans, total


# ----------------------------------------------------------------------------- reading

@dataclass
class MembershipView:
    """A membership with its plan, freezes and status on `as_of` (shape of `MembershipRead`)."""

    membership: Membership
    plan: Plan
    as_of: date
    freezes: list[Freeze] = field(default_factory=list)
    renewed_by_id: int | None = None

    def __getattr__(self, name):  # the membership's own columns
        if name.startswith("_") or name == "membership":
            raise AttributeError(name)
        return getattr(self.membership, name)

    @property
    def status(self) -> str:
        return rules.status_on(self.membership, self.freezes, self.as_of).value

    @property
    def visits_left(self) -> int | None:
        m = self.membership
        return None if m.visit_limit is None else max(m.visit_limit - m.visits_used, 0)

    @property
    def freeze_days_allowed(self) -> int:
        return self.plan.freeze_days

    @property
    def freeze_days_used(self) -> int:
        return sum(rules.freeze_days(f) for f in self.freezes)

    @property
    def freeze_days_left(self) -> int:
        return max(self.freeze_days_allowed - self.freeze_days_used, 0)


def _views(session: Session, memberships: list[Membership], as_of: date) -> list[MembershipView]:
    if not memberships:
        return []
    ids = [m.id for m in memberships]
    plans = {p.id: p for p in session.scalars(
        select(Plan).where(Plan.id.in_({m.plan_id for m in memberships})))}
    views = {m.id: MembershipView(m, plans[m.plan_id], as_of) for m in memberships}
    for f in session.scalars(select(Freeze).where(Freeze.membership_id.in_(ids))
                             .order_by(Freeze.start_date)):
        views[f.membership_id].freezes.append(f)
    for renewal_id, renews_id in session.execute(
            select(Membership.id, Membership.renews_id)
            .where(Membership.renews_id.in_(ids), Membership.cancelled_on.is_(None))):
        views[renews_id].renewed_by_id = renewal_id
    return [views[m.id] for m in memberships]


def get_membership(session: Session, *, club_id: int, membership_id: int,
                   for_update: bool = False) -> Membership:
    """A membership of this club, else NotFound."""
    return club_row(session, Membership, club_id=club_id, row_id=membership_id,
                    for_update=for_update,
                    missing=NotFound("Membership not found", code="membership_not_found"))


def read_membership(session: Session, *, club_id: int, membership_id: int,
                    as_of: date | None = None) -> MembershipView:
    """A membership with plan, freezes and its status on `as_of` (default today in the club)."""
    membership = get_membership(session, club_id=club_id, membership_id=membership_id)
    as_of = as_of or clubs_service.club_today_by_id(session, club_id)
    return _views(session, [membership], as_of)[0]


def member_memberships(session: Session, *, club_id: int, member_id: int,
                       as_of: date | None = None, limit: int = 50,
                       offset: int = 0) -> tuple[list[MembershipView], int]:
    """A member's memberships, latest start first, with their status on `as_of`."""
    billing_service.require_member(session, club_id=club_id, member_id=member_id)
    where = (Membership.club_id == club_id, Membership.member_id == member_id)
    total = session.scalar(select(func.count()).select_from(Membership).where(*where))
    rows = list(session.scalars(select(Membership).where(*where)
                                .order_by(Membership.start_date.desc(), Membership.id.desc())
                                .limit(limit).offset(offset)))
    as_of = as_of or clubs_service.club_today_by_id(session, club_id)
    return _views(session, rows, as_of), total


# ----------------------------------------------------------------------------- selling

def _refuse_overlap(session: Session, *, club_id: int, member_id: int, start: date, end: date,
                    exclude: Sequence[int] = ()) -> None:
    where = [Membership.club_id == club_id, Membership.member_id == member_id,
             rules.overlapping(start, end)]
    if exclude:
        where.append(Membership.id.not_in(exclude))
    clash = session.scalar(select(Membership).where(*where)
                           .order_by(Membership.start_date).limit(1))
    if clash is not None:
        raise Conflict(
            f"The member already has a membership from {clash.start_date} to {clash.end_date} "
            f"that overlaps {start}–{end}; renew that one instead "
            f"(POST /api/v1/memberships/{clash.id}/renew) so the new one starts after it",
            code="overlapping_membership",
            details={"membership_id": clash.id, "start_date": clash.start_date.isoformat(),
                     "end_date": clash.end_date.isoformat()})


def _current_renewal(session: Session, membership_id: int) -> Membership | None:
    return session.scalar(select(Membership).where(Membership.renews_id == membership_id,
                                                   Membership.cancelled_on.is_(None))
                          .order_by(Membership.id).limit(1))


def fulfil_membership_line(session: Session, *, actor: Actor, sale: Sale,
                           line_spec: MembershipLine) -> LineValues:
    """Line kind "membership": create the membership on the sale (all the selling rules)."""
    if sale.member_id is None:
        raise Invalid("A membership is sold to a member: give member_id", code="member_required")
    club_id = actor.club_id
    billing_service.require_member(session, club_id=club_id, member_id=sale.member_id,
                                   for_update=True)  # one sale per member at a time
    plan = get_plan(session, club_id=club_id, plan_id=line_spec.plan_id)
    if not plan.active:
        raise Invalid(f"The plan {plan.name!r} is no longer sold; choose an active plan",
                      code="plan_inactive", details={"field": "plan_id"})
    if plan.billing == "recurring":
        raise Invalid(f"The plan {plan.name!r} is paid by recurring dues: sell it as a contract "
                      "(a sale line of kind \"contract\")", code="plan_recurring",
                      details={"field": "plan_id"})
    if line_spec.price is not None and actor.role not in MANAGERS:
        raise Forbidden("Only a manager may change the price of a plan",
                        code="price_override_forbidden")
    today = clubs_service.club_today_by_id(session, club_id)
    renews_id = None
    if line_spec.renews_id is not None:
        current = get_membership(session, club_id=club_id, membership_id=line_spec.renews_id,
                                 for_update=True)
        if current.member_id != sale.member_id:
            raise Invalid("A renewal is sold to the member of the membership it renews",
                          code="renewal_other_member")
        if current.cancelled_on is not None:
            raise Conflict("A cancelled membership cannot be renewed; sell a new membership",
                           code="membership_cancelled")
        renewal = _current_renewal(session, current.id)
        if renewal is not None:
            raise Conflict(f"This membership was already renewed (membership {renewal.id}); "
                           f"renew that one instead", code="already_renewed",
                           details={"renewed_by_id": renewal.id})
        if line_spec.start_date is not None:
            raise Invalid("A renewal starts the day after the renewed membership ends; "
                          "do not give start_date", code="renewal_start_fixed",
                          details={"field": "start_date"})
        start = max(current.end_date + timedelta(days=1), today)
        renews_id = current.id
    else:
        start = line_spec.start_date or today
        if start < today and actor.role not in MANAGERS:
            raise Forbidden(f"A membership cannot start in the past ({start}); only a manager "
                            "may backdate it", code="start_in_past")
    end = rules.end_date_for(start, duration_days=plan.duration_days,
                             duration_months=plan.duration_months)
    _refuse_overlap(session, club_id=club_id, member_id=sale.member_id, start=start, end=end)
    price = money(line_spec.price if line_spec.price is not None else plan.price)
    membership = Membership(club_id=club_id, member_id=sale.member_id, plan_id=plan.id,
                            start_date=start, end_date=end, original_end_date=end, price=price,
                            visit_limit=plan.visit_limit, visits_used=0, renews_id=renews_id,
                            sale_id=sale.id)
    session.add(membership)
    session.flush()
    events.publish(session, MembershipSold(club_id, sale.member_id, membership.id, sale.id,
                                           sold_by=actor.user_id))
    kind = "Renewal" if renews_id else "Membership"
    return LineValues(description=f"{kind}: {plan.name} {start.isoformat()}–{end.isoformat()}",
                      unit_price=price, item_id=membership.id)


def open_recurring_membership(session: Session, *, actor: Actor, sale: Sale, plan_id: int,
                              start_date: date, end_date: date, price: Decimal) -> Membership:
    """The membership of a recurring contract sold on `sale` (app.dues): the member locked, the
    plan active and recurring, no backdating below managers, no overlap; MembershipSold."""
    if sale.member_id is None:
        raise Invalid("A contract is sold to a member: give member_id", code="member_required")
    club_id = actor.club_id
    billing_service.require_member(session, club_id=club_id, member_id=sale.member_id,
                                   for_update=True)  # one sale per member at a time
    plan = get_plan(session, club_id=club_id, plan_id=plan_id)
    if not plan.active:
        raise Invalid(f"The plan {plan.name!r} is no longer sold; choose an active plan",
                      code="plan_inactive", details={"field": "plan_id"})
    if plan.billing != "recurring":
        raise Invalid(f"The plan {plan.name!r} is prepaid: sell it as a membership, not a "
                      "contract", code="plan_not_recurring", details={"field": "plan_id"})
    today = clubs_service.club_today_by_id(session, club_id)
    if start_date < today and actor.role not in MANAGERS:
        raise Forbidden(f"A contract cannot start in the past ({start_date}); only a manager "
                        "may backdate it", code="start_in_past")
    _refuse_overlap(session, club_id=club_id, member_id=sale.member_id, start=start_date,
                    end=end_date)
    membership = Membership(club_id=club_id, member_id=sale.member_id, plan_id=plan.id,
                            start_date=start_date, end_date=end_date, original_end_date=end_date,
                            price=money(price), visit_limit=plan.visit_limit, visits_used=0,
                            sale_id=sale.id)
    session.add(membership)
    session.flush()
    events.publish(session, MembershipSold(club_id, sale.member_id, membership.id, sale.id,
                                           sold_by=actor.user_id))
    return membership


def set_membership_end(session: Session, *, club_id: int, membership_id: int,
                       end_date: date) -> Membership:
    """Move a membership's last day (a contract cancelled or renewed, app.dues — by the desk or
    by the member online): the original end moves with it (freezes keep their days), a later
    end must not overlap; MemberChanged."""
    membership = _locked_membership(session, club_id=club_id, membership_id=membership_id)
    if membership.cancelled_on is not None:
        raise Conflict("The membership is cancelled", code="membership_cancelled")
    if end_date < membership.start_date:
        raise Invalid(f"A membership cannot end ({end_date}) before it starts "
                      f"({membership.start_date})", code="end_before_start")
    old_end = membership.end_date
    if end_date == old_end:
        return membership
    if end_date > old_end:
        _refuse_overlap(session, club_id=club_id, member_id=membership.member_id,
                        start=old_end + timedelta(days=1), end=end_date,
                        exclude=[membership.id])
    membership.original_end_date += end_date - old_end
    membership.end_date = end_date
    session.flush()
    events.publish(session, MemberChanged(club_id, membership.member_id))
    return membership


@dataclass
class SoldMembership(MembershipView):
    sale: billing_service.SaleView | None = None


def _sell(session: Session, *, actor: Actor, member_id: int, line: MembershipLine,
          payments: Sequence[PaymentIn], note: str | None) -> SoldMembership:
    sale = billing_service.create_sale(session, actor=actor, member_id=member_id, lines=[line],
                                       payments=payments, note=note)
    membership_id = session.scalar(select(SaleLine.item_id).where(SaleLine.sale_id == sale.id,
                                                                  SaleLine.kind == MEMBERSHIP))
    membership = session.get(Membership, membership_id)
    today = clubs_service.club_today_by_id(session, actor.club_id)
    view = _views(session, [membership], today)[0]
    return SoldMembership(view.membership, view.plan, view.as_of, view.freezes,
                          view.renewed_by_id,
                          billing_service.get_sale(session, club_id=actor.club_id,
                                                   sale_id=sale.id))


def sell_membership(session: Session, *, actor: Actor, member_id: int, plan_id: int,
                    start_date: date | None = None, price: Decimal | None = None,
                    payments: Sequence[PaymentIn] = (), note: str | None = None) -> SoldMembership:
    """Sell a plan to a member through one sale; payments below the price leave a debt."""
    line = MembershipLine(plan_id=plan_id, start_date=start_date, price=price)
    return _sell(session, actor=actor, member_id=member_id, line=line, payments=payments,
                 note=note)


def renew_membership(session: Session, *, actor: Actor, membership_id: int,
                     plan_id: int | None = None, price: Decimal | None = None,
                     payments: Sequence[PaymentIn] = (), note: str | None = None) -> SoldMembership:
    """Sell the next membership, starting the day after this one ends (or today if it ended)."""
    current = get_membership(session, club_id=actor.club_id, membership_id=membership_id)
    line = MembershipLine(plan_id=plan_id or current.plan_id, price=price, renews_id=current.id)
    return _sell(session, actor=actor, member_id=current.member_id, line=line, payments=payments,
                 note=note)


# ----------------------------------------------------------------------------- freezes

def _shift_renewals(session: Session, membership: Membership, old_end: date,
                    days: int) -> list[Membership]:
    """Move the chain of renewals that starts right after `old_end` by `days` (they are not
    started: the days moved are today or later); the memberships moved."""
    moved = []
    current, current_old_end = membership, old_end
    while True:
        nxt = session.scalar(select(Membership).where(Membership.renews_id == current.id,
                                                      Membership.cancelled_on.is_(None))
                             .with_for_update(key_share=True)
                             .execution_options(populate_existing=True))
        if nxt is None or nxt.start_date != current_old_end + timedelta(days=1):
            return moved
        next_old_end = nxt.end_date
        delta = timedelta(days=days)
        nxt.start_date += delta
        nxt.end_date += delta
        nxt.original_end_date += delta
        moved.append(nxt)
        current, current_old_end = nxt, next_old_end


def _locked_membership(session: Session, *, club_id: int, membership_id: int) -> Membership:
    """Lock the member, then the membership (the order every writer uses)."""
    membership = get_membership(session, club_id=club_id, membership_id=membership_id)
    billing_service.require_member(session, club_id=club_id, member_id=membership.member_id,
                                   for_update=True)
    return get_membership(session, club_id=club_id, membership_id=membership_id, for_update=True)


@dataclass
class FreezeOutcome:
    freeze: Freeze | None
    days_returned: int
    membership: MembershipView


def freeze_membership(session: Session, *, actor: Actor | MemberActor, membership_id: int,
                      start_date: date, end_date: date, reason: str | None = None) -> FreezeOutcome:
    """Pause a membership; its end (and a renewal right after it) moves out by the frozen days.
    A member freezing their own in the member app (`app.memberapp.freeze`) is no staff member."""
    club_id = actor.club_id
    if end_date < start_date:
        raise Invalid("end_date must not be before start_date", code="invalid_dates")
    membership = _locked_membership(session, club_id=club_id, membership_id=membership_id)
    if membership.cancelled_on is not None:
        raise Conflict("A cancelled membership cannot be frozen", code="membership_cancelled")
    plan = session.get(Plan, membership.plan_id)
    if plan.freeze_days <= 0:
        raise Invalid(f"The plan {plan.name!r} does not allow freezing", code="freeze_not_allowed")
    today = clubs_service.club_today_by_id(session, club_id)
    if start_date < today:
        raise Invalid(f"A freeze starts today ({today}) or later", code="freeze_in_past",
                      details={"field": "start_date"})
    if start_date < membership.start_date or end_date > membership.end_date:
        raise Invalid(f"A freeze must fall within the membership ({membership.start_date} to "
                      f"{membership.end_date})", code="freeze_outside_membership",
                      details={"start_date": membership.start_date.isoformat(),
                               "end_date": membership.end_date.isoformat()})
    freezes = list(session.scalars(select(Freeze).where(Freeze.membership_id == membership.id)))
    for other in freezes:
        if other.start_date <= end_date and other.end_date >= start_date:
            raise Conflict(f"This overlaps the freeze from {other.start_date} to "
                           f"{other.end_date}", code="overlapping_freeze",
                           details={"freeze_id": other.id})
    days = (end_date - start_date).days + 1
    used = sum(rules.freeze_days(f) for f in freezes)
    if used + days > plan.freeze_days:
        raise Invalid(f"Only {max(plan.freeze_days - used, 0)} freeze days are left of "
                      f"{plan.freeze_days}; {days} were asked", code="freeze_allowance_exceeded",
                      details={"allowed": plan.freeze_days, "used": used, "requested": days})
    freeze = Freeze(club_id=club_id, membership_id=membership.id, start_date=start_date,
                    end_date=end_date, reason=reason,
                    staff_id=getattr(actor, "user_id", None), created_at=clock.now())
    session.add(freeze)
    old_end = membership.end_date
    membership.end_date = old_end + timedelta(days=days)
    moved = _shift_renewals(session, membership, old_end, days)
    session.flush()
    _refuse_overlap(session, club_id=club_id, member_id=membership.member_id,
                    start=old_end + timedelta(days=1),
                    end=max([membership.end_date, *(m.end_date for m in moved)]),
                    exclude=[membership.id, *(m.id for m in moved)])
    events.publish(session, MemberChanged(club_id, membership.member_id))
    view = _views(session, [membership], today)[0]
    return FreezeOutcome(freeze, days, view)


def end_freeze(session: Session, *, actor: Actor, freeze_id: int,
               on: date | None = None) -> FreezeOutcome:
    """End a freeze early: the member is back on `on`; the unused days come back."""
    club_id = actor.club_id
    def find_freeze() -> Freeze:
        found = session.scalar(select(Freeze).where(Freeze.id == freeze_id,
                                                    Freeze.club_id == club_id)
                               .execution_options(populate_existing=True))
        if found is None:
            raise NotFound("Freeze not found", code="freeze_not_found")
        return found

    membership = _locked_membership(session, club_id=club_id,
                                    membership_id=find_freeze().membership_id)
    freeze = find_freeze()  # as it is now that we hold the lock
    if membership.cancelled_on is not None:
        raise Conflict("The membership is cancelled", code="membership_cancelled")
    today = clubs_service.club_today_by_id(session, club_id)
    on = on or today
    if on < today:
        raise Invalid(f"A freeze can be ended from today ({today}) on, not in the past",
                      code="unfreeze_in_past", details={"field": "on"})
    if on > freeze.end_date:
        raise Invalid(f"This freeze ends on {freeze.end_date} anyway; nothing to give back",
                      code="freeze_already_over")
    if on <= freeze.start_date:
        returned = rules.freeze_days(freeze)
        session.delete(freeze)
        freeze = None
    else:
        returned = (freeze.end_date - on).days + 1
        freeze.end_date = on - timedelta(days=1)
    old_end = membership.end_date
    membership.end_date = old_end - timedelta(days=returned)
    _shift_renewals(session, membership, old_end, -returned)
    session.flush()
    events.publish(session, MemberChanged(club_id, membership.member_id))
    view = _views(session, [membership], today)[0]
    return FreezeOutcome(freeze, returned, view)


# ----------------------------------------------------------------------------- cancelling

def cancel_membership(session: Session, *, actor: Actor, membership_id: int, reason: str,
                      note: str | None = None, effective_on: date | None = None,
                      refund_amount: Decimal | None = None,
                      refund_method: str | None = None) -> MembershipView:
    """Cancel from `effective_on` (default today) for one of the club's reasons, maybe refunding."""
    club = session.get(Club, actor.club_id)
    reasons = clubs_service.club_settings(club).cancellation_reasons
    if reason not in reasons:
        raise Invalid(f"Unknown cancellation reason {reason!r}; use one of: "
                      f"{', '.join(sorted(reasons))}", code="invalid_cancel_reason",
                      details={"field": "reason", "valid_reasons": sorted(reasons)})
    membership = get_membership(session, club_id=actor.club_id, membership_id=membership_id,
                                for_update=True)
    if membership.cancelled_on is not None:
        raise Conflict(f"This membership was already cancelled on {membership.cancelled_on}",
                       code="already_cancelled")
    today = clubs_service.club_today(club)
    effective_on = effective_on or today
    if effective_on > membership.end_date:
        raise Invalid(f"The membership ends on {membership.end_date}; a cancellation after that "
                      "changes nothing", code="cancel_after_end",
                      details={"field": "effective_on"})
    if refund_amount is not None:
        if membership.sale_id is None:
            raise Invalid("Nothing was paid for this membership, so nothing can be refunded",
                          code="refund_exceeds_paid")
        billing_service.refund(session, actor=actor, sale_id=membership.sale_id,
                               amount=refund_amount, method=refund_method or "cash",
                               max_amount=membership.price)
    membership.cancelled_on = effective_on
    membership.cancel_reason = reason
    membership.cancel_note = note
    membership.refund_amount = money(refund_amount) if refund_amount is not None else None
    session.flush()
    events.publish(session, MemberChanged(actor.club_id, membership.member_id))
    return _views(session, [membership], today)[0]
