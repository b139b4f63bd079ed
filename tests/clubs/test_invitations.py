"""Issue 16, item 2: adding an email that already has an account (in any club) never attaches it.
It is an invitation, accepted only by that account's own sign-in; the inviting club learns
nothing about the account."""
from datetime import timedelta

from sqlalchemy import select

from app.clubs.models import StaffInvitation
from app.core.actors import Role
from app.core.db import transaction
from app.core.security import digest
from tests.builders import PASSWORD

ATTACKER_PASSWORD = "freelancer's own password"


def invite(client, by, email: str, role: str, name: str = "Free Lancer"):
    return client.post("/api/v1/staff", headers=by.headers,
                       json={"email": email, "name": name, "role": role})


def token_of(answer) -> str:
    return answer.json()["accept_url"].rsplit("/", 1)[1]


def bearer(client, email: str, password: str) -> dict:
    r = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_another_clubs_owner_cannot_take_over_a_staff_account(client, world, db):
    """The review's reproduction: club 2's owner creates freelance@…, signs in as it and sets a
    password; club 1's owner adds the same email as manager; with `X-Club-Id: 1` the attacker
    must get nothing of club 1 until the invitation is accepted with the invitee's own sign-in."""
    club1, club2 = world.club("Club One"), world.club("Club Two")
    owner1, owner2 = world.staff(club1, Role.owner), world.staff(club2, Role.owner)
    email = "freelance@trainer.example"
    r = invite(client, owner2, email, "trainer")
    assert r.status_code == 201
    r = client.post(f"/api/v1/invitations/{token_of(r)}/register",
                    json={"password": ATTACKER_PASSWORD})
    assert r.status_code == 201
    attacker = bearer(client, email, ATTACKER_PASSWORD)

    fresh = invite(client, owner1, "nobody.yet@new.example", "manager", name="Nobody Yet")
    added = invite(client, owner1, email, "manager", name="Named By Club One")
    assert added.status_code == fresh.status_code == 201, added.text
    body = added.json()
    assert set(body) == set(fresh.json())  # the same answer as for an email without account
    assert "temporary_password" not in body and "last_login_at" not in body
    assert "user_id" not in body and body["name"] == "Named By Club One"
    assert body["role"] == "manager"

    in_club1 = attacker | {"X-Club-Id": str(club1.id)}
    for path in ("/api/v1/members", "/api/v1/exports/members.csv", "/api/v1/me"):
        r = client.get(path, headers=in_club1)
        assert r.status_code in (403, 404), (path, r.status_code)
    staff = client.get("/api/v1/staff", headers=owner1.headers).json()
    assert [s["email"] for s in staff["items"]] == [owner1.email]
    pending = client.get("/api/v1/staff/invitations", headers=owner1.headers).json()
    assert {p["email"] for p in pending} == {email, "nobody.yet@new.example"}
    assert all(set(p) == {"invitation_id", "email", "name", "role", "created_at", "expires_at"}
               for p in pending)

    # the link alone grants nothing: not without a sign-in, not to another account, and it does
    # not create or reset the existing account
    token = token_of(added)
    assert client.post(f"/api/v1/invitations/{token}/accept").status_code == 401
    assert client.post(f"/api/v1/invitations/{token}/accept",
                       headers=owner1.headers).status_code == 404
    r = client.post(f"/api/v1/invitations/{token}/register", json={"password": "owner1 chose it"})
    assert r.status_code == 409 and r.json()["error"] == "account_exists"
    assert client.post("/api/v1/auth/token", data={"username": email, "password":
                                                    "owner1 chose it"}).status_code == 401
    assert client.post(f"/api/v1/invitations/{'x' * 43}/accept",
                       headers=attacker).status_code == 404
    assert client.get("/api/v1/members", headers=in_club1).status_code == 404

    # the invitee's own sign-in accepts it: only now do they work in club 1
    r = client.post(f"/api/v1/invitations/{token}/accept", headers=attacker)
    assert r.status_code == 200 and r.json() == {"club_id": club1.id, "club_name": "Club One",
                                                 "role": "manager"}
    assert client.get("/api/v1/members", headers=in_club1).status_code == 200
    assert client.post(f"/api/v1/invitations/{token}/accept", headers=attacker).status_code == 404
    with transaction(db.sessionmaker) as s:  # only the token's digest is stored
        stored = s.scalars(select(StaffInvitation.token_hash)).all()
    assert token not in stored and digest(token) in stored


def test_invitations_expire_are_replaced_and_cancelled(client, world, clock):
    club = world.club()
    owner = world.staff(club, Role.owner)
    desk = world.staff(world.club("Other"), Role.front_desk)
    first = invite(client, owner, desk.email, "trainer")
    second = invite(client, owner, desk.email, "front_desk")  # a new link replaces the old one
    assert client.post(f"/api/v1/invitations/{token_of(first)}/accept",
                       headers=desk.headers).status_code == 404
    pending = client.get("/api/v1/staff/invitations", headers=owner.headers).json()
    assert [p["role"] for p in pending] == ["front_desk"]
    r = client.delete(f"/api/v1/staff/invitations/{pending[0]['invitation_id']}",
                      headers=owner.headers)
    assert r.status_code == 204
    assert client.get(f"/api/v1/invitations/{token_of(second)}").status_code == 404
    third = invite(client, owner, desk.email, "trainer")
    clock.advance(timedelta(days=8))
    fresh = bearer(client, desk.email, PASSWORD)
    r = client.post(f"/api/v1/invitations/{token_of(third)}/accept", headers=fresh)
    assert r.status_code == 404 and r.json()["error"] == "invitation_not_found"
    owner_now = bearer(client, owner.email, PASSWORD)
    assert client.get("/api/v1/staff/invitations", headers=owner_now).json() == []


def test_an_invitation_follows_the_role_rule_when_made_and_when_accepted(client, world):
    club = world.club()
    owner = world.staff(club, Role.owner)
    manager = world.staff(club, Role.manager)
    desk_elsewhere = world.staff(world.club("Other"), Role.front_desk)
    r = invite(client, manager, "boss@new.example", "owner")
    assert r.status_code == 403 and r.json()["error"] == "forbidden_role"
    r = invite(client, manager, desk_elsewhere.email, "trainer")
    assert r.status_code == 201
    # the manager is removed before the invitation is accepted: it no longer grants anything
    assert client.delete(f"/api/v1/staff/{manager.user_id}", headers=owner.headers).status_code == 204
    r = client.post(f"/api/v1/invitations/{token_of(r)}/accept", headers=desk_elsewhere.headers)
    assert r.status_code == 403 and r.json()["error"] == "invitation_void"
    in_club = desk_elsewhere.headers | {"X-Club-Id": str(club.id)}
    assert client.get("/api/v1/me", headers=in_club).status_code == 404


def test_an_accepted_trainer_invitation_makes_a_trainer_profile(client, world):
    club = world.club()
    owner = world.staff(club, Role.owner)
    r = invite(client, owner, "coach@new.example", "trainer", name="Coach Carter")
    client.post(f"/api/v1/invitations/{token_of(r)}/register", json={"password": "coach's password"})
    trainers = client.get("/api/v1/trainers", headers=owner.headers)
    assert trainers.status_code == 200
    assert "Coach Carter" in trainers.text
