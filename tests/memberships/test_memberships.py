"""Selling memberships, reading their status on any day, renewals and the club boundary."""
from datetime import date, timedelta

from sqlalchemy import select

from app.billing.models import Sale
from app.core.actors import Role
from app.memberships.models import Membership
from app.memberships.rules import add_months
from tests.builders import money


def test_a_monthly_membership_ends_the_day_before_the_same_date_next_month(shop):
    plan = shop.plan()
    member = shop.member()
    start = date(shop.today.year + 1, 1, 31)
    got = shop.sold(member, plan["id"], start_date=start.isoformat(),
                    payments=[{"method": "card", "amount": "100"}])
    assert got["start_date"] == start.isoformat()
    assert got["end_date"] == date(start.year, 2, 27 if start.year % 4 else 28).isoformat()
    assert got["status"] == "pending" and got["member_id"] == member
    assert got["plan"]["id"] == plan["id"] and got["plan"]["name"] == "Monthly"
    assert money(got["price"]) == money(100) and got["renews_id"] is None
    assert got["sale"]["id"] == got["sale_id"] and money(got["sale"]["debt"]) == 0
    line = got["sale"]["lines"][0]
    assert line["kind"] == "membership" and line["item_id"] == got["id"]


def test_a_30_day_membership_from_today_is_active_for_30_days(shop):
    plan = shop.plan(name="30 days", duration_months=None, duration_days=30, price="55")
    got = shop.sold(shop.member(), plan["id"])
    assert got["start_date"] == shop.today.isoformat()
    assert got["end_date"] == shop.day(29).isoformat() and got["status"] == "active"
    last = shop.get_membership(got["id"], as_of=shop.day(29))
    after = shop.get_membership(got["id"], as_of=shop.day(30))
    assert (last["status"], after["status"]) == ("active", "expired")


def test_a_10_visit_membership_copies_its_limit_from_the_plan(shop):
    plan = shop.plan(name="10 visits", duration_months=3, visit_limit=10)
    got = shop.sold(shop.member(), plan["id"])
    assert (got["visit_limit"], got["visits_used"], got["visits_left"]) == (10, 0, 10)
    assert got["end_date"] == (add_months(shop.today, 3) - timedelta(days=1)).isoformat()
    shop.client.patch(f"/api/v1/plans/{plan['id']}", json={"visit_limit": 20},
                      headers=shop.manager.headers)
    assert shop.get_membership(got["id"])["visit_limit"] == 10  # sold terms do not follow the plan


def test_an_inactive_plan_cannot_be_sold(shop):
    plan = shop.plan(active=False)
    r = shop.sell(shop.member(), plan["id"])
    assert r.status_code == 422 and r.json()["error"] == "plan_inactive"
    assert "no longer sold" in r.json()["message"]
    assert shop.count(Sale) == 0 and shop.count(Membership) == 0


def test_an_overlapping_membership_is_refused_with_a_hint_to_renew(shop):
    plan = shop.plan()
    member = shop.member()
    first = shop.sold(member, plan["id"])
    r = shop.sell(member, plan["id"], start_date=shop.day(10).isoformat())
    assert r.status_code == 409 and r.json()["error"] == "overlapping_membership"
    assert "renew" in r.json()["message"] and r.json()["details"]["membership_id"] == first["id"]
    assert shop.count(Sale) == 1
    # after it ends, a new one is fine
    after_end = date.fromisoformat(first["end_date"]) + timedelta(days=1)
    later = shop.sold(member, plan["id"], start_date=after_end.isoformat())
    assert later["status"] == "pending"


def test_a_cancelled_membership_no_longer_blocks_a_new_one(shop):
    plan = shop.plan()
    member = shop.member()
    first = shop.sold(member, plan["id"])
    r = shop.client.post(f"/api/v1/memberships/{first['id']}/cancel", json={"reason": "price"},
                         headers=shop.manager.headers)
    assert r.status_code == 200, r.text
    assert shop.sold(member, plan["id"])["status"] == "active"


def test_only_managers_backdate_or_change_the_price(shop):
    plan = shop.plan()
    member = shop.member()
    r = shop.sell(member, plan["id"], start_date=shop.day(-1).isoformat())
    assert r.status_code == 403 and r.json()["error"] == "start_in_past"
    r = shop.sell(member, plan["id"], price="10")
    assert r.status_code == 403 and r.json()["error"] == "price_override_forbidden"
    got = shop.sold(member, plan["id"], staff=shop.manager, start_date=shop.day(-3).isoformat(),
                    price="80")
    assert money(got["price"]) == money(80) and money(got["sale"]["total"]) == money(80)
    assert got["start_date"] == shop.day(-3).isoformat() and got["status"] == "active"


