"""Tasks: today's list per role, creating, completing."""
from datetime import timedelta

from app.clubs.service import club_today
from app.core.actors import Role
from app.core.db import transaction
from app.crm.models import Task


def test_todays_tasks_for_my_role_or_me_overdue_first(client, world, db, rw):
    club = world.club()
    today = club_today(club)
    desk, trainer = world.staff(club, Role.front_desk), world.staff(club, Role.trainer)
    manager = world.staff(club, Role.manager)
    member = rw.member(club, "Ida")
    world.task(club, title="today desk", due=today, role="front_desk", member=member)
    world.task(club, title="overdue desk", due=today - timedelta(days=3), role="front_desk")
    world.task(club, title="tomorrow desk", due=today + timedelta(days=1), role="front_desk")
    world.task(club, title="done desk", due=today, role="front_desk", status="done")
    world.task(club, title="trainer task", due=today, role="trainer")
    world.task(club, title="mine", due=today, user=trainer.user_id)
    world.task(club, title="unassigned", due=today)

    def titles(staff):
        r = client.get("/api/v1/tasks/today", headers=staff.headers)
        assert r.status_code == 200, r.text
        return [t["title"] for t in r.json()]

    assert titles(desk) == ["overdue desk", "today desk", "unassigned"]
    assert titles(trainer) == ["trainer task", "mine"]
    assert titles(manager) == ["overdue desk", "today desk", "trainer task", "mine", "unassigned"]
    first = client.get("/api/v1/tasks/today", headers=desk.headers).json()
    assert first[0]["overdue"] is True and first[1]["member_name"] == "Ida Test"


def test_create_list_and_complete_a_task(client, world, rw):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    trainer = world.staff(club, Role.trainer)
    member = rw.member(club, "Jan")
    r = client.post("/api/v1/tasks", headers=desk.headers, json={
        "title": "Call back about the trial", "kind": "follow_up", "member_id": member,
        "assignee_role": "front_desk"})
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["due_date"] == club_today(club).isoformat() and task["status"] == "open"
    r = client.post("/api/v1/tasks", headers=trainer.headers, json={"title": "x"})
    assert r.status_code == 403  # creating tasks is for the desk and managers
    r = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=trainer.headers,
                    json={"outcome": "spoke"})
    assert r.status_code == 404 and r.json()["error"] == "task_not_found"  # not a trainer's
    r = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=desk.headers,
                    json={"outcome": "Booked a trial for Friday"})
    assert r.status_code == 200 and r.json()["status"] == "done"
    assert r.json()["completed_by"] == desk.user_id
    r = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=desk.headers,
                    json={"outcome": "again"})
    assert r.status_code == 409
    r = client.get(f"/api/v1/tasks?status=done&member_id={member}", headers=desk.headers)
    assert r.json()["total"] == 1
    timeline = client.get(f"/api/v1/members/{member}/timeline", headers=desk.headers).json()
    [entry] = timeline["items"]
    assert entry["kind"] == "follow_up" and entry["by"] == desk.email.split("@")[0]
    assert "Booked a trial" in entry["summary"]


def test_a_trainer_completes_trainer_tasks(client, world, db, clock):
    club = world.club()
    trainer = world.staff(club, Role.trainer)
    task_id = world.task(club, title="intro", due=club_today(club), role="trainer")

    def todays(staff) -> list[int]:
        r = client.get("/api/v1/tasks/today", headers=staff.headers)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()]

    assert todays(trainer) == [task_id]
    before = clock.now()
    r = client.post(f"/api/v1/tasks/{task_id}/complete", headers=trainer.headers,
                    json={"outcome": "booked"})
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["status"], done["outcome"], done["completed_by"]) == (
        "done", "booked", trainer.user_id)
    with db.sessionmaker() as s:
        task = s.get(Task, task_id)
        assert (task.status, task.outcome, task.completed_by) == ("done", "booked",
                                                                  trainer.user_id)
        assert before <= task.completed_at <= clock.now()
    assert todays(trainer) == []  # done: off today's list


def test_tasks_of_another_club_are_not_found(client, world, db):
    club, other = world.club(), world.club("Other")
    task_id = world.task(other, title="theirs", due=club_today(other))
    desk = world.staff(club, Role.front_desk)
    r = client.post(f"/api/v1/tasks/{task_id}/complete", headers=desk.headers,
                    json={"outcome": "x"})
    assert r.status_code == 404
    r = client.post("/api/v1/tasks", headers=desk.headers, json={"title": "x", "member_id": 10**6})
    assert r.status_code == 404


def test_the_desk_list_shows_overdue_first_with_phone_and_preferred_channel(client, world, db,
                                                                             rw):
    from sqlalchemy import update

    from app.members.models import Member

    club = world.club()
    today = club_today(club)
    desk = world.staff(club, Role.front_desk)
    ida, jan = rw.member(club, "Ida"), rw.member(club, "Jan", phone="+4915123456780")
    with transaction(db.sessionmaker) as s:
        s.execute(update(Member).where(Member.id == jan).values(preferred_channel="phone"))
    world.task(club, title="today", due=today, role="front_desk", member=ida)
    world.task(club, title="a week late", due=today - timedelta(days=7), role="front_desk",
          member=jan)
    world.task(club, title="a day late", due=today - timedelta(days=1), role="front_desk")
    rows = client.get("/api/v1/tasks/today", headers=desk.headers).json()
    assert [(t["title"], t["overdue"]) for t in rows] == [
        ("a week late", True), ("a day late", True), ("today", False)]
    assert (rows[0]["member_phone"], rows[0]["member_preferred_channel"]) == (
        "+4915123456780", "phone")
    assert rows[0]["member_name"] == "Jan Test" and rows[1]["member_phone"] is None


