"""The staff's API for the member app: see a member's signed-in devices, sign them out (a lost
phone); the freezes members asked for in the app (approve, decline). The member's own pages are
in `app.web.member`."""
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.clubs.deps import DeskActor
from app.core.deps import SessionDep
from app.core.schemas import IdPath, Limit, Offset
from app.memberapp import freeze, sessions
from app.memberapp.models import MemberFreezeRequest
from app.memberapp.schemas import (
    AppSessionsRevoked,
    FreezeDecline,
    FreezeRequestPage,
    FreezeRequestRead,
    MemberAppSessions,
)
from app.members import service as members_service

router = APIRouter(prefix="/api/v1", tags=["member app"])


@router.get("/members/{member_id}/app-sessions", response_model=MemberAppSessions)
def member_app_sessions(session: SessionDep, actor: DeskActor,
                        member_id: IdPath("member id")):
    """The devices the member is signed in on in the member app."""
    members_service.get_member(session, club_id=actor.club_id, member_id=member_id)
    return MemberAppSessions(member_id=member_id, items=sessions.live_sessions(
        session, club_id=actor.club_id, member_id=member_id))


@router.post("/members/{member_id}/app-sessions/revoke", response_model=AppSessionsRevoked)
def revoke_member_app_sessions(session: SessionDep, actor: DeskActor,
                               member_id: IdPath("member id")):
    """Sign the member out of the member app on every device (on their timeline, audited)."""
    revoked = sessions.revoke_by_staff(session, actor=actor, member_id=member_id)
    return AppSessionsRevoked(member_id=member_id, revoked=revoked)


def _read(session, row: MemberFreezeRequest) -> FreezeRequestRead:
    member = members_service.get_member(session, club_id=row.club_id, member_id=row.member_id)
    data = {c: getattr(row, c) for c in FreezeRequestRead.model_fields if c != "member_name"}
    return FreezeRequestRead(**data, member_name=f"{member.first_name} {member.last_name}".strip())


@router.get("/freeze-requests", response_model=FreezeRequestPage)
def freeze_requests(session: SessionDep, actor: DeskActor,
                    status: Annotated[Literal["pending", "applied", "approved", "declined"] | None,
                                      Query(description="only requests in this state")] = None,
                    limit: Limit = 50, offset: Offset = 0):
    """Freezes members asked for in the member app, oldest first (`status=pending`: the ones
    waiting for the desk)."""
    rows, total = freeze.list_requests(session, club_id=actor.club_id, status=status,
                                       limit=limit, offset=offset)
    items = [FreezeRequestRead(**{c: getattr(row, c) for c in FreezeRequestRead.model_fields
                                  if c != "member_name"},
                               member_name=f"{first} {last}".strip())
             for row, first, last in rows]
    return FreezeRequestPage(items=items, total=total)


@router.post("/freeze-requests/{request_id}/approve", response_model=FreezeRequestRead)
def approve_freeze_request(session: SessionDep, actor: DeskActor,
                           request_id: IdPath("freeze request id")):
    """Approve a waiting request: the freeze is made (within the plan's rules); again: the same
    answer."""
    return _read(session, freeze.approve(session, actor=actor, request_id=request_id))


@router.post("/freeze-requests/{request_id}/decline", response_model=FreezeRequestRead)
def decline_freeze_request(session: SessionDep, actor: DeskActor,
                           request_id: IdPath("freeze request id"),
                           body: FreezeDecline | None = None):
    """Decline a waiting request, with a reason the member sees; again: the same answer."""
    return _read(session, freeze.decline(session, actor=actor, request_id=request_id,
                                         reason=body.reason if body else None))
