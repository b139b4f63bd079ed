from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, StringConstraints, field_validator, model_validator
from pydantic_core import PydanticCustomError

from app.core.schemas import In, Out
from app.members.schemas import ConsentFlags, Email, Name, Phone

MAX_ID = 2**63 - 1
StaffId = Annotated[int, Field(ge=1, le=MAX_ID)]


class TaskKind(StrEnum):
    call = "call"  # the retention engine's call tasks
    call_back = "call_back"
    trainer = "trainer"
    renewal_offer = "renewal_offer"
    follow_up = "follow_up"
    trial_follow_up = "trial_follow_up"
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


class TaskUpdate(In):
    """Reassign or reschedule an open task: any subset of the fields (null clears an assignee)."""

    title: str | None = Field(None, min_length=1, max_length=200)
    details: str | None = Field(None, max_length=5000)
    assignee_role: AssigneeRole | None = None
    assignee_user_id: StaffId | None = None
    due_date: date | None = None

    @field_validator("title", "due_date")
    @classmethod
    def _not_cleared(cls, value):
        if value is None:
            raise PydanticCustomError("required", "this cannot be removed, only changed")
        return value


class TaskCancel(In):
    reason: str = Field(min_length=1, max_length=500)


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
    member_phone: str | None = None
    member_preferred_channel: str | None = None


class InteractionKind(StrEnum):
    call = "call"
    email = "email"
    sms = "sms"
    desk_visit = "desk_visit"
    meeting = "meeting"
    note = "note"


class CallOutcome(StrEnum):
    reached = "reached"
    no_answer = "no_answer"
    voicemail = "voicemail"
    wrong_number = "wrong_number"
    call_back_later = "call_back_later"


class InteractionCreate(In):
    """A call (outcome from `CallOutcome`), an email or SMS sent by staff, a conversation, a note.

    `next_step_date` creates a call-back task for that day, assigned to whoever logs this.
    """

    kind: InteractionKind
    channel: str | None = Field(None, max_length=20, description="default: from the kind")
    summary: str = Field(min_length=1, max_length=500)
    outcome: str | None = Field(None, max_length=200, description="for a call: reached, "
                                "no_answer, voicemail, wrong_number or call_back_later")
    next_step: str | None = Field(None, max_length=500)
    next_step_date: date | None = None

    @model_validator(mode="after")
    def _call_outcome(self) -> Self:
        if (self.kind is InteractionKind.call and self.outcome is not None
                and self.outcome not in CallOutcome.__members__):
            raise PydanticCustomError(
                "call_outcome", "a call's outcome is one of: " + ", ".join(CallOutcome))
        if self.next_step_date is not None and not self.next_step:
            raise PydanticCustomError("next_step_required",
                                      "give next_step: what should happen on next_step_date")
        return self


class TimelineItem(Out):
    source: str  # interaction | stage
    kind: str
    channel: str | None
    summary: str
    outcome: str | None
    next_step: str | None = None
    by: str  # the staff member's name, "member" (in the member app) or "engine"
    staff_id: int | None
    occurred_at: datetime
    touchpoint_id: int | None
    task_id: int | None


# --- leads ---------------------------------------------------------------------------------------

class LeadStage(StrEnum):
    new = "new"
    contacted = "contacted"
    trial_booked = "trial_booked"
    trial_done = "trial_done"
    won = "won"
    lost = "lost"


class LostReason(StrEnum):
    price = "price"
    location = "location"
    schedule = "schedule"
    chose_competitor = "chose_competitor"
    not_interested = "not_interested"
    no_response = "no_response"
    other = "other"


class LeadSource(StrEnum):
    walk_in = "walk_in"
    website = "website"
    referral = "referral"
    campaign = "campaign"
    phone = "phone"
    social = "social"
    other = "other"


