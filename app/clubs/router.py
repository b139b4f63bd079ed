from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from app.clubs import service
from app.clubs.deps import ManagerActor, SignedInActor, StaffActor
from app.clubs.models import StaffUser
from app.clubs.schemas import (
    ClubRead,
    ClubSettings,
    ClubSettingsUpdate,
    MeRead,
    StaffClubRead,
    TokenOut,
)
from app.core.actors import Role
from app.core.deps import SessionDep, SettingsDep

router = APIRouter(prefix="/api/v1", tags=["auth and clubs"])


@router.post("/auth/token", response_model=TokenOut)
def login(request: Request, session: SessionDep, settings: SettingsDep,
          form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenOut:
    """Sign in with email and password (OAuth2 password form); returns a bearer token. Unknown
    emails and locked accounts answer like a wrong password (401); an address with too many
    failures answers 429."""
    ttl = timedelta(minutes=settings.token_ttl_minutes)
    token, user = service.login(session, email=form.username, password=form.password, ttl=ttl,
                                address=request.client.host if request.client else None)
    return TokenOut(access_token=token, expires_in=int(ttl.total_seconds()),
                    password_change_required=user.must_change_password)


@router.post("/auth/logout", status_code=204)
def logout(request: Request, session: SessionDep, actor: SignedInActor) -> None:
    """Revoke the token this request was made with."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    service.revoke_token(session, token=token)


@router.get("/me", response_model=MeRead)
def me(session: SessionDep, actor: StaffActor) -> MeRead:
    links = service.user_clubs(session, user_id=actor.user_id)
    user = session.get(StaffUser, actor.user_id)
    return MeRead(id=actor.user_id, email=user.email, name=actor.name, club_id=actor.club_id,
                  role=actor.role,
                  clubs=[StaffClubRead(club_id=link.club_id, role=Role(link.role)) for link in links])


@router.get("/club", response_model=ClubRead)
def get_club(session: SessionDep, actor: StaffActor):
    return service.get_club(session, actor.club_id)


@router.get("/club/settings", response_model=ClubSettings)
def get_settings(session: SessionDep, actor: StaffActor):
    return service.club_settings(service.get_club(session, actor.club_id))


@router.patch("/club/settings", response_model=ClubSettings)
def update_settings(session: SessionDep, actor: ManagerActor, body: ClubSettingsUpdate):
    club = service.get_club(session, actor.club_id)
    return service.update_club_settings(session, club=club, changes=body.model_dump())
