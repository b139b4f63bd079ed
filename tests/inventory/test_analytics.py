"""Stock analytics: expected figures are worked out by hand from the scenario in each test."""
import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.clubs.service import club_today
from app.inventory.models import StockMovement
from tests.inventory.conftest import cost, money

REPORTS = ["stock-value", "sales", "top-sellers", "turnover", "low-stock", "shrinkage"]


def _report(bar, name, staff=None, **params):
    r = bar.get(f"/analytics/{name}", staff=staff, **params)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def cafe(bar):
    """A month at the bar.

    shake  4.00: in 10 @ 1.00, sell 4 (cost 1.00); in 10 @ 1.60 → avg (6×1 + 10×1.6)/16 = 1.375;
                 sell 5 (cost 5 × 1.375 = 6.875 → 6.88); 1 returned at 1.375 (1.38)
    water  1.50: in 24 @ 0.25; sell 10 forty days ago (outside the period); sell 6
    bar    2.50: in 12 @ 1.10; sell 5
    whey  30.00: in 3 @ 18.00; no sales
    """
    shake = bar.product(sku="SHAKE", name="Shake", category="shakes", sale_price="4.00")
    water = bar.product(sku="WATER", name="Water", category="drinks", sale_price="1.50")
    snack = bar.product(sku="BAR", name="Bar", category="snacks", sale_price="2.50")
    whey = bar.product(sku="WHEY", name="Whey", category="snacks", sale_price="30.00")
    bar.receive(shake["id"], 10, "1.00")
    bar.receive(water["id"], 24, "0.25")
    bar.receive(snack["id"], 12, "1.10")
    bar.receive(whey["id"], 3, "18.00")
    old = bar.sold([(water["id"], 10)])
    bar.backdate(days=40, sale_id=old["id"])
    bar.sold([(shake["id"], 4)])
    bar.receive(shake["id"], 10, "1.60")
    second = bar.sold([(shake["id"], 5), (water["id"], 6)])
    bar.sold([(snack["id"], 5)])
    r = bar.post(f"/sales/{second['id']}/refund",
                 {"lines": [{"product_id": shake["id"], "quantity": 1}]})
    assert r.status_code == 201, r.text
    return {"shake": shake, "water": water, "bar": snack, "whey": whey}


def test_stock_value_at_average_cost(bar, cafe):
    report = _report(bar, "stock-value")
    rows = {i["sku"]: i for i in report["items"]}
    # shake: 10-4+10-5+1 = 12 at 1.375; water 24-10-6 = 8 at 0.25; bar 7 at 1.10; whey 3 at 18
    expected = {"SHAKE": (12, "1.375", "16.50"), "WATER": (8, "0.25", "2.00"),
                "BAR": (7, "1.10", "7.70"), "WHEY": (3, "18", "54.00")}
    assert {k: (r["on_hand"], cost(r["avg_cost"]), money(r["value"])) for k, r in rows.items()} \
        == {k: (n, cost(c), money(v)) for k, (n, c, v) in expected.items()}
    assert report["total_units"] == 30 and money(report["total_value"]) == money("80.20")


def test_sales_revenue_cost_and_margin_by_product_from_recorded_costs(bar, cafe):
    report = _report(bar, "sales")
    rows = {i["sku"]: i for i in report["items"]}
    got = {k: (r["units"], money(r["revenue"]), money(r["cost"]), money(r["margin"]),
               Decimal(r["margin_pct"])) for k, r in rows.items()}
    assert got == {
        # 4+5-1 units; 16+20-4; 4.00+6.88-1.38; 32-9.50 = 22.50 (70.3 %)
        "SHAKE": (8, money(32), money("9.50"), money("22.50"), Decimal("70.3")),
        # only the 6 sold in the period; 6 × 0.25
        "WATER": (6, money(9), money("1.50"), money("7.50"), Decimal("83.3")),
        "BAR": (5, money("12.50"), money("5.50"), money("7.00"), Decimal("56.0")),
    }
    assert (report["units"], money(report["revenue"]), money(report["cost"]),
            money(report["margin"]), Decimal(report["margin_pct"])) == (
        19, money("53.50"), money("16.50"), money("37.00"), Decimal("69.2"))
    # a receipt after the sales does not re-price them
    bar.receive(cafe["shake"]["id"], 100, "9.99")
    assert money(_report(bar, "sales")["cost"]) == money("16.50")


