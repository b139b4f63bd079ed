from typing import Annotated

from fastapi import APIRouter, Query

from app.core.deps import DeskActor, SessionDep, StaffActor
from app.core.schemas import IdPath, Page
from app.core.types import MAX_ID
from app.crm import service
from app.crm.schemas import (
    InteractionCreate,
    TaskComplete,
    TaskCreate,
    TaskRead,
    TaskStatus,
    TimelineItem,
)

router = APIRouter(prefix="/api/v1", tags=["crm"])


@router.get("/tasks/today", response_model=list[TaskRead])
def tasks_today(session: SessionDep, actor: StaffActor):
    """Open tasks due today or overdue, for me or my role (owners and managers: all), oldest first."""
    return service.tasks_today(session, actor=actor)


@router.get("/tasks", response_model=Page[TaskRead])
def list_tasks(session: SessionDep, actor: StaffActor, status: TaskStatus | None = None,
               member_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
               limit: Annotated[int, Query(ge=1, le=200)] = 50,
               offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0):
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


@router.get("/members/{member_id}/timeline", response_model=Page[TimelineItem])
def timeline(session: SessionDep, actor: StaffActor, member_id: IdPath("member id"),
             limit: Annotated[int, Query(ge=1, le=200)] = 50,
             offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0):
    """Everything that happened with a member: touchpoints, tasks, calls, stage changes."""
    items, total = service.timeline(session, club_id=actor.club_id, member_id=member_id,
                                    limit=limit, offset=offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.post("/members/{member_id}/interactions", response_model=TimelineItem, status_code=201)
def add_interaction(session: SessionDep, actor: DeskActor, member_id: IdPath("member id"),
                    body: InteractionCreate):
    """Log a call, a conversation at the desk or a note."""
    i = service.add_interaction(session, actor=actor, member_id=member_id, data=body)
    return TimelineItem(source="interaction", kind=i.kind, channel=i.channel, summary=i.summary,
                        outcome=i.outcome, by=actor.name, staff_id=i.staff_id,
                        occurred_at=i.occurred_at, touchpoint_id=None, task_id=None)
