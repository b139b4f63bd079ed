"""Trainers, PT packages and sessions, group classes, results and the schedule feed."""
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, model_validator
from pydantic_core import PydanticCustomError

from app.billing.schemas import Payments, PriceIn, RefId, SaleRead
from app.core.schemas import In, Out
from app.memberships.schemas import AccessTime, Day, field_error


def _utc_instant(value: datetime) -> datetime:
    if not 2000 <= value.year <= 2100:
        raise PydanticCustomError("instant_range", "give a time between the years 2000 and 2100")
    return value.astimezone(UTC)


# An instant given with its UTC offset (a naive time is refused with 422), normalised to UTC.
Instant = Annotated[AwareDatetime, AfterValidator(_utc_instant)]
Weekday = Annotated[int, Field(ge=1, le=7, description="ISO weekday: 1 = Monday … 7 = Sunday")]
Speciality = Annotated[str, Field(min_length=1, max_length=50)]
Duration = Annotated[int, Field(ge=15, le=240, description="minutes")]


# --- trainers -------------------------------------------------------------------------------------

class TrainerCreate(In):
    user_id: RefId = Field(description="a staff user holding the trainer role in this club")
    specialities: list[Speciality] = Field(default_factory=list, max_length=20)
    bio: str | None = Field(None, max_length=2000)
    active: bool = True


class TrainerUpdate(In):
    specialities: list[Speciality] | None = Field(None, max_length=20)
    bio: str | None = Field(None, max_length=2000)
    active: bool | None = None


class TrainerRead(Out):
    id: int
    user_id: int
    name: str
    specialities: list[str]
    bio: str | None
    active: bool
    has_feed_token: bool


class HoursInterval(In):
    weekday: Weekday
    start: AccessTime
    end: AccessTime

    @model_validator(mode="after")
    def _ordered(self) -> "HoursInterval":
        if self.end <= self.start:
            raise field_error("HoursInterval", "end", "end must be after start (same day)",
                              self.end.strftime("%H:%M"))
        return self


class HoursSet(In):
    """The whole week at once (replaces what was there); several intervals a day are fine."""

    intervals: list[HoursInterval] = Field(max_length=70)

    @model_validator(mode="after")
    def _no_overlap(self) -> "HoursSet":
        ordered = sorted(self.intervals, key=lambda iv: (iv.weekday, iv.start))
        for a, b in pairwise(ordered):
            if a.weekday == b.weekday and b.start < a.end:
                raise field_error("HoursSet", "intervals",
                                  f"intervals on weekday {a.weekday} overlap "
                                  f"({a.start:%H:%M}–{a.end:%H:%M} and {b.start:%H:%M}–"
                                  f"{b.end:%H:%M})", None)
        return self


class HoursIntervalRead(BaseModel):
    weekday: int
    start: AccessTime
    end: AccessTime


class HoursRead(BaseModel):
    trainer_id: int
    timezone: str = Field(description="the club's zone the times are wall-clock times in")
    intervals: list[HoursIntervalRead]


class AbsenceCreate(In):
    start_date: Day
    end_date: Day
    kind: Literal["vacation", "sick", "other"] = "vacation"
    note: str | None = Field(None, max_length=500)

    @model_validator(mode="after")
    def _ordered(self) -> "AbsenceCreate":
        if self.end_date < self.start_date:
            raise field_error("AbsenceCreate", "end_date", "end_date must not be before "
                              "start_date", self.end_date.isoformat())
        if (self.end_date - self.start_date).days > 366:
            raise field_error("AbsenceCreate", "end_date", "an absence is at most a year",
                              self.end_date.isoformat())
        return self


class AbsenceRead(Out):
    id: int
    trainer_id: int
    start_date: date
    end_date: date
    kind: str
    note: str | None
    created_at: datetime


class AbsenceCreated(AbsenceRead):
    booked_session_ids: list[int] = Field(
        description="sessions already booked on these days: reschedule or cancel them")


class TrainerSettingsRead(BaseModel):
    pt_cancel_hours: int = Field(description="a member may cancel a PT session free of charge "
                                             "until this many hours before it starts")


