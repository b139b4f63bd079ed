"""Tasks, for all staff: today's list (overdue first, with the script and outcome buttons), and
completing, rescheduling, reassigning or cancelling a task (here or from the member card).

Thin over `app.crm.service`'s tasks.
"""
from typing import Annotated, Any

from fastapi import Form, Request

from app.core.errors import Invalid
from app.core.schemas import IdPath
from app.crm import service as crm_service
from app.crm.schemas import TaskUpdate
from app.web.auth import PageSession, back_to
from app.web.kit import (
    DEFAULT_OUTCOMES,
    OUTCOMES,
    ROLE_TITLES,
    Back,
    DayText,
    DeskPage,
    StaffPage,
    Text,
    build,
    clean,
    done,
    fmt_day,
    page_router,
    render,
)

router = page_router()

TaskId = IdPath("task id")


@router.get("/tasks")
def tasks_page(request: Request, session: PageSession, actor: StaffPage):
    tasks = crm_service.tasks_today(session, actor=actor)
    overdue = [t for t in tasks if t.overdue]
    due_today = [t for t in tasks if not t.overdue]
    return render(request, "tasks.html", {
        "title": "Tasks", "overdue": overdue, "due_today": due_today, "outcomes": OUTCOMES,
        "default_outcomes": DEFAULT_OUTCOMES})


@router.post("/tasks/{task_id}/complete")
def complete_task(request: Request, session: PageSession, actor: StaffPage,
                  task_id: TaskId,
                  outcome: Annotated[str, Form(min_length=1, max_length=200)],
                  note: Text = None, back: Back = None):
    url = back_to(request, back, "/tasks")
    text = outcome.strip() + (f": {note.strip()}" if note and note.strip() else "")
    task = crm_service.complete_task(session, actor=actor, task_id=task_id, outcome=text[:1000])
    return done(request, url, f"{task.title} — {text}", "ok", "Task done")


# --- tasks: reschedule, reassign, cancel --------------------------------------------------------

@router.post("/tasks/{task_id}/change")
def change_task(request: Request, session: PageSession, actor: DeskPage, task_id: TaskId,
                due_date: DayText = None,
                assignee: Annotated[str | None, Form(
                    max_length=20, pattern=r"^(|keep|me|role:(front_desk|manager|trainer))$")]
                = None, back: Back = None):
    url = back_to(request, back, "/tasks")
    changes: dict[str, Any] = {}
    if clean(due_date):
        changes["due_date"] = clean(due_date)
    if assignee == "me":
        changes["assignee_user_id"] = actor.user_id
    elif assignee and assignee.startswith("role:"):
        changes.update(assignee_user_id=None, assignee_role=assignee.removeprefix("role:"))
    if not changes:
        raise Invalid("Choose a new date or who should do it", code="nothing_to_change")
    task = crm_service.update_task(session, actor=actor, task_id=task_id,
                                   data=build(TaskUpdate, **changes))
    who = ("you" if task.assignee_user_id == actor.user_id
           else ROLE_TITLES.get(task.assignee_role or "", "someone")
           if task.assignee_user_id is None else "a colleague")
    return done(request, url, f"{task.title}: due {fmt_day(task.due_date)}, for {who}.", "ok",
                "Task changed")


@router.post("/tasks/{task_id}/cancel")
def cancel_task(request: Request, session: PageSession, actor: DeskPage, task_id: TaskId,
                reason: Annotated[str | None, Form(max_length=500)] = None, back: Back = None):
    url = back_to(request, back, "/tasks")
    if not clean(reason):
        raise Invalid("Say why the task is cancelled", code="reason_required")
    task = crm_service.cancel_task(session, actor=actor, task_id=task_id, reason=clean(reason))
    return done(request, url, f"{task.title} — cancelled ({clean(reason)}).", "ok",
                "Task cancelled")
