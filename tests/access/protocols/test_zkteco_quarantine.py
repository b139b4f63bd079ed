"""Issue 16, item 3: a ZKTeco serial number alone is no credential.

Each "Seen:" of the security review, replayed: with only a serial (a registered one still waiting
for approval, or an approved one called from outside its networks) the caller gets no user list,
cannot confirm commands, cannot get a member in or spend their visits, and cannot tell a known
serial from an unknown one. Also: the manager's approval step, and the rate limit.
"""
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.access.models import AccessEvent, Visit
from app.access.protocols import allowlist, common
from app.access.protocols.common import ZK_REFUSED
from app.access.protocols.models import DeviceCommand
from app.clubs import service as clubs_service
from app.clubs.models import Device
from app.core import clock as app_clock
from app.core.actors import Role
from app.core.db import transaction
from app.memberships.models import Membership
from tests.access.conftest import count_rows
from tests.access.protocols.conftest import DEVICE_ADDRESS, client_from
from tests.access.protocols.formats import attlog, rtlog, wall

OUTSIDE = "198.51.100.7"  # an address on no device network (TEST-NET-2)
TEXT = {"Content-Type": "text/plain"}


@pytest.fixture
def club_with_member(world, gym, db):
    """A club, a member with a card and a 10-visit pass, and the allow-list queued for `zk`."""

    def make(controller, **device):
        club = world.club()
        zk = controller(club, "zkteco", **device)
        anna = gym.member(club, first_name="Zoe", last_name="Werner", card="13622345")
        membership = gym.membership(club, anna, visit_limit=10)
        with transaction(db.sessionmaker) as s:
            allowlist.sync_device(s, device_id=zk.device_id)
        return club, zk, anna, membership

    return make


def commands(session, device_id: int) -> list[tuple[str, str]]:
    rows = [(c.status, c.command) for c in session.scalars(
        select(DeviceCommand).where(DeviceCommand.device_id == device_id)
        .order_by(DeviceCommand.id))]
    session.rollback()
    return rows


def visits_used(session, membership_id: int) -> int:
    n = session.scalar(select(Membership.visits_used).where(Membership.id == membership_id))
    session.rollback()
    return n


def refused(r) -> bool:
    return (r.status_code == 404 and r.text == ZK_REFUSED
            and r.headers["content-type"].startswith("text/plain"))


# the two ways of having "only the serial": the device is not approved yet, or it is approved
# and the caller is not on its network
ONLY_THE_SERIAL = [pytest.param({"approved": False}, DEVICE_ADDRESS, id="quarantined"),
                   pytest.param({}, OUTSIDE, id="approved-other-network")]


@pytest.mark.parametrize(("device", "address"), ONLY_THE_SERIAL)
def test_getrequest_with_only_the_serial_leaks_no_user_list(app, client, controller,
                                                             club_with_member, session, device,
                                                             address):
    _, zk, _, _ = club_with_member(controller, **device)
    queued = commands(session, zk.device_id)
    assert queued and "Name=Zoe Werner" in queued[0][1]
    with client_from(app, address) as attacker:
        r = attacker.get("/iclock/getrequest", params={"SN": zk.serial})
    assert refused(r) and "DATA" not in r.text and "Zoe" not in r.text
    assert commands(session, zk.device_id) == queued  # still queued for the real device


def test_the_approved_device_on_its_network_still_gets_its_user_list(client, controller,
                                                                      club_with_member, session):
    _, zk, anna, _ = club_with_member(controller)
    r = client.get("/iclock/getrequest", params={"SN": zk.serial})
    assert r.status_code == 200 and f"Pin={anna.member_id}\tName=Zoe Werner" in r.text


@pytest.mark.parametrize(("device", "address"), ONLY_THE_SERIAL)
def test_devicecmd_with_only_the_serial_confirms_no_command(app, client, controller,
                                                             club_with_member, session, db,
                                                             device, address):
    _, zk, _, _ = club_with_member(controller, **device)
    if not device:  # approved: the real device collected the command and has not confirmed it
        assert client.get("/iclock/getrequest", params={"SN": zk.serial}).status_code == 200
    (before,) = commands(session, zk.device_id)
    with db.sessionmaker() as s:
        command_id = s.scalar(select(DeviceCommand.id).where(DeviceCommand.device_id == zk.device_id))
    with client_from(app, address) as attacker:
        r = attacker.post("/iclock/devicecmd", params={"SN": zk.serial},
                          content=f"ID={command_id}&Return=0&CMD=DATA\n".encode(), headers=TEXT)
    assert refused(r)
    assert commands(session, zk.device_id) == [before]
    assert before[0] in ("queued", "sent")  # never "confirmed": the real device still gets it


