"""CRM basics: staff tasks (today's list, completion, reassigning) and the member timeline."""
from datetime import date, datetime

from sqlalchemy import BigInteger, String, and_, cast, func, literal, null, or_, select, union_all
from sqlalchemy.orm import Session

from app.clubs import service as clubs_service
from app.clubs.models import ClubStaff, StaffUser
from app.core import clock
from app.core.actors import MANAGERS, Actor, Role
from app.core.errors import Conflict, NotFound
from app.crm import leads
from app.crm.models import Interaction, Task
from app.crm.schemas import InteractionCreate, TaskCreate, TaskRead, TaskUpdate, TimelineItem
from app.members import service as members_service
from app.members.models import Member
from app.retention.models import StageChange

MEMBER_CHANNEL = "app"  # timeline entries of what a member did in the member app


def _read(task: Task, member: tuple | None, today: date) -> TaskRead:
    data = {c: getattr(task, c) for c in TaskRead.model_fields if hasattr(task, c)}
    name, phone, preferred = member or (None, None, None)
    return TaskRead(**data, member_name=name, member_phone=phone,
                    member_preferred_channel=preferred,
                    overdue=task.status == "open" and task.due_date < today)


def _name(first: str | None, last: str | None) -> str | None:
    name = f"{first or ''} {last or ''}".strip()
    return name or None


def _with_names(session: Session, tasks: list[Task], today: date) -> list[TaskRead]:
    ids = {t.member_id for t in tasks if t.member_id}
    members = {}
    if ids:
        members = {mid: (_name(f, la), phone, preferred) for mid, f, la, phone, preferred
                   in session.execute(select(Member.id, Member.first_name, Member.last_name,
                                             Member.phone, Member.preferred_channel)
                                      .where(Member.id.in_(ids)))}
    return [_read(t, members.get(t.member_id), today) for t in tasks]


def get_task(session: Session, *, club_id: int, task_id: int) -> Task:
    task = session.scalar(select(Task).where(Task.id == task_id, Task.club_id == club_id))
    if task is None:
        raise NotFound("Task not found", code="task_not_found")
    return task


def _check_staff(session: Session, *, club_id: int, user_id: int | None) -> None:
    if user_id is not None and session.scalar(
            select(ClubStaff.id).where(ClubStaff.club_id == club_id,
                                       ClubStaff.user_id == user_id)) is None:
        raise NotFound("No such staff member in this club", code="staff_not_found")


def create_task(session: Session, *, actor: Actor, data: TaskCreate) -> TaskRead:
    """A task for a role or a person, optionally about a member."""
    today = clubs_service.club_today_by_id(session, actor.club_id)
    if data.member_id is not None:
        members_service.get_member(session, club_id=actor.club_id, member_id=data.member_id)
    _check_staff(session, club_id=actor.club_id, user_id=data.assignee_user_id)
    now = clock.now()
    task = Task(club_id=actor.club_id, member_id=data.member_id, title=data.title,
                details=data.details, kind=data.kind.value,
                assignee_role=data.assignee_role.value if data.assignee_role else None,
                assignee_user_id=data.assignee_user_id, due_date=data.due_date or today,
                status="open", created_by=actor.user_id, created_at=now, updated_at=now)
    session.add(task)
    session.flush()
    return _with_names(session, [task], today)[0]


def _visible_to(actor: Actor):
    """Owners and managers see every task; others see theirs and their role's."""
    if actor.role in MANAGERS:
        return None
    mine = Task.assignee_user_id == actor.user_id
    role = and_(Task.assignee_user_id.is_(None), Task.assignee_role == actor.role.value)
    if actor.role == Role.front_desk:
        role = and_(Task.assignee_user_id.is_(None),
                    or_(Task.assignee_role == actor.role.value, Task.assignee_role.is_(None)))
    return or_(mine, role)


def tasks_today(session: Session, *, actor: Actor, today: date | None = None,
                limit: int = 200) -> list[TaskRead]:
    """Open tasks due today or overdue, for me or my role: overdue first (the oldest first),
    then today's; each with the member's phone and preferred channel for the call."""
    today = today or clubs_service.club_today_by_id(session, actor.club_id)
    where = [Task.club_id == actor.club_id, Task.status == "open", Task.due_date <= today]
    visible = _visible_to(actor)
    if visible is not None:
        where.append(visible)
    tasks = list(session.scalars(select(Task).where(*where)
                                 .order_by(Task.due_date, Task.id).limit(limit)))
    return _with_names(session, tasks, today)


def _trainer_scope(actor: Actor):
    """Trainers see their own tasks only: assigned to them, or to the trainer role and no one
    yet (never the desk's lead follow-ups or call tasks); everyone else sees the club's."""
    return _visible_to(actor) if actor.role == Role.trainer else None


