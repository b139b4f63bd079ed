import html
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from app.clubs.deps import ManagerActor, StaffActor
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import DomainError
from app.core.schemas import IdPath, Limit, Offset, Page
from app.core.types import MAX_ID
from app.retention import playbook, service, unsubscribe
from app.retention.schemas import (
    DefinitionCreate,
    DefinitionRead,
    DefinitionUpdate,
    MemberRetentionRead,
    PreviewRead,
    RunRead,
    RunRequest,
    StageRead,
    TouchpointRead,
)

router = APIRouter(prefix="/api/v1", tags=["retention"])

MemberQuery = Annotated[int, Query(ge=1, le=MAX_ID, description="member id")]


@router.get("/retention/playbook", response_model=list[DefinitionRead])
def list_playbook(session: SessionDep, actor: StaffActor):
    """The club's touchpoint definitions (the default playbook is created on first use)."""
    return playbook.list_definitions(session, club_id=actor.club_id)


@router.post("/retention/playbook", response_model=DefinitionRead, status_code=201)
def create_definition(session: SessionDep, actor: ManagerActor, body: DefinitionCreate):
    """Add a touchpoint (owner or manager); a template that does not render is refused (422)."""
    return playbook.create_definition(session, club_id=actor.club_id,
                                      data=body.model_dump(mode="json"))


@router.get("/retention/playbook/{definition_id}", response_model=DefinitionRead)
def get_definition(session: SessionDep, actor: StaffActor,
                   definition_id: IdPath("definition id")):
    return playbook.get_definition(session, club_id=actor.club_id, definition_id=definition_id)


@router.patch("/retention/playbook/{definition_id}", response_model=DefinitionRead)
def update_definition(session: SessionDep, actor: ManagerActor,
                      definition_id: IdPath("definition id"), body: DefinitionUpdate):
    """Edit template, channel, trigger, holdout or enabled (owner or manager)."""
    return playbook.update_definition(session, club_id=actor.club_id, definition_id=definition_id,
                                      changes=body.model_dump(mode="json", exclude_unset=True))


@router.post("/retention/playbook/{definition_id}/disable", response_model=DefinitionRead)
def disable_definition(session: SessionDep, actor: ManagerActor,
                       definition_id: IdPath("definition id")):
    """Stop this touchpoint: nothing new is planned, pending ones are cancelled."""
    return playbook.set_enabled(session, club_id=actor.club_id, definition_id=definition_id,
                                enabled=False)


@router.post("/retention/playbook/{definition_id}/enable", response_model=DefinitionRead)
def enable_definition(session: SessionDep, actor: ManagerActor,
                      definition_id: IdPath("definition id")):
    return playbook.set_enabled(session, club_id=actor.club_id, definition_id=definition_id,
                                enabled=True)


@router.post("/retention/playbook/{definition_id}/preview", response_model=PreviewRead)
def preview(session: SessionDep, actor: StaffActor, settings: SettingsDep,
            definition_id: IdPath("definition id"), member_id: MemberQuery):
    """Render the subject and body for one member."""
    return service.preview(session, club_id=actor.club_id, definition_id=definition_id,
                           member_id=member_id, settings=settings)


@router.get("/retention/stages", response_model=Page[StageRead])
def members_in_stage(session: SessionDep, actor: StaffActor, stage: playbook.Stage | None = None,
                     limit: Limit = 50, offset: Offset = 0):
    rows, total = service.members_in_stage(session, club_id=actor.club_id,
                                           stage=stage.value if stage else None, limit=limit,
                                           offset=offset)
    return Page(items=[StageRead.model_validate(r) for r in rows], total=total, limit=limit,
                offset=offset)


def _touchpoint(row) -> TouchpointRead:
    tp, key, name = row
    return TouchpointRead.model_validate({**{c: getattr(tp, c) for c in TouchpointRead.model_fields
                                            if hasattr(tp, c)}, "key": key, "name": name})


@router.get("/retention/touchpoints", response_model=Page[TouchpointRead])
def list_touchpoints(session: SessionDep, actor: StaffActor, status: str | None = None,
                     member_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                     definition_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                     limit: Limit = 50, offset: Offset = 0):
    rows, total = service.list_touchpoints(session, club_id=actor.club_id, status=status,
                                           member_id=member_id, definition_id=definition_id,
                                           limit=limit, offset=offset)
    return Page(items=[_touchpoint(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/retention/members/{member_id}", response_model=MemberRetentionRead)
def member_retention(session: SessionDep, actor: StaffActor, member_id: IdPath("member id")):
    """A member's stage, stage history and touchpoints."""
    data = service.member_retention(session, club_id=actor.club_id, member_id=member_id)
    return MemberRetentionRead(
        stage=StageRead.model_validate(data["stage"]) if data["stage"] else None,
        history=data["history"], touchpoints=[_touchpoint(r) for r in data["touchpoints"]])


@router.post("/retention/run", response_model=RunRead)
def run(session: SessionDep, actor: ManagerActor, body: RunRequest | None = None):
    """Run today's stage run and planning for this club now (a dry run writes nothing)."""
    body = body or RunRequest()
    if body.dry_run:
        nested = session.begin_nested()
        try:
            report = service.run_club(session, club_id=actor.club_id, as_of=body.as_of,
                                      source="api", dry_run=True)
        finally:
            nested.rollback()
    else:
        report = service.run_club(session, club_id=actor.club_id, as_of=body.as_of,
                                  source="api", force=body.force)
    return RunRead(**report.as_dict())


_PAGE = """<!doctype html><html lang="en"><meta charset="utf-8"><title>{title}</title>
<body style="font-family:sans-serif;max-width:36em;margin:4em auto"><h1>{title}</h1>
<p>{text}</p>{form}</body></html>"""
_CONFIRM = """<form method="post" action="/api/v1/retention/unsubscribe?token={token}">
<button type="submit" style="font-size:1.1em;padding:.5em 1.2em">Unsubscribe</button></form>"""


def _page(title: str, text: str, form: str = "", status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=title, text=text, form=form), status_code=status_code)


def _not_valid(exc: DomainError) -> HTMLResponse:
    return _page("Link not valid", html.escape(exc.message), status_code=400)


@router.get("/retention/unsubscribe", response_class=HTMLResponse, include_in_schema=True)
def unsubscribe_link(settings: SettingsDep, token: Annotated[str, Query(max_length=200)]):
    """Public (no login): the signed link in every email shows a page with an Unsubscribe
    button; opening the link changes nothing (mail scanners open links), the button does."""
    try:
        unsubscribe.read_token(settings.secret_key, token)
    except DomainError as exc:
        return _not_valid(exc)
    return _page("Unsubscribe from the club's emails?",
                 "Press the button to stop receiving marketing emails from the club. You can "
                 "change this at the front desk at any time.",
                 _CONFIRM.format(token=html.escape(token, quote=True)))


@router.post("/retention/unsubscribe", response_class=HTMLResponse)
def unsubscribe_one_click(session: SessionDep, settings: SettingsDep,
                          token: Annotated[str, Query(max_length=200)]):
    """Withdraw email consent: the confirm page's button, and RFC 8058 one-click unsubscribe by
    mail clients (`List-Unsubscribe-Post: List-Unsubscribe=One-Click`)."""
    try:
        unsubscribe.unsubscribe(session, secret=settings.secret_key, token=token)
    except DomainError as exc:
        return _not_valid(exc)
    return _page("You are unsubscribed",
                 "You will not receive marketing emails from the club any more. You can change "
                 "this at the front desk at any time.")
