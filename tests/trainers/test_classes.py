"""Group classes: timetable → occurrences, bookings, capacity, waitlist, attendance."""
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from app.core import clock
from app.retention.models import MemberStage, StageChange
from app.trainers.models import ClassBooking, ClassOccurrence
from tests.trainers.conftest import BERLIN


def _slot(gym, coach, weekday: int, hhmm: str, capacity: int = 12) -> dict:
    kind = gym.class_type(capacity=capacity, minutes=45)
    r = gym.client.post("/api/v1/classes/timetable", json={
        "class_type_id": kind, "weekday": weekday, "start_time": hhmm, "trainer_id": coach.id,
        "room": "Hall"}, headers=gym.manager.headers)
    assert r.status_code == 201, r.text
    return r.json()


def test_generate_builds_the_timetable_into_classes_once(gym):
    coach = gym.trainer()
    monday = _slot(gym, coach, 1, "18:30")
    thursday = _slot(gym, coach, 4, "07:15", capacity=8)
    start = gym.day(7)
    params = {"from": start.isoformat(), "to": (start + timedelta(days=13)).isoformat()}
    r = gym.client.post("/api/v1/classes/generate", params=params, headers=gym.manager.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["existing"]) == (4, 0)  # two weeks x two slots
    again = gym.client.post("/api/v1/classes/generate", params=params,
                            headers=gym.manager.headers)
    assert (again.json()["created"], again.json()["existing"]) == (0, 4)
    assert gym.count(ClassOccurrence) == 4
    classes = gym.client.get("/api/v1/classes", params=params, headers=gym.desk.headers).json()
    assert len(classes) == 4
    for c in classes:
        local = datetime.fromisoformat(c["starts_at"]).astimezone(BERLIN)
        slot = monday if local.isoweekday() == 1 else thursday
        assert local.strftime("%H:%M") == slot["start_time"]
        assert local.date().isoformat() == c["day"]
        assert datetime.fromisoformat(c["ends_at"]) - datetime.fromisoformat(c["starts_at"]) \
            == timedelta(minutes=45)
        assert c["capacity"] == slot["capacity"] and c["trainer_id"] == coach.id
    r = gym.client.post("/api/v1/classes/generate", params=params, headers=gym.desk.headers)
    assert r.status_code == 403


def test_generate_refuses_a_backwards_or_huge_period(gym):
    r = gym.client.post("/api/v1/classes/generate",
                        params={"from": gym.day(5).isoformat(), "to": gym.day(1).isoformat()},
                        headers=gym.manager.headers)
    assert r.status_code == 422 and r.json()["error"] == "invalid_period"
    r = gym.client.post("/api/v1/classes/generate",
                        params={"from": gym.day(0).isoformat(), "to": gym.day(400).isoformat()},
                        headers=gym.manager.headers)
    assert r.status_code == 422 and r.json()["error"] == "period_too_long"


def test_only_members_with_an_active_membership_that_day_may_book(gym):
    coach = gym.trainer()
    occ = gym.class_at(coach, gym.at(3, 18))
    member = gym.member()
    r = gym.book_class(occ["id"], member)
    assert r.status_code == 409 and r.json()["error"] == "no_active_membership"
    gym.membership(member, gym.plan()["id"], start_offset=4)  # starts the day after the class
    assert gym.book_class(occ["id"], member).json()["error"] == "no_active_membership"
    other = gym.member()
    gym.membership(other)
    r = gym.book_class(occ["id"], other)
    assert r.status_code == 201 and r.json()["status"] == "booked"
    again = gym.book_class(occ["id"], other)
    assert again.status_code == 409 and again.json()["error"] == "already_booked"
    assert gym.count(ClassBooking) == 1


