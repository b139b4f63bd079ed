"""Issue 16, item 1: every way of giving a role goes through one rule (`app.clubs.service.
grant_role` / `check_may_grant`): managers give the front desk and trainer roles only, roles change
by owners, a club keeps an owner — the staff API, the pages, invitations and the history import."""
import time

import pytest
from sqlalchemy import select

from app.clubs import service as clubs_service
from app.clubs.models import ClubStaff, StaffInvitation, StaffUser
from app.core.actors import Actor, Role
from app.core.db import transaction
from app.core.errors import Conflict, Forbidden

PASSWORD_ALT = "alt's own long password"
IMPORT = "/api/v1/imports/history"


def invite_and_register(client, by, email: str, role: str, password: str) -> None:
    r = client.post("/api/v1/staff", headers=by.headers,
                    json={"email": email, "name": "Alt", "role": role})
    assert r.status_code == 201, r.text
    token = r.json()["accept_url"].rsplit("/", 1)[1]
    r = client.post(f"/api/v1/invitations/{token}/register", json={"password": password})
    assert r.status_code == 201, r.text


def sign_in(client, email: str, password: str) -> dict:
    r = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def import_staff(client, headers, tmp_path, rows: str, **form) -> dict:
    files = [("files", ("staff.csv", ("email,name,role\n" + rows).encode(), "text/csv"))]
    r = client.post(IMPORT, files=files, headers=headers,
                    data={k: str(v).lower() for k, v in form.items()})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"{IMPORT}/{r.json()['id']}", headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError("the import did not finish")


def problems(job) -> list[str]:
    return [str(p) for p in job["report"]["problems"]]


def role_of(db, club_id: int, email: str) -> str | None:
    with transaction(db.sessionmaker) as s:
        return s.scalar(select(ClubStaff.role).join(StaffUser, StaffUser.id == ClubStaff.user_id)
                        .where(ClubStaff.club_id == club_id, StaffUser.email == email))


@pytest.mark.parametrize("skip_bad", [False, True])
def test_a_manager_cannot_make_a_former_colleague_owner_through_the_history_import(
        client, world, db, tmp_path, skip_bad):
    """The review's reproduction: a manager adds alt@… as front desk, removes them, uploads
    staff.csv with `alt@…,Alt,owner`; alt must not become owner (nor manager)."""
    club = world.club()
    world.staff(club, Role.owner)
    manager = world.staff(club, Role.manager)
    invite_and_register(client, manager, "alt@riverside.example", "front_desk", PASSWORD_ALT)
    alt = sign_in(client, "alt@riverside.example", PASSWORD_ALT)
    alt_id = client.get("/api/v1/me", headers=alt).json()["id"]
    assert client.delete(f"/api/v1/staff/{alt_id}", headers=manager.headers).status_code == 204

    job = import_staff(client, manager.headers, tmp_path,
                       "alt@riverside.example,Alt,owner\nboss@new.example,Boss,manager\n",
                       skip_bad=skip_bad)
    text = " ".join(problems(job))
    assert "Managers may give the front desk and trainer roles only" in text, job
    assert role_of(db, club.id, "alt@riverside.example") is None
    assert role_of(db, club.id, "boss@new.example") is None
    alt = sign_in(client, "alt@riverside.example", PASSWORD_ALT)
    me = client.get("/api/v1/me", headers=alt)
    assert me.status_code == 403 and me.json()["error"] == "no_club"  # not owner, nothing
    r = client.patch(f"/api/v1/staff/{alt_id}", headers=alt, json={"role": "owner"})
    assert r.status_code == 403
    with transaction(db.sessionmaker) as s:
        assert s.scalar(select(StaffInvitation.id)) is not None  # only the first, accepted one
        assert s.scalars(select(StaffInvitation.accepted_at)).all()[0] is not None


def test_a_managers_import_gives_desk_and_trainer_roles_to_new_emails_only(
        client, world, db, tmp_path):
    club = world.club()
    manager = world.staff(club, Role.manager)
    job = import_staff(client, manager.headers, tmp_path, "tina@new.example,Tina,trainer\n")
    assert job["status"] == "done" and job["report"]["written"], job
    assert role_of(db, club.id, "tina@new.example") == "trainer"


def test_an_owners_import_invites_existing_accounts_and_never_attaches_them(
        client, world, db, tmp_path):
    a, b = world.club("A"), world.club("B")
    owner_a = world.staff(a, Role.owner)
    desk_b = world.staff(b, Role.front_desk)
    job = import_staff(client, owner_a.headers, tmp_path,
                       f"{desk_b.email},Someone,owner\nnew.owner@new.example,New Owner,owner\n")
    assert job["status"] == "done", job
    assert role_of(db, a.id, desk_b.email) is None  # an invitation, not a grant
    assert role_of(db, a.id, "new.owner@new.example") == "owner"  # an owner may
    pending = client.get("/api/v1/staff/invitations", headers=owner_a.headers).json()
    assert [(i["email"], i["role"]) for i in pending] == [(desk_b.email, "owner")]
    in_a = desk_b.headers | {"X-Club-Id": str(a.id)}
    assert client.get("/api/v1/members", headers=in_a).status_code == 404
    link = client.post(f"/api/v1/staff/invitations/{pending[0]['invitation_id']}/link",
                       headers=owner_a.headers).json()["accept_url"]
    r = client.post(f"/api/v1/invitations/{link.rsplit('/', 1)[1]}/accept", headers=desk_b.headers)
    assert r.status_code == 200 and r.json()["role"] == "owner"
    assert client.get("/api/v1/members", headers=in_a).status_code == 200


def test_the_one_rule(session, world):
    club = world.club()
    owner = world.staff(club, Role.owner)
    manager = world.staff(club, Role.manager)
    desk = world.staff(club, Role.front_desk)
    as_actor = {s.role: Actor(user_id=s.user_id, name="x", club_id=club.id,
                                            role=s.role) for s in (owner, manager, desk)}
    rule = clubs_service.check_may_grant
    for role in Role:
        rule(None, club_id=club.id, current=None, role=role)  # the operator
        rule(as_actor[Role.owner], club_id=club.id, current=Role.trainer, role=role)
    for role in (Role.front_desk, Role.trainer):
        rule(as_actor[Role.manager], club_id=club.id, current=None, role=role)
    refused = [(Role.manager, None, Role.owner), (Role.manager, None, Role.manager),
               (Role.manager, Role.front_desk, Role.trainer),  # roles change by owners
               (Role.manager, Role.front_desk, Role.owner),
               (Role.front_desk, None, Role.trainer)]
    for by, current, role in refused:
        with pytest.raises(Forbidden):
            rule(as_actor[by], club_id=club.id, current=current, role=role)
    with pytest.raises(Forbidden):  # never in another club
        rule(as_actor[Role.owner], club_id=club.id + 1, current=None, role=Role.trainer)
    user = session.get(StaffUser, owner.user_id)
    with pytest.raises(Conflict):  # the last owner stays owner
        clubs_service.grant_role(session, by=as_actor[Role.owner], user=user,
                                 club=clubs_service.get_club(session, club.id), role=Role.manager)
