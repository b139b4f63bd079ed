"""The staff's API for the member app: see a member's signed-in devices, sign them out (a lost
phone). The member's own pages are in `app.web.member`."""
from fastapi import APIRouter

from app.clubs.deps import DeskActor
from app.core.deps import SessionDep
from app.core.schemas import IdPath
from app.memberapp import sessions
from app.memberapp.schemas import AppSessionsRevoked, MemberAppSessions
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