class TrainerSettingsUpdate(In):
    pt_cancel_hours: int = Field(ge=0, le=168)


class FeedTokenRead(BaseModel):
    token: str = Field(description="shown once; only its hash is stored")
    url: str
    created_at: datetime


class ClientNoteCreate(In):
    text: str = Field(min_length=1, max_length=5000)


class ClientNoteRead(Out):
    id: int
    trainer_id: int
    member_id: int
    session_id: int | None
    text: str
    staff_id: int | None
    created_at: datetime


class ClientRead(BaseModel):
    member_id: int
    name: str
    sessions_completed: int
    last_session_at: datetime | None
    next_session_at: datetime | None
    sessions_left: int = Field(description="on packages valid today")


# --- PT products and packages -----------------------------------------------------------------

class PtProductCreate(In):
    name: str = Field(min_length=1, max_length=100)
    sessions: int = Field(ge=1, le=500)
    price: PriceIn
    validity_days: int = Field(ge=1, le=3660)
    active: bool = True


class PtProductUpdate(In):
    name: str | None = Field(None, min_length=1, max_length=100)
    sessions: int | None = Field(None, ge=1, le=500)
    price: PriceIn | None = None
    validity_days: int | None = Field(None, ge=1, le=3660)
    active: bool | None = None


class PtProductRead(Out):
    id: int
    name: str
    sessions: int
    price: Decimal
    validity_days: int
    active: bool


class PtPackageLine(In):
    """A sale line of kind "pt_package" (POST /sales, or POST /members/{id}/pt-packages)."""

    kind: Literal["pt_package"] = "pt_package"
    package_product_id: RefId
    trainer_id: RefId | None = Field(None, description="the member's home trainer, optional")
    start_date: Day | None = Field(None, description="first valid day; default today; the past "
                                                     "only for managers")
    price: PriceIn | None = Field(None, description="override the product's price (managers)")


class PtPackageSell(In):
    package_product_id: RefId
    trainer_id: RefId | None = None
    start_date: Day | None = None
    price: PriceIn | None = None
    payments: Payments = Field(default_factory=list)
    note: str | None = Field(None, max_length=1000)


class PtPackageRead(BaseModel):
    id: int
    member_id: int
    product_id: int
    product_name: str
    trainer_id: int | None
    sale_id: int | None
    sessions_total: int
    sessions_used: int
    sessions_left: int
    price: Decimal
    valid_from: date
    valid_until: date
    status: Literal["pending", "active", "used_up", "expired"]
    created_at: datetime


class PtPackageSold(PtPackageRead):
    sale: SaleRead


class MemberPtPackages(BaseModel):
    member_id: int
    as_of: date
    sessions_available: int = Field(description="sessions left on packages valid on as_of")
    sessions_booked: int = Field(description="upcoming booked sessions that will spend one")
    items: list[PtPackageRead]


# --- PT sessions ------------------------------------------------------------------------------

class SessionBook(In):
    member_id: RefId
    trainer_id: RefId | None = Field(None, description="default: the calling trainer")
    start: Instant
    duration_minutes: Duration = 60
    complimentary: bool = Field(False, description="free, spends no package (managers only)")


class SessionReschedule(In):
    start: Instant
    duration_minutes: Duration | None = None
    trainer_id: RefId | None = Field(None, description="move to another trainer (not trainers)")


class SessionCancel(In):
    by: Literal["member", "club"] = Field(
        "member", description="club: the club called it off, never charged (managers and the "
                              "session's trainer)")
    reason: str | None = Field(None, max_length=200)


class SessionComplete(In):
    note: str | None = Field(None, max_length=5000, description="kept as a client note")


class SessionFromTask(In):
    start: Instant
    duration_minutes: Duration = 60
    trainer_id: RefId | None = Field(None, description="default the caller; others must give it")


