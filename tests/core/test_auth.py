"""Signing in, tokens, roles and the boundary between clubs."""
from app.core.actors import Role
from tests.builders import PASSWORD


def test_health_needs_no_login(client):
    assert client.get("/health").json() == {"status": "ok"}


def test_login_returns_a_token_that_identifies_the_user(client, world, real_password_hashing):
    club = world.club()
    staff = world.staff(club, Role.manager)
    r = client.post("/api/v1/auth/token", data={"username": staff.email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["email"] == staff.email and me["role"] == "manager" and me["club_id"] == club.id


def test_wrong_password_is_refused_with_a_clear_message(client, world):
    staff = world.staff(world.club())
    r = client.post("/api/v1/auth/token", data={"username": staff.email, "password": "nope nope"})
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_credentials"
    assert "password" in r.json()["message"]


def test_repeated_failures_lock_the_account_for_the_guessing_address(client, world):
    """A locked account answers exactly like a wrong password (tests/clubs/test_login_throttle.py
    has the rest: other addresses, unknown emails, the per-address throttle)."""
    staff = world.staff(world.club())
    for _ in range(5):
        client.post("/api/v1/auth/token", data={"username": staff.email, "password": "bad bad bad"})
    r = client.post("/api/v1/auth/token", data={"username": staff.email, "password": PASSWORD})
    assert r.status_code == 401 and r.json()["error"] == "invalid_credentials"


def test_requests_without_a_token_are_refused(client):
    r = client.get("/api/v1/me")
    assert r.status_code == 401 and r.json()["error"] == "not_authenticated"


def test_logout_revokes_the_token(client, world):
    staff = world.staff(world.club())
    assert client.post("/api/v1/auth/logout", headers=staff.headers).status_code == 204
    assert client.get("/api/v1/me", headers=staff.headers).status_code == 401


def test_passwords_are_stored_as_argon2(session, world, real_password_hashing):
    from argon2 import PasswordHasher
    from sqlalchemy import select

    from app.clubs.models import StaffUser

    staff = world.staff(world.club())
    stored = session.scalar(select(StaffUser.password_hash).where(StaffUser.id == staff.user_id))
    assert stored.startswith("$argon2") and PASSWORD not in stored
    assert not PasswordHasher().check_needs_rehash(stored)  # the library's production parameters


def test_front_desk_cannot_change_club_settings(client, world):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    manager = world.staff(club, Role.manager)
    body = {"anti_passback_minutes": 10}
    r = client.patch("/api/v1/club/settings", json=body, headers=desk.headers)
    assert r.status_code == 403 and r.json()["error"] == "forbidden_role"
    r = client.patch("/api/v1/club/settings", json=body, headers=manager.headers)
    assert r.status_code == 200 and r.json()["anti_passback_minutes"] == 10


def test_staff_cannot_act_in_a_club_they_do_not_belong_to(client, world):
    a, b = world.club("A"), world.club("B")
    staff_a = world.staff(a)
    r = client.get("/api/v1/club", headers=staff_a.headers | {"X-Club-Id": str(b.id)})
    assert r.status_code == 404


def test_a_device_key_is_not_a_staff_login(client, world):
    device = world.device(world.club())
    assert client.get("/api/v1/me", headers=device.headers).status_code == 401


def test_settings_reject_unknown_fields_and_bad_values(client, world):
    manager = world.staff(world.club(), Role.manager)
    r = client.patch("/api/v1/club/settings", json={"club_id": 5}, headers=manager.headers)
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "club_id"
    r = client.patch("/api/v1/club/settings", json={"grace_days": -1}, headers=manager.headers)
    assert r.status_code == 422 and "grace_days" in r.json()["message"]


def test_a_page_session_token_is_not_an_api_token(client, world, db):
    from datetime import timedelta

    from app.clubs import service as clubs_service
    from app.core.db import transaction

    staff = world.staff(world.club())
    with transaction(db.sessionmaker) as s:
        token, _ = clubs_service.login(s, email=staff.email, password=PASSWORD,
                                       ttl=timedelta(hours=1), kind="session")
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
