from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Query, Response

from app.clubs.deps import DeskActor, ManagerActor, StaffActor
from app.core.deps import SessionDep, SettingsDep
from app.core.idempotency import Idempotency, run_once
from app.core.schemas import IdPath, LargeOffset, Limit, Page
from app.core.types import MAX_ID
from app.crm.schemas import TaskRead
from app.memberships.schemas import Day
from app.trainers import classes, feed, packages, service, sessions
from app.trainers.results import trainer_results
from app.trainers.schemas import (
    AbsenceCreate,
    AbsenceCreated,
    AbsenceRead,
    AttendanceMark,
    AttendanceResult,
    ClassBookingCancelled,
    ClassBookingCreate,
    ClassBookingRead,
    ClassTypeCreate,
    ClassTypeRead,
    ClassTypeUpdate,
    ClientNoteCreate,
    ClientNoteRead,
    ClientRead,
    FeedTokenRead,
    GenerateResult,
    HoursRead,
    HoursSet,
    MemberPtPackages,
    OccurrenceDetail,
    OccurrenceRead,
    PtPackageLine,
    PtPackageSell,
    PtPackageSold,
    PtProductCreate,
    PtProductRead,
    PtProductUpdate,
    SessionBook,
    SessionCancel,
    SessionComplete,
    SessionFromTask,
    SessionRead,
    SessionReschedule,
    SlotCreate,
    SlotRead,
    SlotUpdate,
    TrainerCreate,
    TrainerRead,
    TrainerResults,
    TrainerSettingsRead,
    TrainerSettingsUpdate,
    TrainerUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["trainers and classes"])

From = Annotated[Day, Query(alias="from", description="first club-local day")]
To = Annotated[Day, Query(alias="to", description="last club-local day (inclusive)")]
OptFrom = Annotated[Day | None, Query(alias="from", description="first club-local day")]
OptTo = Annotated[Day | None, Query(alias="to", description="last club-local day (inclusive)")]
OptId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
TrainerId = IdPath("trainer id")
SessionId = IdPath("session id")


# ----------------------------------------------------------------------------- settings, results
# (static paths before /trainers/{trainer_id})

@router.get("/trainers/settings", response_model=TrainerSettingsRead)
def get_settings(session: SessionDep, actor: StaffActor):
    """The club's PT rules: the free-cancellation window in hours."""
    return service.get_settings(session, club_id=actor.club_id)


@router.patch("/trainers/settings", response_model=TrainerSettingsRead)
def update_settings(session: SessionDep, actor: ManagerActor, body: TrainerSettingsUpdate):
    return service.update_settings(session, actor=actor, pt_cancel_hours=body.pt_cancel_hours)


@router.get("/trainers/results", response_model=list[TrainerResults])
def all_results(session: SessionDep, actor: StaffActor, date_from: From, date_to: To):
    """Every trainer's results for the period (owners, managers); a trainer gets their own row."""
    return trainer_results(session, actor=actor, date_from=date_from, date_to=date_to)


@router.get("/trainers/me/tasks", response_model=list[TaskRead])
def my_tasks(session: SessionDep, actor: StaffActor):
    """Open tasks for trainers (the role) or for me, oldest due first."""
    return sessions.my_tasks(session, actor=actor)


# ----------------------------------------------------------------------------- PT sessions

@router.post("/trainers/sessions", response_model=SessionRead, status_code=201)
def book_session(session: SessionDep, actor: StaffActor, body: SessionBook):
    """Book a PT session (desk and managers for any trainer; a trainer with themselves)."""
    return sessions.book_session(session, actor=actor, member_id=body.member_id,
                                 trainer_id=body.trainer_id, start=body.start,
                                 duration_minutes=body.duration_minutes,
                                 complimentary=body.complimentary)


@router.get("/trainers/sessions", response_model=Page[SessionRead])
def list_sessions(session: SessionDep, actor: StaffActor, trainer_id: OptId = None,
                  member_id: OptId = None, date_from: OptFrom = None, date_to: OptTo = None,
                  status: Annotated[str | None, Query(
                      pattern="^(booked|completed|no_show|cancelled)$")] = None,
                  limit: Limit = 100, offset: LargeOffset = 0):
    return sessions.list_sessions(session, actor=actor, trainer_id=trainer_id,
                                  member_id=member_id, date_from=date_from, date_to=date_to,
                                  status=status, limit=limit, offset=offset)


@router.post("/trainers/sessions/from-task/{task_id}", response_model=SessionRead,
             status_code=201)
def book_from_task(session: SessionDep, actor: StaffActor, task_id: IdPath("task id"),
                   body: SessionFromTask):
    """Book the task's member a complimentary session and close the task ("session booked")."""
    return sessions.book_from_task(session, actor=actor, task_id=task_id, start=body.start,
                                   duration_minutes=body.duration_minutes,
                                   trainer_id=body.trainer_id)