def task_for(session: Session, *, actor: Actor, task_id: int) -> Task:
    """A task the actor may see (another club's, or for a trainer someone else's: 404)."""
    stmt = select(Task).where(Task.id == task_id, Task.club_id == actor.club_id)
    scope = _trainer_scope(actor)
    if scope is not None:
        stmt = stmt.where(scope)
    task = session.scalar(stmt)
    if task is None:
        raise NotFound("Task not found", code="task_not_found")
    return task


def list_tasks(session: Session, *, actor: Actor, status: str | None = None,
               member_id: int | None = None, limit: int = 50, offset: int = 0
               ) -> tuple[list[TaskRead], int]:
    """Tasks newest due first (a trainer: only their own, see `_trainer_scope`)."""
    where = [Task.club_id == actor.club_id]
    scope = _trainer_scope(actor)
    if scope is not None:
        where.append(scope)
    if status:
        where.append(Task.status == status)
    if member_id:
        where.append(Task.member_id == member_id)
    total = session.scalar(select(func.count()).select_from(Task).where(*where)) or 0
    tasks = list(session.scalars(select(Task).where(*where)
                                 .order_by(Task.due_date.desc(), Task.id.desc())
                                 .limit(limit).offset(offset)))
    today = clubs_service.club_today_by_id(session, actor.club_id)
    return _with_names(session, tasks, today), total


def _channel_for(kind: str) -> str:
    return {"call": "phone", "call_back": "phone", "renewal_offer": "phone",
            "trial_follow_up": "phone", "trainer": "in_person"}.get(kind, "other")


def complete_task(session: Session, *, actor: Actor, task_id: int, outcome: str) -> TaskRead:
    """Mark a task done with its outcome; the interaction goes on the member's timeline."""
    task = task_for(session, actor=actor, task_id=task_id)  # a trainer: their own only
    if task.status != "open":
        raise Conflict(f"This task is already {task.status}", code="task_closed")
    now = clock.now()
    task.status, task.outcome = "done", outcome
    task.completed_at, task.completed_by, task.updated_at = now, actor.user_id, now
    if task.member_id is not None:
        session.add(Interaction(club_id=task.club_id, member_id=task.member_id, kind=task.kind,
                                channel=_channel_for(task.kind),
                                summary=f"{task.title}: {outcome}"[:500], outcome="done",
                                staff_id=actor.user_id, occurred_at=now,
                                touchpoint_id=task.touchpoint_id, task_id=task.id))
    session.flush()
    today = clubs_service.club_today_by_id(session, actor.club_id)
    return _with_names(session, [task], today)[0]


def _open_task(session: Session, *, actor: Actor, task_id: int) -> Task:
    task = task_for(session, actor=actor, task_id=task_id)
    if task.status != "open":
        raise Conflict(f"This task is already {task.status}", code="task_closed")
    return task


def update_task(session: Session, *, actor: Actor, task_id: int, data: TaskUpdate) -> TaskRead:
    """Reassign (to a person or a role) or reschedule an open task."""
    task = _open_task(session, actor=actor, task_id=task_id)
    changes = data.model_dump(exclude_unset=True)
    if "assignee_user_id" in changes:
        _check_staff(session, club_id=actor.club_id, user_id=changes["assignee_user_id"])
    if changes.get("assignee_role") is not None:
        changes["assignee_role"] = changes["assignee_role"].value
    for name, value in changes.items():
        setattr(task, name, value)
    task.updated_at = clock.now()
    session.flush()
    today = clubs_service.club_today_by_id(session, actor.club_id)
    return _with_names(session, [task], today)[0]


def cancel_task(session: Session, *, actor: Actor, task_id: int, reason: str) -> TaskRead:
    """Cancel an open task; the reason is kept as its outcome."""
    task = _open_task(session, actor=actor, task_id=task_id)
    now = clock.now()
    task.status, task.outcome = "cancelled", f"cancelled: {reason}"
    task.completed_at, task.completed_by, task.updated_at = now, actor.user_id, now
    session.flush()
    today = clubs_service.club_today_by_id(session, actor.club_id)
    return _with_names(session, [task], today)[0]


_KIND_CHANNEL = {"call": "phone", "email": "email", "sms": "sms", "desk_visit": "in_person",
                 "meeting": "in_person"}


