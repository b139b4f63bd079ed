"""Communication history: calls with outcome and next step, staff emails/SMS and consent,
the timeline filters, and the channel preference respected by the retention dispatcher."""
from datetime import timedelta

from sqlalchemy import select, update

from app.clubs.service import club_today
from app.core.actors import Role
from app.core.config import Settings
from app.core.db import transaction
from app.crm.models import Task
from app.members.models import Member
from app.retention import channels as channels_mod
from app.retention.dispatch import dispatch_due
from tests.builders import Desk
from tests.retention.conftest import D, local
from tests.retention.servers import SmsGateway


def _member(client, desk, **body):
    """Tom Fink, registered at the desk."""
    return Desk(client, desk, None).register("Tom", "Fink",
                                             **({"phone": "+49 151 23457777"} | body))


def test_a_call_with_a_next_step_date_creates_a_call_back_task(client, world, session):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    member = _member(client, desk)
    tomorrow = club_today(club) + timedelta(days=1)
    r = client.post(f"/api/v1/members/{member['id']}/interactions", headers=desk.headers, json={
        "kind": "call", "summary": "Interested in the yoga classes", "outcome": "call_back_later",
        "next_step": "send the class timetable", "next_step_date": tomorrow.isoformat()})
    assert r.status_code == 201, r.text
    call = r.json()
    assert (call["channel"], call["outcome"], call["next_step"]) == (
        "phone", "call_back_later", "send the class timetable")
    assert call["task_id"]
    session.rollback()
    task = session.get(Task, call["task_id"])
    assert (task.kind, task.due_date, task.assignee_user_id, task.status, task.member_id) == (
        "call_back", tomorrow, desk.user_id, "open", member["id"])
    assert task.title == "Call back: send the class timetable"
    task_id = task.id
    session.rollback()
    [entry] = client.get(f"/api/v1/members/{member['id']}/timeline",
                         headers=desk.headers).json()["items"]
    assert entry["next_step"] == "send the class timetable" and entry["task_id"] == task_id
    for bad in ({"kind": "call", "summary": "x", "outcome": "great"},
                {"kind": "call", "summary": "x", "next_step_date": tomorrow.isoformat()},
                {"kind": "fax", "summary": "x"}):
        r = client.post(f"/api/v1/members/{member['id']}/interactions", headers=desk.headers,
                        json=bad)
        assert r.status_code == 422, bad
    assert "reached, no_answer" in client.post(
        f"/api/v1/members/{member['id']}/interactions", headers=desk.headers,
        json={"kind": "call", "summary": "x", "outcome": "great"}).json()["message"]


def test_staff_email_and_sms_need_consent_and_the_timeline_filters(client, world):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    member = _member(client, desk, email="tom@example.org", consents={"email": True})
    url = f"/api/v1/members/{member['id']}/interactions"
    r = client.post(url, headers=desk.headers, json={"kind": "sms", "summary": "Reminder"})
    assert r.status_code == 409 and r.json()["error"] == "no_consent"
    assert "SMS" in r.json()["message"]
    r = client.post(url, headers=desk.headers, json={"kind": "email", "summary": "Sent prices"})
    assert r.status_code == 201 and r.json()["channel"] == "email"
    client.post(url, headers=desk.headers, json={"kind": "call", "summary": "Rang",
                                                 "outcome": "no_answer"})
    client.post(url, headers=desk.headers, json={"kind": "note", "summary": "Prefers evenings"})

    def kinds(query):
        r = client.get(f"/api/v1/members/{member['id']}/timeline{query}", headers=desk.headers)
        assert r.status_code == 200, r.text
        return [i["kind"] for i in r.json()["items"]], r.json()["total"]

    assert kinds("") == (["note", "call", "email"], 3)
    assert kinds("?kind=call") == (["call"], 1)
    assert kinds("?channel=email") == (["email"], 1)
    assert kinds("?channel=phone&kind=email") == ([], 0)


def test_channel_preference_is_set_and_shown(client, world):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    member = _member(client, desk, preferred_channel="sms")
    assert member["preferred_channel"] == "sms"
    r = client.patch(f"/api/v1/members/{member['id']}", headers=desk.headers,
                     json={"preferred_channel": "phone"})
    assert r.status_code == 200 and r.json()["preferred_channel"] == "phone"
    r = client.patch(f"/api/v1/members/{member['id']}", headers=desk.headers,
                     json={"preferred_channel": "pigeon"})
    assert r.status_code == 422
    r = client.patch(f"/api/v1/members/{member['id']}", headers=desk.headers,
                     json={"preferred_channel": None})
    assert r.status_code == 200 and r.json()["preferred_channel"] is None


# --- the dispatcher respects the preference ----------------------------------------------------

def _welcomed_member(rw, db, club, preferred, **consents):
    member = rw.member(club, "Clara", **consents)
    with transaction(db.sessionmaker) as s:
        s.execute(update(Member).where(Member.id == member).values(preferred_channel=preferred))
    rw.membership(club, member, rw.plan(club), D)
    return member


def test_an_email_touchpoint_goes_out_by_sms_to_a_member_who_prefers_sms(rw, db):
    club = rw.club(holdout_share=0)
    rw.only(club, "welcome")  # an email touchpoint
    member = _welcomed_member(rw, db, club, "sms")
    rw.run(club)
    with SmsGateway() as gw:
        settings = Settings(database_url=db.url, _env_file=None, sms_gateway_url=gw.url)
        with channels_mod.from_settings(settings) as ch:
            stats = dispatch_due(db.sessionmaker, channels=ch, settings=settings,
                                 now=local(D, 9))
    assert stats.outcomes["sent"] == 1
    [req] = gw.requests
    assert req["body"]["to"].startswith("+49151") and "Clara" in req["body"]["text"]
    assert "Unsubscribe:" not in req["body"]["text"]
    [(tp, _)] = rw.touchpoints(member)
    assert (tp.status, tp.channel, tp.recipient) == ("sent", "sms", req["body"]["to"])


def test_the_preference_falls_back_and_phone_turns_a_message_into_a_call(rw, db):
    club = rw.club(holdout_share=0)
    rw.only(club, "welcome")
    no_sms = _welcomed_member(rw, db, club, "sms", sms_consent=False)  # email as planned
    caller = _welcomed_member(rw, db, club, "phone")
    quiet = _welcomed_member(rw, db, club, "none")
    rw.run(club)
    stats = rw.dispatch(local(D, 9))
    assert stats.outcomes["sent"] == 1 and stats.outcomes["task"] == 1
    assert stats.outcomes["skip:prefers_no_messages"] == 1
    [email] = rw.channels.email.messages
    assert email.member_id == no_sms and rw.channels.sms.messages == []
    [(tp, _)] = rw.touchpoints(caller)
    assert (tp.status, tp.channel, tp.recipient) == ("sent", "call_task", "front_desk")
    with transaction(db.sessionmaker) as s:
        [task] = s.scalars(select(Task).where(Task.member_id == caller)).all()
        assert (task.kind, task.assignee_role) == ("call", "front_desk")
    [(tp, _)] = rw.touchpoints(quiet)
    assert (tp.status, tp.reason) == ("skipped", "prefers_no_messages")
