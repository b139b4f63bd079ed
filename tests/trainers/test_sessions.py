"""Booking PT sessions: every rule that refuses a booking, and what closing a session spends."""
from datetime import datetime

from sqlalchemy import select

from app.trainers.models import PtSession

# --- booking conflicts ------------------------------------------------------------------------

def test_a_trainer_cannot_be_double_booked(gym):
    coach = gym.trainer()
    a, b = gym.member(), gym.member()
    gym.package(a)
    gym.package(b)
    first = gym.booked(coach, a, gym.at(2, 10))
    r = gym.book(coach, b, gym.at(2, 10, 30), staff=gym.desk)
    assert r.status_code == 409 and r.json()["error"] == "trainer_busy"
    assert r.json()["details"]["session_id"] == first["id"]
    assert "already has a session" in r.json()["message"]
    # back to back is fine: [10:00, 11:00) and [11:00, 12:00) do not overlap
    assert gym.book(coach, b, gym.at(2, 11), staff=gym.desk).status_code == 201
    assert gym.count(PtSession) == 2


def test_a_member_cannot_be_in_two_sessions_at_once(gym):
    one, two = gym.trainer(), gym.trainer()
    member = gym.member()
    gym.package(member)
    gym.booked(one, member, gym.at(3, 9))
    r = gym.book(two, member, gym.at(3, 9, 45), staff=gym.desk)
    assert r.status_code == 409 and r.json()["error"] == "member_busy"
    assert gym.count(PtSession) == 1


def test_outside_working_hours_is_refused(gym):
    coach = gym.trainer(hours=[{"weekday": d, "start": "09:00", "end": "12:00"} for d in
                               range(1, 8)] + [{"weekday": d, "start": "14:00", "end": "18:00"}
                                               for d in range(1, 8)])
    member = gym.member()
    gym.package(member)
    early = gym.book(coach, member, gym.at(2, 8, 30), staff=gym.desk)
    assert early.status_code == 409 and early.json()["error"] == "outside_working_hours"
    assert "09:00–12:00, 14:00–18:00" in early.json()["message"]
    lunch = gym.book(coach, member, gym.at(2, 11, 30), staff=gym.desk)  # runs into the break
    assert lunch.status_code == 409 and lunch.json()["error"] == "outside_working_hours"
    assert gym.book(coach, member, gym.at(2, 14), staff=gym.desk).status_code == 201
    assert gym.count(PtSession) == 1


def test_a_day_without_hours_is_outside_hours(gym):
    tomorrow_plus_one = gym.day(2).isoweekday()
    coach = gym.trainer(hours=[{"weekday": d, "start": "06:00", "end": "22:00"}
                               for d in range(1, 8) if d != tomorrow_plus_one])
    member = gym.member()
    gym.package(member)
    r = gym.book(coach, member, gym.at(2, 10), staff=gym.desk)
    assert r.status_code == 409 and r.json()["error"] == "outside_working_hours"
    assert r.json()["details"]["hours"] == []


def test_no_booking_on_a_vacation_day(gym):
    coach = gym.trainer()
    member = gym.member()
    gym.package(member)
    kept = gym.booked(coach, member, gym.at(5, 10))
    r = gym.client.post(f"/api/v1/trainers/{coach.id}/absences",
                        json={"start_date": gym.day(4).isoformat(),
                              "end_date": gym.day(6).isoformat(), "kind": "vacation"},
                        headers=gym.manager.headers)
    assert r.status_code == 201, r.text
    assert r.json()["booked_session_ids"] == [kept["id"]]  # already booked: to be moved
    r = gym.book(coach, member, gym.at(6, 15), staff=gym.desk)
    assert r.status_code == 409 and r.json()["error"] == "trainer_absent"
    assert "vacation" in r.json()["message"]
    assert gym.book(coach, member, gym.at(7, 15), staff=gym.desk).status_code == 201


def test_no_package_no_booking(gym):
    coach = gym.trainer()
    member = gym.member()
    r = gym.book(coach, member, gym.at(2, 10), staff=gym.desk)
    assert r.status_code == 409 and r.json()["error"] == "no_package_balance"
    assert "sell one" in r.json()["message"]
    assert gym.count(PtSession) == 0


def test_a_used_up_package_does_not_count(gym):
    coach = gym.trainer()
    member = gym.member()
    pkg = gym.package(member, gym.pt_product(sessions=1))
    done = gym.booked(coach, member, gym.at(-2, 10))
    assert gym.act(done["id"], "complete").status_code == 200
    assert gym.balance(pkg["id"]) == 0
    r = gym.book(coach, member, gym.at(2, 10), staff=gym.desk)
    assert r.status_code == 409 and r.json()["error"] == "no_package_balance"


