"""Staff pages over TestClient: the owner adds a desk employee who must change the temporary
password first, managers' limits, resets, removal and "My password" — SQLite and PostgreSQL."""
import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.clubs.models import ClubStaff, StaffUser
from app.core.actors import Role
from tests.builders import PASSWORD
from tests.web.conftest import csrf_of, sign_in

NEW_PASSWORD = "sunrise over the harbour"
TEMPORARY_RE = re.compile(r"data-temporary-password>([a-z0-9-]+)<")
LINK_RE = re.compile(r"data-invitation-link>([^<]+)<")


def _flash(html: str) -> str:
    match = re.search(r'<div class="flash (\w+)"[^>]*data-flash>\s*(.*?)\s*</div>', html, re.DOTALL)
    return f"{match.group(1)}: {re.sub(r'<[^>]+>', '', match.group(2))}" if match else ""


def _post(client: TestClient, path: str, data: dict, page: str = "/manage/staff"):
    csrf = csrf_of(client.get(page).text)
    return client.post(path, data=data | {"csrf_token": csrf}, follow_redirects=False)


def test_owner_invites_a_desk_employee_who_creates_the_account_and_works(web, web_app, world):
    club = world.club()
    owner = world.staff(club, Role.owner)
    sign_in(web, owner.email)
    page = web.get("/manage/staff")
    assert page.status_code == 200 and owner.email in page.text
    assert '<a href="/manage/staff" aria-current="page">Staff</a>' in page.text
    invited = _post(web, "/manage/staff", {"name": "Mia Desk", "email": "mia@riverside.example",
                                           "role": "front_desk"})
    assert invited.status_code == 200, invited.text
    link = LINK_RE.search(invited.text).group(1)
    assert "shown only now" in invited.text and "mia@riverside.example" in invited.text
    listing = web.get("/manage/staff").text
    assert 'data-invitation="mia@riverside.example"' in listing  # pending, not staff
    assert 'data-staff="mia@riverside.example"' not in listing and link not in listing

    path = "/" + link.split("/", 3)[3]
    with TestClient(web_app) as mia:
        offer = mia.get(path)
        assert offer.status_code == 200 and club.name in offer.text
        assert 'id="register-form"' in offer.text and 'id="sign-in-to-accept"' in offer.text
        action = re.search(r'action="(/login/invitations/[^"]+)"', offer.text).group(1)
        r = mia.post(action, data={"name": "Mia Berg", "password": NEW_PASSWORD,
                                   "repeat_password": NEW_PASSWORD}, follow_redirects=False)
        assert r.status_code == 403  # no CSRF token
        r = mia.post(action, data={"name": "Mia Berg", "password": NEW_PASSWORD,
                                   "repeat_password": NEW_PASSWORD,
                                   "csrf_token": csrf_of(offer.text)}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login", r.text
        sign_in(mia, "mia@riverside.example", NEW_PASSWORD)
        desk = mia.get("/desk")
        assert desk.status_code == 200 and "Mia Berg" in desk.text
        assert mia.get(path).status_code == 404  # the link worked once
    assert 'data-staff="mia@riverside.example"' in web.get("/manage/staff").text


def test_a_temporary_password_must_be_changed_before_anything_else(web, web_app, world):
    club = world.club()
    owner = world.staff(club, Role.owner)
    desk = world.staff(club, Role.front_desk)
    sign_in(web, owner.email)
    r = _post(web, f"/manage/staff/{desk.user_id}/reset-password", {})
    temporary = TEMPORARY_RE.search(r.text).group(1)
    assert "temporary password" in web.get("/manage/staff").text  # her status, not the password
    assert temporary not in web.get("/manage/staff").text
    with TestClient(web_app) as mia:
        sign_in(mia, desk.email, temporary)
        r = mia.get("/desk", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/me/password"
        form = mia.get("/me/password")
        assert form.status_code == 200 and "Choose your own to continue" in form.text
        assert 'href="/desk"' not in form.text  # no menu while the password is temporary
        r = mia.post("/me/password", data={"current_password": temporary,
                                           "new_password": NEW_PASSWORD,
                                           "repeat_password": NEW_PASSWORD},
                     follow_redirects=False)
        assert r.status_code == 403  # no CSRF token
        r = _post(mia, "/me/password", {"current_password": temporary,
                                        "new_password": NEW_PASSWORD,
                                        "repeat_password": NEW_PASSWORD}, page="/me/password")
        assert r.status_code == 303 and r.headers["location"] == "/desk"
        page = mia.get("/desk")
        assert page.status_code == 200 and "Your password is changed" in _flash(page.text)
    with TestClient(web_app) as again:
        sign_in(again, desk.email, NEW_PASSWORD)
        assert again.get("/desk").status_code == 200


def test_staff_of_another_club_accept_on_the_link_page_and_switch_clubs(web, web_app, world):
    a, b = world.club("Alpha Gym"), world.club("Beta Gym")
    owner_a = world.staff(a, Role.owner)
    trainer_b = world.staff(b, Role.trainer)
    sign_in(web, owner_a.email)
    invited = _post(web, "/manage/staff", {"name": "Written By Alpha", "email": trainer_b.email,
                                           "role": "front_desk"})
    assert invited.status_code == 200
    assert "last sign-in" not in invited.text.split('id="invited"')[1].split("</section>")[0]
    path = "/" + LINK_RE.search(invited.text).group(1).split("/", 3)[3]
    # the inviting owner's own session cannot accept it
    offer = web.get(path)
    assert "this invitation is for another email" in offer.text
    assert 'id="accept-form"' not in offer.text
    r = _post(web, path + "/accept", {})  # a crafted request: refused like an unknown link
    assert r.status_code == 303 and "another account" in _flash(web.get("/manage/staff").text)
    with TestClient(web_app) as tb:
        sign_in(tb, trainer_b.email)
        assert 'data-club-switch' not in tb.get("/").text  # one club: no switcher
        offer = tb.get(path)
        assert 'id="accept-form"' in offer.text
        r = tb.post(path + "/accept", data={"csrf_token": csrf_of(offer.text)},
                    follow_redirects=False)
        assert r.status_code == 303
        home = tb.get("/desk")  # accepting switches to the new club
        assert home.status_code == 200 and "You now work in Alpha Gym" in _flash(home.text)
        assert "data-club-switch" in home.text and "Beta Gym (trainer)" in home.text
        r = _post(tb, "/club/switch", {"club_id": str(b.id)}, page="/desk")
        assert r.status_code == 303
        assert tb.get("/desk").status_code == 403  # a trainer in Beta Gym
        r = _post(tb, "/club/switch", {"club_id": "999999"}, page="/")
        assert r.status_code in (303, 404)
        assert "/desk" not in tb.get("/", follow_redirects=False).headers.get("location", "")


def test_managers_add_desk_and_trainers_only_and_the_desk_cannot_open_the_page(web, web_app,
                                                                             world):
    club = world.club()
    world.staff(club, Role.owner)
    manager = world.staff(club, Role.manager)
    desk = world.staff(club, Role.front_desk)
    sign_in(web, manager.email)
    page = web.get("/manage/staff").text
    assert '<option value="owner"' not in page and '<option value="trainer"' in page
    assert f"/manage/staff/{desk.user_id}/role" not in page  # roles change by owners
    r = _post(web, "/manage/staff", {"name": "Boss", "email": "boss@club.example",
                                     "role": "owner"})
    assert r.status_code == 403  # the form never offers it; a crafted request gets the page
    assert "Managers may give the front desk and trainer roles only" in r.text
    r = _post(web, f"/manage/staff/{desk.user_id}/role", {"role": "manager"})
    assert r.status_code == 403
    with TestClient(web_app) as desk_client:
        sign_in(desk_client, desk.email)
        r = desk_client.get("/manage/staff")
        assert r.status_code == 403 and "may not open this page" in r.text
        assert 'href="/manage/staff"' not in desk_client.get("/desk").text


def test_owner_resets_a_password_changes_a_role_and_removes_someone(web, world, db):
    club = world.club()
    owner = world.staff(club, Role.owner)
    trainer = world.staff(club, Role.trainer)
    desk = world.staff(club, Role.front_desk)
    sign_in(web, owner.email)
    r = _post(web, f"/manage/staff/{trainer.user_id}/reset-password", {})
    assert r.status_code == 200 and "New password for" in r.text
    assert TEMPORARY_RE.search(r.text)
    r = _post(web, f"/manage/staff/{desk.user_id}/role", {"role": "manager"})
    assert r.status_code == 303 and "is now manager" in _flash(web.get("/manage/staff").text)
    r = _post(web, f"/manage/staff/{trainer.user_id}/remove", {"confirm": "on"})
    assert r.status_code == 303
    assert "no longer works in this club" in _flash(web.get("/manage/staff").text)
    r = _post(web, f"/manage/staff/{owner.user_id}/role", {"role": "trainer"})
    assert "only owner" in _flash(web.get("/manage/staff").text)
    with db.sessionmaker() as s:
        roles = dict(s.execute(select(ClubStaff.user_id, ClubStaff.role)
                               .where(ClubStaff.club_id == club.id)).all())
        assert s.get(StaffUser, trainer.user_id).must_change_password is True
    assert roles == {owner.user_id: "owner", desk.user_id: "manager"}


def test_my_password_wrong_current_and_mismatch_are_explained_and_count_towards_lockout(
        web, world):
    desk = world.staff(world.club(), Role.front_desk)
    sign_in(web, desk.email)
    assert 'href="/me/password"' in web.get("/desk").text
    r = _post(web, "/me/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                    "repeat_password": "something else"}, page="/me/password")
    assert r.status_code == 303
    assert "not the same" in _flash(web.get("/me/password").text)
    r = _post(web, "/me/password", {"current_password": PASSWORD, "new_password": "short",
                                    "repeat_password": "short"}, page="/me/password")
    assert "at least 10 characters" in _flash(web.get("/me/password").text)
    for _ in range(5):
        _post(web, "/me/password", {"current_password": "not mine at all",
                                    "new_password": NEW_PASSWORD,
                                    "repeat_password": NEW_PASSWORD}, page="/me/password")
    r = _post(web, "/me/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                    "repeat_password": NEW_PASSWORD}, page="/me/password")
    assert "Too many wrong passwords" in _flash(web.get("/me/password").text)


def test_someone_with_no_club_left_signs_in_from_the_link_and_accepts(web, web_app, world, db):
    club = world.club()
    owner = world.staff(club, Role.owner)
    former = world.staff(world.club("Closed Gym"), Role.trainer)
    with db.sessionmaker() as s:  # their only club let them go
        s.execute(ClubStaff.__table__.delete().where(ClubStaff.user_id == former.user_id))
        s.commit()
    sign_in(web, owner.email)
    invited = _post(web, "/manage/staff", {"name": "Back Again", "email": former.email,
                                           "role": "trainer"})
    path = "/" + LINK_RE.search(invited.text).group(1).split("/", 3)[3]
    with TestClient(web_app) as them:
        login = them.get(f"/login?next={path}")
        r = them.post("/login", data={"email": former.email, "password": PASSWORD,
                                      "next": path, "csrf_token": csrf_of(login.text)},
                      follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == path
        offer = them.get(path)
        assert 'id="accept-form"' in offer.text
        r = them.post(path + "/accept", data={"csrf_token": csrf_of(offer.text)},
                      follow_redirects=False)
        assert r.status_code == 303
        assert them.get("/tasks").status_code == 200
