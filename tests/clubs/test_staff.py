"""Staff management over the API: adding colleagues, roles, removal, resets, own passwords."""
from sqlalchemy import select

from app.clubs.models import AuthToken, ClubStaff, StaffUser
from app.core.actors import Role
from tests.builders import PASSWORD

NEW_PASSWORD = "blue kettle on the roof"


def token_for(client, email: str, password: str) -> dict:
    r = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def add(client, by, email: str, role: str = "front_desk", name: str = "Mia Desk"):
    """Invite a colleague (every add is an invitation, docs/staff.md)."""
    return client.post("/api/v1/staff", headers=by.headers,
                       json={"email": email, "name": name, "role": role})


def link_token(answer) -> str:
    return answer.json()["accept_url"].rsplit("/", 1)[1]


def join_new(client, by, email: str, role: str = "front_desk", password: str = NEW_PASSWORD):
    """Invite a new colleague and let them create their account through the link."""
    r = add(client, by, email, role)
    assert r.status_code == 201, r.text
    created = client.post(f"/api/v1/invitations/{link_token(r)}/register",
                          json={"password": password})
    assert created.status_code == 201, created.text
    return token_for(client, email, password)


def join_existing(client, by, staff, role: str):
    """Invite someone who has an account; they accept signed in as themselves."""
    r = add(client, by, staff.email, role)
    assert r.status_code == 201, r.text
    accepted = client.post(f"/api/v1/invitations/{link_token(r)}/accept", headers=staff.headers)
    assert accepted.status_code == 200, accepted.text
    return accepted.json()


def test_a_new_desk_employee_is_invited_creates_their_account_and_works(client, world):
    club = world.club()
    owner = world.staff(club, Role.owner)
    r = add(client, owner, "Mia@Riverside.example")
    assert r.status_code == 201, r.text
    invited = r.json()
    assert invited["email"] == "mia@riverside.example" and invited["role"] == "front_desk"
    assert "temporary_password" not in invited and "user_id" not in invited
    assert invited["accept_url"].startswith("http") and "/invitations/" in invited["accept_url"]
    listed = client.get("/api/v1/staff", headers=owner.headers).json()
    assert listed["total"] == 1  # not staff until accepted
    pending = client.get("/api/v1/staff/invitations", headers=owner.headers).json()
    assert [(i["email"], i["role"]) for i in pending] == [("mia@riverside.example", "front_desk")]

    token = link_token(r)
    info = client.get(f"/api/v1/invitations/{token}").json()
    assert info["club_name"] == club.name and info["role"] == "front_desk"
    r = client.post(f"/api/v1/invitations/{token}/register", json={"password": "short"})
    assert r.status_code == 422 and r.json()["error"] == "weak_password"
    r = client.post(f"/api/v1/invitations/{token}/register",
                    json={"name": "Mia Berg", "password": NEW_PASSWORD})
    assert r.status_code == 201, r.text
    assert r.json() == {"club_id": club.id, "club_name": club.name, "role": "front_desk"}
    again = client.post(f"/api/v1/invitations/{token}/register", json={"password": NEW_PASSWORD})
    assert again.status_code == 404  # a link works once

    mia = bearer(token_for(client, "mia@riverside.example", NEW_PASSWORD)["access_token"])
    assert client.get("/api/v1/members", headers=mia).status_code == 200
    assert client.post("/api/v1/members", headers=mia, json={
        "first_name": "Walk", "last_name": "In"}).status_code == 201
    listed = client.get("/api/v1/staff", headers=owner.headers).json()
    mia_row = next(s for s in listed["items"] if s["email"] == "mia@riverside.example")
    assert mia_row["name"] == "Mia Berg" and mia_row["last_login_at"] is not None
    assert mia_row["active"] is True and listed["total"] == 2
    assert client.get("/api/v1/staff/invitations", headers=owner.headers).json() == []