class SessionRead(BaseModel):
    id: int
    trainer_id: int
    trainer_name: str
    member_id: int
    member_name: str
    starts_at: datetime
    ends_at: datetime
    duration_minutes: int
    status: Literal["booked", "completed", "no_show", "cancelled"]
    complimentary: bool
    charged: bool = Field(description="a package session was spent on it")
    package_id: int | None
    late_cancel: bool
    cancelled_by: str | None
    cancel_reason: str | None
    task_id: int | None
    created_at: datetime


# --- classes ----------------------------------------------------------------------------------

class ClassTypeCreate(In):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(None, max_length=2000)
    capacity: int = Field(ge=1, le=500)
    duration_minutes: int = Field(ge=5, le=480)
    active: bool = True


class ClassTypeUpdate(In):
    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=2000)
    capacity: int | None = Field(None, ge=1, le=500)
    duration_minutes: int | None = Field(None, ge=5, le=480)
    active: bool | None = None


class ClassTypeRead(Out):
    id: int
    name: str
    description: str | None
    capacity: int
    duration_minutes: int
    active: bool


class SlotCreate(In):
    class_type_id: RefId
    weekday: Weekday
    start_time: AccessTime
    trainer_id: RefId
    capacity: int | None = Field(None, ge=1, le=500, description="default: the class type's")
    room: str | None = Field(None, max_length=50)
    active: bool = True


class SlotUpdate(In):
    """Changes apply to occurrences generated afterwards; generated ones keep their terms."""

    weekday: Weekday | None = None
    start_time: AccessTime | None = None
    trainer_id: RefId | None = None
    capacity: int | None = Field(None, ge=1, le=500)
    room: str | None = Field(None, max_length=50)
    active: bool | None = None


class SlotRead(Out):
    id: int
    class_type_id: int
    weekday: int
    start_time: AccessTime
    trainer_id: int
    capacity: int
    room: str | None
    active: bool


class GenerateResult(BaseModel):
    date_from: date
    date_to: date
    created: int
    existing: int


class OccurrenceRead(BaseModel):
    id: int
    slot_id: int
    class_type_id: int
    name: str
    trainer_id: int
    trainer_name: str
    day: date
    starts_at: datetime
    ends_at: datetime
    capacity: int
    room: str | None
    booked_count: int
    waitlist_count: int
    attended_count: int
    status: str


class ClassBookingCreate(In):
    member_id: RefId


class ClassBookingRead(BaseModel):
    id: int
    occurrence_id: int
    member_id: int
    member_name: str
    status: Literal["booked", "waitlisted", "cancelled"]
    waitlist_position: int | None
    queued_at: datetime
    attended_at: datetime | None
    attendance_source: str | None
    promoted_at: datetime | None


class ClassBookingCancelled(BaseModel):
    booking: ClassBookingRead
    promoted: ClassBookingRead | None = Field(description="the first on the waitlist, now booked")


class OccurrenceDetail(OccurrenceRead):
    bookings: list[ClassBookingRead]


class AttendanceMark(In):
    member_ids: list[RefId] = Field(min_length=1, max_length=500)
    attended: bool = True


class AttendanceResult(BaseModel):
    occurrence_id: int
    marked: int
    not_booked: list[int] = Field(description="members without a confirmed booking: unchanged")


# --- results ----------------------------------------------------------------------------------

class TrainerResults(BaseModel):
    trainer_id: int
    trainer_name: str
    date_from: date
    date_to: date
    sessions_delivered: int = Field(description="completed PT sessions (incl. complimentary)")
    complimentary_sessions: int
    no_shows: int
    late_cancellations: int
    distinct_clients: int = Field(description="members with a completed session in the period")
    package_sales: int = Field(description="packages sold in the period with this home trainer")
    package_repurchases: int = Field(description="of those, bought by a member who had a "
                                                 "package before")
    package_revenue: Decimal
    classes_held: int
    class_capacity: int
    class_attendance: int
    class_fill_rate: float | None = Field(description="attended / capacity")
    memberships_ended: int = Field(description="memberships of PT clients ending in the period")
    memberships_renewed: int
    renewal_rate: float | None


class ResultsTotals(BaseModel):
    date_from: date
    date_to: date
    trainers: list[TrainerResults]
