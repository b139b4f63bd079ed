"""The leads pipeline: a prospect (a member without a membership) from first enquiry to won or lost.

Stages: new → contacted → trial_booked → trial_done → won | lost. A lead moves forward (skipping
stages is fine) but never back; any open stage may become lost (with a reason); a lost lead may
be reopened (back to new); won is final and comes from a sale (`on_membership_sold`), never by hand.
Every move is a `lead_stage_changes` row and an entry on the member's timeline (kind "lead").
"""
from datetime import date, datetime

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from app.clubs.models import ClubStaff
from app.core import clock
from app.core.actors import MANAGERS, Actor
from app.core.errors import Conflict, NotFound
from app.core.events import MembershipSold
from app.crm.models import Interaction, Lead, LeadStageChange, Task
from app.crm.schemas import LeadCreate, LeadStage, LeadStageMove, LeadUpdate
from app.members import service as members_service
from app.members.models import Member
from app.members.schemas import MemberCreate
from app.memberships.models import Membership

OPEN_STAGES = (LeadStage.new, LeadStage.contacted, LeadStage.trial_booked, LeadStage.trial_done)
CONTACT_KINDS = ("call", "email", "sms")  # logged interactions that count as a first contact


def _name(member: Member) -> str:
    return f"{member.first_name} {member.last_name}"


def has_membership(session: Session, *, member_id: int) -> bool:
    return bool(session.scalar(select(exists().where(Membership.member_id == member_id))))


def _check_staff(session: Session, *, club_id: int, user_id: int | None) -> None:
    if user_id is not None and session.scalar(
            select(ClubStaff.id).where(ClubStaff.club_id == club_id,
                                       ClubStaff.user_id == user_id)) is None:
        raise NotFound("No such staff member in this club", code="staff_not_found")


def _timeline(session: Session, lead: Lead, summary: str, *, staff_id: int | None,
              at: datetime) -> None:
    session.add(Interaction(club_id=lead.club_id, member_id=lead.member_id, kind="lead",
                            channel=None, summary=summary[:500], outcome=lead.stage,
                            staff_id=staff_id, occurred_at=at))


def _record(session: Session, lead: Lead, *, from_stage: str | None, staff_id: int | None,
            at: datetime, note: str | None = None, lost_reason: str | None = None) -> None:
    session.add(LeadStageChange(club_id=lead.club_id, lead_id=lead.id, from_stage=from_stage,
                                to_stage=lead.stage, lost_reason=lost_reason, note=note,
                                staff_id=staff_id, at=at))
    if from_stage is None:
        text = f"Lead created (source: {lead.source})"
    else:
        text = f"Lead: {from_stage} → {lead.stage}"
    if lost_reason:
        text += f" — reason: {lost_reason.replace('_', ' ')}"
    if note:
        text += f" — {note}"
    _timeline(session, lead, text, staff_id=staff_id, at=at)


def start_lead(session: Session, *, club_id: int, member_id: int, source: str,
               staff_id: int | None, source_detail: str | None = None,
               assignee_user_id: int | None = None, note: str | None = None,
               utm: dict | None = None) -> Lead:
    """A new lead (stage new) for a person without one; its creation is on the history too."""
    if has_membership(session, member_id=member_id):
        raise Conflict(f"Member #{member_id} already holds a membership: not a prospect",
                       code="already_member", details={"member_id": member_id})
    existing = session.scalar(select(Lead.id).where(Lead.member_id == member_id))
    if existing is not None:
        raise Conflict(f"This person already has a lead (#{existing}); open it, or reopen it "
                       "if it was lost", code="lead_exists", details={"lead_id": existing})
    now = clock.now()
    lead = Lead(club_id=club_id, member_id=member_id, stage=LeadStage.new.value, source=source,
                source_detail=source_detail, assignee_user_id=assignee_user_id,
                created_by=staff_id, created_at=now, updated_at=now, **(utm or {}))
    session.add(lead)
    session.flush()
    _record(session, lead, from_stage=None, staff_id=staff_id, at=now, note=note)
    session.flush()
    return lead


