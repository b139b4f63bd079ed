"""Personal training in the member app (/app/training): the member's packages and what is left to
book, their trainer's free slots, booking one (a session of the package that expires first is
held), refusals in words (no package, all booked, a slot someone took, another's trainer), a
second tap, cancelling early and late, another member's session, and what the staff see."""
import re
from datetime import datetime, time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.core.actors import MemberActor, Role
from app.memberapp import training
from app.trainers.models import PtPackage, PtSession
from app.web.member_kit import MEMBER_COOKIE
from tests.memberapp.conftest import csrf_of
from tests.trainers.conftest import BERLIN, Gym, race
from tests.web.conftest import sign_in

SLOT = re.compile(r'data-slot="([^"]+)"')
LEFT = re.compile(r'data-left-to-book="(\d+)"')


def _hours(start: str = "09:00", end: str = "12:00") -> list[dict]:
    return [{"weekday": d, "start": start, "end": end} for d in range(1, 8)]


def _signed_in(client, world, member) -> None:
    client.cookies.set(MEMBER_COOKIE, world.app_session(member), path="/app")


def _page(client):
    page = client.get("/app/training")
    assert page.status_code == 200, page.text
    return page.text


def _book(client, trainer_id: int, start: str, html: str | None = None):
    """Press a slot's button (or post a time the page did not offer) with the page's token."""
    html = html or _page(client)
    token = csrf_of(html if 'name="csrf_token"' in html else client.get("/app/me").text)
    return client.post("/app/training/book", data={
        "trainer_id": trainer_id, "start": start, "csrf_token": token},
        follow_redirects=False)


def _cancel(client, session_id: int):
    return client.post("/app/training/cancel", data={
        "session_id": session_id, "csrf_token": csrf_of(_page(client))}, follow_redirects=False)


def _left(html: str) -> int:
    return int(LEFT.search(html).group(1))


def _package_left(html: str, package_id: int) -> int:
    return int(re.search(rf'data-package="{package_id}" data-left="(\d+)"', html).group(1))


