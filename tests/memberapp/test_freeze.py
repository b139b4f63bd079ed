"""Freezing from the member app (/app/freeze): the club's rules (shortest freeze, notice, the
days left), "instant" (applied at once through memberships.service.freeze_membership) and
"approval" (a request the desk approves or declines through the API), the timeline, only the
member's own memberships, and a form sent twice making one request."""
import re
from datetime import timedelta

from sqlalchemy import select

from app.crm.models import Interaction, Task
from app.memberapp.models import MemberFreezeRequest
from app.memberships.models import Freeze, Membership
from app.web.member_kit import MEMBER_COOKIE
from tests.memberapp.conftest import csrf_of

KEY = re.compile(r'name="key" value="([A-Za-z0-9_\-]+)"')
FLASH = re.compile(r"data-flash>([^<]*)<")


def _club(gym, **settings) -> None:
    r = gym.client.patch("/api/v1/club/settings", json=settings, headers=gym.manager.headers)
    assert r.status_code == 200, r.text


def _member_with_membership(gym, world, first="Anna", last="Berg", freeze_days=30):
    member = gym.member(first, last)
    plan = world.plan(gym.club, freeze_days=freeze_days)
    membership = world.membership(gym.club, member, plan, start=gym.day(-10), end=gym.day(170))
    return member, membership


def _form(client) -> dict:
    page = client.get("/app/freeze")
    assert page.status_code == 200, page.text
    return {"csrf_token": csrf_of(page.text), "key": KEY.search(page.text).group(1)}


def _ask(client, membership: int, start, days: int, form: dict | None = None):
    """Send the freeze form; the page it leads to (with its flash message)."""
    form = form or _form(client)
    r = client.post("/app/freeze", data=form | {"membership_id": membership,
                                                "start_date": start.isoformat(),
                                                "days": days})
    assert r.status_code == 200 and r.url.path == "/app/freeze", (r.status_code, r.url)
    return r


def _flash(page) -> str:
    found = FLASH.search(page.text)
    return found.group(1) if found else ""


def _one(session, stmt):
    """One value, then the read ends (on SQLite every transaction holds the write lock)."""
    value = session.scalar(stmt)
    session.rollback()
    return value


def _all(session, stmt) -> list:
    rows = list(session.execute(stmt).all())
    session.rollback()
    return rows


def _end(session, membership: int):
    end = session.get(Membership, membership).end_date
    session.rollback()
    return end


def test_the_clubs_rules_length_notice_and_days_left(client, gym, world, session):
    _club(gym, app_freeze_mode="instant", freeze_min_days=7, freeze_notice_days=3)
    anna, membership = _member_with_membership(gym, world, freeze_days=20)
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")
    page = client.get("/app/freeze").text
    assert f'data-earliest="{gym.day(3).isoformat()}"' in page and 'data-min-days="7"' in page
    assert 'data-days-left="20"' in page

    too_short = _ask(client, membership, gym.day(5), 6)
    assert _flash(too_short) == "This freeze is shorter than the club allows."
    too_soon = _ask(client, membership, gym.day(2), 7)
    assert _flash(too_soon) == "This freeze starts too soon. Please choose a later first day."
    too_long = _ask(client, membership, gym.day(5), 21)
    assert _flash(too_long) == "You do not have that many freeze days left."
    past_the_end = _ask(client, membership, gym.day(165), 10)
    assert _flash(past_the_end) == "The freeze must fall within your membership."
    assert _one(session, select(MemberFreezeRequest.id)) is None
    assert _one(session, select(Freeze.id)) is None

    bert, _ = _member_with_membership(gym, world, "Bert", "Brandt", freeze_days=0)
    client.cookies.set(MEMBER_COOKIE, world.app_session(bert), path="/app")
    assert "None of your memberships can be frozen" in client.get("/app/freeze").text


def test_instant_mode_freezes_at_once_and_the_staff_see_it(client, gym, world, session):
    _club(gym, app_freeze_mode="instant")
    anna, membership = _member_with_membership(gym, world)
    before = _end(session, membership)
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")

    page = _ask(client, membership, gym.day(2), 14)
    assert _flash(page).startswith("Your membership is frozen from ")
    assert 'data-request-status="applied"' in page.text and 'data-days-left="16"' in page.text
    [freeze] = _all(session, select(Freeze.id, Freeze.start_date, Freeze.end_date,
                                    Freeze.staff_id, Freeze.reason))
    assert tuple(freeze[1:]) == (gym.day(2), gym.day(15), None, "member app")
    assert _all(session, select(MemberFreezeRequest.status, MemberFreezeRequest.freeze_id,
                                MemberFreezeRequest.days)) == [("applied", freeze.id, 14)]
    assert _end(session, membership) == before + timedelta(days=14)
    timeline = gym.client.get(f"/api/v1/members/{anna}/timeline",
                              headers=gym.desk.headers).json()["items"]
    froze = [i for i in timeline if i["summary"].startswith("Froze ")]
    assert len(froze) == 1 and froze[0]["by"] == "member"
    assert f"from {gym.day(2).isoformat()} to {gym.day(15).isoformat()} (14 days)" \
        in froze[0]["summary"]
    listed = gym.client.get("/api/v1/freeze-requests", headers=gym.desk.headers).json()
    assert [(r["status"], r["member_name"]) for r in listed["items"]] == [("applied", "Anna Berg")]