def test_reassign_reschedule_and_cancel_a_task(client, world, db):
    club = world.club()
    today = club_today(club)
    desk, desk2 = world.staff(club, Role.front_desk), world.staff(club, Role.front_desk)
    trainer = world.staff(club, Role.trainer)
    task_id = world.task(club, title="call Ida", due=today, role="front_desk")
    later = today + timedelta(days=2)
    r = client.patch(f"/api/v1/tasks/{task_id}", headers=desk.headers,
                     json={"assignee_user_id": desk2.user_id, "due_date": later.isoformat()})
    assert r.status_code == 200, r.text
    assert (r.json()["assignee_user_id"], r.json()["due_date"]) == (desk2.user_id,
                                                                     later.isoformat())
    r = client.patch(f"/api/v1/tasks/{task_id}", headers=desk.headers,
                     json={"assignee_user_id": None, "assignee_role": "trainer"})
    assert r.status_code == 200 and r.json()["assignee_role"] == "trainer"
    for bad in ({"due_date": None}, {"status": "done"}, {"assignee_role": "boss"}):
        assert client.patch(f"/api/v1/tasks/{task_id}", headers=desk.headers,
                            json=bad).status_code == 422, bad
    r = client.patch(f"/api/v1/tasks/{task_id}", headers=desk.headers,
                     json={"assignee_user_id": 10**9})
    assert r.status_code == 404 and r.json()["error"] == "staff_not_found"
    assert client.patch(f"/api/v1/tasks/{task_id}", headers=trainer.headers,
                        json={"title": "x"}).status_code == 403
    r = client.post(f"/api/v1/tasks/{task_id}/cancel", headers=desk.headers, json={})
    assert r.status_code == 422
    r = client.post(f"/api/v1/tasks/{task_id}/cancel", headers=desk.headers,
                    json={"reason": "she cancelled her enquiry"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert r.json()["outcome"] == "cancelled: she cancelled her enquiry"
    assert client.post(f"/api/v1/tasks/{task_id}/cancel", headers=desk.headers,
                       json={"reason": "again"}).json()["error"] == "task_closed"
    assert client.patch(f"/api/v1/tasks/{task_id}", headers=desk.headers,
                        json={"title": "x"}).status_code == 409


def test_trainers_see_only_their_own_tasks(client, world, db, rw):
    """Issue 16: a trainer listed every task, the desk's lead follow-ups included; the README
    says "own tasks". A trainer now sees tasks assigned to them and unclaimed trainer-role tasks,
    in the list, by member, today's list and the tasks page; another task answers 404."""
    from tests.web.conftest import sign_in

    club = world.club()
    today = club_today(club)
    trainer, other = world.staff(club, Role.trainer), world.staff(club, Role.trainer)
    desk = world.staff(club, Role.front_desk)
    member = rw.member(club, "Lea")
    mine = world.task(club, title="mine", due=today, user=trainer.user_id, member=member)
    role = world.task(club, title="for trainers", due=today, role="trainer", member=member)
    theirs = world.task(club, title="another trainer's", due=today, user=other.user_id,
                   member=member)
    follow_up = world.task(club, title="Follow up the trial of Lea", due=today,
                      role="front_desk", member=member)
    unassigned = world.task(club, title="unassigned lead task", due=today, member=member)

    def listed(staff, query=""):
        r = client.get(f"/api/v1/tasks{query}", headers=staff.headers)
        assert r.status_code == 200, r.text
        return sorted(t["id"] for t in r.json()["items"]), r.json()["total"]

    assert listed(trainer) == (sorted([mine, role]), 2)
    assert listed(trainer, f"?member_id={member}&status=open") == (sorted([mine, role]), 2)
    assert listed(other) == (sorted([role, theirs]), 2)
    assert listed(desk)[1] == 5  # the desk and managers see the club's tasks
    today_ids = {t["id"] for t in client.get("/api/v1/tasks/today",
                                             headers=trainer.headers).json()}
    assert today_ids == {mine, role}
    for task_id in (theirs, follow_up, unassigned):
        r = client.post(f"/api/v1/tasks/{task_id}/complete", headers=trainer.headers,
                        json={"outcome": "done"})
        assert r.status_code == 404 and r.json()["error"] == "task_not_found"
    r = client.post(f"/api/v1/tasks/{mine}/complete", headers=trainer.headers,
                    json={"outcome": "done"})
    assert r.status_code == 200
    sign_in(client, trainer.email)
    page = client.get("/tasks")
    assert page.status_code == 200
    assert "for trainers" in page.text
    for title in ("another trainer", "Follow up the trial of Lea", "unassigned lead task"):
        assert title not in page.text
