"""The Turnstiles page (issue 16, items 3 and 12): managers see a quarantined ZKTeco device with
the addresses it called from and approve it for the one the manager picks, rotate a key (shown once) and revoke a device."""
import re

from fastapi.testclient import TestClient

from app.core.actors import Role
from tests.web.conftest import csrf_of, sign_in

KEY_RE = re.compile(r"data-device-key>([A-Za-z0-9_-]+)<")
PAGE = "/manage/devices"


def _post(client: TestClient, path: str, data: dict | None = None):
    csrf = csrf_of(client.get(PAGE).text)
    return client.post(path, data=(data or {}) | {"csrf_token": csrf}, follow_redirects=False)


def test_a_manager_approves_a_quarantined_device_rotates_and_revokes(web, web_app, world):
    club = world.club()
    manager = world.staff(club, Role.manager)
    native = world.device(club, name="Front gate")
    zk = world.device(club, name="Entrance", protocol="zkteco", serial_number="CKJG201960123")
    with TestClient(web_app, client=("203.0.113.5", 50000)) as device:
        assert device.get("/iclock/getrequest", params={"SN": "CKJG201960123"}).status_code == 404
    sign_in(web, manager.email)
    page = web.get(PAGE)
    assert page.status_code == 200 and 'href="/manage/devices"' in page.text
    row = page.text.split(f'data-device="{zk.device_id}"', 1)[1].split("</tr>", 1)[0]
    assert "waiting for approval" in row and "from 203.0.113.5" in row

    assert 'name="seen" value="203.0.113.5"' in row  # offered as a choice
    r = _post(web, f"{PAGE}/{zk.device_id}/approve", {"networks": ""})
    after = web.get(PAGE).text  # refused with a message: nothing is approved by default
    assert "Name the networks" in after and "203.0.113.5/32" not in after
    with TestClient(web_app, client=("203.0.113.5", 50000)) as device:
        assert device.get("/iclock/getrequest", params={"SN": "CKJG201960123"}).status_code == 404
    r = _post(web, f"{PAGE}/{zk.device_id}/approve", {"networks": "", "seen": "203.0.113.5"})
    assert r.status_code == 303
    assert "203.0.113.5/32" in web.get(PAGE).text
    with TestClient(web_app, client=("203.0.113.5", 50000)) as device:
        assert device.get("/iclock/getrequest", params={"SN": "CKJG201960123"}).status_code == 200

    r = _post(web, f"{PAGE}/{native.device_id}/rotate-key")
    assert r.status_code == 200
    new_key = KEY_RE.search(r.text).group(1)
    assert new_key != native.key
    event = {"card": "NOCARD1"}
    assert web.post("/api/v1/access/events", json=event,
                    headers={"X-Device-Key": native.key}).status_code == 401
    assert web.post("/api/v1/access/events", json=event,
                    headers={"X-Device-Key": new_key}).status_code == 200
    assert new_key not in web.get(PAGE).text  # shown once

    r = _post(web, f"{PAGE}/{native.device_id}/revoke", {"confirm": "on"})
    assert r.status_code == 303
    assert web.post("/api/v1/access/events", json=event,
                    headers={"X-Device-Key": new_key}).status_code == 401


def test_the_desk_cannot_open_it_and_another_clubs_device_is_not_found(web, web_app, world):
    club, other = world.club(), world.club(name="Other Gym")
    manager, desk = world.staff(club, Role.manager), world.staff(club, Role.front_desk)
    theirs = world.device(other)
    sign_in(web, manager.email)
    r = _post(web, f"{PAGE}/{theirs.device_id}/revoke", {"confirm": "on"})
    assert r.status_code == 303  # back to the page, which explains
    assert "Device not found" in web.get(r.headers["location"]).text
    with TestClient(web_app) as desk_client:
        sign_in(desk_client, desk.email)
        r = desk_client.get(PAGE)
        assert r.status_code == 403
        assert 'href="/manage/devices"' not in desk_client.get("/desk").text
    assert web.post("/api/v1/access/events", json={"card": "NOCARD1"},
                    headers={"X-Device-Key": theirs.key}).status_code == 200