def test_approval_mode_waits_for_the_desk_which_approves_or_declines(client, gym, world,
                                                                      session):
    anna, membership = _member_with_membership(gym, world)
    before = _end(session, membership)
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")
    desk = gym.desk.headers

    page = _ask(client, membership, gym.day(1), 14)  # the default mode: approval
    assert _flash(page) == "Your request is with the club. You will see the answer here."
    assert "waiting for the club" in page.text and 'data-days-left="16"' in page.text
    assert _one(session, select(Freeze.id)) is None
    [task] = _all(session, select(Task.id, Task.title).where(Task.member_id == anna))
    assert task.title == "Approve or decline Anna Berg's freeze request (member app)"
    # the days asked for are held: more than what is left beside them waits too
    more = _ask(client, membership, gym.day(30), 20)
    assert _flash(more) == "Freeze days you asked for are still waiting for the club."

    waiting = gym.client.get("/api/v1/freeze-requests", params={"status": "pending"},
                             headers=desk).json()
    [request] = waiting["items"]
    assert (request["member_name"], request["days"], waiting["total"]) == ("Anna Berg", 14, 1)
    approved = gym.client.post(f"/api/v1/freeze-requests/{request['id']}/approve", headers=desk)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved" and approved.json()["freeze_id"]
    again = gym.client.post(f"/api/v1/freeze-requests/{request['id']}/approve", headers=desk)
    assert again.status_code == 200 and again.json() == approved.json()
    declined_late = gym.client.post(f"/api/v1/freeze-requests/{request['id']}/decline",
                                    headers=desk, json={"reason": "too late"})
    assert declined_late.status_code == 409
    assert _end(session, membership) == before + timedelta(days=14)
    assert _one(session, select(Task.status).where(Task.id == task.id)) == "done"

    second = _ask(client, membership, gym.day(40), 7)
    assert "waiting for the club" in second.text
    pending = gym.client.get("/api/v1/freeze-requests", params={"status": "pending"},
                             headers=desk).json()["items"]
    declined = gym.client.post(f"/api/v1/freeze-requests/{pending[0]['id']}/decline",
                               headers=desk, json={"reason": "Only for illness"})
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    page = client.get("/app/freeze").text
    assert 'data-request-status="approved"' in page and 'data-request-status="declined"' in page
    assert "Reason: Only for illness" in page and 'data-days-left="16"' in page
    assert len(_all(session, select(Freeze.id))) == 1
    summaries = [s for s, in _all(session, select(Interaction.summary)
                                  .where(Interaction.member_id == anna))]
    assert sum("Asked in the member app to freeze" in s for s in summaries) == 2
    assert any("freeze request from the member app approved" in s.lower() for s in summaries)
    assert any("declined" in s and "Only for illness" in s for s in summaries)


def test_a_member_freezes_only_their_own_and_staff_see_only_their_clubs(client, gym, world,
                                                                        session):
    anna, _mine = _member_with_membership(gym, world)
    bert, berts = _member_with_membership(gym, world, "Bert", "Brandt")
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")
    page = client.get("/app/freeze").text
    assert f'data-freezable="{berts}"' not in page
    refused = _ask(client, berts, gym.day(2), 7)
    assert _flash(refused) == "This membership was not found."
    assert _one(session, select(MemberFreezeRequest.id)) is None

    client.cookies.set(MEMBER_COOKIE, world.app_session(bert), path="/app")
    _ask(client, berts, gym.day(2), 7)
    request_id = _one(session, select(MemberFreezeRequest.id))
    other_club = world.club("Elsewhere")
    outsider = world.staff(other_club, "manager").headers
    for action in ("approve", "decline"):
        r = gym.client.post(f"/api/v1/freeze-requests/{request_id}/{action}", headers=outsider)
        assert r.status_code == 404 and r.json()["error"] == "freeze_request_not_found"
    assert gym.client.get("/api/v1/freeze-requests", headers=outsider).json()["total"] == 0
    assert _one(session, select(MemberFreezeRequest.status)) == "pending"


def test_the_same_form_sent_twice_makes_one_request(client, gym, world, session):
    anna, membership = _member_with_membership(gym, world)
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")
    form = _form(client)
    first = _ask(client, membership, gym.day(1), 10, form)
    second = _ask(client, membership, gym.day(1), 10, form)
    assert _flash(first) == _flash(second) != ""
    assert len(_all(session, select(MemberFreezeRequest.id))) == 1
    assert len(_all(session, select(Task.id).where(Task.member_id == anna))) == 1

    _club(gym, app_freeze_mode="instant")
    form = _form(client)
    one = _ask(client, membership, gym.day(20), 7, form)
    two = _ask(client, membership, gym.day(20), 7, form)
    assert _flash(one) == _flash(two) and _flash(one).startswith("Your membership is frozen")
    assert len(_all(session, select(Freeze.id))) == 1
    assert len(_all(session, select(MemberFreezeRequest.id))) == 2
