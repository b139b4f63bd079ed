from typing import Annotated

from fastapi import APIRouter, Query

from app.clubs.deps import DeskActor, StaffActor
from app.core.deps import SessionDep
from app.core.schemas import IdPath, Limit, Offset, Page
from app.core.types import MAX_ID
from app.crm import service
from app.crm.schemas import (
    InteractionCreate,
    TaskCancel,
    TaskComplete,
    TaskCreate,
    TaskRead,
    TaskStatus,
    TaskUpdate,
    TimelineItem,
)

router = APIRouter(prefix="/api/v1", tags=["crm"])


@router.get("/tasks/today", response_model=list[TaskRead])
def tasks_today(session: SessionDep, actor: StaffActor):
    """Open tasks due today or overdue, for me or my role (owners and managers: all): overdue
    first, then today's; with the member's phone and preferred channel."""
    return service.tasks_today(session, actor=actor)


@router.get("/tasks", response_model=Page[TaskRead])
def list_tasks(session: SessionDep, actor: StaffActor, status: TaskStatus | None = None,
               member_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
               limit: Limit = 50, offset: Offset = 0):
    items, total = service.list_tasks(session, actor=actor,
                                      status=status.value if status else None,
                                      member_id=member_id, limit=limit, offset=offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.post("/tasks", response_model=TaskRead, status_code=201)
def create_task(session: SessionDep, actor: DeskActor, body: TaskCreate):
    return service.create_task(session, actor=actor, data=body)


@router.post("/tasks/{task_id}/complete", response_model=TaskRead)
def complete_task(session: SessionDep, actor: StaffActor, task_id: IdPath("task id"),
                  body: TaskComplete):
    """Done, with the outcome (a trainer completes only their own or trainer tasks)."""
    return service.complete_task(session, actor=actor, task_id=task_id, outcome=body.outcome)


@router.patch("/tasks/{task_id}", response_model=TaskRead)
def update_task(session: SessionDep, actor: DeskActor, task_id: IdPath("task id"),
                body: TaskUpdate):
    """Reassign (person or role) or reschedule an open task."""
    return service.update_task(session, actor=actor, task_id=task_id, data=body)


@router.post("/tasks/{task_id}/cancel", response_model=TaskRead)
def cancel_task(session: SessionDep, actor: DeskActor, task_id: IdPath("task id"),
                body: TaskCancel):
    """Cancel an open task, with the reason."""
    return service.cancel_task(session, actor=actor, task_id=task_id, reason=body.reason)


Filter = Annotated[str | None, Query(min_length=1, max_length=30)]


@router.get("/members/{member_id}/timeline", response_model=Page[TimelineItem])
def timeline(session: SessionDep, actor: StaffActor, member_id: IdPath("member id"),
             limit: Limit = 50, offset: Offset = 0,
             kind: Filter = None, channel: Filter = None):
    """Everything that happened with a member: touchpoints, tasks, calls, emails, SMS, lead
    and stage changes; `kind` / `channel` keep one kind (call, email, sms, lead, touchpoint,
    stage_change, …) or one channel (phone, email, sms, …)."""
    items, total = service.timeline(session, club_id=actor.club_id, member_id=member_id,
                                    limit=limit, offset=offset, kind=kind, channel=channel)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.post("/members/{member_id}/interactions", response_model=TimelineItem, status_code=201)
def add_interaction(session: SessionDep, actor: DeskActor, member_id: IdPath("member id"),
                    body: InteractionCreate):
    """Log a call (outcome, next step), an email or SMS sent, a desk conversation or a note.
    Email/SMS without the member's consent: 409 no_consent. `next_step_date` creates a
    call-back task (its id is `task_id`)."""
    i = service.add_interaction(session, actor=actor, member_id=member_id, data=body)
    return TimelineItem(source="interaction", kind=i.kind, channel=i.channel, summary=i.summary,
                        outcome=i.outcome, next_step=i.next_step, by=actor.name,
                        staff_id=i.staff_id, occurred_at=i.occurred_at, touchpoint_id=None,
                        task_id=i.task_id)
