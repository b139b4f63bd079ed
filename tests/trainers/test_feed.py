"""The trainer's schedule as an iCalendar feed, authorised by a rotatable secret in the URL."""
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import icalendar

from app.core.security import digest
from app.trainers.models import TrainerProfile


def _host(gym) -> str:
    return urlparse(gym.client.app.state.settings.public_base_url).hostname


def _feed(gym, coach, token: str):
    return gym.client.get(f"/api/v1/trainers/{coach.id}/schedule.ics", params={"token": token})


def _token(gym, coach, staff=None) -> str:
    r = gym.client.post(f"/api/v1/trainers/{coach.id}/feed-token",
                        headers=(staff or coach.staff).headers)
    assert r.status_code == 201, r.text
    url = urlparse(r.json()["url"])
    assert url.path == f"/api/v1/trainers/{coach.id}/schedule.ics"
    assert parse_qs(url.query)["token"] == [r.json()["token"]]
    return r.json()["token"]


def test_the_feed_is_valid_icalendar_with_the_booked_sessions_and_classes(gym):
    coach, other = gym.trainer(), gym.trainer()
    anna = gym.member(first_name="Anna", last_name="Bergström")
    gym.package(anna)
    one = gym.booked(coach, anna, gym.at(2, 10))
    two = gym.booked(coach, anna, gym.at(3, 17, 30), minutes=45)
    cancelled = gym.booked(coach, anna, gym.at(4, 9))
    gym.act(cancelled["id"], "cancel")
    gym.booked(other, gym.member(), gym.at(2, 10), complimentary=True)  # someone else's
    occ = gym.class_at(coach, gym.at(5, 19), capacity=12, room="Studio; 2, upstairs")
    token = _token(gym, coach)

    r = _feed(gym, coach, token)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/calendar")
    assert b"\r\n" in r.content and all(len(line) <= 75 for line in r.content.split(b"\r\n"))
    cal = icalendar.Calendar.from_ical(r.content)
    assert cal["VERSION"] == "2.0" and "PRODID" in cal
    events = {str(e["UID"]).removesuffix(f"@{_host(gym)}"): e for e in cal.walk("VEVENT")}
    assert set(events) == {f"pt-session-{one['id']}", f"pt-session-{two['id']}",
                           f"class-{occ['id']}"}
    for e in events.values():
        assert "DTSTAMP" in e
        for key in ("DTSTART", "DTEND"):
            assert e[key].dt.tzinfo is not None and e[key].dt.utcoffset() == timedelta(0)
    session_two = events[f"pt-session-{two['id']}"]
    assert session_two["DTSTART"].dt == gym.at(3, 17, 30).astimezone(UTC)
    assert session_two["DTEND"].dt == gym.at(3, 18, 15).astimezone(UTC)
    assert str(session_two["SUMMARY"]) == "PT: Anna B."
    assert "Bergström" not in r.content.decode()  # no surnames in a calendar
    lesson = events[f"class-{occ['id']}"]
    assert str(lesson["LOCATION"]) == "Studio; 2, upstairs"  # escaped and read back
    assert str(lesson["SUMMARY"]).startswith("Class: Yoga") and "(0/12)" in str(lesson["SUMMARY"])


def test_a_rescheduled_session_keeps_its_uid_and_raises_its_sequence(gym):
    coach = gym.trainer()
    member = gym.member()
    gym.package(member)
    s = gym.booked(coach, member, gym.at(2, 10))
    token = _token(gym, coach)
    gym.act(s["id"], "reschedule", staff=gym.desk, json={"start": gym.at(2, 15).isoformat()})
    [event] = icalendar.Calendar.from_ical(_feed(gym, coach, token).content).walk("VEVENT")
    assert str(event["UID"]) == f"pt-session-{s['id']}@{_host(gym)}"
    assert event["DTSTART"].dt == gym.at(2, 15).astimezone(UTC) and event["SEQUENCE"] == 1


def test_the_feed_token_is_stored_hashed_rotatable_and_revocable(gym):
    coach, other = gym.trainer(), gym.trainer()
    assert _feed(gym, coach, "").status_code == 404
    first = _token(gym, coach)
    stored = gym.scalar(TrainerProfile.__table__.select()
                        .with_only_columns(TrainerProfile.feed_token_hash)
                        .where(TrainerProfile.id == coach.id))
    assert stored == digest(first) and first not in stored
    second = _token(gym, coach, staff=gym.manager)  # a manager may rotate it too
    assert _feed(gym, coach, first).status_code == 404
    assert _feed(gym, coach, second).status_code == 200
    assert _feed(gym, other, second).status_code == 404  # the token is this trainer's only
    r = gym.client.post(f"/api/v1/trainers/{coach.id}/feed-token", headers=other.headers)
    assert r.status_code == 403
    r = gym.client.post(f"/api/v1/trainers/{coach.id}/feed-token", headers=gym.desk.headers)
    assert r.status_code == 403
    assert gym.client.delete(f"/api/v1/trainers/{coach.id}/feed-token",
                             headers=coach.headers).status_code == 204
    assert _feed(gym, coach, second).status_code == 404
    assert gym.client.get(f"/api/v1/trainers/{coach.id}",
                          headers=gym.desk.headers).json()["has_feed_token"] is False


def test_long_summaries_are_folded_at_75_octets(gym):
    coach = gym.trainer()
    member = gym.member(first_name="Maximiliane-Kunigunde-Wilhelmine-Ottilie-Ånnä-Lüdenscheid-Ærøskøbing",
                        last_name="Z")
    gym.package(member)
    gym.booked(coach, member, gym.at(2, 10))
    body = _feed(gym, coach, _token(gym, coach)).content
    assert all(len(line) <= 75 for line in body.split(b"\r\n"))
    assert b"\r\n " in body  # folded
    [event] = icalendar.Calendar.from_ical(body).walk("VEVENT")
    assert str(event["SUMMARY"]) == \
        "PT: Maximiliane-Kunigunde-Wilhelmine-Ottilie-Ånnä-Lüdenscheid-Ærøskøbing Z."
    assert datetime.fromisoformat(event["DTSTAMP"].dt.isoformat()).tzinfo is not None


def test_a_removed_trainers_feed_stops_working(gym):
    """Issue 16: after `DELETE /api/v1/staff/{id}` the calendar URL kept serving the schedule."""
    from app.clubs.models import StaffUser

    coach, colleague = gym.trainer(), gym.trainer()
    anna = gym.member(first_name="Anna")
    gym.package(anna)
    gym.booked(coach, anna, gym.at(2, 10))
    token, kept = _token(gym, coach), _token(gym, colleague)
    assert _feed(gym, coach, token).status_code == 200
    r = gym.client.delete(f"/api/v1/staff/{coach.staff.user_id}", headers=gym.manager.headers)
    assert r.status_code == 204, r.text
    gone = _feed(gym, coach, token)
    assert gone.status_code == 404 and "Anna" not in gone.text
    assert gone.json()["error"] == "feed_not_found"  # as for a wrong token: nothing revealed
    assert _feed(gym, colleague, kept).status_code == 200  # the others' feeds go on
    # a deactivated account's feed stops too
    with gym.db.sessionmaker() as s:
        s.get(StaffUser, colleague.staff.user_id).active = False
        s.commit()
    assert _feed(gym, colleague, kept).status_code == 404