@pytest.mark.parametrize(("device", "address"), ONLY_THE_SERIAL)
def test_background_verification_with_only_the_serial_grants_nothing(app, client, controller,
                                                                     club_with_member, session,
                                                                     device, address):
    _, zk, anna, membership = club_with_member(controller, **device)
    record = rtlog(time=wall(app_clock.now(), "Europe/Berlin"), index=0,
                   pin=str(anna.member_id), cardno="0", event=0)
    with client_from(app, address) as attacker:
        r = attacker.post("/iclock/cdata", params={"SN": zk.serial, "AuthType": "device"},
                          content=record.encode(), headers=TEXT)
    assert refused(r) and "AUTH=" not in r.text
    assert count_rows(session, Visit) == 0 and count_rows(session, AccessEvent) == 0
    assert visits_used(session, membership) == 0


@pytest.mark.parametrize(("device", "address"), ONLY_THE_SERIAL)
def test_an_attlog_post_with_only_the_serial_spends_no_visits(app, client, controller,
                                                             club_with_member, session, device,
                                                             address):
    _, zk, anna, membership = club_with_member(controller, **device)
    start = app_clock.now().replace(microsecond=0) - timedelta(hours=3)
    body = attlog(*[(anna.member_id, wall(start + timedelta(minutes=10 * i), "Europe/Berlin"),
                     0, 1) for i in range(10)])
    with client_from(app, address) as attacker:
        r = attacker.post("/iclock/cdata", params={"SN": zk.serial, "table": "ATTLOG"},
                          content=body.encode(), headers=TEXT)
    assert refused(r)
    assert visits_used(session, membership) == 0 and count_rows(session, Visit) == 0


def test_known_and_unknown_serials_answer_identically(app, client, world, controller, db):
    """Unknown, quarantined, revoked, another protocol's, and approved-but-elsewhere serials: the
    same status, type and body on every ZKTeco path, so serials cannot be enumerated."""
    club = world.club()
    pending = controller(club, "zkteco", approved=False)
    revoked = controller(club, "zkteco")
    elsewhere = controller(club, "zkteco", allowed_networks=["10.20.0.0/16"])
    hik = controller(club, "hikvision")
    with transaction(db.sessionmaker) as s:
        clubs_service.revoke_device(s, device=s.get(Device, revoked.device_id))
    serials = ["CKJG000000000", pending.serial, revoked.serial, elsewhere.serial, hik.serial]
    for method, path in (("GET", "/iclock/cdata"), ("POST", "/iclock/cdata"),
                         ("GET", "/iclock/getrequest"), ("POST", "/iclock/devicecmd"),
                         ("GET", "/iclock/ping")):
        answers = set()
        for serial in serials:
            r = client.request(method, path, params={"SN": serial, "table": "rtlog"},
                               content=b"", headers=TEXT)
            answers.add((r.status_code, r.headers["content-type"], r.text))
        assert answers == {(404, "text/plain; charset=utf-8", ZK_REFUSED)}, (method, path)


