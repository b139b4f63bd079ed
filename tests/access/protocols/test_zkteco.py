"""ZKTeco PUSH as a device speaks it: handshake, ATTLOG and rtlog uploads, background
verification, table uploads, and the refusals."""
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.access.models import AccessEvent, Visit
from app.access.protocols.common import ZK_REFUSED, address_allowed
from app.clubs import service as clubs_service
from app.clubs.models import Device
from app.core import clock
from app.core.db import transaction
from tests.access.conftest import count_rows, today
from tests.access.protocols.formats import attlog, rtlog, rtlog_batch, wall

TEXT = {"Content-Type": "text/plain"}


def cdata(client, serial: str, body: str, **params):
    return client.post("/iclock/cdata", params={"SN": serial} | params, content=body.encode(),
                       headers=TEXT)


def events(session) -> list[AccessEvent]:
    rows = list(session.scalars(select(AccessEvent).order_by(AccessEvent.id)))
    session.rollback()
    return rows


def test_the_handshake_answers_the_device_options_in_plain_text(client, world, controller):
    club = world.club()
    zk = controller(club, "zkteco", "CKJG201960123")
    r = client.get("/iclock/cdata", params={"SN": zk.serial, "options": "all",
                                            "pushver": "2.4.1", "language": "69"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    berlin_hours = int(clock.now().astimezone(ZoneInfo("Europe/Berlin")).utcoffset().total_seconds()) // 3600
    assert r.text.splitlines() == [
        "GET OPTION FROM: CKJG201960123", "ATTLOGStamp=None", "OPERLOGStamp=9999",
        "ErrorDelay=30", "Delay=10", "TransTimes=00:00;14:05", "TransInterval=1",
        "TransFlag=TransData AttLog OpLog", "Realtime=1", f"TimeZone={berlin_hours}",
        "Encrypt=None"]
    india = controller(club, "zkteco", "CKJG201960124", timezone="Asia/Kolkata")
    r = client.get("/iclock/cdata", params={"SN": india.serial, "options": "all"})
    assert "TimeZone=330" in r.text.splitlines()  # not whole hours: minutes


def test_an_unknown_or_revoked_serial_gets_no_200(client, world, controller, gym, db, session):
    club = world.club()
    m = gym.member(club, card="13622345")
    gym.membership(club, m)
    hik = controller(club, "hikvision", "DS-K1T341AM0001")
    for path, method in (("/iclock/cdata", "get"), ("/iclock/getrequest", "get"),
                         ("/iclock/cdata", "post"), ("/iclock/devicecmd", "post")):
        for serial in ("NOSUCHSERIAL", hik.serial, "", "bad serial\x00"):
            r = client.request(method.upper(), path, params={"SN": serial, "table": "rtlog"},
                               content=rtlog(time=wall(clock.now(), "Europe/Berlin"), index=1,
                                             cardno=m.card).encode())
            assert r.status_code == 404, (path, serial, r.text)
            assert r.headers["content-type"].startswith("text/plain")
            assert r.text == ZK_REFUSED
    zk = controller(club, "zkteco")
    with transaction(db.sessionmaker) as s:
        clubs_service.revoke_device(s, device=s.get(Device, zk.device_id))
    r = client.get("/iclock/cdata", params={"SN": zk.serial, "options": "all"})
    assert r.status_code == 404 and r.text == ZK_REFUSED  # exactly like an unknown serial
    r = client.post("/iclock/cdata", params={"SN": zk.serial, "AuthType": "device"},
                    content=rtlog(time=wall(clock.now(), "Europe/Berlin"), index=2,
                                  cardno=m.card).encode())
    assert r.status_code == 404 and "AUTH=" not in r.text
    assert count_rows(session, AccessEvent) == 0


def test_an_attlog_batch_posted_twice_records_each_visit_once(client, world, controller, gym,
                                                              session):
    club = world.club()
    zk = controller(club, "zkteco")
    anna, ben = gym.member(club, first_name="Anna"), gym.member(club, first_name="Ben")
    gym.membership(club, anna)
    gym.membership(club, ben)
    first = clock.now().replace(microsecond=0) - timedelta(minutes=40)
    second = first + timedelta(minutes=7)
    body = attlog((anna.member_id, wall(first, "Europe/Berlin"), 0, 4),
                  (ben.member_id, wall(second, "Europe/Berlin"), 0, 1),
                  (999_999, wall(second, "Europe/Berlin"), 0, 1))  # a PIN that is no member
    for _ in range(2):
        r = cdata(client, zk.serial, body, table="ATTLOG", Stamp="9999")
        assert r.status_code == 200 and r.text == "OK: 3"
    visits = list(session.scalars(select(Visit).order_by(Visit.occurred_at)))
    assert [(v.member_id, v.occurred_at) for v in visits] == [(anna.member_id, first),
                                                                (ben.member_id, second)]
    rows = events(session)
    assert len(rows) == 2 and {e.source for e in rows} == {"replay"}
    assert all(e.device_id == zk.device_id and e.allowed for e in rows)


def test_naive_device_times_are_read_in_the_device_timezone_else_the_clubs(client, world,
                                                                          controller, gym,
                                                                          session):
    club = world.club(timezone="Europe/Berlin")
    new_york = controller(club, "zkteco", timezone="America/New_York")
    plain = controller(club, "zkteco")
    anna, ben = gym.member(club), gym.member(club)
    gym.membership(club, anna)
    gym.membership(club, ben)
    at = clock.now().replace(microsecond=0) - timedelta(minutes=20)
    cdata(client, new_york.serial, attlog((anna.member_id, wall(at, "America/New_York"), 0, 4)),
          table="ATTLOG")
    cdata(client, plain.serial, attlog((ben.member_id, wall(at, "Europe/Berlin"), 0, 4)),
          table="ATTLOG")
    got = {e.member_id: e.occurred_at for e in events(session)}
    assert got == {anna.member_id: at, ben.member_id: at}


def test_an_rtlog_batch_posted_twice_records_what_the_device_did_once(client, world, controller,
                                                                      gym, session):
    club = world.club()
    zk = controller(club, "zkteco", direction="both")
    anna = gym.member(club, first_name="Anna", card="13622345")
    gym.membership(club, anna)
    gone = gym.member(club, first_name="Gert", card="55500011")
    gym.membership(club, gone, start=today() - timedelta(days=60), end=today() - timedelta(days=3))
    now = clock.now().replace(microsecond=0)
    body = rtlog_batch(
        rtlog(time=wall(now - timedelta(seconds=30), "Europe/Berlin"), index=13355,
              pin=str(anna.member_id), cardno=anna.card, event=0),
        rtlog(time=wall(now - timedelta(seconds=20), "Europe/Berlin"), index=13356,
              cardno=gone.card, event=29),  # person expired: the device refused
        rtlog(time=wall(now - timedelta(seconds=10), "Europe/Berlin"), index=13357,
              event=200),  # door opened: not a check-in
        rtlog(time=wall(now - timedelta(minutes=30), "Europe/Berlin"), index=13300,
              pin=str(anna.member_id), cardno=anna.card, event=0, inoutstatus=1))  # went out
    for _ in range(2):
        r = cdata(client, zk.serial, body, table="rtlog")
        assert r.status_code == 200 and r.text == "OK"
    rows = events(session)
    assert [(e.card_code, e.allowed, e.reason, e.direction, e.source) for e in rows] == [
        (anna.card, True, "ok", "in", "device"),
        (gone.card, False, "membership_expired", "in", "device"),
        (anna.card, True, "ok", "out", "replay"),
    ]
    assert rows[0].dedup_key.startswith(f"zk:{zk.serial}:13355:")
    assert count_rows(session, Visit) == 1


def test_an_entry_the_device_refused_is_never_a_visit(client, world, controller, gym, session):
    club = world.club()
    zk = controller(club, "zkteco")
    anna = gym.member(club, card="13622345")
    gym.membership(club, anna)  # valid: the server would have let her in
    at = wall(clock.now() - timedelta(seconds=5), "Europe/Berlin")
    r = cdata(client, zk.serial, rtlog(time=at, index=7, cardno=anna.card, event=24), table="rtlog")
    assert r.status_code == 200 and r.text == "OK"
    assert count_rows(session, Visit) == 0
    assert all(not e.allowed for e in events(session))


def test_background_verification_of_an_expired_member_fails_with_a_reason(client, world,
                                                                          controller, gym,
                                                                          session):
    club = world.club()
    zk = controller(club, "zkteco")
    gone = gym.member(club, first_name="Gert", card="55500011")
    gym.membership(club, gone, start=today() - timedelta(days=60), end=today() - timedelta(days=3))
    record = rtlog(time=wall(clock.now(), "Europe/Berlin"), index=0, cardno=gone.card, event=0)
    r = cdata(client, zk.serial, record, AuthType="device")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    expired_on = today() - timedelta(days=3)
    assert r.text.splitlines() == [
        "AUTH=FAILED", f"TIPS=Membership expired on {expired_on.day} {expired_on:%B}"
        + ("" if expired_on.year == today().year else f" {expired_on.year}")]
    (event,) = events(session)
    assert not event.allowed and event.reason == "membership_expired"
    assert event.source == "device" and event.dedup_key.startswith(f"live:zk:{zk.serial}:")
    assert count_rows(session, Visit) == 0


def test_background_verification_of_a_valid_member_succeeds_once(client, world, controller, gym,
                                                                  session):
    club = world.club()
    zk = controller(club, "zkteco")
    anna = gym.member(club, first_name="Anna", card="13622345")
    gym.membership(club, anna)
    asked_at = wall(clock.now(), "Europe/Berlin")
    record = rtlog(time=asked_at, index=0, cardno=anna.card, event=0)
    r = cdata(client, zk.serial, record, AuthType="device")
    assert r.text.splitlines() == ["AUTH=SUCCEED", "TIPS=Welcome, Anna!"]
    r = cdata(client, zk.serial, record, AuthType="device")  # the device asks again (timeout)
    assert r.text.splitlines() == ["AUTH=SUCCEED", "TIPS=Welcome, Anna!"]
    # then it uploads its own log of the passage: the same entry, not a second one
    r = cdata(client, zk.serial, rtlog(time=asked_at, index=13400, cardno=anna.card, event=0),
              table="rtlog")
    assert r.text == "OK"
    assert count_rows(session, Visit) == 1 and count_rows(session, AccessEvent) == 1


def test_a_panel_that_needs_it_is_told_to_open_the_door(client, world, controller, gym):
    club = world.club()
    zk = controller(club, "zkteco", open_door_seconds=5)
    anna = gym.member(club, first_name="Anna", card="13622345")
    gym.membership(club, anna)
    r = cdata(client, zk.serial, rtlog(time=wall(clock.now(), "Europe/Berlin"), index=0,
                                       cardno=anna.card), AuthType="device")
    assert r.text.splitlines() == ["AUTH=SUCCEED", "CONTROL DEVICE 01010105", "TIPS=Welcome, Anna!"]
    r = cdata(client, zk.serial, rtlog(time=wall(clock.now(), "Europe/Berlin"), index=0,
                                       cardno="99999999"), AuthType="device")
    assert r.text.splitlines() == ["AUTH=FAILED",
                                   "TIPS=Card not recognised, please see the front desk"]


def test_table_uploads_are_answered_with_their_count_and_other_tables_with_ok(client, world,
                                                                              controller,
                                                                              session):
    zk = controller(world.club(), "zkteco")
    users = "user uid=1\tcardno=13622345\tpin=1\tpassword=\tgroup=0\tstarttime=0\tendtime=0\n" * 3
    r = cdata(client, zk.serial, users, table="tabledata", tablename="user", count="3")
    assert r.status_code == 200 and r.text == "user=3"
    r = cdata(client, zk.serial, users, table="tabledata", tablename="user")
    assert r.text == "user=3"  # no count given: the lines
    r = cdata(client, zk.serial, "OPLOG 4\t0\t2026-05-16 18:05:00\t0\t0\t0\t0\n", table="OPERLOG")
    assert r.text == "OK"
    r = client.get("/iclock/ping", params={"SN": zk.serial})
    assert r.status_code == 200 and r.text == "OK"
    assert count_rows(session, AccessEvent) == 0


def test_a_device_calling_from_outside_its_networks_is_refused(client, world, controller,
                                                               session):
    zk = controller(world.club(), "zkteco", allowed_networks=["10.20.0.0/16"])
    r = client.get("/iclock/cdata", params={"SN": zk.serial, "options": "all"})
    assert r.status_code == 404 and r.text == ZK_REFUSED  # the same as an unknown serial
    assert address_allowed("10.20.3.4", ["10.20.0.0/16"])
    assert address_allowed("2001:db8::7", ["10.0.0.0/8", "2001:db8::/32"])
    assert not address_allowed("10.21.0.1", ["10.20.0.0/16"])
    assert not address_allowed("testclient", ["10.20.0.0/16"])
    assert address_allowed("192.0.2.1", [])
