"""Members' device sessions: separate from the staff's both ways, ended by the member (here, or
on every other device) and by the desk (API and the member card's button), CSRF on every POST,
the sign-ins and sign-outs on the staff's timeline."""
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.core.actors import Role
from app.core.audit import AuditEntry
from app.crm.models import Interaction
from app.memberapp.models import MemberSession
from app.web.member_kit import MEMBER_COOKIE
from tests.builders import PASSWORD
from tests.memberapp.conftest import csrf_of, post_form


def _signed_in(app, token: str) -> TestClient:
    client = TestClient(app)
    client.cookies.set(MEMBER_COOKIE, token, path="/app")
    return client


def test_member_and_staff_sessions_never_stand_in_for_each_other(client, gym, world, app):
    anna = gym.member("Anna", "Berg")
    token = world.app_session(anna)
    owner = world.staff(gym.club, Role.owner)
    client.cookies.set(MEMBER_COOKIE, token, path="/app")
    assert client.get("/app").status_code == 200
    for cookie_path in ("/", "/desk"):  # the member's token where a staff cookie goes
        with TestClient(app) as c:
            c.cookies.set("fitclub_session", token, path=cookie_path)
            c.cookies.set(MEMBER_COOKIE, token, path="/")
            desk = c.get(f"/desk/members/{anna}", follow_redirects=False)
            assert desk.status_code == 303 and desk.headers["location"].startswith("/login")
    with TestClient(app) as c:  # and as an API bearer token
        for path in ("/api/v1/me", f"/api/v1/members/{anna}"):
            r = c.get(path, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
    with TestClient(app) as staff:  # a staff session opens no member page
        login = staff.get("/login")
        staff.post("/login", data={"email": owner.email, "password": PASSWORD,
                                   "csrf_token": csrf_of(login.text)})
        assert staff.get("/desk").status_code == 200
        staff.cookies.set(MEMBER_COOKIE, staff.cookies.get("fitclub_session"), path="/app")
        for path in ("/app", "/app/me", "/app/me/data.json"):
            r = staff.get(path, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/app/sign-in", path


def test_member_posts_need_the_csrf_token_of_their_session(client, gym, world):
    anna = gym.member("Anna", "Berg", email="anna@example.org", email_consent=True)
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")
    page = client.get("/app/me")
    for action in ("/app/me/preferences", "/app/sign-out", "/app/sign-out-others"):
        assert client.post(action, data={"email": "on"}).status_code == 403
        wrong = client.post(action, data={"csrf_token": "0" * 64})
        assert wrong.status_code == 403 and "This form has expired" in wrong.text
    other = world.app_session(anna)  # another device's token is no good for this one
    stolen = csrf_of(page.text)
    assert client.get("/app").status_code == 200
    with TestClient(client.app) as c:
        c.cookies.set(MEMBER_COOKIE, other, path="/app")
        assert c.post("/app/sign-out", data={"csrf_token": stolen}).status_code == 403
    assert len(_live(gym, anna)) == 2


def _live(gym, member: int) -> list[MemberSession]:
    return gym.scalars(select(MemberSession).where(MemberSession.member_id == member,
                                                   MemberSession.revoked_at.is_(None)))


def test_a_member_signs_out_here_or_everywhere_else(app, gym, world):
    anna = gym.member("Anna", "Berg")
    phone, tablet, laptop = (_signed_in(app, world.app_session(anna, device=d))
                             for d in ("Chrome on Android", "Safari on iPad", "Firefox on Linux"))
    with phone, tablet, laptop:
        me = phone.get("/app/me").text
        assert me.count("data-device") == 3 and "this device" in me
        ended = post_form(phone, "/app/me", "/app/sign-out-others", {})
        assert "Signed out on the other devices (2)" in ended.text
        for other in (tablet, laptop):
            r = other.get("/app", follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/app/sign-in"
        out = post_form(phone, "/app/me", "/app/sign-out", {}, follow_redirects=False)
        assert out.status_code == 303 and 'fitclub_member=""' in out.headers["set-cookie"]
    assert _live(gym, anna) == []
    [entry] = gym.scalars(select(Interaction).where(Interaction.summary.like("Signed out%")))
    assert entry.summary == "Signed out of the member app on 2 other devices"


def test_the_desk_signs_a_member_out_of_the_app(client, app, gym, world):
    anna = gym.member("Anna", "Berg")
    bert = gym.member("Bert", "Else")
    phone = _signed_in(app, world.app_session(anna))
    bert_phone = _signed_in(app, world.app_session(bert))
    with phone, bert_phone:
        listed = client.get(f"/api/v1/members/{anna}/app-sessions", headers=gym.desk.headers)
        assert listed.status_code == 200
        assert [s["device"] for s in listed.json()["items"]] == ["Test browser"]
        assert "token" not in str(listed.json())
        trainer = world.staff(gym.club, Role.trainer)
        assert client.post(f"/api/v1/members/{anna}/app-sessions/revoke",
                           headers=trainer.headers).status_code == 403
        r = client.post(f"/api/v1/members/{anna}/app-sessions/revoke", headers=gym.desk.headers)
        assert r.status_code == 200 and r.json() == {"member_id": anna, "revoked": 1}
        assert phone.get("/app", follow_redirects=False).status_code == 303
        assert bert_phone.get("/app").status_code == 200  # nobody else's
    [row] = gym.scalars(select(MemberSession).where(MemberSession.member_id == anna))
    assert (row.revoked_by, row.revoked_by_staff) == ("staff", gym.desk.user_id)
    timeline = client.get(f"/api/v1/members/{anna}/timeline", headers=gym.desk.headers).json()
    by = {i["summary"].split(" (")[0]: i["by"] for i in timeline["items"]}
    assert by["Signed out of the member app by staff"] != "member"
    assert by["Signed in to the member app with an emailed link"] == "member"
    [audited] = gym.scalars(select(AuditEntry).where(AuditEntry.entity_id == anna,
                                                     AuditEntry.action == "updated"))
    assert (audited.staff_id, audited.fields) == (gym.desk.user_id, ["member_app_sessions"])


def test_the_member_card_shows_app_devices_and_its_button_signs_them_out(app, gym, world):
    anna = gym.member("Anna", "Berg")
    world.app_session(anna)
    world.app_session(anna)
    with TestClient(app) as desk:
        login = desk.get("/login")
        desk.post("/login", data={"email": gym.desk.email, "password": PASSWORD,
                                  "csrf_token": csrf_of(login.text)})
        card = desk.get(f"/desk/members/{anna}").text
        assert 'data-app-sessions="2"' in card and "signed in on 2 devices" in card
        done = desk.post(f"/desk/members/{anna}/app-sessions/revoke",
                         data={"csrf_token": csrf_of(card)})
        assert "Signed out of the member app on 2 devices." in done.text
        assert 'data-app-sessions="0"' in done.text
    assert _live(gym, anna) == []


def test_erasing_a_member_ends_their_app_sessions(client, gym, world):
    anna = gym.member("Anna", "Berg", email="anna@example.org")
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")
    assert client.get("/app").status_code == 200
    owner = world.staff(gym.club, Role.owner)
    erased = client.post(f"/api/v1/members/{anna}/erase", headers=owner.headers,
                         json={"reason": "asked by email", "confirm": True})
    assert erased.status_code == 200, erased.text
    assert gym.count(MemberSession, member_id=anna) == 0
    r = client.get("/app", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/app/sign-in"
