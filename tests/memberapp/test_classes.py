"""Members book group classes in the app (/app/classes): the club's booking window, bookings
only on days the membership covers (not frozen ones), the late-cancel penalty, their own
bookings only, a second tap changing nothing, the timeline, the promoted member told — and 30
members booking one class at once on PostgreSQL."""
import threading
import time as wall
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.clubs import service as clubs_service
from app.core.actors import MemberActor, Role
from app.core.db import make_engine, make_sessionmaker, transaction
from app.core.errors import Conflict, NotFound
from app.crm.models import Interaction
from app.dues import jobs as dues_jobs
from app.dues.models import Notice
from app.memberapp import classes as member_classes
from app.members.models import Member
from app.memberships.models import Membership
from app.trainers.models import ClassBooking, ClassOccurrence
from app.web.member_kit import MEMBER_COOKIE
from tests.memberapp.conftest import csrf_of, emails_to
from tests.trainers.conftest import Gym


@pytest.fixture
def gym(client, world) -> Gym:
    """The trainers' club (classes through the staff API), for the member app."""
    club = world.club()
    return Gym(client, world, club, manager=world.staff(club, Role.manager),
               desk=world.staff(club, Role.front_desk))


def _rules(db, gym, **rules) -> None:
    with transaction(db.sessionmaker) as s:
        clubs_service.update_club_settings(s, club=clubs_service.get_club(s, gym.club.id),
                                           changes=rules)


def _member(gym, name: str = "Anna", plan: int | None = None, **fields) -> int:
    """A member with a membership from today (of `plan`, else the club's 30-day plan)."""
    if plan is None:
        if not hasattr(gym, "thirty_days"):
            gym.thirty_days = gym.plan()["id"]
        plan = gym.thirty_days
    member = gym.member(name, "Berg", **fields)
    gym.membership(member, plan)
    return member


def _actor(gym, member: int) -> MemberActor:
    return MemberActor(session_id=0, member_id=member, club_id=gym.club.id, name="member")


def _as(client, world, member: int) -> None:
    """The test client is now this member's browser."""
    client.cookies.set(MEMBER_COOKIE, world.app_session(member), path="/app")


def _post(client, action: str, **data):
    page = client.get("/app/classes")
    assert page.status_code == 200, page.text
    return client.post(action, data=data | {"csrf_token": csrf_of(page.text)},
                       follow_redirects=False)


def _flash(client) -> str:
    html = client.get("/app/classes").text
    start = html.index("data-flash>") + len("data-flash>")
    return html[start:html.index("</p>", start)]


