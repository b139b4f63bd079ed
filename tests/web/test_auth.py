"""Sessions, CSRF, role gates and security headers, without a browser (TestClient)."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.clubs import service as clubs_service
from app.clubs.models import AuthToken
from app.core.db import transaction
from app.core.security import digest
from app.web.auth import SESSION_COOKIE
from tests.builders import PASSWORD
from tests.web.conftest import csrf_of, sign_in


def test_unauthenticated_pages_redirect_to_login(web, club_world):
    answer = web.get("/desk/members/1?x=1", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fdesk%2Fmembers%2F1%3Fx%3D1"
    assert web.get("/", follow_redirects=False).headers["location"].startswith("/login")


def test_login_sets_a_session_cookie_of_kind_session(web, club_world, db):
    page = web.get("/login")
    assert page.status_code == 200
    answer = web.post("/login", data={"email": club_world.desk.email, "password": PASSWORD,
                                      "csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/desk"
    cookie = answer.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http in tests
    token = web.cookies[SESSION_COOKIE]
    with transaction(db.sessionmaker) as s:
        kind = s.scalar(select(AuthToken.kind).where(AuthToken.token_hash == digest(token)))
    assert kind == "session"
    assert web.get("/desk").status_code == 200


def test_secure_cookie_when_served_over_https(web_app, club_world):
    from fastapi.testclient import TestClient

    with TestClient(web_app, base_url="https://club.example") as client:
        page = client.get("/login")
        answer = client.post("/login", data={"email": club_world.desk.email,
                                             "password": PASSWORD,
                                             "csrf_token": csrf_of(page.text)},
                             follow_redirects=False)
        assert "Secure" in answer.headers["set-cookie"]


def test_wrong_password_shows_the_form_again(web, club_world):
    page = web.get("/login")
    answer = web.post("/login", data={"email": club_world.desk.email, "password": "nope-nope",
                                      "csrf_token": csrf_of(page.text)})
    assert answer.status_code == 401
    assert "Wrong email or password" in answer.text
    assert SESSION_COOKIE not in web.cookies


def test_login_needs_its_csrf_token(web, club_world):
    web.get("/login")
    answer = web.post("/login", data={"email": club_world.desk.email, "password": PASSWORD})
    assert answer.status_code == 403
    answer = web.post("/login", data={"email": club_world.desk.email, "password": PASSWORD,
                                      "csrf_token": "0" * 64})
    assert answer.status_code == 403
    assert SESSION_COOKIE not in web.cookies


def test_login_next_never_leaves_the_site(web, club_world):
    page = web.get("/login?next=//evil.example/x")
    assert 'value="//evil.example' not in page.text
    answer = web.post("/login", data={"email": club_world.desk.email, "password": PASSWORD,
                                      "next": "https://evil.example/",
                                      "csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert answer.headers["location"] == "/desk"


def test_a_bearer_token_is_not_a_cookie_session(web, club_world):
    web.cookies.set(SESSION_COOKIE, club_world.desk.token)  # an API token, kind "bearer"
    assert web.get("/desk", follow_redirects=False).status_code == 303


def test_logout_revokes_the_session(web, club_world):
    sign_in(web, club_world.desk.email)
    token = web.cookies[SESSION_COOKIE]
    page = web.get("/desk")
    answer = web.post("/logout", data={"csrf_token": csrf_of(page.text)},
                      follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    web.cookies.set(SESSION_COOKIE, token)  # replaying the old cookie does not work
    assert web.get("/desk", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("token", [None, "", "f" * 64])
def test_form_post_without_the_csrf_token_is_refused(web, club_world, db, token):
    sign_in(web, club_world.desk.email)
    data = {"text": "should not be saved"}
    if token is not None:
        data["csrf_token"] = token
    anna = club_world.members["anna"]
    answer = web.post(f"/desk/members/{anna}/notes", data=data, follow_redirects=False)
    assert answer.status_code == 403
    assert "could not be verified" in answer.text
    page = web.get(f"/desk/members/{anna}")
    assert "should not be saved" not in page.text


def test_csrf_token_is_per_session(web, web_app, club_world):
    from fastapi.testclient import TestClient

    sign_in(web, club_world.desk.email)
    mine = csrf_of(web.get("/desk").text)
    with TestClient(web_app) as other:
        sign_in(other, club_world.manager.email)
        theirs = csrf_of(other.get("/desk").text)
        assert mine != theirs
        anna = club_world.members["anna"]
        answer = other.post(f"/desk/members/{anna}/notes",
                            data={"text": "x", "csrf_token": mine}, follow_redirects=False)
        assert answer.status_code == 403


def test_csrf_header_for_fetch_calls(web, club_world):
    sign_in(web, club_world.desk.email)
    token = csrf_of(web.get("/desk").text)
    anna = club_world.members["anna"]
    answer = web.post(f"/desk/members/{anna}/check-in",
                      headers={"X-CSRF-Token": token, "X-Requested-With": "fetch"})
    assert answer.status_code == 200
    assert "Welcome, Anna" in answer.text
    refused = web.post(f"/desk/members/{anna}/check-in",
                       headers={"X-Requested-With": "fetch"})
    assert refused.status_code == 403


@pytest.mark.parametrize("path", ["/owner", "/owner/playbook", "/manage/stock",
                                  "/manage/trainers", "/owner/csv/renewals.csv"])
def test_front_desk_cannot_open_the_owners_pages(web, club_world, path):
    sign_in(web, club_world.desk.email)
    answer = web.get(path)
    assert answer.status_code == 403
    assert "may not open this page" in answer.text
    assert "text/html" in answer.headers["content-type"]


def test_front_desk_cannot_post_to_manager_forms(web, club_world):
    sign_in(web, club_world.desk.email)
    token = csrf_of(web.get("/desk").text)
    answer = web.post("/manage/stock/receipts", data={
        "csrf_token": token, "product_id": club_world.products["bar"], "quantity": 5,
        "unit_cost": "1.00"}, follow_redirects=False)
    assert answer.status_code == 403


def test_trainer_sees_tasks_but_not_the_desk(web, club_world):
    sign_in(web, club_world.trainer.email)
    assert web.get("/", follow_redirects=False).headers["location"] == "/tasks"
    assert web.get("/tasks").status_code == 200
    assert web.get("/desk").status_code == 403


def test_navigation_follows_the_role(web, club_world):
    sign_in(web, club_world.desk.email)
    nav = web.get("/desk").text.split("</nav>")[0]
    assert 'href="/desk"' in nav and 'href="/tasks"' in nav
    assert 'href="/owner"' not in nav and 'href="/manage/stock"' not in nav


def test_security_headers_on_pages_errors_and_static(web, club_world):
    sign_in(web, club_world.desk.email)
    for answer in (web.get("/desk"), web.get("/login"), web.get("/owner"),
                   web.get("/static/app.css"), web.get("/desk/members/999999")):
        headers = answer.headers
        assert "default-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
    assert web.get("/desk").headers["cache-control"] == "no-store"


def test_pages_are_not_in_the_openapi_schema(web):
    paths = web.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/desk", "/owner", "/login", "/manage"))]


def test_expired_session_redirects(web, club_world, db):
    sign_in(web, club_world.desk.email)
    token = web.cookies[SESSION_COOKIE]
    from sqlalchemy import update

    from app.core import clock

    with transaction(db.sessionmaker) as s:
        s.execute(update(AuthToken).where(AuthToken.token_hash == digest(token))
                  .values(expires_at=clock.now() - timedelta(minutes=1)))
    answer = web.get("/desk", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_failed_logins_are_counted_and_lock(web, club_world):
    page = web.get("/login")
    for _ in range(clubs_service.MAX_FAILED_LOGINS):
        page = web.post("/login", data={"email": club_world.desk.email, "password": "wrong-pass",
                                        "csrf_token": csrf_of(page.text)})
        assert page.status_code == 401
    answer = web.post("/login", data={"email": club_world.desk.email, "password": PASSWORD,
                                      "csrf_token": csrf_of(page.text)})
    # locked for this address, and answered exactly like a wrong password
    assert answer.status_code == 401
    assert re.search(r"Wrong email or password", answer.text)
    assert SESSION_COOKIE not in web.cookies


def test_a_user_without_a_club_gets_no_session(web, club_world, db):
    with transaction(db.sessionmaker) as s:
        clubs_service.create_user(s, email="lonely@example.com", name="Lonely",
                                  password=PASSWORD)
    page = web.get("/login")
    answer = web.post("/login", data={"email": "lonely@example.com", "password": PASSWORD,
                                      "csrf_token": csrf_of(page.text)})
    assert "This user has no club" in answer.text
    assert SESSION_COOKIE not in web.cookies
    with transaction(db.sessionmaker) as s:
        assert s.scalar(select(AuthToken.id).where(AuthToken.kind == "session")) is None
