from typing import Annotated

from fastapi import APIRouter, Query

from app.clubs.deps import DeskActor, ManagerActor, StaffActor
from app.core.deps import SessionDep
from app.core.idempotency import Idempotency, run_once
from app.core.schemas import IdPath, LargeOffset, Limit, Page
from app.memberships import service
from app.memberships.schemas import (
    Day,
    FreezeCreate,
    FreezeEnd,
    FreezeResult,
    MembershipCancel,
    MembershipRead,
    MembershipRenew,
    MembershipSell,
    MembershipSold,
    PlanCreate,
    PlanRead,
    PlanUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["plans and memberships"])

AsOf = Annotated[Day | None, Query(description="status on this day; default today (club time)")]


# ----------------------------------------------------------------------------- plans

@router.post("/plans", response_model=PlanRead, status_code=201)
def create_plan(session: SessionDep, actor: ManagerActor, body: PlanCreate):
    """Add a plan (owners and managers)."""
    return service.create_plan(session, actor=actor, data=body)


@router.patch("/plans/{plan_id}", response_model=PlanRead)
def update_plan(session: SessionDep, actor: ManagerActor, plan_id: IdPath("plan id"),
                body: PlanUpdate):
    """Change a plan; memberships already sold keep the terms they were sold with."""
    return service.update_plan(session, actor=actor, plan_id=plan_id,
                               changes=body.model_dump(exclude_unset=True))


@router.get("/plans", response_model=Page[PlanRead])
def list_plans(session: SessionDep, actor: StaffActor, active: bool | None = None,
               limit: Limit = 100, offset: LargeOffset = 0):
    plans, total = service.list_plans(session, club_id=actor.club_id, active=active, limit=limit,
                                      offset=offset)
    return Page[PlanRead](items=[PlanRead.model_validate(p) for p in plans], total=total,
                          limit=limit, offset=offset)


@router.get("/plans/{plan_id}", response_model=PlanRead)
def get_plan(session: SessionDep, actor: StaffActor, plan_id: IdPath("plan id")):
    return service.get_plan(session, club_id=actor.club_id, plan_id=plan_id)


# ----------------------------------------------------------------------------- memberships

@router.post("/members/{member_id}/memberships", response_model=MembershipSold, status_code=201)
def sell_membership(session: SessionDep, actor: DeskActor, member_id: IdPath("member id"),
                    body: MembershipSell, idem: Idempotency):
    """Sell a plan to a member (one sale); payments below the price leave a debt.

    Send an `Idempotency-Key` so a retried request never sells twice.
    """
    return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=201,
                    action=lambda: MembershipSold.model_validate(service.sell_membership(
                        session, actor=actor, member_id=member_id, plan_id=body.plan_id,
                        start_date=body.start_date, price=body.price, payments=body.payments,
                        note=body.note)))


@router.get("/members/{member_id}/memberships", response_model=Page[MembershipRead])
def member_memberships(session: SessionDep, actor: StaffActor, member_id: IdPath("member id"),
                       as_of: AsOf = None, limit: Limit = 50, offset: LargeOffset = 0):
    items, total = service.member_memberships(session, club_id=actor.club_id, member_id=member_id,
                                              as_of=as_of, limit=limit, offset=offset)
    return Page[MembershipRead](items=[MembershipRead.model_validate(i) for i in items],
                                total=total, limit=limit, offset=offset)


@router.get("/memberships/{membership_id}", response_model=MembershipRead)
def get_membership(session: SessionDep, actor: StaffActor,
                   membership_id: IdPath("membership id"), as_of: AsOf = None):
    return MembershipRead.model_validate(service.read_membership(
        session, club_id=actor.club_id, membership_id=membership_id, as_of=as_of))


@router.post("/memberships/{membership_id}/renew", response_model=MembershipSold,
             status_code=201)
def renew_membership(session: SessionDep, actor: DeskActor,
                     membership_id: IdPath("membership id"), body: MembershipRenew,
                     idem: Idempotency):
    """Sell the next membership, starting the day after this one ends (today if it has ended)."""
    return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=201,
                    action=lambda: MembershipSold.model_validate(service.renew_membership(
                        session, actor=actor, membership_id=membership_id, plan_id=body.plan_id,
                        price=body.price, payments=body.payments, note=body.note)))


@router.post("/memberships/{membership_id}/freezes", response_model=FreezeResult,
             status_code=201)
def freeze_membership(session: SessionDep, actor: DeskActor,
                      membership_id: IdPath("membership id"), body: FreezeCreate):
    """Freeze for a period within the plan's allowance; the end date moves out by those days."""
    return FreezeResult.model_validate(service.freeze_membership(
        session, actor=actor, membership_id=membership_id, start_date=body.start_date,
        end_date=body.end_date, reason=body.reason))


@router.post("/freezes/{freeze_id}/end", response_model=FreezeResult)
def end_freeze(session: SessionDep, actor: DeskActor, freeze_id: IdPath("freeze id"),
               body: FreezeEnd | None = None):
    """End a freeze early (the member is back `on`, default today); unused days come back."""
    return FreezeResult.model_validate(service.end_freeze(
        session, actor=actor, freeze_id=freeze_id, on=body.on if body else None))


@router.post("/memberships/{membership_id}/cancel", response_model=MembershipRead)
def cancel_membership(session: SessionDep, actor: ManagerActor,
                      membership_id: IdPath("membership id"), body: MembershipCancel,
                      idem: Idempotency):
    """Cancel for one of the club's reasons, optionally refunding (at most what was paid)."""
    refund = body.refund
    return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=200,
                    action=lambda: MembershipRead.model_validate(service.cancel_membership(
                        session, actor=actor, membership_id=membership_id, reason=body.reason,
                        note=body.note, effective_on=body.effective_on,
                        refund_amount=refund.amount if refund else None,
                        refund_method=refund.method if refund else None)))