@router.get("/trainers/sessions/{session_id}", response_model=SessionRead)
def get_session(session: SessionDep, actor: StaffActor, session_id: SessionId):
    return sessions.read_session(session, club_id=actor.club_id, session_id=session_id)


@router.post("/trainers/sessions/{session_id}/reschedule", response_model=SessionRead)
def reschedule(session: SessionDep, actor: StaffActor, session_id: SessionId,
               body: SessionReschedule):
    return sessions.reschedule_session(session, actor=actor, session_id=session_id,
                                       start=body.start, duration_minutes=body.duration_minutes,
                                       trainer_id=body.trainer_id)


@router.post("/trainers/sessions/{session_id}/cancel", response_model=SessionRead)
def cancel(session: SessionDep, actor: StaffActor, session_id: SessionId,
           body: SessionCancel | None = None):
    """Free until the club's window before the start; later, a member's cancellation is spent."""
    body = body or SessionCancel()
    return sessions.cancel_session(session, actor=actor, session_id=session_id, by=body.by,
                                   reason=body.reason)


@router.post("/trainers/sessions/{session_id}/complete", response_model=SessionRead)
def complete(session: SessionDep, actor: StaffActor, session_id: SessionId,
             body: SessionComplete | None = None):
    """Delivered: spends one session of the member's package that expires first."""
    return sessions.complete_session(session, actor=actor, session_id=session_id,
                                     note=body.note if body else None)


@router.post("/trainers/sessions/{session_id}/no-show", response_model=SessionRead)
def no_show(session: SessionDep, actor: StaffActor, session_id: SessionId):
    """The member did not come: spends a session like a delivered one."""
    return sessions.mark_no_show(session, actor=actor, session_id=session_id)


# ----------------------------------------------------------------------------- trainers

@router.post("/trainers", response_model=TrainerRead, status_code=201)
def create_trainer(session: SessionDep, actor: ManagerActor, body: TrainerCreate):
    return service.create_trainer(session, actor=actor, data=body)


@router.get("/trainers", response_model=list[TrainerRead])
def list_trainers(session: SessionDep, actor: StaffActor, active: bool | None = None):
    return service.list_trainers(session, club_id=actor.club_id, active=active)


@router.get("/trainers/{trainer_id}", response_model=TrainerRead)
def get_trainer(session: SessionDep, actor: StaffActor, trainer_id: TrainerId):
    return service.read_trainer(session, club_id=actor.club_id, trainer_id=trainer_id)


@router.patch("/trainers/{trainer_id}", response_model=TrainerRead)
def update_trainer(session: SessionDep, actor: ManagerActor, trainer_id: TrainerId,
                   body: TrainerUpdate):
    return service.update_trainer(session, actor=actor, trainer_id=trainer_id,
                                  changes=body.model_dump(exclude_unset=True))


@router.get("/trainers/{trainer_id}/hours", response_model=HoursRead)
def get_hours(session: SessionDep, actor: StaffActor, trainer_id: TrainerId):
    return service.get_hours(session, club_id=actor.club_id, trainer_id=trainer_id)


@router.put("/trainers/{trainer_id}/hours", response_model=HoursRead)
def set_hours(session: SessionDep, actor: ManagerActor, trainer_id: TrainerId, body: HoursSet):
    """Replace the weekly working hours (club wall-clock time; several intervals a day)."""
    return service.set_hours(session, actor=actor, trainer_id=trainer_id, data=body)


@router.get("/trainers/{trainer_id}/absences", response_model=list[AbsenceRead])
def list_absences(session: SessionDep, actor: StaffActor, trainer_id: TrainerId):
    return service.list_absences(session, club_id=actor.club_id, trainer_id=trainer_id)


@router.post("/trainers/{trainer_id}/absences", response_model=AbsenceCreated, status_code=201)
def add_absence(session: SessionDep, actor: ManagerActor, trainer_id: TrainerId,
                body: AbsenceCreate):
    """Vacation or sick days; lists the sessions already booked on them to move."""
    absence, booked = service.add_absence(session, actor=actor, trainer_id=trainer_id,
                                          start_date=body.start_date, end_date=body.end_date,
                                          kind=body.kind, note=body.note)
    return AbsenceCreated(**AbsenceRead.model_validate(absence).model_dump(),
                          booked_session_ids=booked)


@router.delete("/trainers/{trainer_id}/absences/{absence_id}", status_code=204)
def delete_absence(session: SessionDep, actor: ManagerActor, trainer_id: TrainerId,
                   absence_id: IdPath("absence id")) -> None:
    service.delete_absence(session, actor=actor, trainer_id=trainer_id, absence_id=absence_id)


