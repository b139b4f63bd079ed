"""The leads pipeline: the desk records prospects and moves them; a sale makes them won."""
from datetime import date, timedelta

from sqlalchemy import select

from app.clubs.service import club_today
from app.core.actors import Role
from app.crm.models import Lead, LeadStageChange, Task


def _lead(client, staff, **body):
    person = {"first_name": "Lena", "last_name": "Berg", "email": "lena@example.org",
              "source": "walk_in"}
    r = client.post("/api/v1/leads/manual", headers=staff.headers, json=person | body)
    assert r.status_code == 201, r.text
    return r.json()


def _move(client, staff, lead_id, stage, **body):
    return client.post(f"/api/v1/leads/{lead_id}/stage", headers=staff.headers,
                       json={"stage": stage, **body})


def _sell(client, staff, member_id, manager, start: date | None = None):
    plan = client.post("/api/v1/plans", headers=manager.headers, json={
        "name": "Monthly", "duration_months": 1, "price": "49.00"}).json()
    body = {"plan_id": plan["id"], "payments": [{"method": "cash", "amount": "49.00"}]}
    if start:
        body["start_date"] = start.isoformat()
    r = client.post(f"/api/v1/members/{member_id}/memberships", headers=staff.headers, json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_the_desk_sells_a_membership_to_a_lead_and_the_lead_is_won(client, world, session):
    club = world.club()
    desk, manager = world.staff(club, Role.front_desk), world.staff(club, Role.manager)
    lead = _lead(client, desk, phone="+49 151 23456789", source_detail="saw the flyer",
                 note="wants mornings")
    assert lead["stage"] == "new" and lead["source"] == "walk_in"
    assert lead["name"] == "Lena Berg" and lead["phone"] == "+4915123456789"
    assert _move(client, desk, lead["id"], "contacted").status_code == 200

    sold = _sell(client, desk, lead["member_id"], manager)

    r = client.get(f"/api/v1/leads/{lead['id']}", headers=desk.headers)
    won = r.json()
    assert won["stage"] == "won" and won["won_at"] is not None
    assert won["won_membership_id"] == sold["id"]
    assert [(h["from_stage"], h["to_stage"]) for h in won["history"]] == [
        (None, "new"), ("new", "contacted"), ("contacted", "won")]
    assert won["history"][2]["staff_id"] == desk.user_id
    # won is final, and a second sale changes nothing
    r = _move(client, desk, lead["id"], "lost", lost_reason="price")
    assert r.status_code == 409 and r.json()["error"] == "invalid_transition"
    _sell(client, desk, lead["member_id"], manager, club_today(club) + timedelta(days=60))
    session.rollback()
    changes = session.scalars(select(LeadStageChange).where(
        LeadStageChange.lead_id == lead["id"])).all()
    assert len(changes) == 3
    session.rollback()
    # the timeline tells the story
    timeline = client.get(f"/api/v1/members/{lead['member_id']}/timeline?kind=lead",
                          headers=desk.headers).json()
    assert [i["summary"] for i in reversed(timeline["items"])][:3] == [
        "Lead created (source: walk_in) — wants mornings", "Lead: new → contacted",
        f"Lead: contacted → won — membership #{won['won_membership_id']} sold"]


def test_a_sale_to_someone_without_a_lead_creates_none(client, world, session):
    club = world.club()
    desk, manager = world.staff(club, Role.front_desk), world.staff(club, Role.manager)
    member = client.post("/api/v1/members", headers=desk.headers, json={
        "first_name": "Max", "last_name": "Roth"}).json()
    _sell(client, desk, member["id"], manager)
    session.rollback()
    assert session.scalar(select(Lead).where(Lead.member_id == member["id"])) is None


def test_pipeline_moves_forward_skips_and_refuses_going_back(client, world):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    lead = _lead(client, desk)
    lid = lead["id"]
    trial = club_today(club) + timedelta(days=2)
    r = _move(client, desk, lid, "trial_booked", trial_date=trial.isoformat())  # skips contacted
    assert r.status_code == 200 and r.json()["trial_date"] == trial.isoformat()
    assert r.json()["first_contact_at"] is not None
    for stage in ("contacted", "new", "trial_booked"):
        r = _move(client, desk, lid, stage, trial_date=trial.isoformat())
        assert r.status_code == 409, stage
        assert r.json()["error"] == "invalid_transition" and r.json()["message"]
    r = _move(client, desk, lid, "won")
    assert r.status_code == 409 and "sell a membership" in r.json()["message"]
    assert _move(client, desk, lid, "trial_done").status_code == 200


def test_lost_needs_a_reason_and_a_lost_lead_can_only_be_reopened(client, world, session):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    lid = _lead(client, desk)["id"]
    r = _move(client, desk, lid, "lost")
    assert r.status_code == 422 and "lost_reason" in r.json()["message"]
    r = _move(client, desk, lid, "lost", lost_reason="too_expensive")
    assert r.status_code == 422
    r = _move(client, desk, lid, "contacted", lost_reason="price")
    assert r.status_code == 422
    r = _move(client, desk, lid, "lost", lost_reason="chose_competitor", note="went to GymX")
    lost = r.json()
    assert r.status_code == 200 and lost["stage"] == "lost"
    assert (lost["lost_reason"], lost["lost_note"]) == ("chose_competitor", "went to GymX")
    assert lost["lost_at"] and lost["first_contact_at"] is None  # new → lost is not a contact
    r = _move(client, desk, lid, "contacted")
    assert r.status_code == 409 and "reopened" in r.json()["message"]
    r = _move(client, desk, lid, "new", note="called back, interested again")
    reopened = r.json()
    assert r.status_code == 200 and reopened["stage"] == "new"
    assert reopened["lost_reason"] is None and reopened["lost_at"] is None
    assert [(h["from_stage"], h["to_stage"], h["lost_reason"]) for h in reopened["history"]] == [
        (None, "new", None), ("new", "lost", "chose_competitor"), ("lost", "new", None)]
    assert all(h["staff_id"] == desk.user_id for h in reopened["history"])


def test_trial_booked_creates_a_follow_up_task_for_the_trial_day(client, world, session):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    lid = _lead(client, desk)["id"]
    trial = club_today(club) + timedelta(days=3)
    assert _move(client, desk, lid, "contacted").status_code == 200
    r = _move(client, desk, lid, "trial_booked", trial_date=trial.isoformat())
    assert r.status_code == 200
    r = _move(client, desk, lid, "trial_done")
    session.rollback()
    [task] = session.scalars(select(Task)).all()
    assert (task.kind, task.due_date, task.assignee_role, task.status) == (
        "trial_follow_up", trial, "front_desk", "open")
    assert task.title == "Follow up the trial of Lena Berg"
    session.rollback()
    r = _move(client, desk, lid, "trial_booked")
    assert r.status_code == 422  # no trial date


def test_duplicates_existing_members_and_members_with_a_membership(client, world):
    club = world.club()
    desk, manager = world.staff(club, Role.front_desk), world.staff(club, Role.manager)
    first = _lead(client, desk, phone="+49 151 11111111")
    r = client.post("/api/v1/leads/manual", headers=desk.headers, json={
        "first_name": "L", "last_name": "B", "phone": "0151 11111111", "source": "phone"})
    assert r.status_code == 409 and r.json()["error"] == "duplicate_member"
    assert r.json()["details"]["member_id"] == first["member_id"]
    r = client.post("/api/v1/leads/manual", headers=desk.headers,
                    json={"member_id": first["member_id"], "source": "phone"})
    assert r.status_code == 409 and r.json()["details"]["lead_id"] == first["id"]
    # a person the club knows, without a membership, can become a lead
    known = client.post("/api/v1/members", headers=desk.headers, json={
        "first_name": "Ole", "last_name": "Sand", "email": "ole@example.org"}).json()
    r = client.post("/api/v1/leads/manual", headers=desk.headers, json={
        "member_id": known["id"], "source": "referral", "source_detail": "by Lena"})
    assert r.status_code == 201 and r.json()["name"] == "Ole Sand"
    member = client.post("/api/v1/members", headers=desk.headers, json={
        "first_name": "Ida", "last_name": "Member"}).json()
    _sell(client, desk, member["id"], manager)
    r = client.post("/api/v1/leads/manual", headers=desk.headers,
                    json={"member_id": member["id"], "source": "walk_in"})
    assert r.status_code == 409 and r.json()["error"] == "already_member"
    bad = [{"source": "walk_in"}, {"first_name": "A", "last_name": "B", "source": "radio"},
           {"member_id": known["id"], "first_name": "X", "source": "walk_in"},
           {"first_name": "A", "last_name": "B", "source": "walk_in", "club_id": 2},
           {"first_name": "A", "last_name": "B", "source": "walk_in", "email": "not-an-email"}]
    for body in bad:
        r = client.post("/api/v1/leads/manual", headers=desk.headers, json=body)
        assert r.status_code == 422, body
        assert r.json()["message"].startswith("Please check the input")


def test_list_filters_newest_first_and_the_desk_sees_unassigned_and_its_own(client, world):
    club, other = world.club(), world.club("Other")
    desk, desk2 = world.staff(club, Role.front_desk), world.staff(club, Role.front_desk)
    manager, trainer = world.staff(club, Role.manager), world.staff(club, Role.trainer)
    a = _lead(client, desk, email="a@example.org", first_name="Anna")
    b = _lead(client, desk, email="b@example.org", first_name="Bert", source="website")
    c = _lead(client, manager, email="c@example.org", first_name="Cleo",
              assignee_user_id=desk2.user_id)
    theirs = _lead(client, world.staff(other, Role.front_desk), email="x@example.org")

    def ids(staff, query=""):
        r = client.get(f"/api/v1/leads{query}", headers=staff.headers)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    assert ids(manager) == [c["id"], b["id"], a["id"]]
    assert ids(desk) == [b["id"], a["id"]]
    assert ids(desk2) == [c["id"], b["id"], a["id"]]
    assert ids(manager, "?source=website") == [b["id"]]
    assert ids(manager, f"?assignee_user_id={desk2.user_id}") == [c["id"]]
    assert ids(manager, "?stage=lost") == []
    assert ids(manager, "?limit=1&offset=1") == [b["id"]]
    assert client.get(f"/api/v1/leads/{c['id']}", headers=desk.headers).status_code == 404
    assert client.get(f"/api/v1/leads/{theirs['id']}",
                      headers=manager.headers).status_code == 404
    assert client.get("/api/v1/leads", headers=trainer.headers).status_code == 403
    assert client.get("/api/v1/leads?stage=maybe", headers=desk.headers).status_code == 422
    # reassign and correct the source
    r = client.patch(f"/api/v1/leads/{a['id']}", headers=manager.headers,
                     json={"assignee_user_id": desk2.user_id, "source": "referral"})
    assert r.status_code == 200 and r.json()["source"] == "referral"
    assert ids(desk) == [b["id"]]
    r = client.patch(f"/api/v1/leads/{a['id']}", headers=manager.headers,
                     json={"assignee_user_id": 10**9})
    assert r.status_code == 404 and r.json()["error"] == "staff_not_found"
    r = client.patch(f"/api/v1/leads/{a['id']}", headers=manager.headers, json={"source": None})
    assert r.status_code == 422
    r = client.patch(f"/api/v1/leads/{a['id']}", headers=manager.headers,
                     json={"assignee_user_id": None})
    assert r.status_code == 200 and r.json()["assignee_user_id"] is None


def test_a_logged_call_is_the_first_contact(client, world):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    lead = _lead(client, desk)
    r = client.post(f"/api/v1/members/{lead['member_id']}/interactions", headers=desk.headers,
                    json={"kind": "note", "summary": "left a flyer"})
    assert r.status_code == 201
    assert client.get(f"/api/v1/leads/{lead['id']}",
                      headers=desk.headers).json()["first_contact_at"] is None
    r = client.post(f"/api/v1/members/{lead['member_id']}/interactions", headers=desk.headers,
                    json={"kind": "call", "summary": "No answer", "outcome": "no_answer"})
    assert r.status_code == 201
    first = client.get(f"/api/v1/leads/{lead['id']}", headers=desk.headers).json()
    assert first["first_contact_at"] == r.json()["occurred_at"]
    assert first["stage"] == "new"  # a contact is logged; moving the lead is the desk's call
    assert date.fromisoformat(first["first_contact_at"][:10]) >= date(2026, 1, 1)
