from datetime import date, datetime
from enum import StrEnum

from pydantic import Field

from app.core.schemas import In, Out


class TaskKind(StrEnum):
    call = "call"
    trainer = "trainer"
    renewal_offer = "renewal_offer"
    follow_up = "follow_up"
    congratulate = "congratulate"
    other = "other"


class TaskStatus(StrEnum):
    open = "open"
    done = "done"
    cancelled = "cancelled"


class AssigneeRole(StrEnum):
    front_desk = "front_desk"
    trainer = "trainer"
    manager = "manager"


class TaskCreate(In):
    title: str = Field(min_length=1, max_length=200)
    details: str | None = Field(None, max_length=5000)
    kind: TaskKind = TaskKind.follow_up
    member_id: int | None = Field(None, ge=1, le=2**63 - 1)
    assignee_role: AssigneeRole | None = None
    assignee_user_id: int | None = Field(None, ge=1, le=2**63 - 1)
    due_date: date | None = Field(None, description="default: today in the club")


class TaskComplete(In):
    outcome: str = Field(min_length=1, max_length=1000)


class TaskRead(Out):
    id: int
    member_id: int | None
    member_name: str | None = None
    title: str
    details: str | None
    kind: str
    assignee_role: str | None
    assignee_user_id: int | None
    due_date: date
    status: str
    outcome: str | None
    completed_at: datetime | None
    completed_by: int | None
    touchpoint_id: int | None
    created_at: datetime
    overdue: bool = False


class InteractionKind(StrEnum):
    call = "call"
    email = "email"
    sms = "sms"
    desk_visit = "desk_visit"
    meeting = "meeting"
    note = "note"


class InteractionCreate(In):
    kind: InteractionKind
    channel: str | None = Field(None, max_length=20)
    summary: str = Field(min_length=1, max_length=500)
    outcome: str | None = Field(None, max_length=200)


class TimelineItem(Out):
    source: str  # interaction | stage
    kind: str
    channel: str | None
    summary: str
    outcome: str | None
    by: str  # "engine" or the staff member's name
    staff_id: int | None
    occurred_at: datetime
    touchpoint_id: int | None
    task_id: int | None
