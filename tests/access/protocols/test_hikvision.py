"""Hikvision ISAPI events as a face terminal posts them: multipart with a picture, bare JSON,
heartbeats, replays from its buffer, and remote checks answered in the same response."""
import json
from datetime import timedelta, timezone

from sqlalchemy import select

from app.access.models import AccessEvent, Visit
from app.clubs.models import Device
from app.core import clock
from tests.access.conftest import count_rows, today
from tests.access.protocols.formats import heartbeat, hik_event, hik_multipart

MOSCOW = timezone(timedelta(hours=3))


def url(device, key: str | None = None) -> str:
    return f"/api/v1/devices/hikvision/{device.serial}/{key or device.key}/events"


def post(client, device, event: dict, *, multipart: bool = True, key: str | None = None):
    if multipart:
        content_type, body = hik_multipart(event)
    else:
        content_type, body = "application/json", json.dumps(event).encode()
    return client.post(url(device, key), content=body, headers={"Content-Type": content_type})


def stamp(at) -> str:
    """ISAPI dateTime: local time of the device with its offset."""
    return at.astimezone(MOSCOW).replace(microsecond=0).isoformat()


def test_a_card_pass_posted_twice_is_one_visit_at_the_devices_instant(client, world, controller,
                                                                     gym, session):
    club = world.club(timezone="Europe/Berlin")
    hik = controller(club, "hikvision", "DS-K1T341AMF20210101")
    anna = gym.member(club, card="3141592653")
    gym.membership(club, anna)
    at = clock.now().replace(microsecond=0) - timedelta(seconds=40)
    event = hik_event(serial_no=12345, date_time=stamp(at), card=anna.card, sub=0x01)
    for _ in range(2):
        r = post(client, hik, event)
        assert r.status_code == 200, r.text
    (visit,) = session.scalars(select(Visit))
    assert visit.member_id == anna.member_id and visit.occurred_at == at
    (row,) = session.scalars(select(AccessEvent))
    assert row.dedup_key.startswith(f"hik:{hik.serial}:12345:") and row.source == "device"


def test_a_face_pass_is_identified_by_the_employee_number(client, world, controller, gym,
                                                          session):
    club = world.club()
    hik = controller(club, "hikvision")
    anna = gym.member(club, card=None)
    gym.membership(club, anna)
    event = hik_event(serial_no=7, date_time=stamp(clock.now()), employee=str(anna.member_id),
                      sub=0x4B)
    assert post(client, hik, event, multipart=False).status_code == 200  # bare JSON firmware
    (visit,) = session.scalars(select(Visit))
    assert visit.member_id == anna.member_id


def test_events_replayed_from_the_buffer_are_recorded_as_replays_once(client, world, controller,
                                                                     gym, session):
    club = world.club()
    hik = controller(club, "hikvision")
    anna = gym.member(club, card="3141592653")
    gym.membership(club, anna)
    stranger = "2718281828"
    at = clock.now().replace(microsecond=0) - timedelta(hours=2)
    batch = [hik_event(serial_no=500, date_time=stamp(at), card=anna.card, current=False),
             hik_event(serial_no=501, date_time=stamp(at + timedelta(minutes=1)), card=stranger,
                       sub=0x09, current=False),  # card not found: refused by the device
             hik_event(serial_no=502, date_time=stamp(at + timedelta(minutes=2)), sub=0x15,
                       current=False)]  # door unlocked: not a check-in
    for _ in range(2):
        for event in batch:
            assert post(client, hik, event).status_code == 200
    rows = list(session.scalars(select(AccessEvent).order_by(AccessEvent.id)))
    assert [(e.card_code, e.allowed, e.source, e.occurred_at) for e in rows] == [
        (anna.card, True, "replay", at),
        (stranger, False, "replay", at + timedelta(minutes=1))]
    assert count_rows(session, Visit) == 1


def test_a_remote_check_answers_failed_for_a_frozen_membership(client, world, controller, gym,
                                                               session):
    club = world.club()
    hik = controller(club, "hikvision")
    frida = gym.member(club, first_name="Frida", card="1618033988")
    ms = gym.membership(club, frida)
    until = today() + timedelta(days=4)
    gym.freeze(club, ms, start=today() - timedelta(days=1), end=until)
    event = hik_event(serial_no=901, date_time=stamp(clock.now()), card=frida.card, remote=True)
    r = post(client, hik, event)
    assert r.status_code == 200
    info = f"Frozen until {until.day} {until:%B}" + (
        "" if until.year == today().year else f" {until.year}")
    assert r.json() == {"RemoteCheck": {"serialNo": 901, "checkResult": "failed", "info": info}}
    assert count_rows(session, Visit) == 0


def test_a_remote_check_answers_success_for_a_valid_member_once(client, world, controller, gym,
                                                                session):
    club = world.club()
    hik = controller(club, "hikvision")
    anna = gym.member(club, first_name="Anna", card="3141592653")
    gym.membership(club, anna)
    asked = stamp(clock.now())
    event = hik_event(serial_no=902, date_time=asked, card=anna.card, remote=True)
    for _ in range(2):  # a retried question gets the first answer
        r = post(client, hik, event, multipart=False)
        assert r.json() == {"RemoteCheck": {"serialNo": 902, "checkResult": "success",
                                            "info": "Welcome, Anna!"}}
    # the terminal then logs the pass it made on that answer: still one visit
    post(client, hik, hik_event(serial_no=903, date_time=asked, card=anna.card, sub=0x01))
    assert count_rows(session, Visit) == 1 and count_rows(session, AccessEvent) == 1


def test_a_heartbeat_is_answered_and_marks_the_device_alive(client, world, controller, session):
    from app.access import service

    hik = controller(world.club(), "hikvision")
    service._device_seen.clear()
    before = clock.now()
    r = post(client, hik, heartbeat(stamp(clock.now())), multipart=False)
    assert r.status_code == 200 and r.json()["statusString"] == "OK"
    seen = session.get(Device, hik.device_id).last_seen_at
    assert seen is not None and seen >= before - timedelta(seconds=1)
    assert count_rows(session, AccessEvent) == 0


def test_an_unknown_serial_or_a_wrong_key_is_refused(client, world, controller, gym, session):
    club = world.club()
    hik = controller(club, "hikvision")
    zk = controller(club, "zkteco")
    anna = gym.member(club, card="3141592653")
    gym.membership(club, anna)
    event = hik_event(serial_no=1, date_time=stamp(clock.now()), card=anna.card, remote=True)
    r = client.post(f"/api/v1/devices/hikvision/NOSUCH/{hik.key}/events", json=event)
    assert r.status_code == 404 and r.json()["error"] == "unknown_device"
    r = client.post(f"/api/v1/devices/hikvision/{zk.serial}/{zk.key}/events", json=event)
    assert r.status_code == 404  # a ZKTeco serial is not a Hikvision device
    r = post(client, hik, event, key="not-the-key")
    assert r.status_code == 401 and r.json()["error"] == "invalid_device_key"
    assert count_rows(session, AccessEvent) == 0


def test_a_body_that_is_not_a_json_event_is_refused_with_a_hint(client, world, controller):
    hik = controller(world.club(), "hikvision")
    xml = b"<EventNotificationAlert><eventType>AccessControllerEvent</eventType>" \
          b"</EventNotificationAlert>"
    for content_type, body in (("application/xml", xml),
                               ("multipart/form-data; boundary=x", b"--x\r\n\r\n--x--\r\n")):
        r = client.post(url(hik), content=body, headers={"Content-Type": content_type})
        assert r.status_code == 400 and "JSON" in r.json()["message"]