def test_status_is_derived_for_any_day(shop):
    plan = shop.plan(name="30 days", duration_months=None, duration_days=30)
    got = shop.sold(shop.member(), plan["id"], start_date=shop.day(5).isoformat())
    assert shop.get_membership(got["id"])["status"] == "pending"
    assert shop.get_membership(got["id"], as_of=shop.day(5))["status"] == "active"
    view = shop.get_membership(got["id"], as_of=shop.day(35))
    assert view["status"] == "expired" and view["as_of"] == shop.day(35).isoformat()


def test_member_memberships_list_newest_first_with_status(shop):
    plan = shop.plan(name="30 days", duration_months=None, duration_days=30)
    member = shop.member()
    first = shop.sold(member, plan["id"])
    second = shop.sold(member, plan["id"], start_date=shop.day(30).isoformat())
    trainer = shop.world.staff(shop.club, Role.trainer)
    r = shop.client.get(f"/api/v1/members/{member}/memberships",
                        params={"as_of": shop.day(31).isoformat()}, headers=trainer.headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [m["id"] for m in items] == [second["id"], first["id"]]
    assert [m["status"] for m in items] == ["active", "expired"] and r.json()["total"] == 2


def test_renewal_chain_links_and_starts_the_day_after(shop):
    plan = shop.plan(name="30 days", duration_months=None, duration_days=30, price="50")
    a = shop.sold(shop.member(), plan["id"], payments=[{"method": "cash", "amount": "50"}])
    renew = lambda m: shop.client.post(f"/api/v1/memberships/{m['id']}/renew",
                                       json={"payments": [{"method": "card", "amount": "50"}]},
                                       headers=shop.desk.headers)
    r = renew(a)
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["renews_id"] == a["id"] and b["start_date"] == shop.day(30).isoformat()
    assert b["end_date"] == shop.day(59).isoformat() and b["status"] == "pending"
    assert b["sale_id"] != a["sale_id"] and money(b["sale"]["paid"]) == money(50)
    c = renew(b).json()
    assert c["renews_id"] == b["id"] and c["start_date"] == shop.day(60).isoformat()
    again = renew(a)
    assert again.status_code == 409 and again.json()["error"] == "already_renewed"
    assert again.json()["details"]["renewed_by_id"] == b["id"]
    assert shop.get_membership(a["id"])["renewed_by_id"] == b["id"]
    assert shop.get_membership(c["id"])["renewed_by_id"] is None
    assert shop.count(Membership) == 3 and shop.count(Sale) == 3


def test_renewing_an_expired_membership_starts_today(shop):
    plan = shop.plan(name="30 days", duration_months=None, duration_days=30)
    old = shop.sold(shop.member(), plan["id"], staff=shop.manager,
                    start_date=shop.day(-45).isoformat())
    assert old["status"] == "expired"
    r = shop.client.post(f"/api/v1/memberships/{old['id']}/renew", json={},
                         headers=shop.desk.headers)
    assert r.status_code == 201, r.text
    assert r.json()["start_date"] == shop.today.isoformat() and r.json()["status"] == "active"
    assert r.json()["renews_id"] == old["id"] and money(r.json()["sale"]["debt"]) == money(100)


def test_renewal_can_switch_plan_but_not_to_an_inactive_one(shop):
    monthly = shop.plan()
    annual = shop.plan(name="Annual", duration_months=12, price="900")
    retired = shop.plan(name="Retired", active=False)
    a = shop.sold(shop.member(), monthly["id"])
    url = f"/api/v1/memberships/{a['id']}/renew"
    r = shop.client.post(url, json={"plan_id": retired["id"]}, headers=shop.desk.headers)
    assert r.status_code == 422 and r.json()["error"] == "plan_inactive"
    r = shop.client.post(url, json={"plan_id": annual["id"]}, headers=shop.desk.headers)
    assert r.status_code == 201 and r.json()["plan"]["name"] == "Annual"
    assert money(r.json()["price"]) == money(900)


def test_a_cancelled_membership_cannot_be_renewed(shop):
    plan = shop.plan()
    a = shop.sold(shop.member(), plan["id"])
    shop.client.post(f"/api/v1/memberships/{a['id']}/cancel", json={"reason": "health"},
                     headers=shop.manager.headers)
    r = shop.client.post(f"/api/v1/memberships/{a['id']}/renew", json={},
                         headers=shop.desk.headers)
    assert r.status_code == 409 and r.json()["error"] == "membership_cancelled"


def test_another_clubs_records_are_not_found(shop):
    plan = shop.plan()
    member = shop.member()
    sold = shop.sold(member, plan["id"])
    other = shop.world.club("Elsewhere")
    outsider = shop.world.staff(other, Role.manager)
    their_member = shop.member(club=other)
    h = outsider.headers
    checks = [
        shop.client.get(f"/api/v1/memberships/{sold['id']}", headers=h),
        shop.client.get(f"/api/v1/members/{member}/memberships", headers=h),
        shop.client.post(f"/api/v1/members/{member}/memberships", json={"plan_id": plan["id"]},
                         headers=h),
        # our plan sold to their member
        shop.client.post(f"/api/v1/members/{their_member}/memberships",
                         json={"plan_id": plan["id"]}, headers=h),
        shop.client.post(f"/api/v1/memberships/{sold['id']}/renew", json={}, headers=h),
        shop.client.post(f"/api/v1/memberships/{sold['id']}/freezes",
                         json={"start_date": shop.today.isoformat(),
                               "end_date": shop.today.isoformat()}, headers=h),
        shop.client.post(f"/api/v1/memberships/{sold['id']}/cancel", json={"reason": "price"},
                         headers=h),
    ]
    assert [r.status_code for r in checks] == [404] * len(checks), [r.text for r in checks]
    assert shop.count(Membership) == 1 and shop.count(Sale) == 1


def test_bad_input_on_sell_and_renew_is_a_clear_4xx(shop):
    plan = shop.plan()
    member = shop.member()
    cases = [
        ({"plan_id": "x"}, "plan_id"),
        ({"plan_id": 2**70}, "plan_id"),
        ({"plan_id": plan["id"], "start_date": "31.01.2026"}, "start_date"),
        ({"plan_id": plan["id"], "start_date": "9999-01-01"}, "start_date"),
        ({"plan_id": plan["id"], "payments": [{"method": "bitcoin", "amount": "1"}]},
         "payments.0.method"),
        ({"plan_id": plan["id"], "payments": [{"method": "cash", "amount": "0"}]},
         "payments.0.amount"),
        ({"plan_id": plan["id"], "member_id": 5}, "member_id"),
    ]
    for body, field in cases:
        r = shop.client.post(f"/api/v1/members/{member}/memberships", json=body,
                             headers=shop.desk.headers)
        assert r.status_code == 422, (body, r.text)
        assert field in [d["field"] for d in r.json()["details"]] and r.json()["message"]
    r = shop.client.post(f"/api/v1/members/{member}/memberships", json={"plan_id": 999999},
                         headers=shop.desk.headers)
    assert r.status_code == 404 and r.json()["error"] == "plan_not_found"
    r = shop.client.post("/api/v1/members/999999/memberships", json={"plan_id": plan["id"]},
                         headers=shop.desk.headers)
    assert r.status_code == 404 and r.json()["error"] == "member_not_found"
    r = shop.client.post(f"/api/v1/memberships/{2**70}/renew", json={},
                         headers=shop.desk.headers)
    assert r.status_code == 422
    r = shop.client.post("/api/v1/memberships/999999/renew", json={"start_date": "2030-01-01"},
                         headers=shop.desk.headers)
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "start_date"
    r = shop.client.get(f"/api/v1/members/{member}/memberships", params={"as_of": "soon"},
                        headers=shop.desk.headers)
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "as_of"
    assert shop.count(Sale) == 0


def test_the_service_exposes_get_membership_within_a_club(shop, session):
    from app.core.errors import NotFound
    from app.memberships import service

    sold = shop.sold(shop.member(), shop.plan()["id"])
    other = shop.world.club("Elsewhere")
    got = service.get_membership(session, club_id=shop.club.id, membership_id=sold["id"])
    assert got.sale_id == sold["sale_id"]
    try:
        service.get_membership(session, club_id=other.id, membership_id=sold["id"])
    except NotFound:
        pass
    else:
        raise AssertionError("another club's membership must not be found")
    assert session.scalar(select(Membership.price).where(Membership.id == sold["id"])) == 100
