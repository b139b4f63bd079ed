"""Staff management over the API: adding colleagues, roles, removal, resets, own passwords."""
from sqlalchemy import select

from app.clubs.models import AuthToken, ClubStaff, StaffUser
from app.clubs.schemas import Role
from tests.builders import PASSWORD

NEW_PASSWORD = "blue kettle on the roof"


def token_for(client, email: str, password: str) -> dict:
    r = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def add(client, by, email: str, role: str = "front_desk", name: str = "Mia Desk"):
    return client.post("/api/v1/staff", headers=by.headers,
                       json={"email": email, "name": name, "role": role})


def test_a_new_desk_employee_is_added_changes_the_temporary_password_and_works(client, world):
    club = world.club()
    owner = world.staff(club, Role.owner)
    r = add(client, owner, "Mia@Riverside.example")
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["email"] == "mia@riverside.example" and added["role"] == "front_desk"
    assert added["must_change_password"] is True
    temporary = added["temporary_password"]
    assert len(temporary) >= 16

    signed_in = token_for(client, "mia@riverside.example", temporary)
    assert signed_in["password_change_required"] is True
    mia = bearer(signed_in["access_token"])
    r = client.get("/api/v1/members", headers=mia)
    assert r.status_code == 403 and r.json()["error"] == "password_change_required"
    assert "password" in r.json()["message"]

    r = client.post("/api/v1/me/password", headers=mia,
                    json={"current_password": temporary, "new_password": NEW_PASSWORD})
    assert r.status_code == 204, r.text
    assert client.get("/api/v1/members", headers=mia).status_code == 200  # the same token works
    assert client.post("/api/v1/members", headers=mia, json={
        "first_name": "Walk", "last_name": "In"}).status_code == 201
    r = client.post("/api/v1/auth/token", data={"username": "mia@riverside.example",
                                                "password": temporary})
    assert r.status_code == 401  # the temporary password is gone
    assert token_for(client, "mia@riverside.example", NEW_PASSWORD)[
        "password_change_required"] is False

    listed = client.get("/api/v1/staff", headers=owner.headers).json()
    mia_row = next(s for s in listed["items"] if s["email"] == "mia@riverside.example")
    assert mia_row["must_change_password"] is False and mia_row["last_login_at"] is not None
    assert mia_row["active"] is True and listed["total"] == 2
    assert "temporary_password" not in mia_row


def test_the_temporary_password_is_only_stored_as_a_hash(client, world, session):
    club = world.club()
    owner = world.staff(club, Role.owner)
    temporary = add(client, owner, "tom@club.example", "trainer").json()["temporary_password"]
    stored = session.scalar(select(StaffUser.password_hash)
                            .where(StaffUser.email == "tom@club.example"))
    assert stored.startswith("$argon2") and temporary not in stored


def test_staff_of_another_club_just_get_the_role(client, world):
    a, b = world.club("A"), world.club("B")
    owner_a = world.staff(a, Role.owner)
    trainer_b = world.staff(b, Role.trainer)
    r = add(client, owner_a, trainer_b.email.upper(), "manager", name="Ignored Name")
    assert r.status_code == 201, r.text
    assert r.json()["temporary_password"] is None and r.json()["role"] == "manager"
    headers = trainer_b.headers | {"X-Club-Id": str(a.id)}
    assert client.get("/api/v1/me", headers=headers).json()["role"] == "manager"
    in_b = trainer_b.headers | {"X-Club-Id": str(b.id)}
    assert client.get("/api/v1/me", headers=in_b).json()["role"] == "trainer"
    again = add(client, owner_a, trainer_b.email, "trainer")
    assert again.status_code == 409 and again.json()["error"] == "already_staff"


def test_role_limits(client, world):
    club = world.club()
    owner = world.staff(club, Role.owner)
    manager = world.staff(club, Role.manager)
    desk = world.staff(club, Role.front_desk)
    trainer = world.staff(club, Role.trainer)
    for role in ("owner", "manager"):
        r = add(client, manager, f"{role}@new.example", role)
        assert r.status_code == 403 and r.json()["error"] == "forbidden_role", r.text
    for role in ("front_desk", "trainer"):
        assert add(client, manager, f"{role}@new.example", role).status_code == 201
    r = client.patch(f"/api/v1/staff/{desk.user_id}", headers=manager.headers,
                     json={"role": "trainer"})
    assert r.status_code == 403
    for who in (desk, trainer):
        assert client.get("/api/v1/staff", headers=who.headers).status_code == 403
        assert add(client, who, "x@new.example").status_code == 403
        assert client.post(f"/api/v1/staff/{trainer.user_id}/reset-password",
                           headers=who.headers).status_code == 403
    # managers may reset and remove the front desk and trainers, not owners or managers
    for target in (owner, world.staff(club, Role.manager)):
        for method, path in (("POST", "reset-password"), ("DELETE", "")):
            r = client.request(method, f"/api/v1/staff/{target.user_id}/{path}".rstrip("/"),
                               headers=manager.headers)
            assert r.status_code == 403, (method, path, r.text)
    assert client.post(f"/api/v1/staff/{desk.user_id}/reset-password",
                       headers=manager.headers).status_code == 200
    assert client.delete(f"/api/v1/staff/{trainer.user_id}",
                         headers=manager.headers).status_code == 204
    r = client.patch(f"/api/v1/staff/{manager.user_id}", headers=owner.headers,
                     json={"role": "front_desk"})
    assert r.status_code == 200 and r.json()["role"] == "front_desk"
    r = client.get("/api/v1/staff", headers=manager.headers)  # a demotion applies at once
    assert r.status_code == 403


