"""Staff management API: the club's staff, adding colleagues, roles, removal, password resets and
changing one's own password (rules in `app.clubs.staff`, docs/staff.md)."""
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer
from fastapi.security.utils import get_authorization_scheme_param

from app.clubs import service as clubs_service
from app.clubs import staff as service
from app.clubs.deps import ManagerActor, OwnerActor, SignedInActor
from app.clubs.schemas import (
    InvitationAccepted,
    InvitationInfo,
    InvitationRead,
    InvitationRegister,
    PasswordChange,
    PasswordReset,
    StaffCreate,
    StaffInvited,
    StaffRead,
    StaffRoleUpdate,
)
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import Unauthorized
from app.core.handlers import ERROR_SCHEMA
from app.core.schemas import IdPath, LargeLimit, LargeOffset, Page

router = APIRouter(prefix="/api/v1", tags=["staff"])

UserId = IdPath("staff user id")
_LOCKED = {429: {"description": "Too many wrong passwords; try again later",
                 "content": {"application/json": {"schema": ERROR_SCHEMA}}}}


@router.get("/staff", response_model=Page[StaffRead])
def list_staff(session: SessionDep, actor: ManagerActor, limit: LargeLimit = 100,
               offset: LargeOffset = 0):
    """The club's staff: role, last sign-in (if known), active, still on a temporary password."""
    return service.list_staff(session, club_id=actor.club_id, limit=limit, offset=offset)


@router.post("/staff", response_model=StaffInvited, status_code=201)
def add_staff(session: SessionDep, settings: SettingsDep, actor: ManagerActor,
              body: StaffCreate):
    """Invite a colleague (owners: any role; managers: front desk and trainers). The answer is
    the same whether or not the email has an account; its `accept_url` (shown once) is for the
    invited person, who accepts signed in as that email or creates their account with it."""
    row, token = service.add_staff(session, actor=actor, email=body.email, name=body.name,
                                   role=body.role)
    return StaffInvited(**row, accept_url=service.accept_url(settings, token))


InvitationId = IdPath("invitation id")


@router.get("/staff/invitations", response_model=list[InvitationRead])
def list_invitations(session: SessionDep, actor: ManagerActor):
    """The club's pending invitations (what the club wrote: email, name, role)."""
    return service.list_invitations(session, club_id=actor.club_id)


@router.post("/staff/invitations/{invitation_id}/link", response_model=StaffInvited)
def reissue_invitation(session: SessionDep, settings: SettingsDep, actor: ManagerActor,
                       invitation_id: InvitationId):
    """A new link for a pending invitation (shown once; the old link stops working)."""
    row, token = service.reissue_invitation(session, actor=actor, invitation_id=invitation_id)
    return StaffInvited(**row, accept_url=service.accept_url(settings, token))


@router.delete("/staff/invitations/{invitation_id}", status_code=204)
def cancel_invitation(session: SessionDep, actor: ManagerActor,
                      invitation_id: InvitationId) -> None:
    service.cancel_invitation(session, actor=actor, invitation_id=invitation_id)


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
    service.change_own_password(session, user_id=actor.user_id,
                                current_password=body.current_password,
                                new_password=body.new_password, keep_token=token,
                                address=request.client.host if request.client else None)


# --- the invited person ----------------------------------------------------------------------------

InvitationToken = Annotated[str, Path(min_length=20, max_length=200,
                                      description="the token of the invitation link")]
_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


@router.get("/invitations/{token}", response_model=InvitationInfo)
def describe_invitation(session: SessionDep, token: InvitationToken):
    """What an invitation link offers: club, role, invited email (404 once used or expired)."""
    return service.describe_invitation(session, token=token)


@router.post("/invitations/{token}/accept", response_model=InvitationAccepted)
def accept_invitation(session: SessionDep, token: InvitationToken,
                      bearer: Annotated[str | None, Depends(_bearer)]):
    """Accept, signed in (bearer token) as the invited email's account; another account gets
    404. Works also for someone who has no club yet or is on a temporary password."""
    if not bearer:
        raise Unauthorized("Sign in as the invited person first: send 'Authorization: Bearer "
                           "<token>'", code="not_authenticated")
    user = clubs_service.token_user(session, token=bearer)
    return service.accept_invitation(session, token=token, user_id=user.id)


@router.post("/invitations/{token}/register", response_model=InvitationAccepted, status_code=201)
def register_by_invitation(session: SessionDep, token: InvitationToken,
                           body: InvitationRegister):
    """Create the invited email's account with your own password (409 `account_exists` when it
    has one: sign in and accept instead)."""
    return service.register_by_invitation(session, token=token, name=body.name,
                                          password=body.password)
