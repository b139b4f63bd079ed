"""CRM pages: the leads pipeline, logging calls on the member card, changing tasks, the member
import (dry run first), exports, custom fields and duplicates.

Thin like the other pages: each handler builds the service's own request model from the form
(`build` turns a pydantic error into a 422 message, never a 500) and calls the CRM, import,
custom-field and duplicate services. Installed by `app.web.router.install`; routes are listed in
docs/pages.md ("CRM pages").
"""
import io
import re
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from app.clubs import service as clubs_service
from app.clubs.models import ClubStaff, StaffUser
from app.core import clock
from app.core.actors import DESK, Actor
from app.core.errors import Conflict, DomainError, Invalid, NotFound
from app.core.schemas import IdPath
from app.core.types import MAX_ID
from app.crm import leads as leads_service
from app.crm import service as crm_service
from app.crm.models import Lead
from app.crm.schemas import (
    InteractionCreate,
    InteractionKind,
    LeadCreate,
    LeadStage,
    LeadStageMove,
    LeadUpdate,
    TaskUpdate,
)
from app.customfields import service as custom_fields_service
from app.customfields.schemas import CustomFieldCreate, CustomFieldUpdate, FieldType
from app.imports import exports
from app.imports import storage as import_storage
from app.imports.csvfile import CsvFile, FileProblem
from app.imports.members import audit_export, import_members_upload
from app.members import duplicates as duplicates_service
from app.members import service as members_service
from app.members.models import Member
from app.web.auth import PageRoute, PageSession, back_to
from app.web.router import (
    Back,
    DeskPage,
    Key,
    ManagerPage,
    MemberId,
    done,
    fmt_day,
    form_key,
    once,
    render,
    templates,
)

router = APIRouter(include_in_schema=False, route_class=PageRoute)
M = TypeVar("M", bound=BaseModel)

LeadId = IdPath("lead id")
TaskId = IdPath("task id")
FieldId = IdPath("custom field id")
Short = Annotated[str | None, Form(max_length=200)]
Name = Annotated[str | None, Form(max_length=100)]
Note = Annotated[str | None, Form(max_length=500)]
Tick = Annotated[str | None, Form(max_length=5)]
DayText = Annotated[str | None, Form(max_length=10)]

STAGE_TITLES = {"new": "New", "contacted": "Contacted", "trial_booked": "Trial booked",
                "trial_done": "Trial done", "won": "Won", "lost": "Lost"}
OPEN_STAGES = [s.value for s in leads_service.OPEN_STAGES]
SOURCE_TITLES = {"walk_in": "Walk-in", "website": "Website", "referral": "Referral",
                 "campaign": "Campaign", "phone": "Phone", "social": "Social media",
                 "other": "Other"}
LOST_TITLES = {"price": "Price", "location": "Location", "schedule": "Opening hours / schedule",
               "chose_competitor": "Chose a competitor", "not_interested": "Not interested",
               "no_response": "No response", "other": "Other"}
CALL_OUTCOMES = {"reached": "Reached", "no_answer": "No answer", "voicemail": "Left a voicemail",
                 "wrong_number": "Wrong number", "call_back_later": "Call back later"}
INTERACTION_TITLES = {"call": "Call", "desk_visit": "Conversation at the desk",
                      "meeting": "Meeting", "note": "Note", "email": "Email sent",
                      "sms": "SMS sent"}
CHANNEL_TITLES = {"email": "email", "sms": "SMS", "phone": "a phone call", "none": "no messages"}
FIELD_TYPES = {"text": "Text", "number": "Number", "date": "Date", "choice": "Choice",
               "yes_no": "Yes / no"}
ROLE_TITLES = {"front_desk": "front desk", "manager": "managers", "trainer": "trainers"}
CLOSED_DAYS = 30
COLUMN_LIMIT = 50
PROBLEMS_SHOWN = 200

FIELD_LABELS = {  # form field → what the form calls it, for messages
    "first_name": "First name", "last_name": "Last name", "email": "Email", "phone": "Phone",
    "source": "Source", "source_detail": "Detail", "note": "Note", "stage": "Stage",
    "lost_reason": "Reason", "trial_date": "Trial date", "summary": "What was said",
    "outcome": "Outcome", "next_step": "Next step", "next_step_date": "Next step date",
    "kind": "Kind", "due_date": "Due date", "key": "Key", "label": "Label", "type": "Type",
    "choices": "Choices", "reason": "Reason", "title": "Title",
}