def test_an_expired_package_cannot_be_booked_after_its_last_day(gym):
    coach = gym.trainer()
    member = gym.member()
    pkg = gym.package(member, gym.pt_product(validity_days=30), start_offset=-27)  # ends day +2
    assert pkg["valid_until"] == gym.day(2).isoformat()
    assert gym.book(coach, member, gym.at(2, 10), staff=gym.desk).status_code == 201
    r = gym.book(coach, member, gym.at(3, 10), staff=gym.desk)
    assert r.status_code == 409 and r.json()["error"] == "package_expired"
    assert gym.day(2).isoformat() in r.json()["message"]


def test_start_times_need_a_utc_offset(gym):
    coach = gym.trainer()
    member = gym.member()
    gym.package(member)
    naive = gym.at(2, 10).replace(tzinfo=None).isoformat()
    r = gym.client.post("/api/v1/trainers/sessions",
                        json={"member_id": member, "trainer_id": coach.id, "start": naive},
                        headers=gym.desk.headers)
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    assert r.json()["details"][0]["field"] == "start"


def test_the_desk_cannot_book_in_the_past_but_a_manager_may_record_it(gym):
    coach = gym.trainer()
    member = gym.member()
    gym.package(member)
    r = gym.book(coach, member, gym.at(-1, 10), staff=gym.desk)
    assert r.status_code == 422 and r.json()["error"] == "session_in_past"
    assert gym.book(coach, member, gym.at(-1, 10), staff=gym.manager).status_code == 201


def test_a_trainer_books_with_themselves_only(gym):
    mine, other = gym.trainer(), gym.trainer()
    member = gym.member()
    gym.package(member)
    r = gym.client.post("/api/v1/trainers/sessions", headers=mine.headers,
                        json={"member_id": member, "start": gym.at(2, 10).isoformat()})
    assert r.status_code == 201 and r.json()["trainer_id"] == mine.id
    r = gym.book(other, member, gym.at(3, 10), staff=mine.staff)
    assert r.status_code == 403 and r.json()["error"] == "not_your_session"


def test_another_clubs_member_or_trainer_is_not_found(gym):
    coach = gym.trainer()
    elsewhere = gym.world.club("Elsewhere")
    stranger = gym.member(club=elsewhere)
    r = gym.book(coach, stranger, gym.at(2, 10))
    assert r.status_code == 404 and r.json()["error"] == "member_not_found"
    other_manager = gym.world.staff(elsewhere, "manager")
    foreign_coach = gym.trainer(club=elsewhere, manager=other_manager)
    member = gym.member()
    gym.package(member)
    r = gym.book(foreign_coach, member, gym.at(2, 10))
    assert r.status_code == 404 and r.json()["error"] == "trainer_not_found"
    r = gym.client.get(f"/api/v1/trainers/{foreign_coach.id}", headers=gym.desk.headers)
    assert r.status_code == 404


# --- closing sessions -------------------------------------------------------------------------

