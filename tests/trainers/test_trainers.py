"""Trainer profiles, working hours and absences: managers edit, staff read."""
from app.core.actors import Role
from app.trainers.models import TrainerHours, TrainerProfile


def test_a_profile_needs_a_staff_user_with_the_trainer_role(gym):
    desk_user = gym.world.staff(gym.club, Role.front_desk)
    r = gym.client.post("/api/v1/trainers", json={"user_id": desk_user.user_id},
                        headers=gym.manager.headers)
    assert r.status_code == 422 and r.json()["error"] == "not_a_trainer"
    elsewhere = gym.world.club("Elsewhere")
    foreign = gym.world.staff(elsewhere, Role.trainer)
    r = gym.client.post("/api/v1/trainers", json={"user_id": foreign.user_id},
                        headers=gym.manager.headers)
    assert r.status_code == 404 and r.json()["error"] == "staff_not_found"
    coach = gym.trainer()
    r = gym.client.post("/api/v1/trainers", json={"user_id": coach.staff.user_id},
                        headers=gym.manager.headers)
    assert r.status_code == 409 and r.json()["error"] == "trainer_exists"
    assert gym.count(TrainerProfile) == 1
    got = gym.client.get(f"/api/v1/trainers/{coach.id}", headers=gym.desk.headers).json()
    assert got["user_id"] == coach.staff.user_id and got["specialities"] == ["strength"]
    assert got["active"] is True and got["has_feed_token"] is False


def test_managers_edit_profiles_others_only_read(gym):
    coach = gym.trainer()
    body = {"specialities": ["yoga", "mobility", "yoga"], "bio": "Ten years of yoga"}
    r = gym.client.patch(f"/api/v1/trainers/{coach.id}", json=body, headers=coach.headers)
    assert r.status_code == 403
    r = gym.client.patch(f"/api/v1/trainers/{coach.id}", json=body, headers=gym.manager.headers)
    assert r.status_code == 200 and r.json()["specialities"] == ["yoga", "mobility"]
    listed = gym.client.get("/api/v1/trainers", headers=gym.desk.headers).json()
    assert [t["bio"] for t in listed] == ["Ten years of yoga"]
    r = gym.client.patch(f"/api/v1/trainers/{coach.id}", json={"club_id": 99},
                         headers=gym.manager.headers)
    assert r.status_code == 422  # unknown fields are refused


def test_front_desk_cannot_edit_trainers_hours_but_can_read_them(gym):
    coach = gym.trainer(hours=[{"weekday": 1, "start": "09:00", "end": "13:00"}])
    week = {"intervals": [{"weekday": 2, "start": "08:00", "end": "12:00"}]}
    for staff in (gym.desk, coach.staff):
        r = gym.client.put(f"/api/v1/trainers/{coach.id}/hours", json=week, headers=staff.headers)
        assert r.status_code == 403 and r.json()["error"] == "forbidden_role"
    r = gym.client.get(f"/api/v1/trainers/{coach.id}/hours", headers=gym.desk.headers)
    assert r.status_code == 200
    assert r.json()["intervals"] == [{"weekday": 1, "start": "09:00", "end": "13:00"}]
    assert r.json()["timezone"] == "Europe/Berlin"
    r = gym.client.post(f"/api/v1/trainers/{coach.id}/absences", headers=gym.desk.headers,
                        json={"start_date": gym.day(1).isoformat(),
                              "end_date": gym.day(2).isoformat(), "kind": "sick"})
    assert r.status_code == 403


