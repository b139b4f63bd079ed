"""Leads API: the desk's pipeline, the website's enquiry form and the website keys."""
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from app.clubs.deps import DeskActor, ManagerActor
from app.core.deps import SessionDep
from app.core.handlers import envelope
from app.core.idempotency import Idempotency, run_once
from app.core.schemas import IdPath, Limit, Offset, Page
from app.core.types import MAX_ID
from app.crm import leads, website
from app.crm.schemas import (
    LeadCreate,
    LeadDetail,
    LeadRead,
    LeadSource,
    LeadStage,
    LeadStageMove,
    LeadUpdate,
    WebsiteKeyCreate,
    WebsiteKeyCreated,
    WebsiteKeyRead,
    WebsiteLeadCreate,
    WebsiteLeadReceived,
)

router = APIRouter(prefix="/api/v1", tags=["leads"])

LeadId = IdPath("lead id")
_api_key = APIKeyHeader(name="X-Api-Key", auto_error=False,
                        description="the club website's key (see /website-keys)")


def website_caller(request: Request,
                   key: Annotated[str | None, Depends(_api_key)]) -> website.WebsiteCaller:
    client = request.client.host if request.client else None
    return website.authenticate(request.app.state.sessionmaker, key=key, address=client)


WebsiteDep = Annotated[website.WebsiteCaller, Depends(website_caller)]


def install(app: FastAPI) -> None:
    """Render 429 rate_limited with its Retry-After header."""

    @app.exception_handler(website.RateLimited)
    async def _rate_limited(_request: Request, exc: website.RateLimited):
        return envelope(429, exc.code, exc.message, exc.details,
                        headers={"Retry-After": str(exc.retry_after)})


@router.post("/leads", response_model=WebsiteLeadReceived, status_code=201, responses={
    200: {"model": WebsiteLeadReceived, "description": "this form_id was received before"},
    429: {"description": "too many submissions; retry after Retry-After seconds"}})
def website_form(session: SessionDep, caller: WebsiteDep, body: WebsiteLeadCreate):
    """The club website's enquiry form (authenticated with X-Api-Key, not a staff token).

    A new person becomes a lead (source website); a known one gets their lead refreshed. Send a
    `form_id` per submission: the same one again is answered 200 without a second record."""
    submission, created = website.submit(session, caller=caller, data=body)
    return JSONResponse({"id": submission.id, "status": "received"},
                        status_code=201 if created else 200)


@router.post("/leads/manual", response_model=LeadDetail, status_code=201)
def create_lead(session: SessionDep, actor: DeskActor, body: LeadCreate, idem: Idempotency):
    """Record a prospect at the desk: a new person, or `member_id` of one without a membership.
    A duplicate email or phone is 409 duplicate_member with the existing member's id."""
    def action():
        lead = leads.create_manual(session, actor=actor, data=body)
        return LeadDetail.model_validate(leads.lead_detail(session, actor=actor, lead_id=lead.id))

    return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=201,
                    action=action)


@router.get("/leads", response_model=Page[LeadRead])
def list_leads(session: SessionDep, actor: DeskActor, stage: LeadStage | None = None,
               source: LeadSource | None = None,
               assignee_user_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
               limit: Limit = 50, offset: Offset = 0):
    """Leads, newest first (the desk sees unassigned leads and its own; managers all)."""
    items, total = leads.list_leads(session, actor=actor, stage=stage.value if stage else None,
                                    source=source.value if source else None,
                                    assignee_user_id=assignee_user_id, limit=limit,
                                    offset=offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/leads/{lead_id}", response_model=LeadDetail)
def get_lead(session: SessionDep, actor: DeskActor, lead_id: LeadId):
    """A lead with its stage history."""
    return leads.lead_detail(session, actor=actor, lead_id=lead_id)


@router.post("/leads/{lead_id}/stage", response_model=LeadDetail)
def move_lead(session: SessionDep, actor: DeskActor, lead_id: LeadId, body: LeadStageMove):
    """Move a lead along the pipeline; 409 invalid_transition when the move is not allowed.
    Lost needs a lost_reason; trial_booked a trial_date (a follow-up task is created for it)."""
    leads.move(session, actor=actor, lead_id=lead_id, data=body)
    return leads.lead_detail(session, actor=actor, lead_id=lead_id)


@router.patch("/leads/{lead_id}", response_model=LeadDetail)
def update_lead(session: SessionDep, actor: DeskActor, lead_id: LeadId, body: LeadUpdate):
    """Reassign a lead or correct its source."""
    leads.update_lead(session, actor=actor, lead_id=lead_id, data=body)
    return leads.lead_detail(session, actor=actor, lead_id=lead_id)


@router.post("/website-keys", response_model=WebsiteKeyCreated, status_code=201)
def create_website_key(session: SessionDep, actor: ManagerActor, body: WebsiteKeyCreate):
    """A key for the club website's form; the key is shown in this answer only."""
    row, key = website.create_key(session, actor=actor, name=body.name)
    return WebsiteKeyCreated(id=row.id, name=row.name, created_at=row.created_at,
                             revoked_at=row.revoked_at, key=key)


@router.get("/website-keys", response_model=list[WebsiteKeyRead])
def list_website_keys(session: SessionDep, actor: ManagerActor):
    return website.list_keys(session, actor=actor)


@router.post("/website-keys/{key_id}/revoke", response_model=WebsiteKeyRead)
def revoke_website_key(session: SessionDep, actor: ManagerActor,
                       key_id: IdPath("website key id")):
    """Stop accepting a key at once (submissions with it get 401)."""
    return website.revoke_key(session, actor=actor, key_id=key_id)