# labels the CRM templates (and the member card) use
templates.env.globals.update(stage_titles=STAGE_TITLES, source_titles=SOURCE_TITLES,
                             lost_titles=LOST_TITLES, call_outcomes=CALL_OUTCOMES,
                             interaction_titles=INTERACTION_TITLES, channel_titles=CHANNEL_TITLES,
                             role_titles=ROLE_TITLES)


# --- helpers -----------------------------------------------------------------------------------

def clean(value: str | None) -> str | None:
    """A form text: stripped, and None when empty."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def build(model: type[M], **data: Any) -> M:
    """The service's request model from form values; a bad value is a 422 with a sentence."""
    try:
        return model(**data)
    except ValidationError as exc:
        parts = []
        for error in exc.errors()[:4]:
            loc = [str(p) for p in error.get("loc", ()) if not isinstance(p, int)]
            label = FIELD_LABELS.get(loc[0], loc[0].replace("_", " ")) if loc else ""
            message = error.get("msg", "not valid").removeprefix("Value error, ")
            parts.append(f"{label}: {message}" if label else message)
        raise Invalid("Please check the form — " + "; ".join(parts),
                      code="invalid_form") from None


def ticked(value: str | None) -> bool:
    return value in ("on", "true", "1", "yes")


def staff_of(session: Session, club_id: int) -> list[dict]:
    """The club's staff who may work leads (owners, managers, front desk), by name."""
    rows = session.execute(
        select(StaffUser.id, StaffUser.name, ClubStaff.role)
        .join(ClubStaff, ClubStaff.user_id == StaffUser.id)
        .where(ClubStaff.club_id == club_id, StaffUser.active.is_(True),
               ClubStaff.role.in_([r.value for r in DESK]))
        .order_by(StaffUser.name, StaffUser.id)).all()
    return [{"id": r.id, "name": r.name, "role": r.role} for r in rows]