def test_the_last_owner_cannot_be_demoted_or_removed(client, world):
    club = world.club()
    owner = world.staff(club, Role.owner)
    r = client.patch(f"/api/v1/staff/{owner.user_id}", headers=owner.headers,
                     json={"role": "manager"})
    assert r.status_code == 409 and r.json()["error"] == "last_owner"
    assert "owner" in r.json()["message"]
    r = client.delete(f"/api/v1/staff/{owner.user_id}", headers=owner.headers)
    assert r.status_code == 409 and r.json()["error"] == "last_owner"
    # with a second owner the first may hand over and step down
    second = world.staff(club, Role.owner)
    r = client.patch(f"/api/v1/staff/{owner.user_id}", headers=owner.headers,
                     json={"role": "manager"})
    assert r.status_code == 200
    r = client.delete(f"/api/v1/staff/{second.user_id}", headers=second.headers)
    assert r.status_code == 409 and r.json()["error"] == "last_owner"


def test_removal_ends_access_at_once_and_keeps_the_user_row(client, world, session):
    club = world.club()
    owner = world.staff(club, Role.owner)
    desk = world.staff(club, Role.front_desk)
    assert client.get("/api/v1/members", headers=desk.headers).status_code == 200
    assert client.delete(f"/api/v1/staff/{desk.user_id}", headers=owner.headers).status_code == 204
    r = client.get("/api/v1/members", headers=desk.headers)
    assert r.status_code == 401
    r = client.post("/api/v1/auth/token", data={"username": desk.email, "password": PASSWORD})
    assert client.get("/api/v1/me", headers=bearer(r.json()["access_token"])).status_code == 403
    assert session.get(StaffUser, desk.user_id) is not None  # tasks and sales refer to it
    session.rollback()
    listed = client.get("/api/v1/staff", headers=owner.headers).json()
    assert [s["user_id"] for s in listed["items"]] == [owner.user_id]
    r = client.delete(f"/api/v1/staff/{desk.user_id}", headers=owner.headers)
    assert r.status_code == 404


def test_removal_from_one_club_leaves_the_other(client, world):
    a, b = world.club("A"), world.club("B")
    owner_a = world.staff(a, Role.owner)
    trainer = world.staff(b, Role.trainer)
    add(client, owner_a, trainer.email, "trainer")
    in_a = trainer.headers | {"X-Club-Id": str(a.id)}
    assert client.get("/api/v1/tasks", headers=in_a).status_code == 200
    assert client.delete(f"/api/v1/staff/{trainer.user_id}",
                         headers=owner_a.headers).status_code == 204
    assert client.get("/api/v1/tasks", headers=in_a).status_code == 404
    assert client.get("/api/v1/me", headers=trainer.headers).json()["club_id"] == b.id


def test_reset_password_revokes_tokens_clears_lockout_and_forces_a_change(client, world):
    club = world.club()
    owner = world.staff(club, Role.owner)
    desk = world.staff(club, Role.front_desk)
    for _ in range(5):
        client.post("/api/v1/auth/token", data={"username": desk.email, "password": "wrong one"})
    r = client.post("/api/v1/auth/token", data={"username": desk.email, "password": PASSWORD})
    assert r.status_code == 429
    r = client.post(f"/api/v1/staff/{desk.user_id}/reset-password", headers=owner.headers)
    assert r.status_code == 200, r.text
    temporary = r.json()["temporary_password"]
    assert client.get("/api/v1/members", headers=desk.headers).status_code == 401
    signed_in = token_for(client, desk.email, temporary)  # no longer locked
    assert signed_in["password_change_required"] is True
    r = client.get("/api/v1/tasks", headers=bearer(signed_in["access_token"]))
    assert r.status_code == 403 and r.json()["error"] == "password_change_required"
    r = client.post(f"/api/v1/staff/{owner.user_id}/reset-password", headers=owner.headers)
    assert r.status_code == 409 and r.json()["error"] == "own_account"


