"""The turnstile endpoint's edges: authentication, bad input, device liveness, the visit hook."""
from datetime import timedelta, timezone

import pytest
from sqlalchemy import select

from app.access import service
from app.access.models import AccessEvent, Visit
from app.clubs import service as clubs_service
from app.clubs.models import Device
from app.core import clock, events
from app.core.db import transaction
from app.core.events import VisitGranted
from tests.access.conftest import count_rows


def test_a_revoked_or_missing_device_key_is_refused(client, world, gym, db, session):
    club = world.club()
    device = world.device(club)
    m = gym.member(club)
    gym.membership(club, m)
    with transaction(db.sessionmaker) as s:
        clubs_service.revoke_device(s, device=s.get(Device, device.device_id))
    r = client.post("/api/v1/access/events", json={"card": m.card}, headers=device.headers)
    assert r.status_code == 401 and r.json()["error"] == "invalid_device_key"
    r = client.post("/api/v1/access/events", json={"card": m.card})
    assert r.status_code == 401 and "X-Device-Key" in r.json()["message"]
    staff = world.staff(club)
    r = client.post("/api/v1/access/events", json={"card": m.card}, headers=staff.headers)
    assert r.status_code == 401
    assert count_rows(session, AccessEvent) == 0


@pytest.mark.parametrize("body, field", [
    ({}, "card"),
    ({"card": ""}, "card"),
    ({"card": "   "}, "card"),
    ({"card": "X" * 65}, "card"),
    ({"card": "A" * 100_000}, "card"),
    ({"card": "AB\x00CD"}, "card"),
    ({"card": "AB\x07CD"}, "card"),
    ({"card": "AB/CD"}, "card"),
    ({"card": 12345678}, "card"),
    ({"card": "AB12", "event_id": "e" * 101}, "event_id"),
    ({"card": "AB12", "event_id": "has space"}, "event_id"),
    ({"card": "AB12", "event_id": "nul\x00"}, "event_id"),
    ({"card": "AB12", "occurred_at": "2026-05-16T18:05:00"}, "occurred_at"),
    ({"card": "AB12", "occurred_at": "yesterday evening"}, "occurred_at"),
    ({"card": "AB12", "direction": "sideways"}, "direction"),
    ({"card": "AB12", "club_id": 2}, "club_id"),
])
def test_bad_events_are_refused_with_a_message_naming_the_field(client, world, session, body, field):
    device = world.device(world.club())
    r = client.post("/api/v1/access/events", json=body, headers=device.headers)
    assert r.status_code == 422, r.text
    assert field in r.json()["message"]
    assert count_rows(session, AccessEvent) == 0


def test_a_time_without_offset_is_refused_asking_for_one(client, world):
    device = world.device(world.club())
    r = client.post("/api/v1/access/events", headers=device.headers,
                    json={"card": "AB12", "occurred_at": "2026-05-16T18:05:00"})
    assert r.status_code == 422 and "UTC offset" in r.json()["message"]


def test_a_time_in_the_future_or_long_ago_is_refused(client, world, session):
    device = world.device(world.club())
    future = (clock.now() + timedelta(minutes=10)).isoformat()
    r = client.post("/api/v1/access/events", json={"card": "AB12", "occurred_at": future},
                    headers=device.headers)
    assert r.status_code == 422 and r.json()["error"] == "occurred_in_future"
    assert "clock" in r.json()["message"]
    for ancient in ("2001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+05:00"):
        r = client.post("/api/v1/access/events", json={"card": "AB12", "occurred_at": ancient},
                        headers=device.headers)
        assert r.status_code == 422 and r.json()["error"] == "occurred_too_long_ago"
    slightly_ahead = (clock.now() + timedelta(minutes=2)).isoformat()  # clocks drift a little
    r = client.post("/api/v1/access/events", json={"card": "AB12", "occurred_at": slightly_ahead},
                    headers=device.headers)
    assert r.status_code == 200 and r.json()["reason"] == "unknown_card"


def test_a_body_that_is_not_json_is_refused(client, world, session):
    device = world.device(world.club())
    json_type = {"Content-Type": "application/json"}
    for content, status in ((b"card=AB12", 422), (b"[1, 2]", 422), (b'{"card": "AB', 422),
                            (b"card=\xff\xfe", 400)):
        r = client.post("/api/v1/access/events", content=content,
                        headers=device.headers | json_type)
        assert r.status_code == status and r.json()["message"], content
    r = client.post("/api/v1/access/events", data={"card": "AB12"}, headers=device.headers)
    assert r.status_code == 422 and r.json()["message"]
    assert count_rows(session, AccessEvent) == 0


def test_a_time_with_any_offset_is_stored_as_the_same_instant(client, world, session):
    device = world.device(world.club())
    at = (clock.now() - timedelta(hours=1)).replace(microsecond=0)
    moscow = at.astimezone(timezone(timedelta(hours=3)))
    r = client.post("/api/v1/access/events", headers=device.headers,
                    json={"card": "AB12", "event_id": "m1", "occurred_at": moscow.isoformat()})
    assert r.status_code == 200, r.text
    event = session.scalar(select(AccessEvent))
    assert event.occurred_at == at and event.occurred_at.utcoffset() == timedelta(0)
    assert event.received_at - event.occurred_at >= timedelta(minutes=59)


def test_the_device_is_marked_as_seen(client, world, session):
    device = world.device(world.club())
    service._device_seen.clear()
    before = clock.now()
    client.post("/api/v1/access/events", json={"card": "AB12"}, headers=device.headers)
    seen = session.get(Device, device.device_id).last_seen_at
    assert seen is not None and seen >= before - timedelta(seconds=1)


def test_granted_visits_are_announced_to_listeners(client, world, gym, post_event, session,
                                                   monkeypatch):
    calls = []

    def retention(session_, event):
        assert session_.connection() is not None
        calls.append((event.club_id, event.member_id, event.occurred_at))

    club = world.club()
    device = world.device(club)
    m = gym.member(club)
    gym.membership(club, m)
    at = clock.now() - timedelta(minutes=1)
    with events.replaced(VisitGranted, best_effort=[retention]):
        post_event(device, m.card, event_id="1", occurred_at=at)
        post_event(device, m.card, event_id="1", occurred_at=at)  # replay: no second call
        post_event(device, "UNKNOWN")  # denied: no call
    assert calls == [(club.id, m.member_id, at)]


def test_a_failing_listener_does_not_keep_the_member_out(client, world, gym, post_event, session,
                                                         monkeypatch):
    def broken(session_, event):
        session_.execute(Visit.__table__.insert().values(club_id=-1))  # fails in the database

    club = world.club()
    m = gym.member(club)
    gym.membership(club, m)
    with events.replaced(VisitGranted, best_effort=[broken]):
        r = post_event(world.device(club), m.card)
    assert r.status_code == 200 and r.json()["allow"] is True
    assert count_rows(session, Visit) == 1
