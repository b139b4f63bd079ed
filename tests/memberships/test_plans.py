"""Plans: who may create and change them, what a valid plan is, and the club boundary."""
import pytest

from app.core.actors import Role
from tests.builders import MONTHLY, money


def test_manager_creates_an_off_peak_plan_and_staff_can_read_it(shop):
    plan = shop.plan(name="Off-peak 10", category="off-peak", duration_months=3, price="79.9",
                     visit_limit=10, access_start="06:00", access_end="16:30", freeze_days=7,
                     auto_renew=True)
    assert plan["duration_months"] == 3 and plan["duration_days"] is None
    assert money(plan["price"]) == money("79.90") and plan["visit_limit"] == 10
    assert (plan["access_start"], plan["access_end"]) == ("06:00", "16:30")
    trainer = shop.world.staff(shop.club, Role.trainer)
    r = shop.client.get(f"/api/v1/plans/{plan['id']}", headers=trainer.headers)
    assert r.status_code == 200 and r.json() == plan


def test_front_desk_cannot_create_or_change_plans(shop):
    r = shop.client.post("/api/v1/plans", json=MONTHLY, headers=shop.desk.headers)
    assert r.status_code == 403 and r.json()["error"] == "forbidden_role"
    plan = shop.plan()
    r = shop.client.patch(f"/api/v1/plans/{plan['id']}", json={"price": "1.00"},
                          headers=shop.desk.headers)
    assert r.status_code == 403
    assert money(shop.client.get(f"/api/v1/plans/{plan['id']}",
                                 headers=shop.desk.headers).json()["price"]) == money("100.00")


@pytest.mark.parametrize("changes, field", [
    ({"duration_days": 30}, "duration_days"),                 # both durations
    ({"duration_months": None}, "duration_days"),             # neither
    ({"duration_months": 0}, "duration_months"),
    ({"price": "-1"}, "price"),
    ({"price": "10.001"}, "price"),
    ({"visit_limit": 0}, "visit_limit"),
    ({"access_start": "06:00"}, "access_end"),                # only one end of the window
    ({"access_start": "25:00", "access_end": "10:00"}, "access_start"),
    ({"access_start": "10:00", "access_end": "10:00"}, "access_end"),
    ({"freeze_days": -1}, "freeze_days"),
    ({"name": ""}, "name"),
    ({"name": "bad\x00name"}, "name"),
    ({"club_id": 99}, "club_id"),
])
def test_invalid_plans_are_refused_naming_the_field(shop, changes, field):
    body = {k: v for k, v in (MONTHLY | changes).items() if v is not None}
    r = shop.client.post("/api/v1/plans", json=body, headers=shop.manager.headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error"
    assert field in [d["field"] for d in r.json()["details"]]
    assert field in r.json()["message"]


def test_patch_changes_only_what_is_sent_and_switching_duration_clears_the_other(shop):
    plan = shop.plan()
    r = shop.client.patch(f"/api/v1/plans/{plan['id']}", json={"duration_days": 30,
                                                              "price": "90"},
                          headers=shop.manager.headers)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["duration_days"] == 30 and got["duration_months"] is None
    assert money(got["price"]) == money("90.00") and got["name"] == "Monthly"
    assert got["freeze_days"] == 14


@pytest.mark.parametrize("changes, field", [
    ({"name": None}, "name"),
    ({"price": None}, "price"),
    ({"duration_days": None}, "duration_days"),
    ({"access_end": "20:00"}, "access_start"),
    ({"active": "maybe"}, "active"),
])
def test_patch_that_would_make_an_invalid_plan_is_refused(shop, changes, field):
    plan = shop.plan(duration_days=30, duration_months=None)
    r = shop.client.patch(f"/api/v1/plans/{plan['id']}", json=changes,
                          headers=shop.manager.headers)
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["details"]]
    assert shop.client.get(f"/api/v1/plans/{plan['id']}",
                           headers=shop.desk.headers).json() == plan


def test_list_filters_active_plans(shop):
    shop.plan(name="Annual", duration_months=12)
    old = shop.plan(name="Legacy", active=False)
    r = shop.client.get("/api/v1/plans", params={"active": "true"}, headers=shop.desk.headers)
    assert r.status_code == 200
    assert [p["name"] for p in r.json()["items"]] == ["Annual"] and r.json()["total"] == 1
    everything = shop.client.get("/api/v1/plans", headers=shop.desk.headers).json()
    assert {p["id"] for p in everything["items"]} >= {old["id"]} and everything["total"] == 2


def test_another_clubs_plan_is_not_found(shop):
    plan = shop.plan()
    other = shop.world.club("Elsewhere")
    outsider = shop.world.staff(other, Role.manager)
    assert shop.client.get(f"/api/v1/plans/{plan['id']}",
                           headers=outsider.headers).status_code == 404
    r = shop.client.patch(f"/api/v1/plans/{plan['id']}", json={"price": "1"},
                          headers=outsider.headers)
    assert r.status_code == 404 and r.json()["error"] == "plan_not_found"
    assert shop.client.get("/api/v1/plans", headers=outsider.headers).json()["items"] == []


def test_huge_plan_id_is_a_client_error(shop):
    r = shop.client.get(f"/api/v1/plans/{2**70}", headers=shop.desk.headers)
    assert r.status_code == 422