def test_someone_working_in_another_club_is_reset_only_by_an_owner_of_both(client, world):
    a, b = world.club("A"), world.club("B")
    owner_a = world.staff(a, Role.owner)
    manager_b = world.staff(b, Role.manager)
    add(client, owner_a, manager_b.email, "trainer")
    r = client.post(f"/api/v1/staff/{manager_b.user_id}/reset-password", headers=owner_a.headers)
    assert r.status_code == 403 and r.json()["error"] == "staff_in_other_club"
    assert client.get("/api/v1/me", headers=manager_b.headers).status_code == 200
    with_b = client.post("/api/v1/staff", headers=world.staff(b, Role.owner).headers,
                         json={"email": owner_a.email, "name": "Owner A", "role": "owner"})
    assert with_b.status_code == 201
    r = client.post(f"/api/v1/staff/{manager_b.user_id}/reset-password", headers=owner_a.headers)
    assert r.status_code == 200


def test_changing_my_password_keeps_this_token_and_ends_the_others(client, world):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    other = bearer(token_for(client, desk.email, PASSWORD)["access_token"])
    r = client.post("/api/v1/me/password", headers=desk.headers,
                    json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert r.status_code == 204, r.text
    assert client.get("/api/v1/me", headers=desk.headers).status_code == 200
    assert client.get("/api/v1/me", headers=other).status_code == 401
    assert token_for(client, desk.email, NEW_PASSWORD)["access_token"]


def test_a_wrong_current_password_is_refused_and_counts_towards_the_lockout(client, world):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    body = {"current_password": "not my password", "new_password": NEW_PASSWORD}
    for _ in range(5):
        r = client.post("/api/v1/me/password", headers=desk.headers, json=body)
        assert r.status_code == 422 and r.json()["error"] == "wrong_current_password"
    r = client.post("/api/v1/me/password", headers=desk.headers,
                    json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert r.status_code == 429 and r.json()["error"] == "login_locked"
    r = client.post("/api/v1/auth/token", data={"username": desk.email, "password": PASSWORD})
    assert r.status_code == 429


def test_weak_passwords_are_refused_with_a_message(client, world):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    for new, words in (("short1", "at least 10"), (desk.email.upper(), "email"),
                       (PASSWORD, "different"), (" " * 12, "spaces")):
        r = client.post("/api/v1/me/password", headers=desk.headers,
                        json={"current_password": PASSWORD, "new_password": new})
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "weak_password" and words in r.json()["message"], r.text
    assert token_for(client, desk.email, PASSWORD)  # unchanged
    r = client.post("/api/v1/me/password", headers=desk.headers, json={"new_password": "x"})
    assert r.status_code == 422 and "current_password" in r.json()["message"]


def test_staff_of_club_a_cannot_see_or_change_club_b_staff(client, world, session):
    a, b = world.club("A"), world.club("B")
    owner_a = world.staff(a, Role.owner)
    desk_b = world.staff(b, Role.front_desk)
    world.staff(b, Role.owner)
    listed = client.get("/api/v1/staff", headers=owner_a.headers).json()
    assert [s["user_id"] for s in listed["items"]] == [owner_a.user_id]
    target = f"/api/v1/staff/{desk_b.user_id}"
    for method, path, body in (("GET", target, None), ("PATCH", target, {"role": "trainer"}),
                               ("DELETE", target, None),
                               ("POST", target + "/reset-password", None)):
        r = client.request(method, path, headers=owner_a.headers, json=body)
        assert r.status_code == 404, (method, path, r.text)
    assert client.get("/api/v1/me", headers=desk_b.headers).status_code == 200
    role = session.scalar(select(ClubStaff.role).where(ClubStaff.user_id == desk_b.user_id))
    assert role == "front_desk"


def test_logout_works_with_a_temporary_password(client, world, session):
    club = world.club()
    owner = world.staff(club, Role.owner)
    temporary = add(client, owner, "new@club.example").json()["temporary_password"]
    headers = bearer(token_for(client, "new@club.example", temporary)["access_token"])
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    session.rollback()
    live = session.scalars(select(AuthToken.id).join(StaffUser)
                           .where(StaffUser.email == "new@club.example",
                                  AuthToken.revoked_at.is_(None))).all()
    assert live == []


def test_staff_changes_are_logged_without_passwords_or_emails(client, world, caplog):
    import logging

    club = world.club()
    owner = world.staff(club, Role.owner)
    caplog.set_level(logging.INFO, logger="fitclub.staff")
    added = add(client, owner, "quiet@club.example").json()
    reset = client.post(f"/api/v1/staff/{added['user_id']}/reset-password",
                        headers=owner.headers).json()
    client.patch(f"/api/v1/staff/{added['user_id']}", headers=owner.headers,
                 json={"role": "trainer"})
    client.delete(f"/api/v1/staff/{added['user_id']}", headers=owner.headers)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "fitclub.staff")
    assert "staff added" in text and "password reset" in text and "role changed" in text
    assert "staff removed" in text
    for secret in (added["temporary_password"], reset["temporary_password"],
                   "quiet@club.example", owner.token):
        assert secret not in text