def test_sales_by_category_and_for_a_chosen_period(bar, cafe):
    report = _report(bar, "sales", group_by="category")
    assert [(i["category"], i["units"], money(i["revenue"]), money(i["margin"]))
            for i in report["items"]] == [
        ("drinks", 6, money(9), money("7.50")), ("shakes", 8, money(32), money("22.50")),
        ("snacks", 5, money("12.50"), money("7.00"))]
    today = club_today(bar.club)
    wide = _report(bar, "sales", **{"from": (today - timedelta(days=45)).isoformat(),
                                    "to": today.isoformat()})
    water = next(i for i in wide["items"] if i["sku"] == "WATER")
    assert (water["units"], money(water["revenue"]), money(water["cost"])) == (
        16, money(24), money(4))
    old = _report(bar, "sales", **{"from": (today - timedelta(days=45)).isoformat(),
                                   "to": (today - timedelta(days=30)).isoformat()})
    assert [(i["sku"], i["units"]) for i in old["items"]] == [("WATER", 10)]
    assert old["date_from"] == (today - timedelta(days=45)).isoformat()


def test_top_sellers_by_units_revenue_and_margin(bar, cafe):
    def top(by, **extra):
        return [i["sku"] for i in _report(bar, "top-sellers", by=by, **extra)["items"]]

    assert top("units") == ["SHAKE", "WATER", "BAR"]  # 8, 6, 5
    assert top("revenue") == ["SHAKE", "BAR", "WATER"]  # 32, 12.50, 9
    assert top("margin") == ["SHAKE", "WATER", "BAR"]  # 22.50, 7.50, 7.00
    assert top("revenue", limit=2) == ["SHAKE", "BAR"]


def test_turnover_and_days_of_cover_at_the_recent_rate(bar):
    x = bar.product(sku="X", sale_price="2")
    y = bar.product(sku="Y", sale_price="2")
    z = bar.product(sku="Z", sale_price="2")
    old_receipt = bar.receive(x["id"], 34, "1")
    old_sale = bar.sold([(x["id"], 4)])
    bar.backdate(days=35, movement_ids=[old_receipt["id"]])
    bar.backdate(days=30, sale_id=old_sale["id"])  # outside the 28-day window
    for n in (5, 5, 4):
        bar.sold([(x["id"], n)])
    bar.receive(y["id"], 10, "1")
    bar.sold([(y["id"], 3)])
    bar.receive(z["id"], 5, "1")
    rows = {i["sku"]: i for i in _report(bar, "turnover", window_days=28)["items"]}
    # X: sold 14 in 28 days → 0.50/day; 16 on hand → 32.0 days; opened at 30: 14 / 23 = 0.61
    x_row = rows["X"]
    assert (x_row["sold"], Decimal(x_row["per_day"]), Decimal(x_row["days_of_cover"]),
            x_row["opening"], x_row["on_hand"], Decimal(x_row["turnover"])) == (
        14, Decimal("0.50"), Decimal("32.0"), 30, 16, Decimal("0.61"))
    # Y: sold 3 → 0.11/day; 7 × 28 / 3 = 65.3 days; opened at 0: 3 / 3.5 = 0.86
    y_row = rows["Y"]
    assert (y_row["sold"], Decimal(y_row["per_day"]), Decimal(y_row["days_of_cover"]),
            y_row["opening"], Decimal(y_row["turnover"])) == (
        3, Decimal("0.11"), Decimal("65.3"), 0, Decimal("0.86"))
    assert (rows["Z"]["sold"], rows["Z"]["days_of_cover"], rows["Z"]["turnover"]) == (0, None, None)
    # a 40-day window includes the old sale: 18 sold, opened at 34
    x40 = next(i for i in _report(bar, "turnover", window_days=40)["items"] if i["sku"] == "X")
    assert (x40["sold"], x40["opening"]) == (18, 0)  # the receipt, 35 days ago, is in it too


