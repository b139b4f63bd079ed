"""Issue 16, item 12: rotating and revoking device keys (manager API and `fitclub` commands)."""
from contextlib import contextmanager

import pytest
import typer
from typer.testing import CliRunner

from app import cli as cli_module
from app.access.protocols import cli as protocols_cli
from app.access.protocols.common import ZK_REFUSED
from app.core import clock
from app.core import db as db_module
from app.core.actors import Role
from tests.access.protocols.conftest import DEVICE_ADDRESS
from tests.access.protocols.formats import heartbeat, z5r
from tests.access.protocols.formats import ping as il_ping

TEXT = {"Content-Type": "text/plain"}


def native_event(client, key: str, card: str = "NOCARD1"):
    return client.post("/api/v1/access/events", json={"card": card},
                       headers={"X-Device-Key": key})


def hik_heartbeat(client, serial: str, key: str):
    return client.post(f"/api/v1/devices/hikvision/{serial}/{key}/events",
                       json=heartbeat(clock.now().isoformat()))


def il_post(client, serial: str, key: str):
    return client.post("/api/v1/devices/ironlogic", json=z5r(int(serial), il_ping(1)),
                       auth=(serial, key))


@pytest.fixture
def site(world, controller):
    club = world.club()
    manager = world.staff(club, Role.manager)
    native = world.device(club)
    hik = controller(club, "hikvision")
    il = controller(club, "ironlogic", "40646")
    zk = controller(club, "zkteco")
    return club, manager, native, hik, il, zk


def test_a_rotated_key_refuses_the_old_one_at_once(client, site):
    _, manager, native, hik, il, _ = site
    assert native_event(client, native.key).status_code == 200  # the key is now cached
    r = client.post(f"/api/v1/devices/{native.device_id}/rotate-key", headers=manager.headers)
    assert r.status_code == 200, r.text
    new_key = r.json()["key"]
    assert new_key != native.key and r.json()["device"]["status"] == "active"
    assert "key_hash" not in r.json()["device"]
    r = native_event(client, native.key)
    assert r.status_code == 401 and r.json()["error"] == "invalid_device_key"
    assert native_event(client, new_key).status_code == 200

    assert hik_heartbeat(client, hik.serial, hik.key).status_code == 200
    new_hik = client.post(f"/api/v1/devices/{hik.device_id}/rotate-key",
                          headers=manager.headers).json()["key"]
    assert hik_heartbeat(client, hik.serial, hik.key).status_code == 401
    assert hik_heartbeat(client, hik.serial, new_hik).status_code == 200

    assert il_post(client, il.serial, il.key).status_code == 200
    new_il = client.post(f"/api/v1/devices/{il.device_id}/rotate-key",
                         headers=manager.headers).json()["key"]
    assert il_post(client, il.serial, il.key).status_code == 401
    assert il_post(client, il.serial, new_il).status_code == 200


def test_a_revoked_device_is_refused_until_its_key_is_rotated(client, site):
    _, manager, native, hik, _, zk = site
    for device in (native, hik, zk):
        r = client.post(f"/api/v1/devices/{device.device_id}/revoke", headers=manager.headers)
        assert r.status_code == 200 and r.json()["status"] == "revoked"
        assert r.json()["revoked_at"]
    assert native_event(client, native.key).status_code == 401
    assert hik_heartbeat(client, hik.serial, hik.key).status_code == 401
    r = client.get("/iclock/getrequest", params={"SN": zk.serial})
    assert r.status_code == 404 and r.text == ZK_REFUSED
    # a repeat is harmless
    assert client.post(f"/api/v1/devices/{native.device_id}/revoke",
                       headers=manager.headers).status_code == 200
    # rotating re-activates with a new key; a ZKTeco device must be approved again
    r = client.post(f"/api/v1/devices/{native.device_id}/rotate-key", headers=manager.headers)
    assert r.json()["device"]["status"] == "active"
    assert native_event(client, r.json()["key"]).status_code == 200
    r = client.post(f"/api/v1/devices/{zk.device_id}/rotate-key", headers=manager.headers)
    assert r.json()["device"]["status"] == "pending"
    assert client.get("/iclock/getrequest", params={"SN": zk.serial}).status_code == 404
    r = client.post(f"/api/v1/devices/{zk.device_id}/approve", headers=manager.headers)
    assert r.status_code == 422 and r.json()["details"] == {"seen_addresses": [DEVICE_ADDRESS]}
    r = client.post(f"/api/v1/devices/{zk.device_id}/approve", headers=manager.headers,
                    json={"allowed_networks": [DEVICE_ADDRESS]})
    assert r.status_code == 200 and r.json()["allowed_networks"] == [f"{DEVICE_ADDRESS}/32"]
    assert client.get("/iclock/getrequest", params={"SN": zk.serial}).status_code == 200