def _staff_names(session: Session, ids: set[int]) -> dict[int, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(session.execute(select(StaffUser.id, StaffUser.name)
                                .where(StaffUser.id.in_(ids))).all())


def age_text(created: datetime, now: datetime) -> str:
    days = (now - created).days
    if days <= 0:
        hours = int((now - created).total_seconds() // 3600)
        return "just now" if hours < 1 else f"{hours} h"
    return "1 day" if days == 1 else f"{days} days"


# --- leads: the board --------------------------------------------------------------------------

def _closed(session: Session, actor: Actor, *, source: str | None, mine: bool,
            since: datetime) -> tuple[dict[str, int], list[dict]]:
    """Leads won or lost since `since` (visible to the actor): counts, and the latest 20."""
    where = [Lead.club_id == actor.club_id,
             or_(and_(Lead.stage == "won", Lead.won_at >= since),
                 and_(Lead.stage == "lost", Lead.lost_at >= since))]
    visible = leads_service.visible_to(actor)
    if visible is not None:
        where.append(visible)
    if source:
        where.append(Lead.source == source)
    if mine:
        where.append(Lead.assignee_user_id == actor.user_id)
    counts = dict(session.execute(select(Lead.stage, func.count()).where(*where)
                                  .group_by(Lead.stage)).all())
    rows = session.execute(
        select(Lead, Member.first_name, Member.last_name).join(Member, Member.id == Lead.member_id)
        .where(*where).order_by(Lead.updated_at.desc(), Lead.id.desc()).limit(20)).all()
    latest = [{"id": lead.id, "member_id": lead.member_id, "name": f"{first} {last}",
               "stage": lead.stage, "lost_reason": lead.lost_reason,
               "at": lead.won_at or lead.lost_at} for lead, first, last in rows]
    return {"won": counts.get("won", 0), "lost": counts.get("lost", 0)}, latest


def board(session: Session, actor: Actor, *, source: str | None, mine: bool) -> dict:
    """The open pipeline as columns (newest first) and the last 30 days' won and lost."""
    now = clock.now()
    columns = []
    assignees: set[int] = set()
    for stage in OPEN_STAGES:
        items, total = leads_service.list_leads(
            session, actor=actor, stage=stage, source=source,
            assignee_user_id=actor.user_id if mine else None, limit=COLUMN_LIMIT)
        for item in items:
            item["age"] = age_text(item["created_at"], now)
            assignees.add(item["assignee_user_id"])
        columns.append({"stage": stage, "title": STAGE_TITLES[stage], "items": items,
                        "total": total})
    counts, closed = _closed(session, actor, source=source, mine=mine,
                             since=now - timedelta(days=CLOSED_DAYS))
    return {"columns": columns, "closed_counts": counts, "closed": closed,
            "names": _staff_names(session, assignees)}


def _board_page(request: Request, session: Session, actor: Actor, *, source: str | None = None,
                mine: bool = False, form: dict | None = None, problem: dict | None = None,
                status: int = 200) -> Response:
    return render(request, "crm_leads.html", {
        "title": "Leads", **board(session, actor, source=source, mine=mine),
        "source": source or "", "mine": mine, "sources": SOURCE_TITLES,
        "form": form or {"source": "walk_in"}, "problem": problem, "key": form_key(),
        "closed_days": CLOSED_DAYS}, status=status)




@router.get("/crm/leads")
def leads_page(request: Request, session: PageSession, actor: DeskPage,
               source: Annotated[str | None, Query(max_length=20)] = None,
               mine: Annotated[str | None, Query(max_length=5)] = None):
    source = source if source in SOURCE_TITLES else None
    return _board_page(request, session, actor, source=source, mine=ticked(mine))


def _duplicate_problem(session: Session, actor: Actor, exc: DomainError) -> dict:
    """What the new-lead form shows when the person is already known."""
    details = exc.details if isinstance(exc.details, dict) else {}
    problem: dict[str, Any] = {"code": exc.code, "message": exc.message}
    member_id = details.get("member_id")
    if exc.code in ("duplicate_member", "already_member") and member_id:
        member = members_service.get_member(session, club_id=actor.club_id, member_id=member_id)
        problem["member"] = {"id": member.id, "name": f"{member.first_name} {member.last_name}",
                             "email": member.email, "phone": member.phone}
        problem["can_be_lead"] = not leads_service.has_membership(session, member_id=member.id)
        lead_id = session.scalar(select(Lead.id).where(Lead.member_id == member.id))
        if lead_id:
            problem["lead_id"] = lead_id
            problem["can_be_lead"] = False
    if exc.code == "lead_exists":
        problem["lead_id"] = details.get("lead_id")
    return problem


@router.post("/crm/leads")
def create_lead(request: Request, session: PageSession, actor: DeskPage,
                source: Annotated[str, Form(max_length=20)],
                first_name: Name = None, last_name: Name = None,
                email: Annotated[str | None, Form(max_length=254)] = None,
                phone: Annotated[str | None, Form(max_length=40)] = None,
                source_detail: Short = None, note: Note = None,
                email_consent: Tick = None, sms_consent: Tick = None, assign_to_me: Tick = None,
                different_person: Tick = None,
                member_id: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None,
                key: Key = None):
    """A walk-in or a phone enquiry becomes a lead. A known person is shown with a link instead
    of a second record (make *them* the lead, or say it is a different person)."""
    back_to(request, None, "/crm/leads")
    form = {"first_name": first_name or "", "last_name": last_name or "", "email": email or "",
            "phone": phone or "", "source": source, "source_detail": source_detail or "",
            "note": note or "", "email_consent": ticked(email_consent),
            "sms_consent": ticked(sms_consent), "assign_to_me": ticked(assign_to_me)}
    consents = {k: True for k, v in (("email", email_consent), ("sms", sms_consent))
                if ticked(v)}
    if member_id is not None:
        person: dict[str, Any] = {"member_id": member_id}
    else:
        person = {"first_name": clean(first_name), "last_name": clean(last_name),
                  "email": clean(email), "phone": clean(phone),
                  "consents": consents or None, "different_person": ticked(different_person)}
    payload = {**person, "source": source, "detail": source_detail, "note": note}
    try:
        if not once(session, request, actor, key, payload):
            return done(request, "/crm/leads", "This lead was already recorded.", "info")
        data = build(LeadCreate, **person, source=source,
                     source_detail=clean(source_detail), note=clean(note),
                     assignee_user_id=actor.user_id if ticked(assign_to_me) else None)
        lead = leads_service.create_manual(session, actor=actor, data=data)
    except (Conflict, Invalid, NotFound) as exc:
        session.rollback()
        problem = _duplicate_problem(session, actor, exc)
        return _board_page(request, session, actor, form=form, problem=problem,
                           status=exc.status_code)
    member = session.get(Member, lead.member_id)
    return done(request, f"/crm/leads/{lead.id}",
                f"{member.first_name} {member.last_name} is a new lead "
                f"({SOURCE_TITLES.get(lead.source, lead.source)}).", "ok", "Lead recorded")


# --- leads: one lead ---------------------------------------------------------------------------

def allowed_moves(stage: str) -> list[str]:
    """The stages this lead may move to by hand (won comes from a sale)."""
    moves = []
    for target in LeadStage:
        if target is LeadStage.won:
            continue
        try:
            leads_service.check_transition(stage, target.value)
        except Conflict:
            continue
        moves.append(target.value)
    return moves


@router.get("/crm/leads/{lead_id}")
def lead_page(request: Request, session: PageSession, actor: DeskPage, lead_id: LeadId):
    lead = leads_service.lead_detail(session, actor=actor, lead_id=lead_id)
    names = _staff_names(session, {h.staff_id for h in lead["history"]}
                         | {lead["assignee_user_id"]})
    club_today = clubs_service.club_today(request.state.club)
    return render(request, "crm_lead.html", {
        "title": f"Lead: {lead['name']}", "lead": lead, "names": names,
        "moves": allowed_moves(lead["stage"]), "staff": staff_of(session, actor.club_id),
        "trial_default": club_today + timedelta(days=1),
        "age": age_text(lead["created_at"], clock.now())})


@router.post("/crm/leads/{lead_id}/stage")
def move_lead(request: Request, session: PageSession, actor: DeskPage, lead_id: LeadId,
              stage: Annotated[str, Form(max_length=20)],
              lost_reason: Annotated[str | None, Form(max_length=30)] = None,
              trial_date: DayText = None, note: Note = None):
    url = back_to(request, None, f"/crm/leads/{lead_id}")
    data = build(LeadStageMove, stage=stage, lost_reason=clean(lost_reason),
                 trial_date=clean(trial_date), note=clean(note))
    lead = leads_service.move(session, actor=actor, lead_id=lead_id, data=data)
    text = f"Moved to {STAGE_TITLES[lead.stage].lower()}"
    if lead.stage == "trial_booked":
        text += f" for {fmt_day(lead.trial_date)}; a follow-up task is due that day"
    if lead.stage == "lost":
        text += f" ({LOST_TITLES.get(lead.lost_reason, lead.lost_reason).lower()})"
    return done(request, url, text + ".", "ok")


@router.post("/crm/leads/{lead_id}/assign")
def assign_lead(request: Request, session: PageSession, actor: DeskPage, lead_id: LeadId,
                assignee: Annotated[str, Form(max_length=20, pattern=r"^(|none|me|\d+)$")]):
    url = back_to(request, None, f"/crm/leads/{lead_id}")
    user_id = (actor.user_id if assignee == "me"
               else int(assignee) if assignee.isdigit() else None)
    data = build(LeadUpdate, assignee_user_id=user_id)
    lead = leads_service.update_lead(session, actor=actor, lead_id=lead_id, data=data)
    name = _staff_names(session, {user_id}).get(user_id) if user_id else None
    if not leads_service.may_see(actor, user_id):
        url = "/crm/leads"  # the desk no longer sees a colleague's lead
    return done(request, url, f"Lead #{lead.id} " + (f"assigned to {name}." if name
                                                     else "is unassigned."), "ok")


def lead_for_member(session: Session, *, actor: Actor, member_id: int) -> dict | None:
    """The member's lead, for the member card (None without one, or not visible to the desk)."""
    lead = leads_service.member_lead(session, actor=actor, member_id=member_id)
    if lead is None:
        return None
    return {"id": lead.id, "stage": lead.stage, "title": STAGE_TITLES.get(lead.stage)}


# --- member card: log a call / conversation / note ----------------------------------------------

@router.post("/desk/members/{member_id}/interactions")
def log_interaction(request: Request, session: PageSession, actor: DeskPage, member_id: MemberId,
                    kind: Annotated[str, Form(max_length=20)],
                    summary: Annotated[str | None, Form(max_length=500)] = None,
                    outcome: Annotated[str | None, Form(max_length=30)] = None,
                    next_step: Note = None, next_step_date: DayText = None, back: Back = None):
    url = back_to(request, back, f"/desk/members/{member_id}")
    call = kind == InteractionKind.call.value
    data = build(InteractionCreate, kind=kind, summary=clean(summary),
                 outcome=clean(outcome) if call else None, next_step=clean(next_step),
                 next_step_date=clean(next_step_date))
    logged = crm_service.add_interaction(session, actor=actor, member_id=member_id, data=data)
    text = INTERACTION_TITLES.get(logged.kind, logged.kind) + " logged"
    if call and logged.outcome:
        text += f" ({CALL_OUTCOMES.get(logged.outcome, logged.outcome).lower()})"
    if logged.task_id:
        text += f"; a call-back task is due {fmt_day(data.next_step_date)}"
    return done(request, url, text + ".", "ok")


# --- tasks: reschedule, reassign, cancel --------------------------------------------------------

@router.post("/tasks/{task_id}/change")
def change_task(request: Request, session: PageSession, actor: DeskPage, task_id: TaskId,
                due_date: DayText = None,
                assignee: Annotated[str | None, Form(
                    max_length=20, pattern=r"^(|keep|me|role:(front_desk|manager|trainer))$")]
                = None, back: Back = None):
    url = back_to(request, back, "/tasks")
    changes: dict[str, Any] = {}
    if clean(due_date):
        changes["due_date"] = clean(due_date)
    if assignee == "me":
        changes["assignee_user_id"] = actor.user_id
    elif assignee and assignee.startswith("role:"):
        changes.update(assignee_user_id=None, assignee_role=assignee.removeprefix("role:"))
    if not changes:
        raise Invalid("Choose a new date or who should do it", code="nothing_to_change")
    task = crm_service.update_task(session, actor=actor, task_id=task_id,
                                   data=build(TaskUpdate, **changes))
    who = ("you" if task.assignee_user_id == actor.user_id
           else ROLE_TITLES.get(task.assignee_role or "", "someone")
           if task.assignee_user_id is None else "a colleague")
    return done(request, url, f"{task.title}: due {fmt_day(task.due_date)}, for {who}.", "ok",
                "Task changed")


@router.post("/tasks/{task_id}/cancel")
def cancel_task(request: Request, session: PageSession, actor: DeskPage, task_id: TaskId,
                reason: Annotated[str | None, Form(max_length=500)] = None, back: Back = None):
    url = back_to(request, back, "/tasks")
    if not clean(reason):
        raise Invalid("Say why the task is cancelled", code="reason_required")
    task = crm_service.cancel_task(session, actor=actor, task_id=task_id, reason=clean(reason))
    return done(request, url, f"{task.title} — cancelled ({clean(reason)}).", "ok",
                "Task cancelled")


# --- managers: import members (dry run first) ---------------------------------------------------
#
# The uploaded file is kept server-side under a random token for an hour: the dry run and the
# import then read exactly the same bytes (a browser cannot refill a file input, and asking for
# the file twice invites importing a different one than was checked). It is kept in the database
# (app.imports.storage: any worker finds it, only this club, deleted when it expires or when an
# erasure finds the person in it), with the rows an import did not take under the same token.

UPLOAD_TTL = timedelta(hours=1)
MAX_UPLOAD = 20 * 1024 * 1024
TOKEN = r"^[A-Za-z0-9_-]{20,64}$"
Token = Annotated[str, PathParam(pattern=TOKEN, max_length=64)]


def store_upload(session: Session, actor: Actor, name: str, data: bytes) -> str:
    """Keep the upload for an hour; its token."""
    token = secrets.token_urlsafe(24)
    import_storage.store(session, club_id=actor.club_id, user_id=actor.user_id, bundle=token,
                         purpose=import_storage.UPLOAD, name=name, chunks=[data],
                         keep=UPLOAD_TTL)
    return token


def load_upload(session: Session, actor: Actor, token: str, *,
                need_data: bool = True) -> tuple[dict, bytes | None]:
    """The stored upload of this club (404 when unknown, another club's, or older than an hour)."""
    if not re.match(TOKEN, token):
        raise NotFound("This upload is not known", code="upload_not_found")
    stored = import_storage.find(session, club_id=actor.club_id, bundle=token,
                                 purpose=import_storage.UPLOAD)
    used = None
    if stored is None:  # imported already, or unknown / another club's / expired
        used = import_storage.find(session, club_id=actor.club_id, bundle=token,
                                   purpose=import_storage.USED)
        if used is None:
            raise NotFound("This upload is not known (or is more than an hour old); upload the "
                           "file again", code="upload_not_found")
        if need_data:
            raise NotFound("This file was already imported; upload it again to import more",
                           code="upload_used")
    found = stored or used
    meta = {"name": found.name, "club_id": actor.club_id, "user_id": found.user_id,
            "created": found.created_at}
    data = import_storage.read_bytes(session, stored.id) if need_data else None
    return meta, data


def _run_import(session: Session, actor: Actor, meta: dict, data: bytes, *, dry_run: bool,
                mode: str, update_existing: bool, day_first: bool, rejects=None):
    return import_members_upload(session, club_id=actor.club_id, name=meta["name"],
                                 stream=io.BytesIO(data), size=len(data), dry_run=dry_run,
                                 mode=mode, day_first=day_first, update_existing=update_existing,
                                 staff_id=actor.user_id, rejects=rejects)


def _options(update_existing: bool, day_first: bool) -> str:
    return (f"update_existing={'1' if update_existing else '0'}"
            f"&day_first={'1' if day_first else '0'}")


@router.get("/manage/import")
def import_page(request: Request, session: PageSession, actor: ManagerPage):
    return render(request, "crm_import.html", {"title": "Import members", "report": None})


@router.post("/manage/import")
def upload_import(request: Request, session: PageSession, actor: ManagerPage,
                        file: Annotated[UploadFile, File()],
                        update_existing: Tick = None,
                        dates: Annotated[str, Form(pattern=r"^(day_first|month_first)$")]
                        = "day_first"):
    """Keep the file for an hour and show its dry run."""
    back_to(request, None, "/manage/import")
    data = file.file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise DomainError("The file is larger than 20 MB; split it or import it with the "
                          "command line (fitclub import members)", code="file_too_large",
                          status_code=413)
    if not data.strip():
        raise Invalid("Choose a CSV file to check (the one sent was empty)", code="empty_file")
    name = Path(file.filename or "members.csv").name[:100] or "members.csv"
    try:
        CsvFile.from_bytes(data, name)
    except FileProblem as exc:
        raise Invalid(str(exc), code="import_file_invalid") from None
    token = store_upload(session, actor, name, data)
    return done(request, f"/manage/import/{token}?"
                         f"{_options(ticked(update_existing), dates == 'day_first')}",
                f"{name} uploaded: here is what an import would do. Nothing is written yet.",
                "info", "Dry run")


def _flag(value: str | None, default: bool) -> bool:
    return default if value is None else value in ("1", "on", "true")


Flag = Annotated[str | None, Query(max_length=5)]


@router.get("/manage/import/{token}")
def import_dry_run(request: Request, session: PageSession, actor: ManagerPage, token: Token,
                   update_existing: Flag = None, day_first: Flag = None):
    meta, data = load_upload(session, actor, token)
    update, days = _flag(update_existing, False), _flag(day_first, True)
    try:
        report = _run_import(session, actor, meta, data, dry_run=True, mode="all_or_nothing",
                             update_existing=update, day_first=days)
    except Invalid as exc:
        return render(request, "crm_import.html", {"title": "Import members", "report": None,
                                                    "error": exc.message}, status=422)
    return render(request, "crm_import.html", {
        "title": f"Import {meta['name']}: dry run", "report": report, "token": token,
        "update_existing": update, "day_first": days, "stage": "dry_run",
        "problems": report.problems[:PROBLEMS_SHOWN], "options": _options(update, days)})


@router.post("/manage/import/{token}")
def run_import(request: Request, session: PageSession, actor: ManagerPage, token: Token,
               mode: Annotated[str, Form(pattern=r"^(all_or_nothing|skip_bad)$")],
               update_existing: Tick = None, day_first: Tick = None):
    """Import the file that was checked, in the chosen mode."""
    update, days = ticked(update_existing), ticked(day_first)
    back_to(request, None, f"/manage/import/{token}?{_options(update, days)}")
    meta, data = load_upload(session, actor, token)
    rejects = io.StringIO()
    report = _run_import(session, actor, meta, data, dry_run=False, mode=mode,
                         update_existing=update, day_first=days, rejects=rejects)
    if report.written:
        import_storage.mark_used(session, club_id=actor.club_id, bundle=token)  # not twice
        if report.errors:
            import_storage.store(session, club_id=actor.club_id, user_id=actor.user_id,
                                 bundle=token, purpose=import_storage.REJECTS,
                                 name="rejects.csv", keep=UPLOAD_TTL,
                                 chunks=[rejects.getvalue().encode("utf-8")])
    return render(request, "crm_import.html", {
        "title": f"Import {meta['name']}", "report": report, "token": token,
        "update_existing": update, "day_first": days, "stage": "imported",
        "problems": report.problems[:PROBLEMS_SHOWN], "options": _options(update, days),
        "has_rejects": report.written and bool(report.errors)})


@router.get("/manage/import/{token}/rejects.csv")
def import_rejects(request: Request, session: PageSession, actor: ManagerPage, token: Token,
                   update_existing: Flag = None, day_first: Flag = None):
    """The rows not imported (after an import), or the rows a dry run found bad — the original
    cells plus a `problem` column, to fix and upload again."""
    meta, _ = load_upload(session, actor, token, need_data=False)
    kept = import_storage.find(session, club_id=actor.club_id, bundle=token,
                               purpose=import_storage.REJECTS)
    if kept is not None:
        text = import_storage.read_bytes(session, kept.id).decode("utf-8")
    else:
        _, data = load_upload(session, actor, token)
        out = io.StringIO()
        _run_import(session, actor, meta, data, dry_run=True, mode="all_or_nothing",
                    update_existing=_flag(update_existing, False),
                    day_first=_flag(day_first, True), rejects=out)
        text = out.getvalue()
    stem = Path(meta["name"]).stem or "members"
    return Response("\ufeff" + text, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{stem}.rejects.csv"'})


def _export(session: Session, actor: Actor, what: str) -> StreamingResponse:
    rows = (exports.member_rows(session, club_id=actor.club_id) if what == "members"
            else exports.lead_rows(session, club_id=actor.club_id))
    out, _count = exports.write_csv(rows)
    audit_export(session, club_id=actor.club_id, staff_id=actor.user_id, what=what)
    return StreamingResponse(exports.chunks(out), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{what}.csv"'})


@router.get("/manage/export/members.csv")
def export_members(session: PageSession, actor: ManagerPage):
    return _export(session, actor, "members")


@router.get("/manage/export/leads.csv")
def export_leads(session: PageSession, actor: ManagerPage):
    return _export(session, actor, "leads")


# --- managers: custom fields --------------------------------------------------------------------

def _choices(text: str | None) -> list[str] | None:
    """Choices typed one per line (or separated by commas)."""
    if not clean(text):
        return None
    parts = re.split(r"[\n,;]", text)
    return [p.strip() for p in parts if p.strip()]


def key_from_label(label: str) -> str:
    key = "_".join(re.sub(r"[^0-9a-z]+", " ", label.casefold()).split())
    if key and not key[0].isalpha():
        key = "f_" + key
    return key[:40]


@router.get("/manage/custom-fields")
def custom_fields_page(request: Request, session: PageSession, actor: ManagerPage):
    fields = custom_fields_service.definitions(session, club_id=actor.club_id,
                                               include_archived=True)
    return render(request, "crm_custom_fields.html", {
        "title": "Custom fields", "fields": fields, "types": FIELD_TYPES})


@router.post("/manage/custom-fields")
def add_custom_field(request: Request, session: PageSession, actor: ManagerPage,
                     label: Annotated[str, Form(max_length=200)],
                     type: Annotated[str, Form(max_length=20)],
                     key: Annotated[str | None, Form(max_length=60)] = None,
                     choices: Annotated[str | None, Form(max_length=10_000)] = None,
                     required: Tick = None, searchable: Tick = None):
    back_to(request, None, "/manage/custom-fields")
    if type not in FIELD_TYPES:
        raise Invalid("Choose the type of the field", code="invalid_form")
    data = build(CustomFieldCreate, key=clean(key) or key_from_label(label),
                 label=clean(label), type=FieldType(type),
                 choices=_choices(choices) if type == "choice" else None,
                 required=ticked(required), searchable=ticked(searchable))
    field = custom_fields_service.create_field(session, club_id=actor.club_id, data=data)
    return done(request, "/manage/custom-fields", f"{field.label} ({field.key}) added.", "ok")


@router.post("/manage/custom-fields/{field_id}")
def edit_custom_field(request: Request, session: PageSession, actor: ManagerPage,
                      field_id: FieldId, label: Annotated[str, Form(max_length=200)],
                      choices: Annotated[str | None, Form(max_length=10_000)] = None,
                      required: Tick = None, searchable: Tick = None):
    back_to(request, None, "/manage/custom-fields")
    field = custom_fields_service.get_field(session, club_id=actor.club_id, field_id=field_id)
    changes: dict[str, Any] = {"label": clean(label), "required": ticked(required),
                               "searchable": ticked(searchable)}
    if field.type == "choice":
        changes["choices"] = _choices(choices) or []
    field = custom_fields_service.update_field(session, club_id=actor.club_id, field_id=field_id,
                                               data=build(CustomFieldUpdate, **changes))
    return done(request, "/manage/custom-fields", f"{field.label} saved.", "ok")


@router.post("/manage/custom-fields/{field_id}/archive")
def archive_custom_field(request: Request, session: PageSession, actor: ManagerPage,
                         field_id: FieldId):
    back_to(request, None, "/manage/custom-fields")
    field = custom_fields_service.archive_field(session, club_id=actor.club_id,
                                                field_id=field_id)
    return done(request, "/manage/custom-fields",
                f"{field.label} archived: hidden from forms and pages; its values are kept.",
                "ok")


# --- managers: duplicates -----------------------------------------------------------------------

@router.get("/manage/duplicates")
def duplicates_page(request: Request, session: PageSession, actor: ManagerPage):
    found = duplicates_service.find_duplicates(session, club_id=actor.club_id, limit=50)
    return render(request, "crm_duplicates.html", {"title": "Duplicates", "found": found})


OtherId = Annotated[int, Query(ge=1, le=MAX_ID)]


@router.get("/manage/duplicates/merge")
def merge_confirm(request: Request, session: PageSession, actor: ManagerPage, keep: OtherId,
                  duplicate: OtherId):
    if keep == duplicate:
        raise Invalid("A member cannot be merged with themselves", code="same_member")
    sides = [members_service.view_member(session, actor=actor, member_id=i)  # audited
             for i in (keep, duplicate)]
    return render(request, "crm_merge.html", {"title": "Merge two records", "keep": sides[0],
                                              "dup": sides[1]})


@router.post("/manage/duplicates/merge")
def merge(request: Request, session: PageSession, actor: ManagerPage,
          keep_id: Annotated[int, Form(ge=1, le=MAX_ID)],
          duplicate_id: Annotated[int, Form(ge=1, le=MAX_ID)]):
    back_to(request, None, "/manage/duplicates")
    result = duplicates_service.merge_members(session, actor=actor, keep_id=keep_id,
                                              duplicate_id=duplicate_id)
    moved = sum(result["moved"].values())
    text = (f"#{duplicate_id} was merged into {result['member']['name']} (#{keep_id}); "
            f"{moved} record{'s' if moved != 1 else ''} moved.")
    if result["warnings"]:
        text += " Check: " + " ".join(result["warnings"])
    return done(request, f"/desk/members/{keep_id}", text,
                "warn" if result["warnings"] else "ok", "Merged")


@router.post("/manage/duplicates/dismiss")
def dismiss(request: Request, session: PageSession, actor: ManagerPage,
            member_id: Annotated[int, Form(ge=1, le=MAX_ID)],
            other_member_id: Annotated[int, Form(ge=1, le=MAX_ID)]):
    back_to(request, None, "/manage/duplicates")
    duplicates_service.dismiss(session, actor=actor, member_id=member_id,
                               other_member_id=other_member_id)
    return done(request, "/manage/duplicates",
                f"#{member_id} and #{other_member_id} are marked as different people.", "ok")
