"""Front-desk check-ins and managers' overrides."""
from datetime import timedelta

from app.access.models import AccessEvent, Visit
from app.core.actors import Role
from tests.access.conftest import count_rows, today


def _check_in(client, staff, member_id, body=None, key=None):
    headers = staff.headers | ({"Idempotency-Key": key} if key else {})
    return client.post(f"/api/v1/members/{member_id}/check-ins", json=body, headers=headers)


def test_front_desk_checks_a_member_in_by_hand(client, world, gym, session):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    m = gym.member(club, first_name="Clara")
    gym.membership(club, m)
    r = _check_in(client, desk, m.member_id)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["allow"] is True and body["reason"] == "ok"
    assert body["member"] == {"id": m.member_id, "name": "Clara"}
    event = session.get(AccessEvent, body["access_event_id"])
    assert (event.source, event.staff_id, event.device_id, event.card_code) == (
        "desk", desk.user_id, None, None)
    assert session.get(Visit, body["visit_id"]).access_event_id == event.id


def test_the_desk_gets_the_same_denials_as_the_turnstile(client, world, gym):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    m = gym.member(club)
    gym.membership(club, m, start=today() - timedelta(days=40), end=today() - timedelta(days=2))
    r = _check_in(client, desk, m.member_id)
    assert r.status_code == 200
    assert r.json()["allow"] is False and r.json()["reason"] == "membership_expired"
    assert r.json()["visit_id"] is None and r.json()["access_event_id"] > 0


def test_a_repeated_idempotency_key_answers_the_first_check_in(client, world, gym, session):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    m = gym.member(club)
    gym.membership(club, m)
    first = _check_in(client, desk, m.member_id, key="click-1")
    again = _check_in(client, desk, m.member_id, key="click-1")
    assert again.json() == first.json() and first.json()["allow"] is True
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count_rows(session, AccessEvent) == 1
    other = _check_in(client, desk, gym.member(club).member_id, key="click-1")
    assert other.status_code == 422 and other.json()["error"] == "event_id_reused"


def test_a_manager_override_lets_a_denied_member_in_and_is_logged(client, world, gym, session):
    club = world.club()
    manager = world.staff(club, Role.manager)
    m = gym.member(club)
    gym.membership(club, m, start=today() - timedelta(days=40), end=today() - timedelta(days=1))
    r = _check_in(client, manager, m.member_id, {"override_reason": "Renewal paid by bank transfer"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["allow"] is True and body["reason"] == "override" and body["visit_id"]
    assert "expired" in body["message"]
    event = session.get(AccessEvent, body["access_event_id"])
    assert event.allowed is True and event.reason == "override"
    assert event.staff_id == manager.user_id
    assert event.override_reason == "Renewal paid by bank transfer"
    # listed with its reason for the owner to review
    session.rollback()
    listed = client.get("/api/v1/access/events", headers=manager.headers).json()["items"]
    assert [(e["reason"], e["override_reason"]) for e in listed] == [
        ("override", "Renewal paid by bank transfer")]


def test_an_override_that_is_not_needed_is_an_ordinary_check_in(client, world, gym, session):
    club = world.club()
    owner = world.staff(club, Role.owner)
    m = gym.member(club)
    gym.membership(club, m)
    r = _check_in(client, owner, m.member_id, {"override_reason": "VIP"})
    assert r.json()["reason"] == "ok"
    assert session.get(AccessEvent, r.json()["access_event_id"]).override_reason is None


def test_front_desk_may_not_override(client, world, gym, session):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    m = gym.member(club)
    r = _check_in(client, desk, m.member_id, {"override_reason": "Friend of the owner"})
    assert r.status_code == 403 and r.json()["error"] == "override_forbidden"
    assert "manager" in r.json()["message"]
    assert count_rows(session, AccessEvent) == 0


def test_an_override_needs_a_reason(client, world, gym):
    club = world.club()
    manager = world.staff(club, Role.manager)
    m = gym.member(club)
    r = _check_in(client, manager, m.member_id, {"override_reason": "   "})
    assert r.status_code == 422 and "override_reason" in r.json()["message"]


def test_trainers_and_devices_cannot_check_members_in_at_the_desk(client, world, gym):
    club = world.club()
    trainer = world.staff(club, Role.trainer)
    m = gym.member(club)
    gym.membership(club, m)
    assert _check_in(client, trainer, m.member_id).status_code == 403
    device = world.device(club)
    r = client.post(f"/api/v1/members/{m.member_id}/check-ins", headers=device.headers)
    assert r.status_code == 401


def test_checking_in_another_clubs_member_is_not_found(client, world, gym, session):
    a, b = world.club("A"), world.club("B")
    desk_a = world.staff(a, Role.manager)
    stranger = gym.member(b)
    gym.membership(b, stranger)
    r = _check_in(client, desk_a, stranger.member_id)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = _check_in(client, desk_a, stranger.member_id, {"override_reason": "let me"})
    assert r.status_code == 404
    assert _check_in(client, desk_a, 2**63).status_code == 422
    assert count_rows(session, AccessEvent) == 0


def test_bad_desk_input_is_refused(client, world, gym, session):
    club = world.club()
    manager = world.staff(club, Role.manager)
    m = gym.member(club)
    url = f"/api/v1/members/{m.member_id}/check-ins"
    cases = [
        ({"json": {"override_reason": "x" * 501}}, "override_reason"),
        ({"json": {"override_reason": "late\x00"}}, "override_reason"),
        ({"json": {"staff_id": 1}}, "staff_id"),
        ({"content": b"not json", "headers": {"Content-Type": "application/json"}}, ""),
        ({"headers": {"Idempotency-Key": "k" * 101}}, "Idempotency-Key"),
        ({"headers": {"Idempotency-Key": "two words"}}, "Idempotency-Key"),
    ]
    for kwargs, field in cases:
        headers = manager.headers | kwargs.pop("headers", {})
        r = client.post(url, headers=headers, **kwargs)
        assert r.status_code == 422, (kwargs, r.text)
        assert field in r.json()["message"] and r.json()["message"]
    assert count_rows(session, AccessEvent) == 0