def test_low_stock_list_with_suggested_orders(bar):
    a = bar.product(sku="A", reorder_level=5, sale_price="1")
    b = bar.product(sku="B", reorder_level=5, reorder_quantity=24, sale_price="1")
    c = bar.product(sku="C", reorder_level=3, sale_price="1")
    d = bar.product(sku="D", reorder_level=2, sale_price="1")
    e = bar.product(sku="E", reorder_level=9, sale_price="1")
    bar.patch(f"/products/{e['id']}", {"active": False})
    bar.receive(a["id"], 32, "1")
    bar.sold([(a["id"], 28)])  # 4 left, 1.00/day
    bar.receive(b["id"], 2, "1")
    bar.receive(c["id"], 3, "1")
    bar.receive(d["id"], 10, "1")
    report = _report(bar, "low-stock")
    assert report["cover_days"] == 14 and report["window_days"] == 28
    got = [(i["sku"], i["on_hand"], i["sold"], i["suggested_order"]) for i in report["items"]]
    # B: 3 below its level, usual order 24; A: 14 days × 1/day = 14 → order 10;
    # C: no sales, order enough to lift it above its level (4) → 1
    assert got == [("B", 2, 0, 24), ("A", 4, 28, 10), ("C", 3, 0, 1)]
    assert Decimal(report["items"][1]["days_of_cover"]) == Decimal("4.0")
    longer = _report(bar, "low-stock", cover_days=30)
    assert [(i["sku"], i["suggested_order"]) for i in longer["items"]] == [
        ("B", 24), ("A", 26), ("C", 1)]


def test_shrinkage_by_reason_and_by_product(bar):
    water = bar.product(sku="WATER", sale_price="1.5")
    shake = bar.product(sku="SHAKE", sale_price="4")
    bar.receive(water["id"], 20, "0.40")
    bar.receive(shake["id"], 10, "1.20")

    def write_off(p, qty, reason):
        r = bar.post("/write-offs", {"product_id": p["id"], "quantity": qty, "reason": reason})
        assert r.status_code == 201, r.text
        return r.json()

    write_off(water, 3, "expired")
    write_off(shake, 2, "expired")
    write_off(shake, 1, "damaged")
    write_off(water, 2, "staff_use")
    old = write_off(water, 5, "damaged")
    bar.backdate(days=60, movement_ids=[old["id"]])
    r = bar.post("/stocktakes", {"counts": [{"product_id": water["id"], "counted": 7},
                                            {"product_id": shake["id"], "counted": 8}]})
    assert r.status_code == 201, r.text  # water 10 → 7 (-3), shake 7 → 8 (+1)

    report = _report(bar, "shrinkage")
    got = [(i["kind"], i["reason"], i["movements"], i["units_lost"], money(i["value_lost"]))
           for i in report["items"]]
    assert got == [
        # water 3 missing at 0.40, shake 1 found at 1.20: 2 units, 1.20 - 1.20 = 0.00 lost
        ("adjustment", "stocktake", 2, 2, money(3 * Decimal("0.40") - Decimal("1.20"))),
        ("write_off", "damaged", 1, 1, money("1.20")),
        ("write_off", "expired", 2, 5, money(3 * Decimal("0.40") + 2 * Decimal("1.20"))),
        ("write_off", "staff_use", 1, 2, money("0.80")),
    ]
    # 2 + 1 + 5 + 2 units; 0.00 + 1.20 + 3.60 + 0.80
    assert report["units_lost"] == 10 and money(report["value_lost"]) == money("5.60")
    by_product = _report(bar, "shrinkage", group_by="product")
    water_rows = {(i["kind"], i["reason"]): i["units_lost"] for i in by_product["items"]
                  if i["sku"] == "WATER"}
    assert water_rows == {("adjustment", "stocktake"): 3, ("write_off", "expired"): 3,
                          ("write_off", "staff_use"): 2}