def test_capacity_is_enforced_and_the_rest_wait_in_line(gym):
    coach = gym.trainer()
    occ = gym.class_at(coach, gym.at(2, 19), capacity=2)
    plan = gym.plan()["id"]
    members = [gym.member() for _ in range(4)]
    for m in members:
        gym.membership(m, plan)
    answers = [gym.book_class(occ["id"], m).json() for m in members]
    assert [a["status"] for a in answers] == ["booked", "booked", "waitlisted", "waitlisted"]
    assert [a["waitlist_position"] for a in answers] == [None, None, 1, 2]
    detail = gym.class_detail(occ["id"])
    assert (detail["booked_count"], detail["waitlist_count"]) == (2, 2)


def test_a_cancellation_promotes_the_first_in_line_in_the_same_transaction(gym):
    coach = gym.trainer()
    occ = gym.class_at(coach, gym.at(2, 7), capacity=1)
    plan = gym.plan()["id"]
    first, second, third = (gym.member() for _ in range(3))
    for m in (first, second, third):
        gym.membership(m, plan)
    seat = gym.book_class(occ["id"], first).json()
    gym.book_class(occ["id"], second)
    gym.book_class(occ["id"], third)
    r = gym.client.post(f"/api/v1/classes/bookings/{seat['id']}/cancel",
                        headers=gym.desk.headers)
    assert r.status_code == 200, r.text
    assert r.json()["booking"]["status"] == "cancelled"
    promoted = r.json()["promoted"]
    assert promoted["member_id"] == second and promoted["status"] == "booked"
    assert promoted["promoted_at"] is not None
    detail = gym.class_detail(occ["id"])
    assert detail["booked_count"] == 1 and detail["waitlist_count"] == 1
    by_member = {b["member_id"]: b for b in detail["bookings"]}
    assert by_member[third]["waitlist_position"] == 1
    # leaving the waitlist frees no seat and promotes nobody
    r = gym.client.post(f"/api/v1/classes/bookings/{by_member[third]['id']}/cancel",
                        headers=gym.desk.headers)
    assert r.json()["promoted"] is None and gym.class_detail(occ["id"])["booked_count"] == 1
    # booking again after cancelling queues at the back
    again = gym.book_class(occ["id"], first).json()
    assert again["id"] == seat["id"] and again["status"] == "waitlisted"


def test_staff_mark_attendance_for_booked_members_only(gym):
    coach, other = gym.trainer(), gym.trainer()
    starts = clock.now() + timedelta(minutes=20)
    occ = gym.class_at(coach, starts)
    member, stranger = gym.member(), gym.member()
    gym.membership(member)
    gym.book_class(occ["id"], member)
    r = gym.client.post(f"/api/v1/classes/{occ['id']}/attendance",
                        json={"member_ids": [member, stranger]}, headers=other.headers)
    assert r.status_code == 403 and r.json()["error"] == "not_your_class"
    r = gym.client.post(f"/api/v1/classes/{occ['id']}/attendance",
                        json={"member_ids": [member, stranger]}, headers=coach.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"occurrence_id": occ["id"], "marked": 1, "not_booked": [stranger]}
    booking = gym.class_detail(occ["id"])["bookings"][0]
    assert booking["attendance_source"] == "staff" and booking["attended_at"] is not None
    assert gym.class_detail(occ["id"])["attended_count"] == 1


def _lena_booked(gym, *classes) -> int:
    """Lena, a member with card LENA-0001, booked into these classes; her member id."""
    member = gym.member(first_name="Lena", last_name="Vogel")
    gym.membership(member)
    card = gym.client.post(f"/api/v1/members/{member}/cards", json={"code": "LENA-0001"},
                           headers=gym.desk.headers)
    assert card.status_code == 201, card.text
    for occurrence in classes:
        assert gym.book_class(occurrence["id"], member).status_code == 201
    return member


