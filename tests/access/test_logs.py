"""The attempt log, the visit log and a member's visits: staff only, one club, club-local days."""
from datetime import datetime, timedelta

from app.core.actors import Role
from tests.access.conftest import local, today


def test_the_attempt_log_lists_a_club_local_day_newest_first(client, world, gym, post_event):
    club = world.club(timezone="Europe/Berlin")
    staff = world.staff(club, Role.front_desk)
    device = world.device(club)
    m = gym.member(club, first_name="Dora", last_name="Kraft")
    gym.membership(club, m, start=today() - timedelta(days=30))
    yesterday, before = today() - timedelta(days=1), today() - timedelta(days=2)
    # 00:30 Berlin yesterday is still the day before in UTC; 23:30 the day before is not ours
    post_event(device, m.card, occurred_at=local(before, 23, 30))
    post_event(device, m.card, occurred_at=local(yesterday, 0, 30))
    post_event(device, m.card, occurred_at=local(yesterday, 9, 0))
    post_event(device, "LOST1", occurred_at=local(yesterday, 9, 1))
    post_event(device, m.card, occurred_at=local(yesterday, 9, 3))

    r = client.get("/api/v1/access/events", params={"date": yesterday.isoformat()},
                   headers=staff.headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == 4 and page["limit"] == 50 and page["offset"] == 0
    assert [(e["reason"], e["member_name"]) for e in page["items"]] == [
        ("anti_passback", "Dora Kraft"), ("unknown_card", None), ("ok", "Dora Kraft"),
        ("ok", "Dora Kraft")]
    assert datetime.fromisoformat(page["items"][-1]["occurred_at"]) == local(yesterday, 0, 30)
    assert page["items"][1]["card_code"] == "LOST1" and page["items"][1]["member_id"] is None

    denied = client.get("/api/v1/access/events",
                        params={"date": yesterday.isoformat(), "allowed": "false"},
                        headers=staff.headers).json()
    assert denied["total"] == 2 and all(not e["allowed"] for e in denied["items"])
    paged = client.get("/api/v1/access/events",
                       params={"date": yesterday.isoformat(), "limit": 1, "offset": 1},
                       headers=staff.headers).json()
    assert [e["reason"] for e in paged["items"]] == ["unknown_card"] and paged["total"] == 4


def test_todays_visits_with_member_names(client, world, gym, post_event):
    club = world.club()
    staff = world.staff(club, Role.trainer)
    device = world.device(club)
    a = gym.member(club, first_name="Emil", last_name="Berg")
    b = gym.member(club, first_name="Fay", last_name="Stern")
    gym.membership(club, a)
    gym.membership(club, b)
    post_event(device, a.card)
    post_event(device, b.card)
    post_event(device, "NOBODY")
    page = client.get("/api/v1/visits", headers=staff.headers).json()
    assert page["total"] == 2
    assert [v["member_name"] for v in page["items"]] == ["Fay Stern", "Emil Berg"]
    assert all(v["access_event_id"] for v in page["items"])
    earlier = (today() - timedelta(days=1)).isoformat()
    assert client.get("/api/v1/visits", params={"date": earlier},
                      headers=staff.headers).json()["total"] == 0


def test_a_members_visits_are_listed_and_other_clubs_members_are_not_found(
        client, world, gym, post_event):
    a, b = world.club("A"), world.club("B")
    staff_a, staff_b = world.staff(a), world.staff(b)
    device = world.device(a)
    m = gym.member(a)
    gym.membership(a, m)
    yesterday = today() - timedelta(days=1)
    for hour in (8, 12, 18):
        post_event(device, m.card, occurred_at=local(yesterday, hour))
    r = client.get(f"/api/v1/members/{m.member_id}/visits", params={"limit": 2},
                   headers=staff_a.headers)
    assert r.status_code == 200
    assert r.json()["total"] == 3 and len(r.json()["items"]) == 2
    assert r.json()["items"][0]["occurred_at"] > r.json()["items"][1]["occurred_at"]
    other = client.get(f"/api/v1/members/{m.member_id}/visits", headers=staff_b.headers)
    assert other.status_code == 404 and other.json()["error"] == "not_found"
    assert client.get("/api/v1/members/999999/visits", headers=staff_a.headers).status_code == 404
    assert client.get("/api/v1/access/events", headers=staff_b.headers).json()["total"] == 0


def test_a_device_key_cannot_read_the_logs(client, world, gym):
    club = world.club()
    device = world.device(club)
    m = gym.member(club)
    for path in ("/api/v1/access/events", "/api/v1/visits", f"/api/v1/members/{m.member_id}/visits"):
        r = client.get(path, headers=device.headers)
        assert r.status_code == 401 and r.json()["error"] == "not_authenticated", path


def test_bad_list_parameters_are_refused(client, world):
    staff = world.staff(world.club())
    for params in ({"date": "yesterday"}, {"date": "9999-12-31"}, {"limit": 0},
                   {"limit": 10_000}, {"offset": -1}, {"allowed": "maybe"}):
        r = client.get("/api/v1/access/events", params=params, headers=staff.headers)
        assert r.status_code == 422 and r.json()["message"], params