def _timeline(gym, member) -> list[dict]:
    r = gym.client.get(f"/api/v1/members/{member}/timeline", headers=gym.desk.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


@pytest.fixture
def gym(client, world) -> Gym:
    """The trainers' club (tests/trainers/conftest.py): packages, sessions and classes."""
    club = world.club()
    return Gym(client, world, club, manager=world.staff(club, Role.manager),
               desk=world.staff(club, Role.front_desk))


@pytest.fixture
def coach(gym):
    return gym.trainer(hours=_hours())


def test_booking_a_free_slot_holds_a_session_of_the_package_expiring_first(app, client, gym,
                                                                          world, coach):
    anna = gym.member("Anna", "Berg")
    later = gym.package(anna, gym.pt_product(sessions=10, validity_days=90),
                        trainer_id=coach.id)
    sooner = gym.package(anna, gym.pt_product(sessions=5, validity_days=40),
                         trainer_id=coach.id)
    _signed_in(client, world, anna)
    html = _page(client)
    assert _left(html) == 15 and "15 sessions left to book" in html
    assert f'data-trainer="{coach.id}"' in html
    starts = SLOT.findall(html)
    assert starts, "no free slots offered"

    booked = _book(client, coach.id, starts[0], html)
    assert booked.status_code == 303 and booked.headers["location"] == "/app/training"
    after = client.get("/app/training").text
    assert "Booked:" in after and "data-flash" in after
    assert _left(after) == 14
    assert _package_left(after, sooner["id"]) == 4 and _package_left(after, later["id"]) == 10
    assert starts[0] not in SLOT.findall(after)  # the slot is gone
    [pt] = gym.scalars(select(PtSession).where(PtSession.member_id == anna))
    assert pt.status == "booked" and pt.trainer_id == coach.id and pt.booked_by is None
    assert pt.starts_at == datetime.fromisoformat(starts[0])
    assert f'data-session="{pt.id}"' in after  # under "your coming sessions"
    # the balance itself is spent when the session is closed, from the same package
    assert gym.balance(sooner["id"]) == 5

    # the staff see it: the member's timeline (by the member, in the app) and the desk's count
    [entry] = [e for e in _timeline(gym, anna) if e["kind"] == "pt_booked"]
    assert entry["channel"] == "app" and entry["by"] == "member"
    assert "personal-training session" in entry["summary"] and "14 left to book" in entry["summary"]
    assert gym.packages(anna)["sessions_booked"] == 1
    listed = gym.client.get("/api/v1/trainers/sessions", params={"member_id": anna},
                            headers=gym.desk.headers).json()["items"]
    assert [s["id"] for s in listed] == [pt.id]
    with TestClient(app) as staff:  # and in the staff's pages
        sign_in(staff, gym.manager.email)
        day = pt.starts_at.astimezone(BERLIN).date()
        week = staff.get("/manage/trainers", params={"week": day.isoformat()}).text
        assert "with Anna Berg" in week
        card = staff.get(f"/desk/members/{anna}").text
        assert "(1 booked)" in card and "Booked a personal-training session" in card


def test_no_package_is_refused_in_words(client, gym, world, coach):
    bert = gym.member("Bert", "Klein")
    _signed_in(client, world, bert)
    html = _page(client)
    assert "data-no-package" in html and "no personal-training package" in html
    assert "data-slot" not in html
    start = datetime.combine(gym.day(2), time(10), tzinfo=BERLIN).isoformat()
    r = _book(client, coach.id, start, html)
    assert r.status_code == 409
    assert "You have no personal-training package with a session left" in r.text
    assert gym.count(PtSession) == 0


def test_a_package_with_every_session_booked_takes_no_more(client, gym, world, coach):
    anna = gym.member("Anna", "Berg")
    gym.package(anna, gym.pt_product(sessions=1), trainer_id=coach.id)
    _signed_in(client, world, anna)
    first, second = SLOT.findall(_page(client))[:2]
    assert _book(client, coach.id, first).status_code == 303
    html = _page(client)
    assert _left(html) == 0
    r = _book(client, coach.id, second, html)
    assert r.status_code == 409 and "Every session left in your package is booked already" in r.text
    assert gym.count(PtSession) == 1


def test_a_slot_taken_in_between_is_a_409_in_words(client, gym, world, coach):
    anna, bert = gym.member("Anna", "Berg"), gym.member("Bert", "Klein")
    gym.package(anna, trainer_id=coach.id)
    gym.package(bert, trainer_id=coach.id)
    _signed_in(client, world, anna)
    html = _page(client)  # Anna looks at the slots...
    start = SLOT.findall(html)[0]
    gym.booked(coach, bert, datetime.fromisoformat(start), staff=gym.desk)  # ...Bert gets it
    r = _book(client, coach.id, start, html)
    assert r.status_code == 409
    assert "someone has just taken this time" in r.text
    assert start not in SLOT.findall(r.text) and "data-slot" in r.text  # the others are offered
    assert gym.count(PtSession, member_id=anna) == 0


def test_a_second_tap_books_once(client, gym, world, coach):
    anna = gym.member("Anna", "Berg")
    gym.package(anna, trainer_id=coach.id)
    _signed_in(client, world, anna)
    html = _page(client)
    start = SLOT.findall(html)[0]
    assert _book(client, coach.id, start, html).status_code == 303
    again = _book(client, coach.id, start, html)
    assert again.status_code == 303
    assert "nothing changed" in client.get("/app/training").text
    assert gym.count(PtSession, member_id=anna) == 1


def test_only_the_trainer_of_the_package_and_only_ones_own_sessions(client, gym, world, coach):
    stranger = gym.trainer(hours=_hours())
    anna, bert = gym.member("Anna", "Berg"), gym.member("Bert", "Klein")
    gym.package(anna, trainer_id=coach.id)
    gym.package(bert, trainer_id=stranger.id)
    berts = gym.booked(stranger, bert, gym.at(3, 10), staff=gym.desk)
    _signed_in(client, world, anna)
    html = _page(client)
    assert f'data-trainer="{stranger.id}"' not in html and f'data-trainer="{coach.id}"' in html
    r = _book(client, stranger.id, gym.at(4, 10).isoformat(), html)
    assert r.status_code == 404 and "only with the trainer of your package" in r.text
    r = _book(client, coach.id, gym.at(20, 10).isoformat(), html)  # past the horizon
    assert r.status_code == 409 and "up to two weeks ahead" in r.text
    r = _cancel(client, berts["id"])
    assert r.status_code == 404 and "no session with this number" in r.text
    assert gym.scalar(select(PtSession.status).where(PtSession.id == berts["id"])) == "booked"
    assert gym.count(PtSession, member_id=anna) == 0


def test_a_package_naming_no_trainer_books_with_the_last_sessions_trainer(client, gym, world,
                                                                          coach):
    anna = gym.member("Anna", "Berg")
    gym.package(anna)  # no home trainer
    _signed_in(client, world, anna)
    assert "data-no-trainer" in _page(client)
    gym.booked(coach, anna, gym.at(-2, 10))  # her last session (recorded by the manager)
    html = _page(client)
    assert f'data-trainer="{coach.id}"' in html and SLOT.findall(html)


def test_cancelling_early_is_free_and_late_spends_a_session(client, gym, world, coach, clock):
    anna = gym.member("Anna", "Berg")
    package = gym.package(anna, trainer_id=coach.id)
    early = gym.booked(coach, anna, gym.at(5, 10), staff=gym.desk)
    soon = gym.booked(coach, anna, gym.at(1, 10), staff=gym.desk)
    _signed_in(client, world, anna)
    html = _page(client)
    assert _left(html) == 8 and "Cancelling less than 24 hours before the start" in html

    r = _cancel(client, early["id"])
    assert r.status_code == 303
    assert "Cancelled:" in client.get("/app/training").text
    assert gym.balance(package["id"]) == 10  # free: days ahead
    assert _cancel(client, early["id"]).status_code == 303  # a second tap changes nothing
    assert "nothing changed" in client.get("/app/training").text

    clock.set(gym.at(1, 8))  # two hours before the other one
    html = _page(client)
    assert "the session counts as used" in html  # the button says so
    r = _cancel(client, soon["id"])
    assert r.status_code == 303
    assert "counts as used" in client.get("/app/training").text
    assert gym.balance(package["id"]) == 9
    row = gym.scalar(select(PtSession).where(PtSession.id == soon["id"]))
    assert row.status == "cancelled" and row.late_cancel and row.cancelled_by == "member"
    assert row.closed_by is None and row.package_id == package["id"]
    summaries = [e["summary"] for e in _timeline(gym, anna) if e["kind"] == "pt_cancelled"]
    assert len(summaries) == 2 and any("late (less than 24 h before)" in s for s in summaries)
    assert gym.scalar(select(PtPackage.sessions_left).where(
        PtPackage.id == package["id"])) == 9


def test_the_home_page_leads_to_training(client, gym, world, coach):
    anna = gym.member("Anna", "Berg")
    gym.package(anna, trainer_id=coach.id)
    _signed_in(client, world, anna)
    home = client.get("/app").text
    assert 'href="/app/training"' in home
    assert len(_page(client).encode()) < 100_000  # a week of slots stays a light page


# --- at the same moment (PostgreSQL: SQLite serialises whole write transactions) --------------


def _member(gym, member_id: int) -> MemberActor:
    return MemberActor(session_id=0, member_id=member_id, club_id=gym.club.id, name="member")


def test_members_tapping_the_same_slot_at_once_get_it_once(db, gym, coach):
    if not db.is_postgres:
        pytest.skip("needs PostgreSQL row locks; SQLite serialises whole transactions")
    members = [gym.member() for _ in range(4)]
    for m in members:
        gym.package(m, trainer_id=coach.id)
    start = gym.at(3, 10).isoformat()

    done, refused = race(db, 4, lambda s, i: training.book(
        s, actor=_member(gym, members[i]), trainer_id=coach.id, start=start))

    assert len(done) == 1 and {c.code for c in refused} == {"trainer_busy"}
    assert gym.count(PtSession) == 1


def test_one_session_left_booked_from_two_phones_at_once_is_booked_once(db, gym, coach):
    if not db.is_postgres:
        pytest.skip("needs PostgreSQL row locks; SQLite serialises whole transactions")
    anna = gym.member()
    gym.package(anna, gym.pt_product(sessions=1), trainer_id=coach.id)
    starts = [gym.at(3, 9).isoformat(), gym.at(4, 11).isoformat()]

    done, refused = race(db, 2, lambda s, i: training.book(
        s, actor=_member(gym, anna), trainer_id=coach.id, start=starts[i]))

    assert len(done) == 1 and [c.code for c in refused] == ["package_fully_booked"]
    assert gym.count(PtSession, member_id=anna) == 1