def test_a_quarantined_device_is_shown_to_managers_and_approved_for_its_address(app, client,
                                                                                world,
                                                                                controller):
    club = world.club()
    manager, clerk = world.staff(club, Role.manager), world.staff(club, Role.front_desk)
    zk = controller(club, "zkteco", approved=False)
    r = client.get("/api/v1/devices", headers=manager.headers)
    assert r.status_code == 200
    (row,) = r.json()
    assert row["status"] == "pending" and row["seen_addresses"] == []
    # approving without networks is refused, before and after the device called
    r = client.post(f"/api/v1/devices/{zk.device_id}/approve", headers=manager.headers)
    assert r.status_code == 422 and r.json()["error"] == "networks_required"
    assert r.json()["details"] == {"seen_addresses": []}

    with client_from(app, "203.0.113.5") as device:
        first = device.get("/iclock/cdata", params={"SN": zk.serial, "options": "all"})
        assert refused(first)  # quarantined: like an unknown serial
        device.get("/iclock/getrequest", params={"SN": zk.serial})
    row = client.get(f"/api/v1/devices/{zk.device_id}", headers=manager.headers).json()
    assert row["status"] == "pending" and row["seen_addresses"] == ["203.0.113.5"]
    assert row["first_seen_at"] and row["last_seen_at"] >= row["first_seen_at"]
    assert client.get("/api/v1/devices", headers=clerk.headers).status_code == 403
    assert client.post(f"/api/v1/devices/{zk.device_id}/approve",
                       headers=clerk.headers).status_code == 403

    r = client.post(f"/api/v1/devices/{zk.device_id}/approve", headers=manager.headers, json={})
    assert r.status_code == 422 and r.json()["error"] == "networks_required"
    assert r.json()["details"] == {"seen_addresses": ["203.0.113.5"]}
    assert "203.0.113.5" in r.json()["message"]
    assert client.get(f"/api/v1/devices/{zk.device_id}",
                      headers=manager.headers).json()["status"] == "pending"
    r = client.post(f"/api/v1/devices/{zk.device_id}/approve", headers=manager.headers,
                    json={"allowed_networks": ["203.0.113.5"]})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active"
    assert r.json()["allowed_networks"] == ["203.0.113.5/32"]
    with client_from(app, "203.0.113.5") as device:
        r = device.get("/iclock/cdata", params={"SN": zk.serial, "options": "all"})
        assert r.status_code == 200 and r.text.startswith(f"GET OPTION FROM: {zk.serial}")
    r = client.get("/iclock/cdata", params={"SN": zk.serial, "options": "all"})
    assert refused(r)  # the same serial from another address


def test_approval_without_networks_is_422_and_lists_the_seen_addresses(app, client, world,
                                                                       controller):
    """Whoever calls first is not approved: an outsider called before the real device, and an
    approval without networks names nobody — it answers 422 with both addresses to choose from."""
    club = world.club()
    manager = world.staff(club, Role.manager)
    zk = controller(club, "zkteco", approved=False)
    for address in (OUTSIDE, "203.0.113.5"):
        with client_from(app, address) as c:
            assert refused(c.get("/iclock/ping", params={"SN": zk.serial}))
    for body in ({}, {"allowed_networks": []}, None):
        r = client.post(f"/api/v1/devices/{zk.device_id}/approve", headers=manager.headers,
                        json=body)
        assert r.status_code == 422 and r.json()["error"] == "networks_required", r.text
        assert r.json()["details"] == {"seen_addresses": [OUTSIDE, "203.0.113.5"]}
        assert "203.0.113.5" in r.json()["message"] and OUTSIDE in r.json()["message"]
    with client_from(app, OUTSIDE) as outsider:  # still quarantined for everybody
        assert refused(outsider.get("/iclock/getrequest", params={"SN": zk.serial}))
    r = client.post(f"/api/v1/devices/{zk.device_id}/approve", headers=manager.headers,
                    json={"allowed_networks": ["not a network"]})
    assert r.status_code == 422 and r.json()["error"] == "invalid_network"
    r = client.post(f"/api/v1/devices/{zk.device_id}/approve", headers=manager.headers,
                    json={"allowed_networks": ["203.0.113.0/28"]})
    assert r.status_code == 200 and r.json()["allowed_networks"] == ["203.0.113.0/28"]
    hik = controller(club, "hikvision")
    r = client.post(f"/api/v1/devices/{hik.device_id}/approve", headers=manager.headers)
    assert r.status_code == 409 and r.json()["error"] == "approval_not_needed"


