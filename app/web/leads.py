"""The leads pipeline, for the front desk and managers: the board (open stages as columns, the
last 30 days' won and lost), recording a walk-in or a phone enquiry as a lead (a known person is
shown with a link instead of a second record), one lead's page, moving it along the pipeline and
assigning it.

Who sees which lead is `app.crm.leads`'s rule (`visible_to`, `may_see`): the desk sees unassigned
leads and its own, managers all. Each handler builds the CRM service's own request model from the
form (`build`: a bad value is a 422 with a sentence, never a 500).
"""
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Form, Query, Request
from fastapi.responses import Response
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
from app.crm.models import Lead
from app.crm.schemas import LeadCreate, LeadStage, LeadStageMove, LeadUpdate
from app.members import service as members_service
from app.members.models import Member
from app.web.auth import PageSession, back_to
from app.web.kit import (
    LOST_TITLES,
    SOURCE_TITLES,
    STAGE_TITLES,
    DayText,
    DeskPage,
    Key,
    Name,
    Note,
    Short,
    Tick,
    build,
    clean,
    done,
    fmt_day,
    form_key,
    once,
    page_router,
    render,
    ticked,
)

router = page_router()

LeadId = IdPath("lead id")

OPEN_STAGES = [s.value for s in leads_service.OPEN_STAGES]
CLOSED_DAYS = 30
COLUMN_LIMIT = 50


# --- helpers -----------------------------------------------------------------------------------

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
