"""Privacy routes: the audit log, duplicates and merge, a person's export, erasure.

Included BEFORE the members router (app/main.py): `GET /members/duplicates` must not be read as
`GET /members/{member_id}`.
"""
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from app.clubs.deps import DeskActor, ManagerActor
from app.core.deps import SessionDep
from app.core.schemas import IdPath, Limit, Offset, Page
from app.core.types import MAX_ID
from app.privacy import duplicates, service
from app.privacy.schemas import (
    AuditAction,
    AuditRead,
    DismissalCreate,
    DismissalRead,
    DuplicatePair,
    EraseRequest,
    EraseResult,
    MergeRequest,
    MergeResult,
    PrivacyExport,
)

router = APIRouter(prefix="/api/v1", tags=["privacy"])

MemberId = IdPath("member id")
OptionalId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


@router.get("/audit", response_model=Page[AuditRead])
def audit_log(session: SessionDep, actor: ManagerActor, member_id: OptionalId = None,
              staff_id: OptionalId = None, action: AuditAction | None = None,
              date_from: Annotated[datetime | None, Query(alias="from")] = None,
              date_to: Annotated[datetime | None, Query(alias="to")] = None,
              limit: Limit = 50, offset: Offset = 0):
    """Who viewed or changed whose personal data, newest first (`from` inclusive, `to`
    exclusive). Append-only: there is no way to change or delete an entry."""
    return service.list_audit(session, club_id=actor.club_id, member_id=member_id,
                              staff_id=staff_id, action=action.value if action else None,
                              date_from=date_from, date_to=date_to, limit=limit, offset=offset)


@router.get("/members/duplicates", response_model=Page[DuplicatePair])
def find_duplicates(session: SessionDep, actor: DeskActor, limit: Limit = 50,
                    offset: Offset = 0):
    """Likely duplicate members: same email or phone, or a very similar name and the same birth
    date. Pairs marked as different people are not shown."""
    return duplicates.find_duplicates(session, club_id=actor.club_id, limit=limit, offset=offset)


@router.post("/members/duplicates/dismissals", response_model=DismissalRead, status_code=201)
def dismiss_duplicate(session: SessionDep, actor: ManagerActor, body: DismissalCreate):
    """Mark two members as different people; the finder stops showing the pair."""
    return duplicates.dismiss(session, actor=actor, member_id=body.member_id,
                              other_member_id=body.other_member_id)


@router.post("/members/{member_id}/merge", response_model=MergeResult)
def merge_members(session: SessionDep, actor: ManagerActor, member_id: IdPath("member to keep"),
                  body: MergeRequest):
    """Merge a duplicate into this member in one transaction; the duplicate record is deleted.
    Repeating it answers 409 `already_merged`."""
    return duplicates.merge_members(
        session, actor=actor, keep_id=member_id, duplicate_id=body.duplicate_id,
        take=body.take.model_dump(mode="json", exclude_none=True) if body.take else None)


@router.get("/members/{member_id}/privacy-export", response_model=PrivacyExport)
def privacy_export(session: SessionDep, actor: ManagerActor, member_id: MemberId):
    """Everything the club holds about the person, as JSON (audited as "exported")."""
    return service.privacy_export(session, actor=actor, member_id=member_id)


@router.post("/members/{member_id}/erase", response_model=EraseResult)
def erase_member(session: SessionDep, actor: ManagerActor, member_id: MemberId,
                 body: EraseRequest):
    """Erase the person's data on request: personal data removed or anonymised everywhere,
    visits, memberships, sales amounts and stage history kept. Cannot be undone."""
    return service.erase_member(session, actor=actor, member_id=member_id, reason=body.reason,
                                confirm=body.confirm)