def test_requests_are_rate_limited_per_serial_and_per_address(app, client, world, controller,
                                                              clock, monkeypatch):
    clock.set(clock.now().replace(second=5, microsecond=0))  # well inside one minute window
    monkeypatch.setattr(common, "ZK_SERIAL_LIMIT", 3)
    monkeypatch.setattr(common, "ZK_ADDRESS_LIMIT", 5)
    zk = controller(world.club(), "zkteco")
    for _ in range(3):
        assert client.get("/iclock/ping", params={"SN": zk.serial}).status_code == 200
    r = client.get("/iclock/ping", params={"SN": zk.serial})
    assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= 60
    # refused serials count only per address: the address's 6th request is over its limit
    with client_from(app, "203.0.113.9") as other:
        for _ in range(3):
            assert refused(other.get("/iclock/ping", params={"SN": "NOSUCH0001"}))
        answers = [other.get("/iclock/ping", params={"SN": f"GUESS{n:05d}"}).status_code
                   for n in range(3)]
        assert answers == [404, 404, 429]
    clock.advance(timedelta(minutes=1))  # the next window
    assert client.get("/iclock/ping", params={"SN": zk.serial}).status_code == 200


def test_an_outsider_cannot_use_up_the_real_devices_allowance(app, client, club_with_member,
                                                              controller, clock, session):
    """The reproduction: 245 pings with an approved serial from outside its networks (more than
    the serial's 240 a minute) leave the real device, on its network, served as before."""
    clock.set(clock.now().replace(second=1, microsecond=0))  # all in one minute window
    _, zk, anna, _ = club_with_member(controller)
    with client_from(app, OUTSIDE) as outsider:
        answers = {outsider.get("/iclock/ping", params={"SN": zk.serial}).status_code
                   for _ in range(common.ZK_SERIAL_LIMIT + 5)}
    assert answers == {404}
    assert client.get("/iclock/ping", params={"SN": zk.serial}).text == "OK"
    r = client.get("/iclock/getrequest", params={"SN": zk.serial})
    assert r.status_code == 200 and "Name=Zoe Werner" in r.text
    record = rtlog(time=wall(clock.now(), "Europe/Berlin"), index=0, cardno=anna.card, event=0)
    r = client.post("/iclock/cdata", params={"SN": zk.serial, "AuthType": "device"},
                    content=record.encode(), headers=TEXT)
    assert r.status_code == 200 and r.text.startswith("AUTH=SUCCEED"), r.text


def test_an_outsider_cannot_tell_a_live_serial_by_when_429_comes(app, client, world,
                                                                controller, clock, monkeypatch):
    """A device's own calls (even enough to use up its serial's allowance) do not bring 429
    sooner for anyone else: a live serial and an unknown one reach 429 at the same count, the
    address's limit."""
    clock.set(clock.now().replace(second=1, microsecond=0))
    monkeypatch.setattr(common, "ZK_SERIAL_LIMIT", 5)
    monkeypatch.setattr(common, "ZK_ADDRESS_LIMIT", 12)
    zk = controller(world.club(), "zkteco")
    for _ in range(6):  # the real device is busy: its 6th call is over its serial's limit
        client.get("/iclock/ping", params={"SN": zk.serial})

    def first_429(address: str, serial: str) -> int:
        with client_from(app, address) as c:
            for n in range(1, 30):
                r = c.get("/iclock/ping", params={"SN": serial})
                if r.status_code == 429:
                    return n
                assert refused(r)
        return 0

    assert first_429("198.51.100.7", zk.serial) == first_429("198.51.100.8", "NOSUCH0001") == 13


def test_a_flood_of_addresses_cannot_keep_the_real_devices_address_off_the_list(app, client,
                                                                                 world,
                                                                                 controller):
    club = world.club()
    manager = world.staff(club, Role.manager)
    zk = controller(club, "zkteco", approved=False)
    for n in range(common.SEEN_ADDRESSES_MAX + 2):
        with client_from(app, f"198.51.100.{n + 1}") as outsider:
            assert refused(outsider.get("/iclock/ping", params={"SN": zk.serial}))
    assert refused(client.get("/iclock/ping", params={"SN": zk.serial}))  # the real device
    seen = client.get(f"/api/v1/devices/{zk.device_id}", headers=manager.headers).json()[
        "seen_addresses"]
    assert len(seen) == common.SEEN_ADDRESSES_MAX and seen[-1] == DEVICE_ADDRESS
    assert "198.51.100.1" not in seen  # the oldest went
