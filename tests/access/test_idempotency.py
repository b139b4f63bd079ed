"""Devices retry and replay: one event id, one decision, one record -- also under concurrency."""
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.access import service
from app.access.models import AccessEvent, Visit
from app.core import clock
from app.core.db import transaction
from app.memberships.models import Membership
from tests.access.conftest import count_rows


def test_the_same_event_posted_twice_answers_identically(world, gym, post_event, session):
    club = world.club()
    device = world.device(club)
    m = gym.member(club)
    gym.membership(club, m)
    first = post_event(device, m.card, event_id="4711")
    again = post_event(device, m.card, event_id="4711")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and first.json()["allow"] is True
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert count_rows(session, AccessEvent) == 1 and count_rows(session, Visit) == 1


def test_a_replayed_denial_stays_the_same_denial(world, gym, post_event, session):
    club = world.club()
    device = world.device(club)
    first = post_event(device, "UNKNOWN1", event_id="9")
    m = gym.member(club, card="UNKNOWN1")  # the card becomes known after the first attempt
    gym.membership(club, m)
    again = post_event(device, "UNKNOWN1", event_id="9")
    assert again.json() == first.json() and again.json()["reason"] == "unknown_card"
    assert count_rows(session, AccessEvent) == 1


def test_event_ids_are_per_device(world, gym, post_event, session):
    club = world.club(anti_passback_minutes=0)
    north, south = world.device(club), world.device(club)
    m = gym.member(club)
    gym.membership(club, m)
    a = post_event(north, m.card, event_id="1").json()
    b = post_event(south, m.card, event_id="1").json()
    assert a["visit_id"] != b["visit_id"] and a["allow"] and b["allow"]
    assert count_rows(session, AccessEvent) == 2


def test_an_event_id_reused_for_another_card_is_refused(world, gym, post_event, session):
    club = world.club()
    device = world.device(club)
    a, b = gym.member(club), gym.member(club)
    gym.membership(club, a)
    assert post_event(device, a.card, event_id="77").status_code == 200
    r = post_event(device, b.card, event_id="77")
    assert r.status_code == 422 and r.json()["error"] == "event_id_reused"
    assert count_rows(session, AccessEvent) == 1


def test_events_without_an_id_are_each_recorded(world, gym, post_event, session):
    club = world.club()
    device = world.device(club)
    post_event(device, "NOPE")
    post_event(device, "NOPE")
    assert count_rows(session, AccessEvent) == 2


def test_the_same_event_posted_concurrently_is_recorded_once(db, client, world, gym, session):
    club = world.club()
    device = world.device(club)
    m = gym.member(club)
    membership_id = gym.membership(club, m)
    body = {"card": m.card, "event_id": "burst-1"}
    barrier = threading.Barrier(8)

    def post(_):
        barrier.wait()
        return client.post("/api/v1/access/events", json=body, headers=device.headers)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    assert {r.status_code for r in answers} == {200}
    assert len({r.text for r in answers}) == 1 and answers[0].json()["allow"] is True
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == 7
    assert count_rows(session, AccessEvent) == 1 and count_rows(session, Visit) == 1
    assert session.get(Membership, membership_id).visits_used == 1


def test_a_replay_storm_leaves_one_record_per_event(client, world, gym, session):
    """200 events posted three times, the second round from 8 threads at once."""
    club = world.club(anti_passback_minutes=5)
    device = world.device(club)
    members = [gym.member(club) for _ in range(40)]
    for m in members:
        gym.membership(club, m)
    now = clock.now()
    events = []
    for i, m in enumerate(members):  # 4 entries each, 10 minutes apart: all granted
        for k in range(4):
            events.append({"card": m.card, "event_id": f"{i}-{k}",
                           "occurred_at": (now - timedelta(minutes=10 * k + 1)).isoformat()})
    for i in range(40):  # and 40 cards nobody knows
        events.append({"card": f"STRANGER{i}", "event_id": f"x-{i}",
                       "occurred_at": (now - timedelta(minutes=i % 30)).isoformat()})
    assert len(events) == 200

    def post(body):
        r = client.post("/api/v1/access/events", json=body, headers=device.headers)
        assert r.status_code == 200, r.text
        return body["event_id"], r.json()

    rng = random.Random(7)
    first = dict(map(post, rng.sample(events, len(events))))
    with ThreadPoolExecutor(8) as pool:
        second = dict(pool.map(post, rng.sample(events, len(events))))
    third = dict(map(post, reversed(events)))

    assert first == second == third
    assert sum(a["allow"] for a in first.values()) == 160
    assert count_rows(session, AccessEvent) == 200
    assert count_rows(session, Visit) == 160
    used = session.scalars(select(Membership.visits_used)).all()
    assert used == [4] * 40


@pytest.mark.parametrize("autocommit", [False, True], ids=["transaction", "autocommit"])
def test_visit_limit_race_grants_exactly_one(db, world, gym, session, autocommit):
    """10 check-ins at once for a pass with one visit left: the guarded UPDATE lets one through.
    Also on the turnstile's autocommit connection, where the grant and its re-decision as
    refused must commit together (the losers' events say refused, none says let in)."""
    if not db.is_postgres:
        pytest.skip("needs PostgreSQL row locks; SQLite serialises whole transactions")
    club = world.club(anti_passback_minutes=0)
    device = world.device(club)
    m = gym.member(club)
    membership_id = gym.membership(club, m, visit_limit=10, visits_used=9)
    barrier = threading.Barrier(10)

    def attempt(i):
        with transaction(db.sessionmaker) as s:
            # check out a connection before the race starts
            s.connection(execution_options={"isolation_level": "AUTOCOMMIT"} if autocommit else {})
            barrier.wait()
            return service.check_in(s, club_id=club.id, occurred_at=clock.now(), card_code=m.card,
                                    device_id=device.device_id, dedup_key=f"dev:race:{i}")

    with ThreadPoolExecutor(10) as pool:
        decisions = list(pool.map(attempt, range(10)))
    assert sum(d.allow for d in decisions) == 1
    assert sorted(d.reason for d in decisions) == ["ok"] + ["visit_limit_reached"] * 9
    assert session.get(Membership, membership_id).visits_used == 10
    assert count_rows(session, Visit) == 1
    denied = session.scalars(select(AccessEvent).where(AccessEvent.allowed.is_(False))).all()
    assert len(denied) == 9 and {e.reason for e in denied} == {"visit_limit_reached"}
