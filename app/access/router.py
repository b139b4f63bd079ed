import json
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from app.access import devices, logs, member_codes, service
from app.access.schemas import (
    IDEMPOTENCY_KEY_MAX,
    AccessEventRead,
    AppCodeResetRead,
    CheckInCreate,
    DecisionRead,
    DeskDecisionRead,
    DeviceApprove,
    DeviceEventIn,
    DeviceKeyRead,
    DeviceRead,
    MemberRef,
    VisitRead,
)
from app.clubs.deps import DeskActor, DeviceKey, ManagerActor, StaffActor, device_work
from app.core.deps import SessionDep
from app.core.schemas import IdPath, Limit, Offset, Page

router = APIRouter(prefix="/api/v1", tags=["access"])
devices_router = APIRouter(prefix="/api/v1", tags=["access"])
"""The turnstiles' own route, matched before every staff route (`app.main.ROUTERS`)."""

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=IDEMPOTENCY_KEY_MAX,
    pattern=r"^[\x21-\x7e]+$", description="repeat the key to get the first answer again")]


def _answer(decision: service.Decision, response: Response) -> dict:
    if decision.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    member = (MemberRef(id=decision.member_id, name=decision.member_name or "")
              if decision.member_id is not None else None)
    return {"allow": decision.allow, "reason": decision.reason, "message": decision.message,
            "member": member, "visit_id": decision.visit_id,
            "access_event_id": decision.access_event_id,
            "payment_problem": decision.payment_problem}


def _device_answer(decision: service.Decision) -> Response:
    """`DecisionRead` as JSON, written directly: the turnstile's answer skips the response
    model's validate-and-serialise pass (tests/access compare it with the model)."""
    member = (None if decision.member_id is None
              else {"id": decision.member_id, "name": decision.member_name or ""})
    body = json.dumps({"allow": decision.allow, "reason": decision.reason,
                       "message": decision.message, "member": member,
                       "visit_id": decision.visit_id}, ensure_ascii=False, separators=(",", ":"))
    return Response(body, media_type="application/json",
                    headers={"Idempotent-Replayed": "true"} if decision.replayed else None)


@devices_router.post("/access/events", response_model=DecisionRead)
def device_event(request: Request, key: DeviceKey, body: DeviceEventIn) -> Response:
    """A turnstile asks (or tells afterwards) whether a card may pass; a repeated event_id
    answers the first decision again."""
    def decide(session, device):
        return service.device_check_in(session, device=device, card=body.card,
                                       event_id=body.event_id, occurred_at=body.occurred_at,
                                       direction=body.direction, key=key)

    return _device_answer(device_work(request, key, decide, authenticate=service.device_for_key,
                                      autocommit=True, repeatable=body.event_id is not None))


@router.post("/members/{member_id}/check-ins", response_model=DeskDecisionRead)
def desk_check_in(session: SessionDep, actor: DeskActor, member_id: IdPath("member id"),
                  response: Response, idempotency_key: IdempotencyKey = None,
                  body: CheckInCreate | None = None) -> dict:
    """Check a member in at the front desk; managers may override a denial with a reason."""
    decision = service.desk_check_in(
        session, actor=actor, member_id=member_id,
        override_reason=body.override_reason if body else None, idempotency_key=idempotency_key)
    return _answer(decision, response)


@router.post("/members/{member_id}/app-code/reset", response_model=AppCodeResetRead)
def reset_app_code(session: SessionDep, actor: DeskActor, member_id: IdPath("member id")):
    """A lost phone: the member app's code gets a new secret, and every code shown before is
    refused at the door from now on (the member's app shows the new code)."""
    row = member_codes.reset_code(session, actor=actor, member_id=member_id)
    return {"member_id": row.member_id, "reset_at": row.reset_at}


@router.get("/access/events", response_model=Page[AccessEventRead])
def list_events(session: SessionDep, actor: StaffActor, day: Annotated[
                    date | None, Query(alias="date", description="club-local day, default today")] = None,
                allowed: bool | None = None, limit: Limit = 50, offset: Offset = 0):
    """Check-in attempts on one day, newest first, with member names and reasons."""
    return logs.list_events(session, club_id=actor.club_id, day=day, allowed=allowed,
                               limit=limit, offset=offset)


@router.get("/visits", response_model=Page[VisitRead])
def list_visits(session: SessionDep, actor: StaffActor, day: Annotated[
                    date | None, Query(alias="date", description="club-local day, default today")] = None,
                limit: Limit = 50, offset: Offset = 0):
    """Visits on one day (default today), newest first, with member names."""
    return logs.list_visits(session, club_id=actor.club_id, day=day, limit=limit,
                               offset=offset)


@router.get("/members/{member_id}/visits", response_model=Page[VisitRead])
def member_visits(session: SessionDep, actor: StaffActor, member_id: IdPath("member id"),
                  limit: Limit = 50, offset: Offset = 0):
    """One member's visits, newest first."""
    return logs.member_visits(session, club_id=actor.club_id, member_id=member_id,
                                 limit=limit, offset=offset)


# --- device management (managers) --------------------------------------------------------------

DeviceId = IdPath("device id")


@router.get("/devices", response_model=list[DeviceRead], tags=["devices"])
def list_devices(session: SessionDep, actor: ManagerActor):
    """The club's turnstile controllers; ZKTeco devices waiting for approval show the addresses
    they called from."""
    return devices.list_devices(session, club_id=actor.club_id)


@router.get("/devices/{device_id}", response_model=DeviceRead, tags=["devices"])
def get_device(session: SessionDep, actor: ManagerActor, device_id: DeviceId):
    return devices.get_device(session, club_id=actor.club_id, device_id=device_id)


@router.post("/devices/{device_id}/approve", response_model=DeviceRead, tags=["devices"])
def approve_device(session: SessionDep, actor: ManagerActor, device_id: DeviceId,
                   body: DeviceApprove | None = None):
    """Let a quarantined ZKTeco device in from `allowed_networks`, which must be given (none:
    422 `networks_required`, with the addresses it was seen calling from in `details`)."""
    return devices.approve_device(session, club_id=actor.club_id, device_id=device_id,
                                  allowed_networks=body.allowed_networks if body else None,
                                  approved_by=actor.user_id)


@router.post("/devices/{device_id}/rotate-key", response_model=DeviceKeyRead, tags=["devices"])
def rotate_device_key(session: SessionDep, actor: ManagerActor, device_id: DeviceId):
    """A new key for the device, shown once; the old key is refused from now on."""
    device, key = devices.rotate_key(session, club_id=actor.club_id, device_id=device_id)
    return {"device": device, "key": key}


@router.post("/devices/{device_id}/revoke", response_model=DeviceRead, tags=["devices"])
def revoke_device(session: SessionDep, actor: ManagerActor, device_id: DeviceId):
    """Refuse the device from now on (its key; a ZKTeco serial must be approved again)."""
    return devices.revoke_device(session, club_id=actor.club_id, device_id=device_id)