def create_manual(session: Session, *, actor: Actor, data: LeadCreate) -> Lead:
    """The desk records a prospect: a new person (duplicates → 409 with the existing member's
    id), or an existing one without a membership."""
    _check_staff(session, club_id=actor.club_id, user_id=data.assignee_user_id)
    if data.member_id is not None:
        member = members_service.get_member(session, club_id=actor.club_id,
                                            member_id=data.member_id)
    else:
        member = members_service.create_member(session, club_id=actor.club_id, data=MemberCreate(
            first_name=data.first_name, last_name=data.last_name, email=data.email,
            phone=data.phone, consents=data.consents, source=data.source.value,
            different_person=data.different_person), staff_id=actor.user_id,
            require_custom=False)
    return start_lead(session, club_id=actor.club_id, member_id=member.id,
                      source=data.source.value, source_detail=data.source_detail,
                      assignee_user_id=data.assignee_user_id, staff_id=actor.user_id,
                      note=data.note)


def visible_to(actor: Actor):
    """Who sees which lead: owners and managers every lead; the desk unassigned ones and their
    own. The condition on `Lead` for `actor` (None: no condition)."""
    if actor.role in MANAGERS:
        return None
    return or_(Lead.assignee_user_id.is_(None), Lead.assignee_user_id == actor.user_id)


def may_see(actor: Actor, assignee_user_id: int | None) -> bool:
    """`visible_to` for one lead assigned to `assignee_user_id` (None: unassigned)."""
    return actor.role in MANAGERS or assignee_user_id in (None, actor.user_id)


def member_lead(session: Session, *, actor: Actor, member_id: int) -> Lead | None:
    """The member's lead, if there is one and `actor` may see it."""
    lead = session.scalar(select(Lead).where(Lead.club_id == actor.club_id,
                                             Lead.member_id == member_id))
    return lead if lead is not None and may_see(actor, lead.assignee_user_id) else None


def get_lead(session: Session, *, actor: Actor, lead_id: int, for_update: bool = False) -> Lead:
    stmt = select(Lead).where(Lead.id == lead_id, Lead.club_id == actor.club_id)
    visible = visible_to(actor)
    if visible is not None:
        stmt = stmt.where(visible)
    if for_update:
        stmt = stmt.with_for_update()
    lead = session.scalar(stmt)
    if lead is None:
        raise NotFound("Lead not found", code="lead_not_found")
    return lead


def _read(lead: Lead, member: Member) -> dict:
    data = {c.key: getattr(lead, c.key) for c in Lead.__table__.columns}
    data.update(name=_name(member), email=member.email, phone=member.phone)
    return data


def lead_detail(session: Session, *, actor: Actor, lead_id: int) -> dict:
    lead = get_lead(session, actor=actor, lead_id=lead_id)
    member = session.get(Member, lead.member_id)
    history = list(session.scalars(select(LeadStageChange)
                                   .where(LeadStageChange.lead_id == lead.id)
                                   .order_by(LeadStageChange.at, LeadStageChange.id)))
    return _read(lead, member) | {"history": history}