def test_reports_as_csv(bar, cafe):
    r = bar.get("/analytics/sales", format="csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "sales-by-product.csv" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0]) == ["product_id", "sku", "name", "category", "units", "revenue", "cost",
                             "margin", "margin_pct"]
    shake = next(row for row in rows if row["sku"] == "SHAKE")
    assert (shake["units"], money(shake["revenue"]), money(shake["margin"])) == (
        "8", money(32), money("22.50"))
    bar.product(sku="EVIL", name="=HYPERLINK(\"http://x\")", sale_price="1")
    r = bar.get("/analytics/stock-value", format="csv")
    evil = next(row for row in csv.DictReader(io.StringIO(r.text)) if row["sku"] == "EVIL")
    assert evil["name"].startswith("'=")  # a spreadsheet shows it, never runs it
    for name in REPORTS:
        r = bar.get(f"/analytics/{name}", format="csv")
        assert r.status_code == 200 and r.text.count("\n") >= 1, name
    assert bar.get("/analytics/sales", format="xml").status_code == 422


def test_only_managers_and_owners_see_analytics(bar, cafe):
    for staff in (bar.desk, bar.trainer_staff):
        for name in REPORTS:
            r = bar.get(f"/analytics/{name}", staff=staff)
            assert r.status_code == 403 and r.json()["error"] == "forbidden_role", name
    for name in REPORTS:
        assert bar.get(f"/analytics/{name}", staff=bar.owner).status_code == 200


def test_reports_see_only_the_own_club(bar, cafe):
    other_club = bar.world.club("Hilltop")
    other = bar.world.staff(other_club, "manager")
    for name in REPORTS:
        report = _report(bar, name, staff=other)
        assert report["items"] == [], name
    assert bar.count(StockMovement, StockMovement.club_id == other_club.id) == 0


def test_bad_report_parameters_are_refused_with_a_message(bar):
    today = club_today(bar.club)
    cases = [
        ("sales", {"from": today.isoformat(), "to": (today - timedelta(days=1)).isoformat()},
         "invalid_period"),
        ("sales", {"group_by": "staff"}, "validation_error"),
        ("sales", {"from": "31.12.2024"}, "validation_error"),
        ("sales", {"from": "1066-10-14"}, "validation_error"),
        ("sales", {"from": "2000-01-01", "to": "2099-01-01"}, "period_too_long"),
        ("top-sellers", {"by": "cost"}, "validation_error"),
        ("top-sellers", {"limit": 0}, "validation_error"),
        ("turnover", {"window_days": 0}, "validation_error"),
        ("low-stock", {"cover_days": 10**20}, "validation_error"),
        ("shrinkage", {"group_by": "x"}, "validation_error"),
    ]
    for name, params, code in cases:
        r = bar.get(f"/analytics/{name}", **params)
        assert r.status_code == 422 and r.json()["error"] == code, (name, params, r.text)
        assert r.json()["message"]


def test_margin_stays_exact_when_costs_have_four_decimals(bar):
    p = bar.product(sku="CAN", sale_price="1.99")
    bar.receive(p["id"], 24, "0.5413")  # a 24-pack at 12.99
    bar.sold([(p["id"], 7)])
    row = _report(bar, "sales")["items"][0]
    # revenue 7 × 1.99 = 13.93; cost 7 × 0.5413 = 3.7891 → 3.79
    assert (money(row["revenue"]), money(row["cost"]), money(row["margin"])) == (
        money("13.93"), money("3.79"), money("10.14"))
    moves = bar.scalars(select(StockMovement).where(StockMovement.kind == "sale"))
    assert moves[0].unit_cost == Decimal("0.5413")
