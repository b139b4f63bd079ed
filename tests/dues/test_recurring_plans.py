"""Recurring plans: the terms are accepted, defaulted, returned and validated; prepaid plans
stay as they were."""
from datetime import timedelta

import pytest

from app.memberships.models import Plan
from tests.builders import money

RECURRING = {"name": "Flex", "price": "39.90", "billing": "recurring", "billing_period": "month"}


def _post(shop, body):
    return shop.client.post("/api/v1/plans", json=body, headers=shop.manager.headers)


def test_a_recurring_plan_gets_the_default_terms_and_returns_them(shop):
    r = _post(shop, RECURRING | {"joining_fee": "19.99", "tax_rate": "19"})
    assert r.status_code == 201, r.text
    plan = r.json()
    assert {k: plan[k] for k in ("billing", "billing_period", "minimum_months", "notice_value",
                                 "notice_unit", "renewal", "renewal_months", "duration_days",
                                 "duration_months")} == {
        "billing": "recurring", "billing_period": "month", "minimum_months": 0,
        "notice_value": 1, "notice_unit": "months", "renewal": "monthly", "renewal_months": 1,
        "duration_days": None, "duration_months": None}
    assert money(plan["joining_fee"]) == money("19.99") and money(plan["tax_rate"]) == 19
    read = shop.client.get(f"/api/v1/plans/{plan['id']}", headers=shop.desk.headers).json()
    assert read == plan


def test_a_prepaid_plan_reads_as_before_with_empty_terms(shop):
    plan = shop.plan()
    assert plan["billing"] == "prepaid" and plan["billing_period"] is None
    assert plan["duration_months"] == 1 and plan["joining_fee"] is None


@pytest.mark.parametrize("body, field", [
    (RECURRING | {"billing_period": None}, "billing_period"),
    (RECURRING | {"billing_period": "week"}, "billing_period"),
    ({"name": "Prepaid", "price": "10", "duration_months": 1, "billing_period": "month"},
     "billing_period"),
    ({"name": "Prepaid", "price": "10", "duration_months": 1, "joining_fee": "5"},
     "joining_fee"),
    (RECURRING | {"next_price": "45.00"}, "next_price_from"),
    (RECURRING | {"next_price_from": "2099-01-01"}, "next_price"),
    (RECURRING | {"renewal": "monthly", "renewal_months": 12}, "renewal_months"),
    (RECURRING | {"minimum_months": -1}, "minimum_months"),
    (RECURRING | {"notice_unit": "years"}, "notice_unit"),
    (RECURRING | {"tax_rate": "120"}, "tax_rate"),
    (RECURRING | {"duration_days": 30, "duration_months": 1}, "duration_days"),
])
def test_bad_terms_are_refused_naming_the_field_and_nothing_is_written(shop, body, field):
    r = _post(shop, body)
    assert r.status_code == 422, r.text
    assert field in str(r.json()["details"]) + r.json()["message"]
    assert shop.count(Plan) == 0


def test_a_price_change_is_announced_for_a_day_in_the_future(shop):
    today = shop.today
    r = _post(shop, RECURRING | {"next_price": "44.90", "next_price_from": today.isoformat()})
    assert r.status_code == 422 and r.json()["error"] == "price_change_not_future"
    plan = _post(shop, RECURRING).json()
    url = f"/api/v1/plans/{plan['id']}"
    r = shop.client.patch(url, json={"next_price": "44.90"}, headers=shop.manager.headers)
    assert r.status_code == 422
    later = (today + timedelta(days=40)).isoformat()
    r = shop.client.patch(url, json={"next_price": "44.90", "next_price_from": later},
                          headers=shop.manager.headers)
    assert r.status_code == 200, r.text
    assert money(r.json()["next_price"]) == money("44.90") and r.json()["next_price_from"] == later
    # other edits keep the announced change, even once its day is near
    r = shop.client.patch(url, json={"name": "Flex Plus"}, headers=shop.manager.headers)
    assert r.status_code == 200 and r.json()["next_price_from"] == later


def test_switching_to_prepaid_clears_the_terms_and_needs_a_duration(shop):
    plan = _post(shop, RECURRING | {"minimum_months": 12}).json()
    url = f"/api/v1/plans/{plan['id']}"
    r = shop.client.patch(url, json={"billing": "prepaid"}, headers=shop.manager.headers)
    assert r.status_code == 422 and "duration" in r.json()["message"]
    r = shop.client.patch(url, json={"billing": "prepaid", "duration_months": 12},
                          headers=shop.manager.headers)
    assert r.status_code == 200, r.text
    assert r.json()["minimum_months"] is None and r.json()["billing_period"] is None
    r = shop.client.patch(url, json={"billing": "recurring"}, headers=shop.manager.headers)
    assert r.status_code == 422 and "billing_period" in r.json()["message"]


def test_the_desk_cannot_set_recurring_terms(shop):
    r = shop.client.post("/api/v1/plans", json=RECURRING, headers=shop.desk.headers)
    assert r.status_code == 403
