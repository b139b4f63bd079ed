"""The member timeline: touchpoints, tasks and stage changes, newest first; tenancy."""
from app.core.actors import Role
from tests.retention.conftest import D, ago, local


def test_timeline_shows_engine_touchpoints_and_stage_changes_newest_first(client, world, rw):
    club = world.club(holdout_share=0)
    rw.only(club, "welcome", "intro_session")
    desk = world.staff(club, Role.front_desk)
    member = rw.member(club, "Karl", email_consent=False)
    rw.membership(club, member, rw.plan(club), ago(2))
    rw.run(club, ago(2))
    rw.dispatch(local(ago(2), 9))
    rw.run(club)
    rw.dispatch(local(D, 9))
    r = client.get(f"/api/v1/members/{member}/timeline", headers=desk.headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [(i["kind"], i["outcome"]) for i in items] == [
        ("touchpoint", "task_created"), ("touchpoint", "skipped"), ("stage_change", "onboarding")]
    assert all(i["by"] == "engine" for i in items)
    assert "task for trainer" in items[0]["summary"] and items[0]["task_id"]
    assert "not sent (no consent" in items[1]["summary"]
    assert items[2]["summary"].startswith("Stage: new → onboarding")
    times = [i["occurred_at"] for i in items]
    assert times == sorted(times, reverse=True)

    r = client.post(f"/api/v1/members/{member}/interactions", headers=desk.headers,
                    json={"kind": "call", "summary": "Asked about classes", "outcome": "reached"})
    assert r.status_code == 201 and r.json()["by"] == desk.email.split("@")[0]
    first = client.get(f"/api/v1/members/{member}/timeline?limit=1", headers=desk.headers).json()
    assert first["total"] == 4 and first["items"][0]["summary"] == "Asked about classes"


def test_another_clubs_member_has_no_timeline_here(client, world, rw):
    club, other = world.club(), world.club("Other")
    desk = world.staff(club, Role.front_desk)
    stranger = rw.member(other)
    assert client.get(f"/api/v1/members/{stranger}/timeline",
                      headers=desk.headers).status_code == 404
    assert client.get("/api/v1/members/999999999/timeline", headers=desk.headers).status_code == 404
    assert client.get(f"/api/v1/members/{2**63}/timeline", headers=desk.headers).status_code == 422
    assert client.get(f"/api/v1/members/{stranger}/timeline").status_code == 401
