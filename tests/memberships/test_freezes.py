"""Freezing a membership: the allowance, the dates, the end date moving, and ending early."""
from datetime import date, timedelta

from app.core.actors import Role
from app.memberships.models import Freeze


def _freeze(shop, membership_id, start, end, staff=None, **extra):
    return shop.client.post(f"/api/v1/memberships/{membership_id}/freezes",
                            json={"start_date": start.isoformat(), "end_date": end.isoformat()}
                            | extra, headers=(staff or shop.desk).headers)


def _thirty_days(shop, freeze_days=14, start_offset=0):
    plan = shop.plan(name="30 days", duration_months=None, duration_days=30,
                     freeze_days=freeze_days)
    return shop.sold(shop.member(), plan["id"], start_date=shop.day(start_offset).isoformat())


def test_a_freeze_moves_the_end_date_and_the_member_is_frozen_inside_it(shop):
    m = _thirty_days(shop)
    r = _freeze(shop, m["id"], shop.day(5), shop.day(14), reason="holiday")
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["freeze"]["days"] == 10 and got["freeze"]["reason"] == "holiday"
    assert got["membership"]["end_date"] == shop.day(39).isoformat()
    assert got["membership"]["original_end_date"] == shop.day(29).isoformat()
    assert (got["membership"]["freeze_days_used"], got["membership"]["freeze_days_left"]) == (10, 4)
    assert shop.get_membership(m["id"], as_of=shop.day(4))["status"] == "active"
    assert shop.get_membership(m["id"], as_of=shop.day(5))["status"] == "frozen"
    assert shop.get_membership(m["id"], as_of=shop.day(14))["status"] == "frozen"
    assert shop.get_membership(m["id"], as_of=shop.day(39))["status"] == "active"
    read = shop.get_membership(m["id"])
    assert [f["id"] for f in read["freezes"]] == [got["freeze"]["id"]]


def test_a_plan_without_allowance_cannot_be_frozen(shop):
    m = _thirty_days(shop, freeze_days=0)
    r = _freeze(shop, m["id"], shop.day(1), shop.day(2))
    assert r.status_code == 422 and r.json()["error"] == "freeze_not_allowed"
    assert shop.count(Freeze) == 0


def test_the_allowance_is_shared_by_all_freezes_of_a_membership(shop):
    m = _thirty_days(shop, freeze_days=14)
    assert _freeze(shop, m["id"], shop.day(1), shop.day(10)).status_code == 201
    r = _freeze(shop, m["id"], shop.day(20), shop.day(24))
    assert r.status_code == 422 and r.json()["error"] == "freeze_allowance_exceeded"
    assert r.json()["details"] == {"allowed": 14, "used": 10, "requested": 5}
    assert _freeze(shop, m["id"], shop.day(20), shop.day(23)).status_code == 201
    assert shop.get_membership(m["id"])["end_date"] == shop.day(29 + 14).isoformat()


def test_freezes_cannot_overlap_start_in_the_past_or_leave_the_membership(shop):
    m = _thirty_days(shop)
    assert _freeze(shop, m["id"], shop.day(3), shop.day(5)).status_code == 201
    r = _freeze(shop, m["id"], shop.day(5), shop.day(6))
    assert r.status_code == 409 and r.json()["error"] == "overlapping_freeze"
    r = _freeze(shop, m["id"], shop.day(-1), shop.day(1))
    assert r.status_code == 422 and r.json()["error"] == "freeze_in_past"
    end = date.fromisoformat(shop.get_membership(m["id"])["end_date"])
    r = _freeze(shop, m["id"], end, end + timedelta(days=1))
    assert r.status_code == 422 and r.json()["error"] == "freeze_outside_membership"
    pending = _thirty_days(shop, start_offset=10)
    r = _freeze(shop, pending["id"], shop.day(8), shop.day(11))
    assert r.status_code == 422 and r.json()["error"] == "freeze_outside_membership"
    r = _freeze(shop, m["id"], shop.day(9), shop.day(8))
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "end_date"
    assert shop.count(Freeze) == 1


def test_ending_a_freeze_early_gives_the_unused_days_back(shop):
    m = _thirty_days(shop)
    freeze = _freeze(shop, m["id"], shop.day(0), shop.day(9)).json()["freeze"]
    assert shop.get_membership(m["id"])["end_date"] == shop.day(39).isoformat()
    r = shop.client.post(f"/api/v1/freezes/{freeze['id']}/end",
                         json={"on": shop.day(4).isoformat()}, headers=shop.desk.headers)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["days_returned"] == 6 and got["freeze"]["end_date"] == shop.day(3).isoformat()
    assert got["membership"]["end_date"] == shop.day(33).isoformat()
    assert (got["membership"]["freeze_days_used"], got["membership"]["freeze_days_left"]) == (4, 10)
    assert shop.get_membership(m["id"], as_of=shop.day(3))["status"] == "frozen"
    assert shop.get_membership(m["id"], as_of=shop.day(4))["status"] == "active"


