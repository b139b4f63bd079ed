"""Cancelling a membership: the reason, the date it takes effect, and refunds."""
from sqlalchemy import select

from app.billing.models import Payment
from app.memberships.models import Membership
from tests.builders import money


def _cancel(shop, membership_id, staff=None, headers=None, **body):
    return shop.client.post(f"/api/v1/memberships/{membership_id}/cancel", json=body,
                            headers=(staff or shop.manager).headers | (headers or {}))


def _paid_membership(shop, paid="100"):
    plan = shop.plan(name="30 days", duration_months=None, duration_days=30, price="100")
    payments = [{"method": "card", "amount": paid}] if paid else []
    return shop.sold(shop.member(), plan["id"], payments=payments)


def test_only_managers_cancel(shop):
    m = _paid_membership(shop)
    r = _cancel(shop, m["id"], staff=shop.desk, reason="price")
    assert r.status_code == 403
    assert shop.get_membership(m["id"])["status"] == "active"


def test_the_reason_must_be_one_of_the_clubs(shop):
    m = _paid_membership(shop)
    r = _cancel(shop, m["id"], reason="aliens")
    assert r.status_code == 422 and r.json()["error"] == "invalid_cancel_reason"
    assert "moved_away" in r.json()["details"]["valid_reasons"]
    assert "moved_away" in r.json()["message"]
    r = _cancel(shop, m["id"])
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "reason"
    club = shop.world.club("Custom", cancellation_reasons={"injury": "Injury"})
    manager = shop.world.staff(club, "manager")
    plan = shop.plan(staff=manager)
    other = shop.sold(shop.member(club=club), plan["id"], staff=manager)
    assert _cancel(shop, other["id"], staff=manager, reason="price").status_code == 422
    assert _cancel(shop, other["id"], staff=manager, reason="injury").status_code == 200


def test_cancel_with_refund_records_a_negative_payment(shop):
    m = _paid_membership(shop)
    r = _cancel(shop, m["id"], reason="moved_away", note="relocating to Hamburg",
                refund={"amount": "40", "method": "transfer"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["status"] == "cancelled" and got["cancelled_on"] == shop.today.isoformat()
    assert got["cancel_reason"] == "moved_away" and got["cancel_note"] == "relocating to Hamburg"
    assert money(got["refund_amount"]) == money(40)
    refund = shop.scalar(select(Payment).where(Payment.kind == "refund"))
    assert refund.amount == money(-40) and refund.method == "transfer"
    assert refund.sale_id == m["sale_id"]
    sale = shop.client.get(f"/api/v1/sales/{m['sale_id']}", headers=shop.desk.headers).json()
    assert money(sale["paid"]) == money(100) and money(sale["refunded"]) == money(40)
    assert [p["kind"] for p in sale["payments"]] == ["payment", "refund"]


def test_a_refund_is_never_more_than_was_paid(shop):
    m = _paid_membership(shop, paid="30")
    r = _cancel(shop, m["id"], reason="price", refund={"amount": "30.01", "method": "cash"})
    assert r.status_code == 422 and r.json()["error"] == "refund_exceeds_paid"
    assert "30.00" in r.json()["message"]
    assert shop.get_membership(m["id"])["cancelled_on"] is None  # nothing half-written
    assert shop.scalar(select(Payment.id).where(Payment.kind == "refund")) is None
    r = _cancel(shop, m["id"], reason="price", refund={"amount": "30", "method": "cash"})
    assert r.status_code == 200 and money(r.json()["refund_amount"]) == money(30)


def test_an_unpaid_membership_cannot_be_refunded(shop):
    plan = shop.plan(name="Trial", duration_months=None, duration_days=7, price="20")
    m = shop.sold(shop.member(), plan["id"])
    r = _cancel(shop, m["id"], reason="not_using", refund={"amount": "1", "method": "cash"})
    assert r.status_code == 422 and r.json()["error"] == "refund_exceeds_paid"


def test_status_is_cancelled_from_the_effective_date(shop):
    m = _paid_membership(shop)
    r = _cancel(shop, m["id"], reason="health", effective_on=shop.day(10).isoformat())
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert shop.get_membership(m["id"], as_of=shop.day(9))["status"] == "active"
    assert shop.get_membership(m["id"], as_of=shop.day(10))["status"] == "cancelled"


def test_cancelling_twice_or_after_the_end_is_refused(shop):
    m = _paid_membership(shop)
    r = _cancel(shop, m["id"], reason="price", effective_on=shop.day(30).isoformat())
    assert r.status_code == 422 and r.json()["error"] == "cancel_after_end"
    assert _cancel(shop, m["id"], reason="price").status_code == 200
    r = _cancel(shop, m["id"], reason="price")
    assert r.status_code == 409 and r.json()["error"] == "already_cancelled"


def test_a_repeated_cancel_with_the_same_key_replays_the_answer(shop):
    m = _paid_membership(shop)
    key = {"Idempotency-Key": "cancel-1"}
    body = {"reason": "price", "refund": {"amount": "10", "method": "cash"}}
    first = _cancel(shop, m["id"], headers=key, **body)
    second = _cancel(shop, m["id"], headers=key, **body)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    refunds = shop.scalars(select(Payment).where(Payment.kind == "refund"))
    assert len(refunds) == 1


def test_bad_cancel_input_is_a_clear_4xx(shop):
    m = _paid_membership(shop)
    for body, field in [({"reason": "price", "refund": {"amount": "-5", "method": "cash"}},
                         "refund.amount"),
                        ({"reason": "price", "refund": {"amount": "5"}}, "refund.method"),
                        ({"reason": "price", "effective_on": "someday"}, "effective_on"),
                        ({"reason": "price", "cancelled_on": "2030-01-01"}, "cancelled_on")]:
        r = _cancel(shop, m["id"], **body)
        assert r.status_code == 422 and field in [d["field"] for d in r.json()["details"]], r.text
    r = _cancel(shop, 999999, reason="price")
    assert r.status_code == 404
    with shop.db.sessionmaker() as s:
        assert s.get(Membership, m["id"]).cancelled_on is None
