"""The playbook API: list, edit, disable, add, preview; bad templates; who may change it."""
from app.core.actors import Role
from app.retention.playbook import DEFAULT_PLAYBOOK
from tests.retention.conftest import D, ago


def test_every_club_starts_with_the_default_playbook(client, world):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    r = client.get("/api/v1/retention/playbook", headers=desk.headers)
    assert r.status_code == 200
    items = r.json()
    assert [i["key"] for i in items] == [p.key for p in DEFAULT_PLAYBOOK]
    assert len(items) >= 15 and all(i["enabled"] and i["is_default"] for i in items)
    again = client.get("/api/v1/retention/playbook", headers=desk.headers).json()
    assert [i["id"] for i in again] == [i["id"] for i in items]  # created once
    by_key = {i["key"]: i for i in items}
    assert by_key["renewal_offer"]["trigger"] == "days_before_end"
    assert by_key["renewal_offer"]["days"] == 14
    assert by_key["low_visits_sms"]["visits"] == 4 and by_key["low_visits_sms"]["days"] == 14


def test_a_manager_edits_disables_and_adds_touchpoints(client, world):
    club = world.club()
    manager = world.staff(club, Role.manager)
    items = client.get("/api/v1/retention/playbook", headers=manager.headers).json()
    welcome = next(i for i in items if i["key"] == "welcome")
    r = client.patch(f"/api/v1/retention/playbook/{welcome['id']}", headers=manager.headers,
                     json={"subject_template": "Hi {{ member.first_name }}!",
                           "channel": "email", "holdout_share": 0.2, "days": 1})
    assert r.status_code == 200, r.text
    assert (r.json()["subject_template"], r.json()["holdout_share"], r.json()["days"]) == (
        "Hi {{ member.first_name }}!", 0.2, 1)
    r = client.post(f"/api/v1/retention/playbook/{welcome['id']}/disable",
                    headers=manager.headers)
    assert r.status_code == 200 and r.json()["enabled"] is False
    body = {"key": "bring_a_friend", "name": "Bring a friend", "stage": "establishing",
            "trigger": "days_after_stage_entry", "days": 20, "channel": "sms",
            "body_template": "{{ member.first_name }}, bring a friend for free this week!",
            "priority": 30}
    r = client.post("/api/v1/retention/playbook", headers=manager.headers, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["is_default"] is False and r.json()["stop_condition"] == "none"
    assert client.post("/api/v1/retention/playbook", headers=manager.headers,
                       json=body).status_code == 409
    keys = [i["key"] for i in client.get("/api/v1/retention/playbook",
                                         headers=manager.headers).json()]
    assert keys[-1] == "bring_a_friend"


def test_bad_templates_and_triggers_are_refused_with_the_reason(client, world):
    club = world.club()
    owner = world.staff(club, Role.owner)
    items = client.get("/api/v1/retention/playbook", headers=owner.headers).json()
    target = f"/api/v1/retention/playbook/{items[0]['id']}"
    r = client.patch(target, headers=owner.headers, json={"body_template": "Hi {{ member.name "})
    assert r.status_code == 422 and r.json()["error"] == "invalid_template"
    assert "body_template" in r.json()["message"] and "line 1" in r.json()["message"]
    r = client.patch(target, headers=owner.headers, json={"body_template": "Hi {{ membr.name }}"})
    assert r.status_code == 422 and "'membr' is undefined" in r.json()["message"]
    r = client.patch(target, headers=owner.headers,
                     json={"body_template": "{{ ''.__class__.__mro__ }}"})
    assert r.status_code == 422  # the sandbox refuses internals
    r = client.post("/api/v1/retention/playbook", headers=owner.headers, json={
        "key": "x_no_days", "name": "x", "stage": "onboarding",
        "trigger": "days_after_stage_entry", "channel": "sms", "body_template": "hi"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_trigger"
    r = client.post("/api/v1/retention/playbook", headers=owner.headers, json={
        "key": "x", "name": "x", "trigger": "birthday", "channel": "sms", "body_template": "hi",
        "club_id": 99})
    assert r.status_code == 422  # no club_id from a body
    assert client.get(target, headers=owner.headers).json()["body_template"] == \
        items[0]["body_template"]


def test_front_desk_and_trainers_read_but_cannot_change_the_playbook(client, world):
    club = world.club()
    items = client.get("/api/v1/retention/playbook",
                       headers=world.staff(club, Role.owner).headers).json()
    for role in (Role.front_desk, Role.trainer):
        staff = world.staff(club, role)
        target = f"/api/v1/retention/playbook/{items[0]['id']}"
        assert client.get(target, headers=staff.headers).status_code == 200
        r = client.patch(target, headers=staff.headers, json={"enabled": False})
        assert r.status_code == 403 and r.json()["error"] == "forbidden_role"
        assert client.post(f"{target}/disable", headers=staff.headers).status_code == 403


def test_preview_renders_for_a_member_and_hides_other_clubs(client, world, rw):
    club, other = world.club(), world.club("Other Gym")
    manager = world.staff(club, Role.manager)
    member = rw.member(club, "Greta")
    rw.membership(club, member, rw.plan(club), ago(20))
    stranger = rw.member(other, "Hans")
    items = client.get("/api/v1/retention/playbook", headers=manager.headers).json()
    renewal = next(i for i in items if i["key"] == "renewal_reminder")
    r = client.post(f"/api/v1/retention/playbook/{renewal['id']}/preview?member_id={member}",
                    headers=manager.headers)
    assert r.status_code == 200, r.text
    assert r.json()["subject"].startswith("Your membership ends on ")
    assert "Hello Greta" in r.json()["body"] and "12 months" in r.json()["body"]
    r = client.post(f"/api/v1/retention/playbook/{renewal['id']}/preview?member_id={stranger}",
                    headers=manager.headers)
    assert r.status_code == 404
    other_manager = world.staff(other, Role.manager)
    r = client.get(f"/api/v1/retention/playbook/{renewal['id']}", headers=other_manager.headers)
    assert r.status_code == 404


def test_member_retention_view_and_run_endpoint(client, world, rw):
    club = world.club()
    manager = world.staff(club, Role.manager)
    member = rw.member(club)
    rw.membership(club, member, rw.plan(club), D)
    r = client.post("/api/v1/retention/run", headers=manager.headers,
                    json={"as_of": D.isoformat(), "dry_run": True})
    assert r.status_code == 200 and r.json()["stage_counts"]["onboarding"] == 1
    assert client.get(f"/api/v1/retention/members/{member}",
                      headers=manager.headers).json()["stage"] is None  # dry run: nothing kept
    r = client.post("/api/v1/retention/run", headers=manager.headers,
                    json={"as_of": D.isoformat()})
    assert r.status_code == 200 and r.json()["scheduled"]["welcome"] == 1
    view = client.get(f"/api/v1/retention/members/{member}", headers=manager.headers).json()
    assert view["stage"]["stage"] == "onboarding"
    assert view["history"][0]["to_stage"] == "onboarding"
    assert {t["key"] for t in view["touchpoints"]} == {"welcome"}
    r = client.get("/api/v1/retention/touchpoints?status=pending", headers=manager.headers)
    assert r.json()["total"] == 1
    r = client.get("/api/v1/retention/stages?stage=onboarding", headers=manager.headers)
    assert r.json()["items"][0]["member_id"] == member