def test_working_hours_are_replaced_as_a_whole_and_checked(gym):
    coach = gym.trainer()
    url = f"/api/v1/trainers/{coach.id}/hours"
    split = {"intervals": [{"weekday": 3, "start": "07:00", "end": "11:00"},
                           {"weekday": 3, "start": "15:00", "end": "20:00"}]}
    r = gym.client.put(url, json=split, headers=gym.manager.headers)
    assert r.status_code == 200 and len(r.json()["intervals"]) == 2
    assert gym.count(TrainerHours) == 2  # the default week was replaced
    overlapping = {"intervals": [{"weekday": 3, "start": "07:00", "end": "11:00"},
                                 {"weekday": 3, "start": "10:00", "end": "12:00"}]}
    r = gym.client.put(url, json=overlapping, headers=gym.manager.headers)
    assert r.status_code == 422 and "overlap" in r.json()["message"]
    for bad in ({"weekday": 8, "start": "07:00", "end": "08:00"},
                {"weekday": 1, "start": "09:00", "end": "08:00"},
                {"weekday": 1, "start": "25:00", "end": "26:00"}):
        r = gym.client.put(url, json={"intervals": [bad]}, headers=gym.manager.headers)
        assert r.status_code == 422, bad
    assert gym.count(TrainerHours) == 2  # nothing half-written


def test_absences_are_listed_and_can_be_removed(gym):
    coach = gym.trainer()
    member = gym.member()
    gym.package(member)
    url = f"/api/v1/trainers/{coach.id}/absences"
    r = gym.client.post(url, json={"start_date": gym.day(3).isoformat(),
                                   "end_date": gym.day(1).isoformat()},
                        headers=gym.manager.headers)
    assert r.status_code == 422  # ends before it starts
    sick = gym.client.post(url, json={"start_date": gym.day(2).isoformat(),
                                      "end_date": gym.day(2).isoformat(), "kind": "sick",
                                      "note": "flu"}, headers=gym.manager.headers).json()
    assert gym.book(coach, member, gym.at(2, 10)).json()["error"] == "trainer_absent"
    listed = gym.client.get(url, headers=coach.headers).json()
    assert [(a["kind"], a["note"]) for a in listed] == [("sick", "flu")]
    r = gym.client.delete(f"{url}/{sick['id']}", headers=gym.manager.headers)
    assert r.status_code == 204
    assert gym.book(coach, member, gym.at(2, 10)).status_code == 201


def test_an_inactive_trainer_takes_no_bookings(gym):
    coach = gym.trainer()
    member = gym.member()
    gym.package(member)
    gym.client.patch(f"/api/v1/trainers/{coach.id}", json={"active": False},
                     headers=gym.manager.headers)
    r = gym.book(coach, member, gym.at(2, 10))
    assert r.status_code == 409 and r.json()["error"] == "trainer_inactive"


def test_pt_cancel_hours_default_and_only_managers_change_them(gym):
    r = gym.client.get("/api/v1/trainers/settings", headers=gym.desk.headers)
    assert r.json() == {"pt_cancel_hours": 24}
    r = gym.client.patch("/api/v1/trainers/settings", json={"pt_cancel_hours": 12},
                         headers=gym.desk.headers)
    assert r.status_code == 403
    for hours in (12, 6):
        r = gym.client.patch("/api/v1/trainers/settings", json={"pt_cancel_hours": hours},
                             headers=gym.manager.headers)
        assert r.json() == {"pt_cancel_hours": hours}
    r = gym.client.patch("/api/v1/trainers/settings", json={"pt_cancel_hours": -1},
                         headers=gym.manager.headers)
    assert r.status_code == 422
    other = gym.world.club("Elsewhere")
    assert gym.client.get("/api/v1/trainers/settings",
                          headers=gym.world.staff(other).headers).json() == {"pt_cancel_hours": 24}


def test_huge_ids_and_nul_bytes_are_4xx_not_500(gym):
    coach = gym.trainer()
    assert gym.client.get(f"/api/v1/trainers/{2**70}", headers=gym.desk.headers).status_code \
        == 422
    r = gym.client.post(f"/api/v1/trainers/{coach.id}/clients/{gym.member()}/notes",
                        json={"text": "a\x00b"}, headers=coach.headers)
    assert r.status_code == 422
    r = gym.client.get("/api/v1/trainers/sessions", params={"member_id": 2**64},
                       headers=gym.desk.headers)
    assert r.status_code == 422
