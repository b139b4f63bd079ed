"""The stock ledger: receipts at weighted average cost, write-offs, stocktakes, the movement list."""
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.clubs.service import club_today
from app.inventory.models import StockLevel, StockMovement
from tests.inventory.conftest import cost, money


def wac(on_hand: int, avg: Decimal, qty: int, unit_cost: Decimal) -> Decimal:
    return ((on_hand * avg + qty * unit_cost) / (on_hand + qty)).quantize(
        Decimal("0.0001"), rounding=ROUND_HALF_UP)


def test_receipts_at_different_prices_give_the_weighted_average_cost(bar):
    p = bar.product(name="Protein bar", sale_price="2.50")
    receipts = [(24, "0.95"), (12, "1.10"), (7, "1.0333"), (5, "0.80")]
    on_hand, avg = 0, Decimal(0)
    for qty, unit_cost in receipts:
        r = bar.receive(p["id"], qty, unit_cost, supplier="NutriWholesale")
        avg = wac(on_hand, avg, qty, Decimal(unit_cost))
        on_hand += qty
        assert r["on_hand_after"] == on_hand and cost(r["avg_cost"]) == avg, (qty, unit_cost)
        assert r["kind"] == "receipt" and r["quantity"] == qty
        assert cost(r["unit_cost"]) == cost(unit_cost)
        assert money(r["cost_value"]) == money(qty * Decimal(unit_cost))
        assert r["supplier"] == "NutriWholesale"
    # 24×0.95 = 22.80 → 0.95; +12×1.10 → 36.00/36 = 1.0000; +7×1.0333 → 43.2331/43 = 1.0054;
    # +5×0.80 → (43×1.0054 + 4.00)/48 = 0.9840
    assert avg == Decimal("0.9840")
    product = bar.get(f"/products/{p['id']}").json()
    assert product["on_hand"] == 48 and cost(product["avg_cost"]) == Decimal("0.9840")
    assert money(product["stock_value"]) == money(48 * Decimal("0.9840"))


def test_sales_do_not_change_the_average_and_record_the_cost_at_the_time(bar):
    p = bar.product(sale_price="3.00")
    bar.receive(p["id"], 10, "1.00")
    bar.sold([(p["id"], 4)])
    bar.receive(p["id"], 6, "1.60")  # (6×1.00 + 6×1.60) / 12 = 1.30
    assert cost(bar.get(f"/products/{p['id']}").json()["avg_cost"]) == Decimal("1.3000")
    bar.sold([(p["id"], 2)])
    sales = bar.scalars(select(StockMovement).where(StockMovement.kind == "sale")
                     .order_by(StockMovement.id))
    assert [(m.quantity, m.unit_cost, m.cost_value, m.revenue) for m in sales] == [
        (-4, Decimal("1.0000"), Decimal("-4.00"), Decimal("12.00")),
        (-2, Decimal("1.3000"), Decimal("-2.60"), Decimal("6.00"))]
    assert [m.on_hand_after for m in sales] == [6, 10]