def _timeline(gym, member: int) -> list[dict]:
    r = gym.client.get(f"/api/v1/members/{member}/timeline", headers=gym.manager.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def _status(gym, member: int, occ: int) -> str | None:
    return gym.scalar(select(ClassBooking.status).where(ClassBooking.member_id == member,
                                                        ClassBooking.occurrence_id == occ))


def test_a_member_books_within_the_window_and_the_page_shows_places_and_status(client, gym,
                                                                             world):
    coach = gym.trainer()
    soon = gym.class_at(coach, gym.at(1, 18), capacity=2)
    edge = gym.class_at(coach, gym.at(7, 9))
    beyond = gym.class_at(coach, gym.at(8, 9))
    anna = _member(gym)
    _as(client, world, anna)

    page = client.get("/app/classes")
    assert page.status_code == 200
    assert f'data-class="{soon["id"]}"' in page.text and f'data-class="{edge["id"]}"' in page.text
    assert f'data-class="{beyond["id"]}"' not in page.text  # outside the 7-day window
    assert "2 of 2 places left" in page.text and "18:00" in page.text

    assert _post(client, "/app/classes/book", occurrence_id=soon["id"]).status_code == 303
    assert _flash(client) == "Booked. See you there!"
    html = client.get("/app/classes").text
    row = html[html.index(f'data-class="{soon["id"]}"'):]
    assert row.startswith(f'data-class="{soon["id"]}" data-mine="booked"')
    assert "1 of 2 places left" in row[:800] and "You are booked" in row[:800]
    assert _post(client, "/app/classes/book", occurrence_id=edge["id"]).status_code == 303
    assert _status(gym, anna, edge["id"]) == "booked"

    refused = _post(client, "/app/classes/book", occurrence_id=beyond["id"])
    assert refused.status_code == 303
    assert _flash(client) == "Booking for this class has not opened yet."
    assert _status(gym, anna, beyond["id"]) is None
    with pytest.raises(Conflict) as exc, transaction(gym.db.sessionmaker) as s:
        member_classes.book(s, actor=_actor(gym, anna), occurrence_id=beyond["id"])
    assert exc.value.code == "class_booking_not_open" and exc.value.status_code == 409
    # the desk books outside the members' window
    assert gym.book_class(beyond["id"], anna).status_code == 201
    # staff bookings have a staff member as booked_by; the member's own have none
    assert gym.scalars(select(ClassBooking.booked_by).where(ClassBooking.member_id == anna)
                       .order_by(ClassBooking.id)) == [None, None, gym.desk.user_id]


def test_the_window_is_a_club_setting(client, gym, world, db):
    r = client.patch("/api/v1/club/settings", json={"class_booking_days_ahead": 1},
                     headers=gym.manager.headers)
    assert r.status_code == 200 and r.json()["class_booking_days_ahead"] == 1, r.text
    assert client.patch("/api/v1/club/settings", json={"class_late_cancel_penalty": "fee"},
                        headers=gym.manager.headers).status_code == 422  # not built (yet)
    coach = gym.trainer()
    tomorrow = gym.class_at(coach, gym.at(1, 18))
    later = gym.class_at(coach, gym.at(2, 18))
    anna = _member(gym)
    with transaction(db.sessionmaker) as s:
        tt = member_classes.timetable(s, actor=_actor(gym, anna))
        assert [r.occ.id for r in tt.rows] == [tomorrow["id"]]
        with pytest.raises(Conflict):
            member_classes.book(s, actor=_actor(gym, anna), occurrence_id=later["id"])
        assert member_classes.book(s, actor=_actor(gym, anna),
                                   occurrence_id=tomorrow["id"]).booking.status == "booked"


def test_no_membership_on_the_day_or_a_frozen_day_refuses(client, gym, world):
    coach = gym.trainer()
    occ = gym.class_at(coach, gym.at(3, 18))
    nobody = gym.member("Nora", "Nobody")
    frozen = _member(gym, "Fritz")
    membership = gym.scalar(select(Membership.id).where(Membership.member_id == frozen))
    world.freeze(gym.club, membership, gym.day(2), gym.day(4))

    for member in (nobody, frozen):
        with pytest.raises(Conflict) as exc, transaction(gym.db.sessionmaker) as s:
            member_classes.book(s, actor=_actor(gym, member), occurrence_id=occ["id"])
        assert exc.value.code == "no_active_membership"
    _as(client, world, frozen)
    assert _post(client, "/app/classes/book", occurrence_id=occ["id"]).status_code == 303
    assert _flash(client).startswith("Your membership does not cover the day of this class")
    assert gym.count(ClassBooking) == 0


@pytest.mark.parametrize("penalty", ["visit", "none"])
def test_a_late_cancellation_costs_a_visit_when_the_club_says_so(client, gym, world, db, clock,
                                                                 penalty):
    _rules(db, gym, class_late_cancel_hours=3, class_late_cancel_penalty=penalty)
    coach = gym.trainer()
    starts = gym.at(1, 18)
    soon = gym.class_at(coach, starts)
    later = gym.class_at(coach, starts + timedelta(hours=4))
    waiting = gym.class_at(coach, starts + timedelta(minutes=90), capacity=1)
    plan = gym.plan(visit_limit=10)["id"]
    anna = _member(gym, plan=plan)
    gym.book_class(waiting["id"], _member(gym, "Ben", plan=plan))  # the class is full
    _as(client, world, anna)
    for occ in (soon, later, waiting):
        assert _post(client, "/app/classes/book", occurrence_id=occ["id"]).status_code == 303
    ids = {b.occurrence_id: b.id for b in gym.scalars(
        select(ClassBooking).where(ClassBooking.member_id == anna))}
    assert _status(gym, anna, waiting["id"]) == "waitlisted"

    clock.set(starts - timedelta(hours=1))  # `soon` is 1 h away, `later` 5 h
    used = select(Membership.visits_used).where(Membership.member_id == anna)
    assert _post(client, "/app/classes/cancel", booking_id=ids[later["id"]]).status_code == 303
    assert _flash(client) == "Cancelled."
    assert gym.scalar(used) == 0
    html = client.get("/app/classes").text
    row = html[html.index(f'data-class="{soon["id"]}"'):]
    assert "Cancelling now is a late cancellation." in row[:1500]
    assert _post(client, "/app/classes/cancel", booking_id=ids[soon["id"]]).status_code == 303
    assert _flash(client) == ("Cancelled late: one visit of your membership was used."
                              if penalty == "visit" else "Cancelled.")
    assert gym.scalar(used) == (1 if penalty == "visit" else 0)
    # leaving the waitlist (2.5 h before) is never late
    assert _post(client, "/app/classes/cancel", booking_id=ids[waiting["id"]]).status_code == 303
    assert gym.scalar(used) == (1 if penalty == "visit" else 0)
    summaries = [i["summary"] for i in _timeline(gym, anna) if i["kind"] == "class_cancelled"]
    assert len(summaries) == 3
    assert sum("late (less than 3 h before)" in s for s in summaries) == 1
    assert any(s.startswith("Left the waitlist of") for s in summaries)


def test_another_members_booking_is_not_found(client, gym, world):
    coach = gym.trainer()
    occ = gym.class_at(coach, gym.at(1, 18))
    anna, ben = _member(gym, "Anna"), _member(gym, "Ben")
    bens = gym.book_class(occ["id"], ben).json()["id"]

    with pytest.raises(NotFound) as exc, transaction(gym.db.sessionmaker) as s:
        member_classes.cancel(s, actor=_actor(gym, anna), booking_id=bens)
    assert exc.value.status_code == 404
    _as(client, world, anna)
    assert _post(client, "/app/classes/cancel", booking_id=bens).status_code == 303
    assert _flash(client) == "You have no such booking."
    assert _status(gym, ben, occ["id"]) == "booked"


def test_a_second_tap_changes_nothing_and_the_timeline_shows_each_once(client, gym, world):
    coach = gym.trainer()
    occ = gym.class_at(coach, gym.at(1, 18))
    anna = _member(gym)
    _as(client, world, anna)
    page = client.get("/app/classes").text
    form = {"occurrence_id": occ["id"], "csrf_token": csrf_of(page)}
    first = client.post("/app/classes/book", data=form, follow_redirects=False)
    second = client.post("/app/classes/book", data=form, follow_redirects=False)
    assert (first.status_code, second.status_code) == (303, 303)
    assert _flash(client) == "Nothing changed."
    assert gym.count(ClassBooking) == 1
    assert gym.scalar(select(ClassOccurrence.booked_count)
                      .where(ClassOccurrence.id == occ["id"])) == 1
    booking = gym.scalar(select(ClassBooking.id))
    form = {"booking_id": booking, "csrf_token": form["csrf_token"]}
    for _ in range(2):
        assert client.post("/app/classes/cancel", data=form,
                           follow_redirects=False).status_code == 303
    assert _flash(client) == "Nothing changed."
    assert gym.scalar(select(ClassOccurrence.booked_count)
                      .where(ClassOccurrence.id == occ["id"])) == 0
    kinds = [(i["kind"], i["channel"]) for i in _timeline(gym, anna)
             if i["kind"].startswith("class_")]
    assert sorted(kinds) == [("class_booked", "app"), ("class_cancelled", "app")]


def test_a_cancellation_promotes_the_first_waiting_who_is_told_after_the_commit(
        client, gym, world, db, smtp, sms, settings):
    coach = gym.trainer()
    occ = gym.class_at(coach, gym.at(1, 18), capacity=1)
    anna = _member(gym, "Anna")
    ben = _member(gym, "Ben", email="ben@example.org", email_consent=True)
    cleo = _member(gym, "Cleo", email="cleo@example.org", email_consent=True,
                   phone="+4915112345678", sms_consent=True)
    with transaction(db.sessionmaker) as s:
        member_classes.book(s, actor=_actor(gym, anna), occurrence_id=occ["id"])
        assert member_classes.book(s, actor=_actor(gym, ben), occurrence_id=occ["id"]) \
            .booking.waitlist_position == 1
        assert member_classes.book(s, actor=_actor(gym, cleo), occurrence_id=occ["id"]) \
            .booking.waitlist_position == 2
    anna_booking = gym.scalar(select(ClassBooking.id).where(ClassBooking.member_id == anna))

    # a cancellation rolled back promotes nobody, so nobody is told
    with pytest.raises(RuntimeError), transaction(db.sessionmaker) as s:
        done = member_classes.cancel(s, actor=_actor(gym, anna), booking_id=anna_booking)
        promoted = done.promoted_id
        raise RuntimeError("the request failed after the cancellation")
    assert member_classes.notify_promoted(db.sessionmaker, settings, promoted) is None
    assert _status(gym, ben, occ["id"]) == "waitlisted" and smtp.messages == []
    assert gym.count(Notice) == 0  # nothing queued either

    _as(client, world, anna)
    assert _post(client, "/app/classes/cancel", booking_id=anna_booking).status_code == 303
    assert _status(gym, ben, occ["id"]) == "booked"
    deadline = wall.monotonic() + 10
    while not emails_to(smtp, "ben@example.org") and wall.monotonic() < deadline:
        wall.sleep(0.05)
    [mail] = emails_to(smtp, "ben@example.org")
    assert mail["Subject"].startswith("Riverside Fitness: you have a place in Yoga")
    assert "18:00" in mail.get_body(("plain",)).get_content()
    assert sms.requests == []
    [moved] = [i["summary"] for i in _timeline(gym, ben) if i["kind"] == "class_promoted"]
    assert moved.startswith("Moved from the waiting list into Yoga") and "told by email" in moved
    _as(client, world, ben)
    assert "data-promoted" in client.get("/app").text
    # the second in line prefers SMS: told by SMS
    with transaction(db.sessionmaker) as s:
        s.get(Member, cleo).preferred_channel = "sms"
    bens = gym.scalar(select(ClassBooking.id).where(ClassBooking.member_id == ben))
    assert _post(client, "/app/classes/cancel", booking_id=bens).status_code == 303
    deadline = wall.monotonic() + 10
    while not sms.requests and wall.monotonic() < deadline:
        wall.sleep(0.05)
    assert len(sms.requests) == 1 and sms.requests[0]["body"]["to"] == "+4915112345678"
    assert "Yoga" in sms.requests[0]["body"]["text"]
    assert emails_to(smtp, "cleo@example.org") == []
    assert [i["channel"] for i in _timeline(gym, cleo) if i["kind"] == "class_promoted"] \
        in (["sms", None], [None, "sms"])


def test_a_place_given_by_a_staff_cancellation_is_emailed_by_the_outbox(client, gym, db, smtp,
                                                                         settings):
    coach = gym.trainer()
    occ = gym.class_at(coach, gym.at(1, 18), capacity=1)
    anna = _member(gym, "Anna")
    ben = _member(gym, "Ben", email="ben@example.org", email_consent=True)
    booking = gym.book_class(occ["id"], anna).json()["id"]
    assert gym.book_class(occ["id"], ben).json()["status"] == "waitlisted"

    r = client.post(f"/api/v1/classes/bookings/{booking}/cancel", headers=gym.desk.headers)
    assert r.status_code == 200 and r.json()["promoted"]["member_id"] == ben
    [notice] = gym.scalars(select(Notice))
    assert (notice.kind, notice.to, notice.sent_at) == ("class_place", "ben@example.org", None)
    assert dues_jobs.send_notices(db.sessionmaker, settings=settings) == 1  # the minute's job
    [mail] = emails_to(smtp, "ben@example.org")
    assert "you have a place in Yoga" in mail["Subject"]
    assert [i["kind"] for i in _timeline(gym, ben)].count("class_promoted") == 1


def test_thirty_members_booking_ten_places_at_once_on_postgresql(gym, db):
    if not db.is_postgres:
        pytest.skip("needs PostgreSQL: SQLite serialises whole write transactions, so the "
                    "bookings cannot interleave")
    coach = gym.trainer()
    occ = gym.class_at(coach, gym.at(2, 18), capacity=10)
    plan = gym.plan()["id"]
    members = [_member(gym, f"M{i}", plan=plan) for i in range(30)]
    engine = make_engine(db.url, pool_size=30, max_overflow=0)  # one connection each
    factory = make_sessionmaker(engine)
    barrier = threading.Barrier(30)

    def attempt(i: int):
        with transaction(factory) as s:
            s.connection()
            barrier.wait()
            return member_classes.book(s, actor=_actor(gym, members[i]),
                                       occurrence_id=occ["id"]).booking.status

    try:
        with ThreadPoolExecutor(30) as pool:
            outcomes = list(pool.map(attempt, range(30)))
    finally:
        engine.dispose()

    assert sorted(outcomes) == ["booked"] * 10 + ["waitlisted"] * 20
    assert gym.scalar(select(ClassOccurrence.booked_count)
                      .where(ClassOccurrence.id == occ["id"])) == 10
    assert gym.count(ClassBooking, ClassBooking.status == "booked") == 10
    waiting = [b for b in gym.class_detail(occ["id"])["bookings"]
               if b["status"] == "waitlisted"]
    assert sorted(b["waitlist_position"] for b in waiting) == list(range(1, 21))
    assert gym.count(Interaction, Interaction.kind == "class_booked") == 30
