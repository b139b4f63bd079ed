"""No personal data or secrets in the logs; security headers on API answers."""
import logging

import pytest

from app.core import middleware
from app.core.actors import Role
from tests.builders import PASSWORD

EMAIL = "hedy.lamarr@example.org"
PHONE = "+49 151 98765432"
PHONE_DIGITS = "15198765432"


@pytest.fixture
def secured_app(app):
    middleware.install(app)  # idempotent: a no-op once create_app installs it
    return app


def test_logs_carry_no_personal_data_or_secrets(db, secured_app, world, caplog):
    from fastapi.testclient import TestClient

    club = world.club(anti_passback_minutes=0)
    owner = world.staff(club, Role.owner)
    device = world.device(club)
    caplog.set_level(logging.DEBUG)
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error", "sqlalchemy.engine",
                 "sqlalchemy.pool", "fitclub"):
        caplog.set_level(logging.INFO, logger=name)
    with TestClient(secured_app) as client:
        r = client.post("/api/v1/auth/token", data={"username": owner.email, "password": PASSWORD})
        token = r.json()["access_token"]
        h = {"Authorization": f"Bearer {token}"}
        client.post("/api/v1/auth/token", data={"username": owner.email, "password": "wrong-" + PASSWORD})
        m = client.post("/api/v1/members", headers=h, json={
            "first_name": "Hedy", "last_name": "Lamarr", "email": EMAIL, "phone": PHONE,
            "card": "HEDY-0001"}).json()
        plan = client.post("/api/v1/plans", headers=h, json={
            "name": "Monthly", "duration_months": 1, "price": "49.00"}).json()
        client.post(f"/api/v1/members/{m['id']}/memberships", headers=h, json={"plan_id": plan["id"]})
        client.post("/api/v1/access/events", headers=device.headers, json={"card": "HEDY-0001"})
        client.get("/api/v1/members", headers=h, params={"q": EMAIL})
        client.get("/api/v1/members", headers=h, params={"q": PHONE})
        client.patch(f"/api/v1/members/{m['id']}", headers=h, json={"email": "x" + EMAIL})
        client.post("/api/v1/auth/logout", headers=h)
    text = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert caplog.records, "nothing was logged: the capture is not working"
    secrets = {"email": EMAIL, "phone": PHONE_DIGITS, "password": PASSWORD, "token": token,
               "staff token": owner.token, "device key": device.key}
    leaked = [name for name, value in secrets.items() if value.lower() in text.lower()]
    assert not leaked, f"found in the logs: {leaked}"


def test_security_headers_on_api_answers(db, secured_app, world):
    from fastapi.testclient import TestClient

    staff = world.staff(world.club(), Role.manager)
    with TestClient(secured_app) as c:
        authed = c.get("/api/v1/me", headers=staff.headers)
        anonymous = c.get("/health")
        refused = c.get("/api/v1/me")
    assert authed.status_code == 200
    for r in (authed, anonymous, refused):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert authed.headers["cache-control"] == "no-store"