def test_ending_a_freeze_that_has_not_started_removes_it(shop):
    m = _thirty_days(shop)
    freeze = _freeze(shop, m["id"], shop.day(5), shop.day(9)).json()["freeze"]
    r = shop.client.post(f"/api/v1/freezes/{freeze['id']}/end", headers=shop.desk.headers)
    assert r.status_code == 200, r.text
    assert r.json()["freeze"] is None and r.json()["days_returned"] == 5
    assert r.json()["membership"]["end_date"] == shop.day(29).isoformat()
    assert r.json()["membership"]["freezes"] == [] and shop.count(Freeze) == 0
    again = shop.client.post(f"/api/v1/freezes/{freeze['id']}/end", headers=shop.desk.headers)
    assert again.status_code == 404 and again.json()["error"] == "freeze_not_found"


def test_ending_a_freeze_refuses_days_in_the_past_or_after_it(shop):
    m = _thirty_days(shop)
    freeze = _freeze(shop, m["id"], shop.day(2), shop.day(4)).json()["freeze"]
    url = f"/api/v1/freezes/{freeze['id']}/end"
    r = shop.client.post(url, json={"on": shop.day(-1).isoformat()}, headers=shop.desk.headers)
    assert r.status_code == 422 and r.json()["error"] == "unfreeze_in_past"
    r = shop.client.post(url, json={"on": shop.day(5).isoformat()}, headers=shop.desk.headers)
    assert r.status_code == 422 and r.json()["error"] == "freeze_already_over"
    r = shop.client.post(url, json={"on": "tomorrow"}, headers=shop.desk.headers)
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "on"
    assert shop.get_membership(m["id"])["end_date"] == shop.day(32).isoformat()


def test_a_freeze_moves_a_renewal_that_follows_it(shop):
    m = _thirty_days(shop)
    renewal = shop.client.post(f"/api/v1/memberships/{m['id']}/renew", json={},
                               headers=shop.desk.headers).json()
    assert renewal["start_date"] == shop.day(30).isoformat()
    freeze = _freeze(shop, m["id"], shop.day(10), shop.day(16)).json()["freeze"]
    moved = shop.get_membership(renewal["id"])
    assert (moved["start_date"], moved["end_date"]) == (shop.day(37).isoformat(),
                                                        shop.day(66).isoformat())
    shop.client.post(f"/api/v1/freezes/{freeze['id']}/end", headers=shop.desk.headers)
    back = shop.get_membership(renewal["id"])
    assert (back["start_date"], back["end_date"]) == (shop.day(30).isoformat(),
                                                      shop.day(59).isoformat())


def test_a_freeze_that_would_run_into_another_membership_is_refused(shop):
    plan = shop.plan(name="30 days", duration_months=None, duration_days=30, freeze_days=10)
    member = shop.member()
    m = shop.sold(member, plan["id"])
    shop.sold(member, plan["id"], start_date=shop.day(32).isoformat())  # not a renewal
    r = _freeze(shop, m["id"], shop.day(1), shop.day(5))
    assert r.status_code == 409 and r.json()["error"] == "overlapping_membership"
    assert shop.get_membership(m["id"])["end_date"] == shop.day(29).isoformat()
    assert shop.count(Freeze) == 0


def test_a_cancelled_membership_cannot_be_frozen_and_other_clubs_see_nothing(shop):
    m = _thirty_days(shop)
    freeze = _freeze(shop, m["id"], shop.day(1), shop.day(2)).json()["freeze"]
    outsider = shop.world.staff(shop.world.club("Elsewhere"), Role.manager)
    r = shop.client.post(f"/api/v1/freezes/{freeze['id']}/end", headers=outsider.headers)
    assert r.status_code == 404
    shop.client.post(f"/api/v1/memberships/{m['id']}/cancel", json={"reason": "moved_away"},
                     headers=shop.manager.headers)
    r = _freeze(shop, m["id"], shop.day(5), shop.day(6))
    assert r.status_code == 409 and r.json()["error"] == "membership_cancelled"
    r = shop.client.post(f"/api/v1/freezes/{freeze['id']}/end", headers=shop.desk.headers)
    assert r.status_code == 409


def test_bad_freeze_input_is_a_clear_4xx(shop):
    m = _thirty_days(shop)
    url = f"/api/v1/memberships/{m['id']}/freezes"
    for body, field in [({"start_date": shop.today.isoformat()}, "end_date"),
                        ({"start_date": "x", "end_date": "y"}, "start_date"),
                        ({"start_date": shop.today.isoformat(),
                          "end_date": shop.today.isoformat(), "reason": "r" * 201}, "reason"),
                        ({"start_date": shop.today.isoformat(),
                          "end_date": shop.today.isoformat(), "days": 3}, "days")]:
        r = shop.client.post(url, json=body, headers=shop.desk.headers)
        assert r.status_code == 422 and field in [d["field"] for d in r.json()["details"]], r.text
    trainer = shop.world.staff(shop.club, Role.trainer)
    r = _freeze(shop, m["id"], shop.day(1), shop.day(2), staff=trainer)
    assert r.status_code == 403
    assert shop.count(Freeze) == 0
