from datetime import date, datetime

from pydantic import Field

from app.core.schemas import In, Out
from app.retention.playbook import Channel, Stage, StopCondition, Trigger


class DefinitionCreate(In):
    key: str = Field(pattern=r"^[a-z0-9_]{2,50}$", description="stable identifier, e.g. welcome")
    name: str = Field(min_length=1, max_length=200)
    stage: Stage | None = Field(None, description="None: any stage with a running membership")
    trigger: Trigger
    days: int | None = Field(None, ge=0, le=730)
    visits: int | None = Field(None, ge=1, le=100_000)
    channel: Channel
    subject_template: str = Field("", max_length=500)
    body_template: str = Field(min_length=1, max_length=10_000)
    stop_condition: StopCondition = StopCondition.none
    priority: int = Field(50, ge=0, le=100, description="higher is more important")
    holdout_share: float | None = Field(None, ge=0, le=0.9,
                                        description="None: the club's holdout share")
    enabled: bool = True


class DefinitionUpdate(In):
    name: str | None = Field(None, min_length=1, max_length=200)
    stage: Stage | None = None
    trigger: Trigger | None = None
    days: int | None = Field(None, ge=0, le=730)
    visits: int | None = Field(None, ge=1, le=100_000)
    channel: Channel | None = None
    subject_template: str | None = Field(None, max_length=500)
    body_template: str | None = Field(None, min_length=1, max_length=10_000)
    stop_condition: StopCondition | None = None
    priority: int | None = Field(None, ge=0, le=100)
    holdout_share: float | None = Field(None, ge=0, le=0.9)
    enabled: bool | None = None


class DefinitionRead(Out):
    id: int
    key: str
    name: str
    stage: str | None
    trigger: str
    days: int | None
    visits: int | None
    channel: str
    subject_template: str
    body_template: str
    stop_condition: str
    priority: int
    holdout_share: float | None
    enabled: bool
    is_default: bool


class PreviewRead(Out):
    definition_id: int
    member_id: int
    channel: str
    subject: str
    body: str


class StageRead(Out):
    member_id: int
    stage: str
    since: date
    cycle: str
    reason: str
    membership_id: int | None


class StageChangeRead(Out):
    from_stage: str | None
    to_stage: str
    on_date: date
    at: datetime
    reason: str
    source: str


class TouchpointRead(Out):
    id: int
    member_id: int
    definition_id: int
    key: str
    name: str
    cycle: str
    stage: str | None
    channel: str
    trigger_on: date
    due_at: datetime
    status: str
    reason: str | None
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    recipient: str | None
    subject: str | None


class MemberRetentionRead(Out):
    stage: StageRead | None
    history: list[StageChangeRead]
    touchpoints: list[TouchpointRead]


class RunRequest(In):
    as_of: date | None = None
    dry_run: bool = False
    force: bool = False


class RunRead(Out):
    club_id: int
    as_of: date
    dry_run: bool
    skipped: bool
    stage_counts: dict[str, int]
    transitions: dict[str, int]
    scheduled: dict[str, int]
    held_out: dict[str, int]
    cancelled: dict[str, int]
    seconds: float
    phases: dict[str, float]
