"""Staff management API: the club's staff, adding colleagues, roles, removal, password resets and
changing one's own password (rules in `app.clubs.staff`, docs/staff.md)."""
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.security.utils import get_authorization_scheme_param

from app.clubs import staff as service
from app.clubs.schemas import (
    PasswordChange,
    PasswordReset,
    StaffAdded,
    StaffCreate,
    StaffRead,
    StaffRoleUpdate,
)
from app.core.deps import ManagerActor, OwnerActor, SessionDep, SignedInActor
from app.core.errors import DomainError
from app.core.handlers import ERROR_SCHEMA
from app.core.schemas import IdPath, Page

router = APIRouter(prefix="/api/v1", tags=["staff"])

UserId = IdPath("staff user id")
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=10**9)]
_LOCKED = {429: {"description": "Too many wrong passwords; try again later",
                 "content": {"application/json": {"schema": ERROR_SCHEMA}}}}


@router.get("/staff", response_model=Page[StaffRead])
def list_staff(session: SessionDep, actor: ManagerActor, limit: Limit = 100, offset: Offset = 0):
    """The club's staff: role, last sign-in (if known), active, still on a temporary password."""
    return service.list_staff(session, club_id=actor.club_id, limit=limit, offset=offset)


@router.post("/staff", response_model=StaffAdded, status_code=201)
def add_staff(session: SessionDep, actor: ManagerActor, body: StaffCreate):
    """Add a colleague (owners: any role; managers: front desk and trainers). A new user's
    temporary password is in the answer, once; a repeat of the same request answers 409."""
    row, password = service.add_staff(session, actor=actor, email=body.email, name=body.name,
                                      role=body.role)
    return StaffAdded(**row, temporary_password=password)


@router.get("/staff/{user_id}", response_model=StaffRead)
def get_staff(session: SessionDep, actor: ManagerActor, user_id: UserId):
    return service.get_staff(session, club_id=actor.club_id, user_id=user_id)


@router.patch("/staff/{user_id}", response_model=StaffRead)
def change_role(session: SessionDep, actor: OwnerActor, user_id: UserId, body: StaffRoleUpdate):
    """Change a colleague's role (owners only; the last owner stays owner: 409)."""
    return service.change_role(session, actor=actor, user_id=user_id, role=body.role)


@router.delete("/staff/{user_id}", status_code=204)
def remove_staff(session: SessionDep, actor: ManagerActor, user_id: UserId) -> None:
    """Take someone off this club's staff; their access here ends at once."""
    service.remove_staff(session, actor=actor, user_id=user_id)


@router.post("/staff/{user_id}/reset-password", response_model=PasswordReset)
def reset_password(session: SessionDep, actor: ManagerActor, user_id: UserId):
    """A new temporary password (shown once): their sessions end, the lockout is cleared."""
    password = service.reset_password(session, actor=actor, user_id=user_id)
    return PasswordReset(user_id=user_id, temporary_password=password)


@router.post("/me/password", status_code=204, responses=_LOCKED)
def change_own_password(request: Request, session: SessionDep, actor: SignedInActor,
                        body: PasswordChange) -> None:
    """Choose a new password (also with a temporary one). A wrong current password counts towards
    the login lockout; every other token of yours is revoked, this one stays."""
    _scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    try:
        service.change_own_password(session, user_id=actor.user_id,
                                    current_password=body.current_password,
                                    new_password=body.new_password, keep_token=token)
    except DomainError as exc:
        if exc.code == "wrong_current_password":
            session.commit()  # keep the failed count that throttles guessing
        raise