def test_a_turnstile_check_in_during_the_class_window_counts_as_attendance(gym):
    coach = gym.trainer()
    now = clock.now()
    soon = gym.class_at(coach, now + timedelta(minutes=20))   # window opened 10 minutes ago
    later = gym.class_at(coach, now + timedelta(hours=3))     # window opens in 2.5 hours
    _lena_booked(gym, soon, later)
    device = gym.world.device(gym.club)
    r = gym.client.post("/api/v1/access/events", json={"card": "LENA-0001", "event_id": "e1"},
                        headers=device.headers)
    assert r.status_code == 200 and r.json()["allow"] is True, r.text
    came = gym.class_detail(soon["id"])["bookings"][0]
    assert came["attendance_source"] == "turnstile" and came["attended_at"] is not None
    assert abs(datetime.fromisoformat(came["attended_at"]) - now) < timedelta(minutes=1)
    assert gym.class_detail(later["id"])["bookings"][0]["attended_at"] is None
    assert gym.class_detail(soon["id"])["attended_count"] == 1
    # a replayed event changes nothing
    gym.client.post("/api/v1/access/events", json={"card": "LENA-0001", "event_id": "e1"},
                    headers=device.headers)
    assert gym.count(ClassBooking, ClassBooking.attended_at.is_not(None)) == 1


@pytest.mark.parametrize("recover", [1, 2])
def test_an_at_risk_member_coming_to_a_booked_class(gym, db, recover):
    """Both VisitGranted follow-ups at once (PostgreSQL: folded into the grant statement;
    SQLite: the handlers after it), the same assertions on both backends."""
    coach = gym.trainer()
    now = clock.now()
    soon = gym.class_at(coach, now + timedelta(minutes=20))
    member = _lena_booked(gym, soon)
    d0 = now.date() - timedelta(days=20)
    with db.sessionmaker() as s:
        s.add(MemberStage(club_id=gym.club.id, member_id=member, stage="at_risk", since=d0,
                          cycle=f"r{d0}", reason="gone", base_stage="active", base_since=d0,
                          base_cycle="a-old", recover_visits=recover, visits_total=3,
                          updated_at=now - timedelta(days=1)))
        s.commit()
    device = gym.world.device(gym.club)
    out = gym.client.post("/api/v1/access/events",
                          json={"card": "LENA-0001", "event_id": "o", "direction": "out"},
                          headers=device.headers)
    assert out.json()["allow"] is True
    assert gym.class_detail(soon["id"])["bookings"][0]["attended_at"] is None  # "out" marks nothing
    r = gym.client.post("/api/v1/access/events", json={"card": "LENA-0001", "event_id": "e1"},
                        headers=device.headers)
    assert r.status_code == 200 and r.json()["allow"] is True, r.text
    came = gym.class_detail(soon["id"])["bookings"][0]
    assert came["attendance_source"] == "turnstile" and came["attended_at"] is not None
    with db.sessionmaker() as s:
        st = s.scalars(select(MemberStage)).one()
        history = s.scalars(select(StageChange)).all()
        if recover == 1:
            assert (st.stage, st.recover_visits, st.cycle) == ("active", 0, "a-old")
            assert [(h.from_stage, h.to_stage, h.source) for h in history] == [
                ("at_risk", "active", "visit")]
        else:
            assert (st.stage, st.recover_visits) == ("at_risk", 1) and history == []


def test_a_class_that_started_cannot_be_booked_and_another_club_cannot_see_it(gym):
    coach = gym.trainer()
    occ = gym.class_at(coach, gym.at(2, 12))
    with gym.db.sessionmaker() as s, s.begin():  # as if the class had begun five minutes ago
        s.execute(ClassOccurrence.__table__.update()
                  .where(ClassOccurrence.id == occ["id"])
                  .values(starts_at=clock.now() - timedelta(minutes=5)))
    member = gym.member()
    gym.membership(member)
    r = gym.book_class(occ["id"], member)
    assert r.status_code == 409 and r.json()["error"] == "class_started"
    elsewhere = gym.world.club("Elsewhere")
    outsider = gym.world.staff(elsewhere, "front_desk")
    assert gym.client.get(f"/api/v1/classes/{occ['id']}",
                          headers=outsider.headers).status_code == 404
    assert gym.book_class(occ["id"], member, staff=outsider).status_code == 404
    assert gym.scalar(select(ClassOccurrence.booked_count)
                      .where(ClassOccurrence.id == occ["id"])) == 0