def list_leads(session: Session, *, actor: Actor, stage: str | None = None,
               source: str | None = None, assignee_user_id: int | None = None,
               limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
    """Leads newest first, filtered by stage, source and assignee."""
    where = [Lead.club_id == actor.club_id]
    visible = visible_to(actor)
    if visible is not None:
        where.append(visible)
    if stage:
        where.append(Lead.stage == stage)
    if source:
        where.append(Lead.source == source)
    if assignee_user_id:
        where.append(Lead.assignee_user_id == assignee_user_id)
    total = session.scalar(select(func.count()).select_from(Lead).where(*where)) or 0
    rows = session.execute(select(Lead, Member).join(Member, Member.id == Lead.member_id)
                           .where(*where).order_by(Lead.created_at.desc(), Lead.id.desc())
                           .limit(limit).offset(offset)).all()
    return [_read(lead, member) for lead, member in rows], total


def check_transition(current: str, target: str) -> None:
    """Raise 409 invalid_transition unless the pipeline allows current → target."""
    def refuse(message: str):
        raise Conflict(message, code="invalid_transition",
                       details={"from": current, "to": target})

    if current == LeadStage.won:
        refuse("This lead is won: a won lead is final")
    if target == LeadStage.won:
        refuse("A lead is won when a membership is sold to them: sell a membership")
    if current == LeadStage.lost:
        if target != LeadStage.new:
            refuse("A lost lead can only be reopened (move it to stage new)")
        return
    if target == LeadStage.lost:
        return
    if target == current:
        refuse(f"The lead is already at stage {current}")
    if OPEN_STAGES.index(LeadStage(target)) < OPEN_STAGES.index(LeadStage(current)):
        refuse(f"A lead does not go back from {current} to {target}; mark it lost and "
               "reopen it to start over")


def move(session: Session, *, actor: Actor, lead_id: int, data: LeadStageMove) -> Lead:
    """Move a lead to another stage (the rules are in `check_transition`)."""
    lead = get_lead(session, actor=actor, lead_id=lead_id, for_update=True)
    check_transition(lead.stage, data.stage.value)
    now = clock.now()
    previous = lead.stage
    lead.stage = data.stage.value
    lead.updated_at = now
    if data.stage is LeadStage.lost:
        lead.lost_reason, lead.lost_note, lead.lost_at = data.lost_reason.value, data.note, now
    elif previous == LeadStage.lost:  # reopened
        lead.lost_reason = lead.lost_note = lead.lost_at = None
    if previous == LeadStage.new and data.stage is not LeadStage.lost \
            and lead.first_contact_at is None:
        lead.first_contact_at = now
    if data.stage is LeadStage.trial_booked:
        lead.trial_date = data.trial_date
        _trial_task(session, lead, trial_date=data.trial_date, staff_id=actor.user_id, now=now)
    _record(session, lead, from_stage=previous, staff_id=actor.user_id, at=now, note=data.note,
            lost_reason=data.lost_reason.value if data.lost_reason else None)
    session.flush()
    return lead


def _trial_task(session: Session, lead: Lead, *, trial_date: date, staff_id: int | None,
                now: datetime) -> None:
    member = session.get(Member, lead.member_id)
    session.add(Task(
        club_id=lead.club_id, member_id=lead.member_id, kind="trial_follow_up",
        title=f"Follow up the trial of {_name(member)}"[:200],
        details="Ask how the trial went and whether they want to join.",
        assignee_role=None if lead.assignee_user_id else "front_desk",
        assignee_user_id=lead.assignee_user_id, due_date=trial_date, status="open",
        created_by=staff_id, created_at=now, updated_at=now))


def update_lead(session: Session, *, actor: Actor, lead_id: int, data: LeadUpdate) -> Lead:
    """Reassign a lead or correct its source."""
    lead = get_lead(session, actor=actor, lead_id=lead_id, for_update=True)
    changes = data.model_dump(exclude_unset=True)
    if "assignee_user_id" in changes:
        _check_staff(session, club_id=actor.club_id, user_id=changes["assignee_user_id"])
    if changes.get("source") is not None:
        changes["source"] = changes["source"].value
    for name, value in changes.items():
        setattr(lead, name, value)
    lead.updated_at = clock.now()
    session.flush()
    return lead


def on_membership_sold(session: Session, event: MembershipSold) -> None:
    """`MembershipSold` handler (required): the person's lead, if any and not won yet, is won."""
    club_id, member_id, membership_id = event.club_id, event.member_id, event.membership_id
    staff_id = event.sold_by
    lead = session.scalar(select(Lead).where(Lead.club_id == club_id, Lead.member_id == member_id)
                          .with_for_update())
    if lead is None or lead.stage == LeadStage.won:
        return
    now = clock.now()
    previous = lead.stage
    lead.stage, lead.won_at, lead.won_membership_id, lead.updated_at = (
        LeadStage.won.value, now, membership_id, now)
    if lead.first_contact_at is None:
        lead.first_contact_at = now
    _record(session, lead, from_stage=previous, staff_id=staff_id, at=now,
            note=f"membership #{membership_id} sold")
    session.flush()


def contact_logged(session: Session, *, club_id: int, member_id: int, at: datetime) -> None:
    """A call, email or SMS to the person was logged: the lead's first contact, if it had none."""
    lead = session.scalar(select(Lead).where(Lead.club_id == club_id, Lead.member_id == member_id,
                                             Lead.first_contact_at.is_(None)))
    if lead is not None and lead.created_at <= at:
        lead.first_contact_at = at


def reopen_or_refresh(session: Session, *, lead: Lead, note: str, utm: dict) -> None:
    """The person enquired again: a lost lead is reopened, an open one gets the new campaign."""
    now = clock.now()
    for key, value in utm.items():
        if value:
            setattr(lead, key, value)
    lead.updated_at = now
    if lead.stage == LeadStage.lost:
        lead.stage = LeadStage.new.value
        lead.lost_reason = lead.lost_note = lead.lost_at = None
        _record(session, lead, from_stage=LeadStage.lost.value, staff_id=None, at=now, note=note)
    session.flush()