SourceDetail = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Note = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Utm = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class LeadCreate(In):
    """The desk records a prospect: a new person (name and contacts), or `member_id` of a person
    the club already knows who holds no membership."""

    member_id: int | None = Field(None, ge=1, le=MAX_ID)
    first_name: Name | None = None
    last_name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    consents: ConsentFlags | None = None
    different_person: bool = Field(False, description="create even if the email or phone "
                                                      "belongs to another member")
    source: LeadSource
    source_detail: SourceDetail | None = Field(None, description="campaign name, who referred "
                                                                 "them, …")
    assignee_user_id: StaffId | None = None
    note: Note | None = None

    @field_validator("email", "phone", "source_detail", "note", mode="before")
    @classmethod
    def _blank_is_none(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _person(self) -> Self:
        person = (self.first_name, self.last_name, self.email, self.phone, self.consents)
        if self.member_id is not None:
            if any(v is not None for v in person):
                raise PydanticCustomError(
                    "member_or_person", "give either member_id or the person's details, not both")
        elif self.first_name is None or self.last_name is None:
            raise PydanticCustomError(
                "person_required", "give first_name and last_name (or member_id of a person "
                                   "the club already knows)")
        return self


class LeadStageMove(In):
    stage: LeadStage
    lost_reason: LostReason | None = Field(None, description="required when stage is lost")
    trial_date: date | None = Field(None, description="required when stage is trial_booked")
    note: Note | None = None

    @model_validator(mode="after")
    def _required(self) -> Self:
        if self.stage is LeadStage.lost and self.lost_reason is None:
            raise PydanticCustomError("lost_reason_required", "say why the lead was lost: "
                                      "lost_reason is one of " + ", ".join(LostReason))
        if self.stage is not LeadStage.lost and self.lost_reason is not None:
            raise PydanticCustomError("lost_reason_only_when_lost",
                                      "lost_reason is given only with stage lost")
        if self.stage is LeadStage.trial_booked and self.trial_date is None:
            raise PydanticCustomError("trial_date_required",
                                      "give trial_date: the day of the trial")
        return self


class LeadUpdate(In):
    """Reassign a lead or correct its source; null assignee_user_id unassigns."""

    assignee_user_id: StaffId | None = None
    source: LeadSource | None = None
    source_detail: SourceDetail | None = None

    @field_validator("source")
    @classmethod
    def _source_kept(cls, value):
        if value is None:
            raise PydanticCustomError("required", "a lead always has a source")
        return value


class LeadChangeRead(Out):
    from_stage: str | None
    to_stage: str
    lost_reason: str | None
    note: str | None
    staff_id: int | None
    at: datetime


class LeadRead(Out):
    id: int
    member_id: int
    name: str
    email: str | None
    phone: str | None
    stage: str
    source: str
    source_detail: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    assignee_user_id: int | None
    trial_date: date | None
    lost_reason: str | None
    lost_note: str | None
    created_at: datetime
    first_contact_at: datetime | None
    won_at: datetime | None
    won_membership_id: int | None
    lost_at: datetime | None
    updated_at: datetime


class LeadDetail(LeadRead):
    history: list[LeadChangeRead]


# --- the website form ------------------------------------------------------------------------

FormId = Annotated[str, StringConstraints(min_length=1, max_length=100,
                                          pattern=r"^[!-~]+$")]


class WebsiteLeadCreate(In):
    """A submission of the club website's enquiry form (sent with the website's X-Api-Key)."""

    first_name: Name
    last_name: Name
    email: Email | None = None
    phone: Phone | None = None
    message: str | None = Field(None, max_length=2000)
    consent_email: bool = Field(False, description="agreed to receive email")
    consent_sms: bool = Field(False, description="agreed to receive SMS")
    utm_source: Utm | None = None
    utm_medium: Utm | None = None
    utm_campaign: Utm | None = None
    form_id: FormId | None = Field(None, description="a unique id per form submission; sending "
                                   "the same one again is answered 200 without a second record")

    @field_validator("email", "phone", "message", "utm_source", "utm_medium", "utm_campaign",
                     mode="before")
    @classmethod
    def _blank_is_none(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _contact(self) -> Self:
        if self.email is None and self.phone is None:
            raise PydanticCustomError("contact_required",
                                      "give an email address or a phone number (or both)")
        return self


class WebsiteLeadReceived(Out):
    id: int = Field(description="the submission's reference")
    status: str = "received"


class WebsiteKeyCreate(In):
    name: str = Field(min_length=1, max_length=100, description="e.g. 'www.example-gym.com'")


class WebsiteKeyRead(Out):
    id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None


class WebsiteKeyCreated(WebsiteKeyRead):
    key: str = Field(description="shown once: configure the website with it (X-Api-Key)")
