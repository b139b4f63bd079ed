"""Retention hooks: trainers' open tasks, and booking a session straight from one."""

from sqlalchemy import select

from app.crm.models import Interaction, Task
from app.trainers.models import PtSession


def _task(gym, member_id: int | None, *, role: str | None = "trainer",
          user_id: int | None = None, kind: str = "trainer", status: str = "open",
          title: str = "Intro session") -> int:
    """A trainer's task as the retention engine writes it, due yesterday."""
    return gym.world.task(gym.club, title=title, due=gym.day(-1), kind=kind, role=role,
                          user=user_id, status=status, member=member_id)


def test_my_tasks_lists_open_trainer_tasks_and_mine(gym):
    a, b = gym.trainer(), gym.trainer()
    member = gym.member(first_name="Ida", last_name="Kern")
    for_role = _task(gym, member)
    for_me = _task(gym, member, role=None, user_id=a.staff.user_id, title="Progress check")
    bs = _task(gym, member, role=None, user_id=b.staff.user_id)   # b's
    _task(gym, member, role="front_desk", kind="call")            # the desk's
    _task(gym, member, status="done")                             # closed
    r = gym.client.get("/api/v1/trainers/me/tasks", headers=a.headers)
    assert r.status_code == 200, r.text
    assert [t["id"] for t in r.json()] == [for_role, for_me]
    assert r.json()[0]["member_name"] == "Ida Kern" and r.json()[0]["overdue"] is True
    assert [t["id"] for t in gym.client.get("/api/v1/trainers/me/tasks",
                                            headers=b.headers).json()] == [for_role, bs]


def test_booking_from_a_task_books_a_free_session_and_closes_the_task(gym):
    coach = gym.trainer()
    member = gym.member()  # a new member: no PT package, the intro session is free
    task_id = _task(gym, member)
    r = gym.client.post(f"/api/v1/trainers/sessions/from-task/{task_id}", headers=coach.headers,
                        json={"start": gym.at(2, 16).isoformat(), "duration_minutes": 45})
    assert r.status_code == 201, r.text
    s = r.json()
    assert (s["trainer_id"], s["member_id"], s["task_id"]) == (coach.id, member, task_id)
    assert s["complimentary"] is True and s["duration_minutes"] == 45
    task = gym.scalar(select(Task).where(Task.id == task_id))
    assert (task.status, task.outcome, task.completed_by) == \
        ("done", "session booked", coach.staff.user_id)
    assert gym.count(Interaction, Interaction.task_id == task_id) == 1
    again = gym.client.post(f"/api/v1/trainers/sessions/from-task/{task_id}",
                            headers=coach.headers, json={"start": gym.at(3, 16).isoformat()})
    assert again.status_code == 409 and again.json()["error"] == "task_closed"
    assert gym.count(PtSession) == 1


def test_a_refused_booking_leaves_the_task_open(gym):
    coach = gym.trainer(hours=[{"weekday": d, "start": "08:00", "end": "12:00"}
                               for d in range(1, 8)])
    member = gym.member()
    task_id = _task(gym, member)
    r = gym.client.post(f"/api/v1/trainers/sessions/from-task/{task_id}", headers=coach.headers,
                        json={"start": gym.at(2, 16).isoformat()})
    assert r.status_code == 409 and r.json()["error"] == "outside_working_hours"
    assert gym.scalar(select(Task.status).where(Task.id == task_id)) == "open"
    assert gym.count(PtSession) == 0 and gym.count(Interaction) == 0


def test_managers_choose_the_trainer_and_trainers_only_take_their_tasks(gym):
    a, b = gym.trainer(), gym.trainer()
    member = gym.member()
    bs_task = _task(gym, member, role=None, user_id=b.staff.user_id)
    r = gym.client.post(f"/api/v1/trainers/sessions/from-task/{bs_task}", headers=a.headers,
                        json={"start": gym.at(2, 10).isoformat()})
    assert r.status_code == 403 and r.json()["error"] == "not_your_task"
    r = gym.client.post(f"/api/v1/trainers/sessions/from-task/{bs_task}",
                        headers=gym.manager.headers, json={"start": gym.at(2, 10).isoformat()})
    assert r.status_code == 422 and r.json()["error"] == "trainer_required"
    r = gym.client.post(f"/api/v1/trainers/sessions/from-task/{bs_task}",
                        headers=gym.manager.headers,
                        json={"start": gym.at(2, 10).isoformat(), "trainer_id": b.id})
    assert r.status_code == 201 and r.json()["trainer_id"] == b.id
    # a manager may record one after the fact; completing it needs and spends no package
    past = _task(gym, member)
    r = gym.client.post(f"/api/v1/trainers/sessions/from-task/{past}",
                        headers=gym.manager.headers,
                        json={"start": gym.at(-1, 10).isoformat(), "trainer_id": a.id})
    assert r.status_code == 201, r.text
    done = gym.act(r.json()["id"], "complete", staff=a.staff)
    assert done.status_code == 200 and done.json()["charged"] is False
    assert gym.packages(member)["items"] == []
    no_member = _task(gym, None)
    r = gym.client.post(f"/api/v1/trainers/sessions/from-task/{no_member}", headers=a.headers,
                        json={"start": gym.at(2, 10).isoformat()})
    assert r.status_code == 422 and r.json()["error"] == "task_no_member"
    elsewhere = gym.world.club("Elsewhere")
    outsider = gym.world.staff(elsewhere, "manager")
    r = gym.client.post(f"/api/v1/trainers/sessions/from-task/{no_member}",
                        headers=outsider.headers,
                        json={"start": gym.at(2, 10).isoformat(), "trainer_id": a.id})
    assert r.status_code == 404