@router.get("/trainers/{trainer_id}/results", response_model=TrainerResults)
def results(session: SessionDep, actor: StaffActor, trainer_id: TrainerId, date_from: From,
            date_to: To):
    """One trainer's results (owners, managers, or the trainer themselves; else 403)."""
    return trainer_results(session, actor=actor, trainer_id=trainer_id, date_from=date_from,
                           date_to=date_to)[0]


@router.get("/trainers/{trainer_id}/clients", response_model=list[ClientRead])
def clients(session: SessionDep, actor: StaffActor, trainer_id: TrainerId):
    """The trainer's clients (owners, managers, or the trainer themselves)."""
    return sessions.trainer_clients(session, actor=actor, trainer_id=trainer_id)


@router.get("/trainers/{trainer_id}/clients/{member_id}/notes",
            response_model=Page[ClientNoteRead])
def client_notes(session: SessionDep, actor: StaffActor, trainer_id: TrainerId,
                 member_id: IdPath("member id"), limit: Limit = 50, offset: LargeOffset = 0):
    """The trainer's notes about a client (owners, managers, or the trainer themselves)."""
    items, total = sessions.client_notes(session, actor=actor, trainer_id=trainer_id,
                                         member_id=member_id, limit=limit, offset=offset)
    return Page[ClientNoteRead](items=[ClientNoteRead.model_validate(n) for n in items],
                                total=total, limit=limit, offset=offset)


@router.post("/trainers/{trainer_id}/clients/{member_id}/notes", response_model=ClientNoteRead,
             status_code=201)
def add_client_note(session: SessionDep, actor: StaffActor, trainer_id: TrainerId,
                    member_id: IdPath("member id"), body: ClientNoteCreate):
    return sessions.add_client_note(session, actor=actor, trainer_id=trainer_id,
                                    member_id=member_id, text=body.text)


@router.post("/trainers/{trainer_id}/feed-token", response_model=FeedTokenRead, status_code=201)
def rotate_feed_token(session: SessionDep, actor: StaffActor, settings: SettingsDep,
                      trainer_id: TrainerId):
    """A new secret calendar-feed URL (the trainer or a manager); the old one stops working."""
    token, created = feed.rotate_feed_token(session, actor=actor, trainer_id=trainer_id)
    url = (f"{settings.public_base_url.rstrip('/')}/api/v1/trainers/{trainer_id}/schedule.ics"
           f"?token={token}")
    return FeedTokenRead(token=token, url=url, created_at=created)


@router.delete("/trainers/{trainer_id}/feed-token", status_code=204)
def revoke_feed_token(session: SessionDep, actor: StaffActor, trainer_id: TrainerId) -> None:
    feed.revoke_feed_token(session, actor=actor, trainer_id=trainer_id)


@router.get("/trainers/{trainer_id}/schedule.ics", response_class=Response,
            responses={200: {"content": {"text/calendar": {}}}})
def schedule_feed(session: SessionDep, settings: SettingsDep, trainer_id: TrainerId,
                  token: Annotated[str, Query(max_length=200)] = ""):
    """The trainer's schedule as an iCalendar feed; authorised by the secret token in the URL."""
    domain = urlparse(settings.public_base_url).hostname or "fitclub"
    body = feed.schedule_feed(session, trainer_id=trainer_id, token=token, uid_domain=domain)
    return Response(body, media_type="text/calendar; charset=utf-8",
                    headers={"Content-Disposition": f'inline; filename="trainer-{trainer_id}.ics"'})


# ----------------------------------------------------------------------------- PT products, packages

@router.post("/pt-products", response_model=PtProductRead, status_code=201)
def create_product(session: SessionDep, actor: ManagerActor, body: PtProductCreate):
    return packages.create_product(session, actor=actor, data=body)


@router.get("/pt-products", response_model=list[PtProductRead])
def list_products(session: SessionDep, actor: StaffActor, active: bool | None = None):
    return packages.list_products(session, club_id=actor.club_id, active=active)


@router.get("/pt-products/{product_id}", response_model=PtProductRead)
def get_product(session: SessionDep, actor: StaffActor, product_id: IdPath("product id")):
    return packages.get_product(session, club_id=actor.club_id, product_id=product_id)


@router.patch("/pt-products/{product_id}", response_model=PtProductRead)
def update_product(session: SessionDep, actor: ManagerActor, product_id: IdPath("product id"),
                   body: PtProductUpdate):
    return packages.update_product(session, actor=actor, product_id=product_id,
                                   changes=body.model_dump(exclude_unset=True))