def test_a_receipt_with_an_idempotency_key_is_booked_once(bar):
    p = bar.product()
    body = {"product_id": p["id"], "quantity": 10, "unit_cost": "0.50"}
    key = {"Idempotency-Key": "delivery-2024-07-01"}
    first = bar.post("/receipts", body, headers=key)
    again = bar.post("/receipts", body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert bar.on_hand(p["id"]) == 10
    assert bar.count(StockMovement, StockMovement.kind == "receipt") == 1
    other = bar.post("/receipts", body | {"quantity": 11}, headers=key)
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"


def test_write_offs_by_reason_cost_the_average_and_never_go_below_zero(bar):
    p = bar.product(name="Yoghurt drink", unit="bottle")
    bar.receive(p["id"], 10, "0.90")
    bar.receive(p["id"], 10, "1.10")  # avg 1.00
    for qty, reason in ((3, "expired"), (1, "damaged"), (2, "staff_use")):
        r = bar.post("/write-offs", {"product_id": p["id"], "quantity": qty, "reason": reason,
                                     "note": "fridge check"})
        assert r.status_code == 201, r.text
        m = r.json()
        assert (m["kind"], m["reason"], m["quantity"]) == ("write_off", reason, -qty)
        assert cost(m["unit_cost"]) == Decimal("1.0000") and money(m["cost_value"]) == money(-qty)
    assert bar.on_hand(p["id"]) == 14
    r = bar.post("/write-offs", {"product_id": p["id"], "quantity": 15, "reason": "other"})
    assert r.status_code == 409 and r.json()["error"] == "insufficient_stock"
    assert "14 bottle left" in r.json()["message"] and "Yoghurt drink" in r.json()["message"]
    assert bar.on_hand(p["id"]) == 14
    assert cost(bar.get(f"/products/{p['id']}").json()["avg_cost"]) == Decimal("1.0000")


def test_a_stocktake_adjusts_only_what_differs_in_one_go(bar):
    water = bar.product(name="Water")
    bars = bar.product(name="Bar")
    shake = bar.product(name="Shake")
    bar.receive(water["id"], 20, "0.30")
    bar.receive(bars["id"], 10, "1.25")
    bar.receive(shake["id"], 5, "2.00")
    r = bar.post("/stocktakes", {"counts": [{"product_id": water["id"], "counted": 17},
                                            {"product_id": bars["id"], "counted": 10},
                                            {"product_id": shake["id"], "counted": 6}],
                                 "note": "monthly count"})
    assert r.status_code == 201, r.text
    take = r.json()
    lines = {line["product_id"]: line for line in take["lines"]}
    assert [line["product_id"] for line in take["lines"]] == [water["id"], bars["id"], shake["id"]]
    assert (lines[water["id"]]["expected"], lines[water["id"]]["difference"]) == (20, -3)
    assert money(lines[water["id"]]["value"]) == money("-0.90")
    assert lines[bars["id"]]["difference"] == 0 and lines[bars["id"]]["movement_id"] is None
    assert lines[shake["id"]]["difference"] == 1 and money(lines[shake["id"]]["value"]) == money(2)
    assert take["adjusted"] == 2 and take["units_difference"] == -2
    assert money(take["value_difference"]) == money("1.10")
    adjustments = bar.scalars(select(StockMovement).where(StockMovement.kind == "adjustment")
                           .order_by(StockMovement.product_id))
    assert [(m.product_id, m.quantity, m.counted, m.reason, m.note) for m in adjustments] == [
        (water["id"], -3, 17, "stocktake", "monthly count"),
        (shake["id"], 1, 6, "stocktake", "monthly count")]
    assert [bar.on_hand(i["id"]) for i in (water, bars, shake)] == [17, 10, 6]


def test_a_stocktake_with_an_unknown_product_changes_nothing(bar):
    water = bar.product()
    bar.receive(water["id"], 20, "0.30")
    other_club = bar.world.club("Hilltop")
    theirs = bar.product(staff=bar.world.staff(other_club, "manager"))
    r = bar.post("/stocktakes", {"counts": [{"product_id": water["id"], "counted": 1},
                                            {"product_id": theirs["id"], "counted": 0}]})
    assert r.status_code == 404 and str(theirs["id"]) in r.json()["message"]
    assert bar.on_hand(water["id"]) == 20
    assert bar.count(StockMovement, StockMovement.kind == "adjustment") == 0


def test_only_managers_receive_write_off_and_take_stock(bar):
    p = bar.product()
    bar.receive(p["id"], 5, "1")
    for staff in (bar.desk, bar.trainer_staff):
        for path, body in (("/receipts", {"product_id": p["id"], "quantity": 1, "unit_cost": "1"}),
                           ("/write-offs", {"product_id": p["id"], "quantity": 1,
                                            "reason": "damaged"}),
                           ("/stocktakes", {"counts": [{"product_id": p["id"], "counted": 0}]})):
            r = bar.post(path, body, staff=staff)
            assert r.status_code == 403 and r.json()["message"], (staff.role, path)
        assert bar.get("/movements", staff=staff).status_code == 403
    assert bar.on_hand(p["id"]) == 5
    assert bar.count(StockMovement) == 1


def test_movements_list_by_product_kind_and_period(bar):
    water = bar.product()
    shake = bar.product()
    first = bar.receive(water["id"], 10, "0.30")
    bar.receive(shake["id"], 5, "2.00")
    bar.sold([(water["id"], 2)])
    bar.backdate(days=40, movement_ids=[first["id"]])

    page = bar.get("/movements", product_id=water["id"]).json()
    assert page["total"] == 2 and [m["kind"] for m in page["items"]] == ["sale", "receipt"]
    assert bar.get("/movements", kind="receipt").json()["total"] == 2
    recent = bar.get("/movements", **{"from": _days_ago(bar, 7)}).json()
    assert recent["total"] == 2 and first["id"] not in [m["id"] for m in recent["items"]]
    other_club = bar.world.club("Hilltop")
    theirs = bar.product(staff=bar.world.staff(other_club, "manager"))
    assert bar.get("/movements", product_id=theirs["id"]).status_code == 404


def _days_ago(bar, n: int) -> str:
    return (club_today(bar.club) - timedelta(days=n)).isoformat()


def test_stock_never_goes_negative_even_at_the_database(bar, db):
    """The level row refuses a negative on hand (a CHECK constraint) as a last line of defence."""
    p = bar.product()
    with db.sessionmaker() as s:
        with pytest.raises(IntegrityError):
            s.execute(update(StockLevel).where(StockLevel.product_id == p["id"])
                      .values(on_hand=-1))
            s.flush()
        s.rollback()
    assert bar.on_hand(p["id"]) == 0