def add_interaction(session: Session, *, actor: Actor, member_id: int,
                    data: InteractionCreate) -> Interaction:
    """Log a call, an email or SMS sent, a conversation or a note with a member.

    An email or SMS to a member without consent for that channel is refused (409 no_consent).
    A call, email or SMS is the first contact of the member's lead if it had none. With
    `next_step_date`, a call-back task for that day is created for the one who logs this.
    """
    member = members_service.get_member(session, club_id=actor.club_id, member_id=member_id)
    kind = data.kind.value
    if kind in ("email", "sms"):
        consented = member.email_consent if kind == "email" else member.sms_consent
        if not consented:
            label = "SMS" if kind == "sms" else "email"
            raise Conflict(f"This member has not agreed to receive {label}; record their "
                           "consent first or use another channel",
                           code="no_consent", details={"channel": kind})
        channel = kind
    else:
        channel = data.channel or _KIND_CHANNEL.get(kind)
    now = clock.now()
    task_id = None
    if data.next_step_date is not None:
        task = Task(club_id=actor.club_id, member_id=member_id, kind="call_back",
                    title=f"Call back: {data.next_step}"[:200], details=data.summary,
                    assignee_user_id=actor.user_id, due_date=data.next_step_date,
                    status="open", created_by=actor.user_id, created_at=now, updated_at=now)
        session.add(task)
        session.flush()
        task_id = task.id
    interaction = Interaction(club_id=actor.club_id, member_id=member_id, kind=kind,
                              channel=channel, summary=data.summary, outcome=data.outcome,
                              next_step=data.next_step, staff_id=actor.user_id,
                              occurred_at=now, task_id=task_id)
    session.add(interaction)
    if kind in leads.CONTACT_KINDS:
        leads.contact_logged(session, club_id=actor.club_id, member_id=member_id, at=now)
    session.flush()
    return interaction


def record(session: Session, *, club_id: int, member_id: int, kind: str, summary: str,
           channel: str | None = None, outcome: str | None = None, staff_id: int | None = None,
           occurred_at: datetime | None = None, touchpoint_id: int | None = None) -> None:
    """For other domains: put an entry on a member's timeline."""
    session.add(Interaction(club_id=club_id, member_id=member_id, kind=kind, channel=channel,
                            summary=summary[:500], outcome=outcome, staff_id=staff_id,
                            occurred_at=occurred_at or clock.now(), touchpoint_id=touchpoint_id))


def desk_task(session: Session, *, club_id: int, member_id: int | None, title: str,
              details: str | None = None, due: date | None = None) -> Task:
    """For other domains: a follow-up task for the club's front desk (something a person must
    look at, such as an online cancellation that needs a decision)."""
    now = clock.now()
    task = Task(club_id=club_id, member_id=member_id, kind="follow_up", title=title[:200],
                details=details, assignee_role=Role.front_desk.value,
                due_date=due or clubs_service.club_today_by_id(session, club_id),
                status="open", created_at=now, updated_at=now)
    session.add(task)
    session.flush()
    return task


def timeline(session: Session, *, club_id: int, member_id: int, limit: int = 50,
             offset: int = 0, kind: str | None = None,
             channel: str | None = None) -> tuple[list[TimelineItem], int]:
    """Interactions and stage changes of a member, newest first (404 for another club's);
    optionally only one kind (call, email, lead, stage_change, touchpoint, …) or channel."""
    members_service.get_member(session, club_id=club_id, member_id=member_id)
    text = String()
    interactions = select(
        Interaction.id.label("id"), literal("interaction", text).label("source"),
        Interaction.kind.label("kind"), Interaction.channel.label("channel"),
        Interaction.summary.label("summary"), Interaction.outcome.label("outcome"),
        Interaction.next_step.label("next_step"),
        cast(null(), text).label("from_stage"), Interaction.staff_id.label("staff_id"),
        Interaction.occurred_at.label("occurred_at"),
        Interaction.touchpoint_id.label("touchpoint_id"), Interaction.task_id.label("task_id"),
    ).where(Interaction.member_id == member_id, Interaction.club_id == club_id)
    changes = select(
        StageChange.id, literal("stage", text), literal("stage_change", text),
        cast(null(), text), StageChange.reason, StageChange.to_stage, cast(null(), text),
        StageChange.from_stage,
        cast(null(), BigInteger), StageChange.at, cast(null(), BigInteger),
        cast(null(), BigInteger),
    ).where(StageChange.member_id == member_id, StageChange.club_id == club_id)
    both = union_all(interactions, changes).subquery("t")
    where = []
    if kind:
        where.append(both.c.kind == kind)
    if channel:
        where.append(both.c.channel == channel)
    total = session.scalar(select(func.count()).select_from(both).where(*where)) or 0
    rows = session.execute(select(both).where(*where)
                           .order_by(both.c.occurred_at.desc(), both.c.source, both.c.id.desc())
                           .limit(limit).offset(offset)).all()
    staff_ids = {r.staff_id for r in rows if r.staff_id}
    names = dict(session.execute(select(StaffUser.id, StaffUser.name)
                                 .where(StaffUser.id.in_(staff_ids))).all()) if staff_ids else {}
    items = []
    for r in rows:
        occurred = r.occurred_at
        if r.source == "stage":
            summary = f"Stage: {r.from_stage or 'new'} → {r.outcome} ({r.summary})"
        else:
            summary = r.summary
        items.append(TimelineItem(
            source=r.source, kind=r.kind, channel=r.channel, summary=summary, outcome=r.outcome,
            next_step=r.next_step,
            by=(names.get(r.staff_id, "staff") if r.staff_id
                else "member" if r.channel == MEMBER_CHANNEL else "engine"),
            staff_id=r.staff_id,
            occurred_at=occurred, touchpoint_id=r.touchpoint_id, task_id=r.task_id))
    return items, total