def test_the_temporary_password_is_only_stored_as_a_hash(client, world, session):
    club = world.club()
    owner = world.staff(club, Role.owner)
    tom = world.staff(club, Role.trainer)
    temporary = client.post(f"/api/v1/staff/{tom.user_id}/reset-password",
                            headers=owner.headers).json()["temporary_password"]
    stored = session.scalar(select(StaffUser.password_hash).where(StaffUser.id == tom.user_id))
    assert stored.startswith("$argon2") and temporary not in stored

def test_staff_of_another_club_join_only_by_accepting(client, world):
    a, b = world.club("A"), world.club("B")
    owner_a = world.staff(a, Role.owner)
    trainer_b = world.staff(b, Role.trainer)
    new = add(client, owner_a, "nobody@new.example", "manager", name="Someone New")
    r = add(client, owner_a, trainer_b.email.upper(), "manager", name="Written By A")
    assert r.status_code == 201, r.text
    # the answer for an existing account has the same fields as for a new email, and nothing
    # of the account: the name is the one club A wrote
    assert set(r.json()) == set(new.json())
    assert r.json()["name"] == "Written By A" and r.json()["role"] == "manager"
    headers = trainer_b.headers | {"X-Club-Id": str(a.id)}
    assert client.get("/api/v1/me", headers=headers).status_code == 404  # not yet
    token = link_token(r)
    r = client.post(f"/api/v1/invitations/{token}/register", json={"password": NEW_PASSWORD})
    assert r.status_code == 409 and r.json()["error"] == "account_exists"
    assert client.post(f"/api/v1/invitations/{token}/accept",
                       headers=owner_a.headers).status_code == 404  # someone else's account
    assert client.post(f"/api/v1/invitations/{token}/accept").status_code == 401
    r = client.post(f"/api/v1/invitations/{token}/accept", headers=trainer_b.headers)
    assert r.status_code == 200 and r.json()["role"] == "manager"
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
    join_existing(client, owner_a, trainer, "trainer")
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
    assert r.status_code == 401  # locked: answered like a wrong password
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
    join_existing(client, owner_a, manager_b, "trainer")
    r = client.post(f"/api/v1/staff/{manager_b.user_id}/reset-password", headers=owner_a.headers)
    assert r.status_code == 403 and r.json()["error"] == "staff_in_other_club"
    assert client.get("/api/v1/me", headers=manager_b.headers).status_code == 200
    join_existing(client, world.staff(b, Role.owner), owner_a, "owner")
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
    assert r.status_code == 401 and r.json()["error"] == "invalid_credentials"


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
    desk = world.staff(club, Role.front_desk)
    temporary = client.post(f"/api/v1/staff/{desk.user_id}/reset-password",
                            headers=owner.headers).json()["temporary_password"]
    headers = bearer(token_for(client, desk.email, temporary)["access_token"])
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    session.rollback()
    live = session.scalars(select(AuthToken.id).where(AuthToken.user_id == desk.user_id,
                                                      AuthToken.revoked_at.is_(None))).all()
    assert live == []

def test_staff_changes_are_logged_without_passwords_or_emails(client, world, caplog, session):
    import logging

    club = world.club()
    owner = world.staff(club, Role.owner)
    caplog.set_level(logging.INFO, logger="fitclub.staff")
    invited = add(client, owner, "quiet@club.example")
    client.post(f"/api/v1/invitations/{link_token(invited)}/register",
                json={"password": NEW_PASSWORD})
    user_id = session.scalar(select(StaffUser.id).where(StaffUser.email == "quiet@club.example"))
    session.rollback()  # SQLite: end the read's transaction before the API writes
    reset = client.post(f"/api/v1/staff/{user_id}/reset-password", headers=owner.headers).json()
    client.patch(f"/api/v1/staff/{user_id}", headers=owner.headers, json={"role": "trainer"})
    client.delete(f"/api/v1/staff/{user_id}", headers=owner.headers)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "fitclub.staff")
    assert "staff invited" in text and "invitation accepted" in text
    assert "password reset" in text and "role changed" in text and "staff removed" in text
    for secret in (link_token(invited), reset["temporary_password"], NEW_PASSWORD,
                   "quiet@club.example", owner.token):
        assert secret not in text