def test_completing_spends_one_session_of_the_package_expiring_first(gym):
    coach = gym.trainer()
    member = gym.member()
    later = gym.package(member, gym.pt_product(validity_days=90), start_offset=-10)
    sooner = gym.package(member, gym.pt_product(validity_days=30), start_offset=-10)
    s = gym.booked(coach, member, gym.at(-1, 10))
    r = gym.act(s["id"], "complete", staff=coach.staff, json={"note": "deadlifts 60 kg"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed" and r.json()["charged"] is True
    assert r.json()["package_id"] == sooner["id"]
    assert (gym.balance(sooner["id"]), gym.balance(later["id"])) == (9, 10)
    again = gym.act(s["id"], "complete")
    assert again.status_code == 409 and again.json()["error"] == "session_closed"
    assert gym.balance(sooner["id"]) == 9  # exactly once
    view = gym.packages(member)
    assert view["sessions_available"] == 19
    assert [p["sessions_used"] for p in view["items"]] == [1, 0]


def test_a_future_session_cannot_be_completed_yet(gym):
    coach = gym.trainer()
    member = gym.member()
    pkg = gym.package(member)
    s = gym.booked(coach, member, gym.at(2, 10))
    r = gym.act(s["id"], "complete")
    assert r.status_code == 409 and r.json()["error"] == "session_not_started"
    assert gym.balance(pkg["id"]) == 10


def test_completing_without_a_balance_is_refused_and_the_session_stays_booked(gym):
    coach = gym.trainer()
    member = gym.member()
    pkg = gym.package(member, gym.pt_product(sessions=1))
    first = gym.booked(coach, member, gym.at(-2, 10))
    second = gym.booked(coach, member, gym.at(-1, 10))  # booked while a session was left
    assert gym.act(first["id"], "complete").status_code == 200
    r = gym.act(second["id"], "complete")
    assert r.status_code == 409 and r.json()["error"] == "no_package_balance"
    status = gym.scalar(select(PtSession.status).where(PtSession.id == second["id"]))
    assert status == "booked" and gym.balance(pkg["id"]) == 0


def test_a_no_show_spends_a_session(gym):
    coach = gym.trainer()
    member = gym.member()
    pkg = gym.package(member)
    s = gym.booked(coach, member, gym.at(-1, 18))
    r = gym.act(s["id"], "no-show", staff=gym.desk)
    assert r.status_code == 200 and r.json()["status"] == "no_show"
    assert r.json()["charged"] is True and gym.balance(pkg["id"]) == 9
    assert gym.act(s["id"], "complete").json()["error"] == "session_closed"


def test_late_cancellation_spends_a_session_early_one_does_not(gym):
    r = gym.client.patch("/api/v1/trainers/settings", json={"pt_cancel_hours": 48},
                         headers=gym.manager.headers)
    assert r.status_code == 200 and r.json() == {"pt_cancel_hours": 48}
    coach = gym.trainer()
    member = gym.member()
    pkg = gym.package(member)
    soon = gym.booked(coach, member, gym.at(1, 10))   # at most 34 hours away: inside 48 h
    later = gym.booked(coach, member, gym.at(3, 10))  # at least 58 hours away
    early = gym.act(later["id"], "cancel", staff=gym.desk, json={"reason": "travelling"})
    assert early.status_code == 200, early.text
    assert (early.json()["status"], early.json()["late_cancel"], early.json()["charged"]) == \
        ("cancelled", False, False)
    assert gym.balance(pkg["id"]) == 10
    late = gym.act(soon["id"], "cancel", staff=gym.desk)
    assert (late.json()["status"], late.json()["late_cancel"], late.json()["charged"]) == \
        ("cancelled", True, True)
    assert gym.balance(pkg["id"]) == 9
    # the freed slot can be booked again
    assert gym.booked(coach, member, gym.at(1, 10))["status"] == "booked"


def test_a_cancellation_by_the_club_is_never_charged_and_not_for_the_desk_to_waive(gym):
    coach = gym.trainer()
    member = gym.member()
    pkg = gym.package(member)
    s = gym.booked(coach, member, gym.at(1, 7))
    r = gym.act(s["id"], "cancel", staff=gym.desk, json={"by": "club"})
    assert r.status_code == 403 and r.json()["error"] == "waive_forbidden"
    r = gym.act(s["id"], "cancel", staff=coach.staff, json={"by": "club", "reason": "sick"})
    assert r.status_code == 200 and r.json()["charged"] is False
    assert r.json()["cancelled_by"] == "club" and gym.balance(pkg["id"]) == 10


def test_reschedule_follows_the_booking_rules_and_bumps_nothing_else(gym):
    coach = gym.trainer()
    a, b = gym.member(), gym.member()
    gym.package(a)
    gym.package(b)
    s = gym.booked(coach, a, gym.at(2, 10))
    other = gym.booked(coach, b, gym.at(2, 12))
    r = gym.act(s["id"], "reschedule", staff=gym.desk,
                json={"start": gym.at(2, 12, 30).isoformat()})
    assert r.status_code == 409 and r.json()["error"] == "trainer_busy"
    assert r.json()["details"]["session_id"] == other["id"]
    r = gym.act(s["id"], "reschedule", staff=gym.desk,
                json={"start": gym.at(2, 5).isoformat()})
    assert r.json()["error"] == "outside_working_hours"
    r = gym.act(s["id"], "reschedule", staff=gym.desk,
                json={"start": gym.at(2, 10, 30).isoformat(), "duration_minutes": 90})
    assert r.status_code == 200, r.text
    moved = r.json()
    assert datetime.fromisoformat(moved["starts_at"]) == gym.at(2, 10, 30)
    assert datetime.fromisoformat(moved["ends_at"]) == gym.at(2, 12)
    assert moved["duration_minutes"] == 90 and moved["status"] == "booked"
    untouched = gym.client.get(f"/api/v1/trainers/sessions/{other['id']}",
                               headers=gym.desk.headers).json()
    assert untouched["starts_at"] == other["starts_at"]
    assert gym.scalar(select(PtSession.sequence).where(PtSession.id == s["id"])) == 1


def test_a_trainer_cannot_close_another_trainers_session(gym):
    mine, theirs = gym.trainer(), gym.trainer()
    member = gym.member()
    pkg = gym.package(member)
    s = gym.booked(theirs, member, gym.at(-1, 10))
    r = gym.act(s["id"], "complete", staff=mine.staff)
    assert r.status_code == 403 and r.json()["error"] == "not_your_session"
    assert gym.balance(pkg["id"]) == 10
    assert gym.act(s["id"], "complete", staff=theirs.staff).status_code == 200


def test_complimentary_sessions_are_for_managers_and_spend_nothing(gym):
    coach = gym.trainer()
    member = gym.member()  # no package at all
    r = gym.book(coach, member, gym.at(2, 10), staff=gym.desk, complimentary=True)
    assert r.status_code == 403 and r.json()["error"] == "complimentary_forbidden"
    s = gym.booked(coach, member, gym.at(-1, 10), complimentary=True)
    done = gym.act(s["id"], "complete", staff=coach.staff)
    assert done.status_code == 200 and done.json()["charged"] is False
    assert done.json()["package_id"] is None