def test_only_managers_of_the_devices_club_manage_it(client, world, site):
    club, manager, native, *_ = site
    other = world.club(name="Other Gym")
    other_owner = world.staff(other, Role.owner)
    clerk, trainer = world.staff(club, Role.front_desk), world.staff(club, Role.trainer)
    owner = world.staff(club, Role.owner)
    paths = [("get", f"/api/v1/devices/{native.device_id}"),
             ("post", f"/api/v1/devices/{native.device_id}/rotate-key"),
             ("post", f"/api/v1/devices/{native.device_id}/revoke"),
             ("post", f"/api/v1/devices/{native.device_id}/approve")]
    for method, path in paths:
        r = client.request(method.upper(), path, headers=other_owner.headers)
        assert r.status_code == 404 and r.json()["error"] == "device_not_found", path
        assert client.request(method.upper(), path.replace(str(native.device_id), "999999"),
                              headers=manager.headers).status_code == 404
        for staff in (clerk, trainer):
            assert client.request(method.upper(), path,
                                  headers=staff.headers).status_code == 403
        r = client.request(method.upper(), path, headers={"X-Device-Key": native.key})
        assert r.status_code == 401
    assert client.get("/api/v1/devices", headers=other_owner.headers).json() == []
    listed = client.get("/api/v1/devices", headers=owner.headers).json()
    assert [d["id"] for d in listed] == sorted(d["id"] for d in listed) and len(listed) == 4
    assert native_event(client, native.key).status_code == 200  # nothing above changed it


def _runner(monkeypatch, db) -> CliRunner:
    @contextmanager
    def factory():
        yield db.sessionmaker

    monkeypatch.setattr(db_module, "session_factory", factory)
    return CliRunner()


def test_the_command_line_rotates_revokes_lists_and_approves(monkeypatch, db, app, client,
                                                             site):
    club, _, native, _, _, zk = site
    runner = _runner(monkeypatch, db)
    r = runner.invoke(cli_module.cli, ["rotate-device-key", str(native.device_id)])
    assert r.exit_code == 0, r.output
    new_key = next(line.split(": ", 1)[1] for line in r.output.splitlines()
                   if line.startswith("X-Device-Key: "))
    assert native_event(client, native.key).status_code == 401
    assert native_event(client, new_key).status_code == 200
    r = runner.invoke(cli_module.cli, ["revoke-device", str(native.device_id)])
    assert r.exit_code == 0 and "revoked" in r.output
    assert native_event(client, new_key).status_code == 401
    r = runner.invoke(cli_module.cli, ["revoke-device", "999999"])
    assert r.exit_code != 0

    commands = typer.Typer()
    protocols_cli.register(commands)
    r = runner.invoke(cli_module.cli, ["revoke-device", str(zk.device_id)])
    assert r.exit_code == 0
    runner.invoke(cli_module.cli, ["rotate-device-key", str(zk.device_id)])
    client.get("/iclock/getrequest", params={"SN": zk.serial})  # the device calls: seen
    r = runner.invoke(commands, ["devices", "--club", str(club.id)])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith(f"{zk.device_id}\t"))
    assert "pending" in line and f"seen from {DEVICE_ADDRESS}" in line
    r = runner.invoke(commands, ["approve-device", str(zk.device_id)])
    assert r.exit_code != 0  # the networks must be named
    assert client.get("/iclock/getrequest", params={"SN": zk.serial}).status_code == 404
    r = runner.invoke(commands, ["approve-device", str(zk.device_id), "--allow", DEVICE_ADDRESS])
    assert r.exit_code == 0 and f"approved from {DEVICE_ADDRESS}/32" in r.output
    assert client.get("/iclock/getrequest", params={"SN": zk.serial}).status_code == 200