@router.get("/members/{member_id}/pt-packages", response_model=MemberPtPackages)
def member_packages(session: SessionDep, actor: StaffActor, member_id: IdPath("member id"),
                    as_of: Annotated[Day | None, Query(description="default today")] = None):
    """The member's PT packages with live balances."""
    return packages.member_packages(session, club_id=actor.club_id, member_id=member_id,
                                    as_of=as_of)


@router.post("/members/{member_id}/pt-packages", response_model=PtPackageSold, status_code=201)
def sell_package(session: SessionDep, actor: DeskActor, member_id: IdPath("member id"),
                 body: PtPackageSell, idem: Idempotency):
    """Sell a PT package (one sale). Send an `Idempotency-Key` so a retry never sells twice."""
    line = PtPackageLine(package_product_id=body.package_product_id, trainer_id=body.trainer_id,
                         start_date=body.start_date, price=body.price)
    return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=201,
                    action=lambda: packages.sell_package(session, actor=actor,
                                                         member_id=member_id, line=line,
                                                         payments=body.payments,
                                                         note=body.note))


# ----------------------------------------------------------------------------- classes

@router.post("/class-types", response_model=ClassTypeRead, status_code=201)
def create_class_type(session: SessionDep, actor: ManagerActor, body: ClassTypeCreate):
    return classes.create_class_type(session, actor=actor, data=body)


@router.get("/class-types", response_model=list[ClassTypeRead])
def list_class_types(session: SessionDep, actor: StaffActor):
    return classes.list_class_types(session, club_id=actor.club_id)


@router.patch("/class-types/{class_type_id}", response_model=ClassTypeRead)
def update_class_type(session: SessionDep, actor: ManagerActor,
                      class_type_id: IdPath("class type id"), body: ClassTypeUpdate):
    return classes.update_class_type(session, actor=actor, class_type_id=class_type_id,
                                     changes=body.model_dump(exclude_unset=True))


@router.post("/classes/timetable", response_model=SlotRead, status_code=201)
def create_slot(session: SessionDep, actor: ManagerActor, body: SlotCreate):
    return classes.create_slot(session, actor=actor, data=body)


@router.get("/classes/timetable", response_model=list[SlotRead])
def list_slots(session: SessionDep, actor: StaffActor):
    return classes.list_slots(session, club_id=actor.club_id)


@router.patch("/classes/timetable/{slot_id}", response_model=SlotRead)
def update_slot(session: SessionDep, actor: ManagerActor, slot_id: IdPath("slot id"),
                body: SlotUpdate):
    return classes.update_slot(session, actor=actor, slot_id=slot_id,
                               changes=body.model_dump(exclude_unset=True))


@router.post("/classes/generate", response_model=GenerateResult)
def generate(session: SessionDep, actor: ManagerActor, date_from: From, date_to: To):
    """Create the classes of the weekly timetable for the days [from, to]; repeatable."""
    return classes.generate_occurrences(session, actor=actor, date_from=date_from,
                                        date_to=date_to)


@router.get("/classes", response_model=list[OccurrenceRead])
def list_classes(session: SessionDep, actor: StaffActor, date_from: From, date_to: To,
                 trainer_id: OptId = None):
    return classes.list_occurrences(session, club_id=actor.club_id, date_from=date_from,
                                    date_to=date_to, trainer_id=trainer_id)


@router.post("/classes/bookings/{booking_id}/cancel", response_model=ClassBookingCancelled)
def cancel_class_booking(session: SessionDep, actor: StaffActor,
                         booking_id: IdPath("booking id")):
    """Cancel a booking (or leave the waitlist); the first waiting member gets the seat."""
    return classes.cancel_class_booking(session, actor=actor, booking_id=booking_id)


@router.get("/classes/{occurrence_id}", response_model=OccurrenceDetail)
def get_class(session: SessionDep, actor: StaffActor, occurrence_id: IdPath("class id")):
    return classes.occurrence_detail(session, club_id=actor.club_id, occurrence_id=occurrence_id)


@router.post("/classes/{occurrence_id}/bookings", response_model=ClassBookingRead,
             status_code=201)
def book_class(session: SessionDep, actor: StaffActor, occurrence_id: IdPath("class id"),
               body: ClassBookingCreate):
    """Book a member with a membership active that day; when full, onto the waitlist."""
    return classes.book_class(session, actor=actor, occurrence_id=occurrence_id,
                              member_id=body.member_id)


@router.post("/classes/{occurrence_id}/attendance", response_model=AttendanceResult)
def mark_attendance(session: SessionDep, actor: StaffActor, occurrence_id: IdPath("class id"),
                    body: AttendanceMark):
    """Mark who came (desk, managers, the class's trainer); a turnstile entry also counts."""
    return classes.mark_attendance(session, actor=actor, occurrence_id=occurrence_id,
                                   member_ids=body.member_ids, attended=body.attended)
