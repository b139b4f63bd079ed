"""IronLogic Z5R-Web Web-JSON as the controller posts it: power_on, ping, check_access and event
batches, with HTTP Basic credentials (login: serial, password: device key)."""
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.access.models import AccessEvent, Visit
from app.core import clock
from tests.access.conftest import count_rows, today
from tests.access.protocols.formats import check_access, events, ping, power_on, wall, z5r

PATH = "/api/v1/devices/ironlogic"


def post(client, device, body: dict, *, auth: tuple[str, str] | None = None):
    return client.post(PATH, json=body, auth=auth or (device.serial, device.key),
                       headers={"User-Agent": "Z5R WEB"})


def test_power_on_is_answered_with_set_active_online_and_the_devices_local_time(client, world,
                                                                               controller):
    club = world.club(timezone="Europe/Berlin")
    z = controller(club, "ironlogic", "40646", timezone="Europe/Moscow")
    r = post(client, z, z5r(40646, power_on(1189641421), ping(1189641422)))
    assert r.status_code == 200
    answer = r.json()
    assert answer["interval"] == 10
    assert answer["messages"] == [{"id": 1189641421, "operation": "set_active", "active": 1,
                                   "online": 1}]
    moscow_now = clock.now().astimezone(ZoneInfo("Europe/Moscow")).replace(tzinfo=None)
    sent = datetime.strptime(answer["date"], "%Y-%m-%d %H:%M:%S")
    assert abs(sent - moscow_now) < timedelta(seconds=5)


def test_check_access_grants_a_valid_member_and_refuses_an_expired_one(client, world, controller,
                                                                       gym, session):
    club = world.club()
    z = controller(club, "ironlogic", "40647")
    anna = gym.member(club, card="00B5009EC1A8")
    gym.membership(club, anna)
    gert = gym.member(club, card="00B5009EC1FF")
    gym.membership(club, gert, start=today() - timedelta(days=40), end=today() - timedelta(days=1))
    r = post(client, z, z5r(40647, check_access(17, anna.card), check_access(18, gert.card),
                            check_access(19, "000000000000")))
    assert [m for m in r.json()["messages"]] == [
        {"id": 17, "operation": "check_access", "granted": 1},
        {"id": 18, "operation": "check_access", "granted": 0},
        {"id": 19, "operation": "check_access", "granted": 0}]
    rows = list(session.scalars(select(AccessEvent).order_by(AccessEvent.id)))
    assert [(e.card_code, e.allowed, e.reason) for e in rows] == [
        (anna.card, True, "ok"), (gert.card, False, "membership_expired")]
    assert count_rows(session, Visit) == 1


def test_an_event_batch_sent_twice_is_acknowledged_in_full_and_recorded_once(client, world,
                                                                            controller, gym,
                                                                            session):
    club = world.club(timezone="Europe/Berlin")
    z = controller(club, "ironlogic", "40648", timezone="Asia/Yekaterinburg", direction="both")
    anna = gym.member(club, card="00B5009EC1A8")
    gym.membership(club, anna)
    at = clock.now().replace(microsecond=0) - timedelta(minutes=50)
    local = wall(at, "Asia/Yekaterinburg")
    batch = events(1189641430,
                   (4, anna.card, local),                          # key known, door opened
                   (2, "000000ABCDEF", wall(at + timedelta(minutes=1), "Asia/Yekaterinburg")),
                   (32, "000000000000", local),                    # door opened (sensor)
                   (5, anna.card, wall(at + timedelta(minutes=20), "Asia/Yekaterinburg")))
    for _ in range(2):  # no acknowledgement reached the controller: it sends the batch again
        r = post(client, z, z5r(40648, batch))
        assert r.json()["messages"] == [{"id": 1189641430, "operation": "events",
                                         "events_success": 4}]
    rows = list(session.scalars(select(AccessEvent).order_by(AccessEvent.id)))
    assert [(e.card_code, e.allowed, e.direction, e.occurred_at) for e in rows] == [
        (anna.card, True, "in", at),
        ("000000ABCDEF", False, "in", at + timedelta(minutes=1)),
        (anna.card, True, "out", at + timedelta(minutes=20))]
    assert {e.source for e in rows} == {"replay"}
    assert count_rows(session, Visit) == 1


def test_the_log_of_an_entry_the_server_granted_is_not_a_second_visit(client, world, controller,
                                                                      gym, session):
    club = world.club()
    z = controller(club, "ironlogic", "40649")
    anna = gym.member(club, card="00B5009EC1A8")
    gym.membership(club, anna)
    assert post(client, z, z5r(40649, check_access(3, anna.card))).json()["messages"][0][
        "granted"] == 1
    r = post(client, z, z5r(40649, events(4, (4, anna.card, wall(clock.now(), "Europe/Berlin")))))
    assert r.json()["messages"][0]["events_success"] == 1
    assert count_rows(session, Visit) == 1 and count_rows(session, AccessEvent) == 1


def test_a_controller_without_its_key_or_unknown_is_refused(client, world, controller, gym,
                                                            session):
    club = world.club()
    z = controller(club, "ironlogic", "40650")
    anna = gym.member(club, card="00B5009EC1A8")
    gym.membership(club, anna)
    body = z5r(40650, check_access(1, anna.card))
    r = client.post(PATH, json=body)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    r = post(client, z, body, auth=("40650", "wrong"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_device_key"
    r = post(client, z, z5r(99999, check_access(1, anna.card)))
    assert r.status_code == 404 and r.json()["error"] == "unknown_device"
    r = client.post(PATH, content=b"not json", auth=(z.serial, z.key))
    assert r.status_code == 400
    assert count_rows(session, AccessEvent) == 0
