"""Selling at the bar through billing's single sale path, and taking products back."""
import threading
from decimal import Decimal

from sqlalchemy import select

from app.billing.models import Payment, Sale, SaleLine
from app.crm.models import Task
from app.inventory.models import StockMovement
from tests.inventory.conftest import cost, money


def test_a_cafe_sale_through_the_sales_endpoint_takes_stock_at_the_sale_price(bar):
    shake = bar.product(name="Vanilla shake", sale_price="4.50")
    water = bar.product(name="Water", sale_price="1.20")
    bar.receive(shake["id"], 10, "1.75")
    bar.receive(water["id"], 24, "0.25")
    sale = bar.sold([(shake["id"], 2), (water["id"], 3)])
    assert money(sale["total"]) == money("12.60") and money(sale["debt"]) == 0
    assert [(line["kind"], line["item_id"], line["quantity"], money(line["unit_price"]),
             money(line["amount"])) for line in sale["lines"]] == [
        ("product", shake["id"], 2, money("4.50"), money("9.00")),
        ("product", water["id"], 3, money("1.20"), money("3.60"))]
    assert "Vanilla shake" in sale["lines"][0]["description"]
    assert (bar.on_hand(shake["id"]), bar.on_hand(water["id"])) == (8, 21)
    moves = bar.scalars(select(StockMovement).where(StockMovement.kind == "sale")
                     .order_by(StockMovement.id))
    assert [(m.product_id, m.quantity, m.sale_id, m.unit_price, m.unit_cost) for m in moves] == [
        (shake["id"], -2, sale["id"], Decimal("4.50"), Decimal("1.7500")),
        (water["id"], -3, sale["id"], Decimal("1.20"), Decimal("0.2500"))]


def test_the_convenience_endpoint_sells_the_same_way_and_can_charge_a_member(bar):
    bars = bar.product(name="Protein bar", sale_price="2.80")
    bar.receive(bars["id"], 5, "1.10")
    member = bar.member()
    r = bar.post("/sales", {"member_id": member, "items": [{"product_id": bars["id"],
                                                            "quantity": 2}]}, staff=bar.desk)
    assert r.status_code == 201, r.text
    sale = r.json()
    assert money(sale["total"]) == money("5.60") and money(sale["debt"]) == money("5.60")
    balance = bar.get(f"/api/v1/members/{member}/balance", staff=bar.desk).json()
    assert money(balance["debt"]) == money("5.60")
    assert bar.on_hand(bars["id"]) == 3
    r = bar.post("/sales", {"items": [{"product_id": bars["id"], "quantity": 1}]}, staff=bar.desk)
    assert r.status_code == 422 and r.json()["error"] == "payment_required"
    assert bar.on_hand(bars["id"]) == 3


def test_out_of_stock_names_the_product_and_what_is_left(bar):
    shake = bar.product(name="Chocolate shake", unit="cup", sale_price="4")
    bar.receive(shake["id"], 2, "1.5")
    r = bar.sell([(shake["id"], 3)], payments=[{"method": "cash", "amount": "12"}])
    assert r.status_code == 409 and r.json()["error"] == "out_of_stock"
    message = r.json()["message"]
    assert "Chocolate shake" in message and "2 cup left" in message and "3 cup" in message
    assert r.json()["details"] == {"product_id": shake["id"], "sku": shake["sku"],
                                   "on_hand": 2, "requested": 3}
    assert bar.on_hand(shake["id"]) == 2 and bar.count(Sale) == 0


def test_a_sale_with_one_line_out_of_stock_writes_nothing(bar):
    water = bar.product(name="Water", sale_price="1.50", reorder_level=5)
    shake = bar.product(name="Shake", sale_price="4.00")
    bar.receive(water["id"], 6, "0.30")
    bar.receive(shake["id"], 1, "1.20")
    member = bar.member()
    before = bar.count(StockMovement)
    r = bar.sell([(water["id"], 4), (shake["id"], 2)], member_id=member,
                 payments=[{"method": "card", "amount": "6"}])
    assert r.status_code == 409 and r.json()["error"] == "out_of_stock"
    assert (bar.on_hand(water["id"]), bar.on_hand(shake["id"])) == (6, 1)
    assert bar.count(StockMovement) == before
    assert (bar.count(Sale), bar.count(SaleLine), bar.count(Payment)) == (0, 0, 0)
    assert bar.count(Task) == 0  # the water line reached its reorder level, but rolled back
    assert money(bar.get(f"/api/v1/members/{member}/balance", staff=bar.desk)
                 .json()["debt"]) == 0


def test_thirty_concurrent_sales_of_the_last_ten_sell_exactly_ten(bar, db):
    """PostgreSQL: the guarded UPDATE serialises on the row; SQLite: on the write lock."""
    shake = bar.product(name="Shake", sale_price="4.00", reorder_level=3)
    bar.receive(shake["id"], 10, "1.50")
    n = 30
    barrier = threading.Barrier(n)
    answers = [None] * n

    def buy(i: int) -> None:
        barrier.wait()
        answers[i] = bar.sell([(shake["id"], 1)], payments=[{"method": "cash", "amount": "4"}])

    threads = [threading.Thread(target=buy, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 10 + [409] * 20, [a.text for a in answers if a.status_code >= 500]
    assert all(a.json()["error"] == "out_of_stock" for a in answers if a.status_code == 409)
    assert bar.on_hand(shake["id"]) == 0
    assert bar.count(Sale) == 10
    assert bar.count(StockMovement, StockMovement.kind == "sale") == 10
    afters = sorted(m.on_hand_after for m in bar.scalars(
        select(StockMovement).where(StockMovement.kind == "sale")))
    assert afters == list(range(10))  # each sale saw its own, exact stock level
    assert bar.count(Task, Task.kind == "reorder") == 1  # one shortage, one task


def test_sales_of_the_same_products_in_opposite_order_never_deadlock(bar):
    """Lines lock their stock rows in product order, whatever order the till sends them in
    (a Friday-peak load run met PostgreSQL deadlocks, answered 503, before this)."""
    water = bar.product(name="Water", sale_price="2.00")
    shake = bar.product(name="Shake", sale_price="4.00")
    bar.receive(water["id"], 500, "0.50")
    bar.receive(shake["id"], 500, "1.50")
    n, rounds = 8, 5
    barrier = threading.Barrier(n)
    answers = []

    def buy(i: int) -> None:
        lines = [(water["id"], 1), (shake["id"], 1)]
        barrier.wait()
        for _ in range(rounds):
            answers.append(bar.sell(lines if i % 2 else lines[::-1]))

    threads = [threading.Thread(target=buy, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [a.status_code for a in answers] == [201] * n * rounds, [
        a.text for a in answers if a.status_code != 201]
    assert bar.on_hand(water["id"]) == bar.on_hand(shake["id"]) == 500 - n * rounds
    reversed_sale = next(a.json() for a in answers
                         if a.json()["lines"][0]["item_id"] == shake["id"])
    assert [line["item_id"] for line in reversed_sale["lines"]] == [shake["id"], water["id"]]


def test_two_concurrent_refunds_of_a_whole_sale_return_it_once(bar):
    shake = bar.product(sale_price="4.00")
    bar.receive(shake["id"], 10, "1.00")
    sale = bar.sold([(shake["id"], 3)])
    barrier = threading.Barrier(2)
    answers = [None, None]

    def refund(i: int) -> None:
        barrier.wait()
        answers[i] = _refund(bar, sale["id"])

    threads = [threading.Thread(target=refund, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    assert bar.on_hand(shake["id"]) == 10
    assert bar.count(Payment, Payment.kind == "refund") == 1
    assert bar.count(StockMovement, StockMovement.kind == "return") == 1


def test_inactive_and_foreign_products_cannot_be_sold(bar):
    old = bar.product(name="Old bar", sale_price="1")
    bar.receive(old["id"], 5, "0.5")
    bar.patch(f"/products/{old['id']}", {"active": False})
    r = bar.sell([(old["id"], 1)])
    assert r.status_code == 422 and r.json()["error"] == "product_inactive"
    assert "Old bar" in r.json()["message"]
    other_club = bar.world.club("Hilltop")
    other_manager = bar.world.staff(other_club, "manager")
    theirs = bar.product(staff=other_manager, sale_price="1")
    r = bar.sell([(theirs["id"], 1)], payments=[{"method": "cash", "amount": "1"}])
    assert r.status_code == 404 and r.json()["error"] == "product_not_found"
    assert bar.count(Sale) == 0 and bar.on_hand(old["id"]) == 5


def _refund(bar, sale_id, staff=None, **body):
    return bar.post(f"/sales/{sale_id}/refund", body, staff=staff)


def test_refunds_return_stock_at_the_original_cost_and_the_money(bar):
    shake = bar.product(name="Shake", sale_price="4.00")
    water = bar.product(name="Water", sale_price="1.50")
    bar.receive(shake["id"], 10, "1.00")
    bar.receive(water["id"], 10, "0.20")
    sale = bar.sold([(shake["id"], 3), (water["id"], 2)],
                    payments=[{"method": "card", "amount": "15.00"}])
    bar.receive(shake["id"], 7, "2.00")  # avg now (7×1.00 + 7×2.00)/14 = 1.50

    r = _refund(bar, sale["id"], lines=[{"product_id": shake["id"], "quantity": 2}],
                method="card")
    assert r.status_code == 201, r.text
    out = r.json()
    assert [(x["product_id"], x["quantity"], money(x["amount"])) for x in out["returned"]] == [
        (shake["id"], 2, money(8))]
    assert money(out["goods_value"]) == money(8) and money(out["refunded"]) == money(8)
    assert money(out["not_refunded"]) == 0 and money(out["sale"]["refunded"]) == money(8)
    ret = bar.scalars(select(StockMovement).where(StockMovement.kind == "return"))[0]
    assert (ret.quantity, ret.unit_cost, ret.cost_value, ret.revenue, ret.sale_id) == (
        2, Decimal("1.0000"), Decimal("2.00"), Decimal("-8.00"), sale["id"])
    assert bar.on_hand(shake["id"]) == 16
    # the return comes back at its original cost of 1.00: (14×1.50 + 2×1.00)/16 = 1.4375
    assert cost(bar.get(f"/products/{shake['id']}").json()["avg_cost"]) == Decimal("1.4375")

    r = _refund(bar, sale["id"], lines=[{"product_id": shake["id"], "quantity": 2}])
    assert r.status_code == 422 and r.json()["error"] == "return_exceeds_sold"
    assert "Only 1" in r.json()["message"]
    r = _refund(bar, sale["id"], method="cash")  # everything not yet returned
    assert r.status_code == 201, r.text
    assert sorted((x["product_id"], x["quantity"]) for x in r.json()["returned"]) == sorted(
        [(shake["id"], 1), (water["id"], 2)])
    assert money(r.json()["refunded"]) == money(7) and money(r.json()["sale"]["refunded"]) == 15
    assert (bar.on_hand(shake["id"]), bar.on_hand(water["id"])) == (17, 10)
    r = _refund(bar, sale["id"])
    assert r.status_code == 409 and r.json()["error"] == "already_returned"
    refunds = bar.scalars(select(Payment).where(Payment.kind == "refund").order_by(Payment.id))
    assert [(p.method, p.amount) for p in refunds] == [("card", Decimal("-8.00")),
                                                       ("cash", Decimal("-7.00"))]


def test_a_refund_never_pays_back_more_than_was_paid(bar):
    shake = bar.product(sale_price="4.00")
    bar.receive(shake["id"], 10, "1.00")
    member = bar.member()
    sale = bar.sold([(shake["id"], 3)], member_id=member,
                    payments=[{"method": "cash", "amount": "5.00"}])  # 7.00 on account
    r = _refund(bar, sale["id"], lines=[{"product_id": shake["id"], "quantity": 2}])
    assert r.status_code == 201, r.text
    assert money(r.json()["goods_value"]) == money(8) and money(r.json()["refunded"]) == money(5)
    assert money(r.json()["not_refunded"]) == money(3)
    assert bar.on_hand(shake["id"]) == 9
    r = _refund(bar, sale["id"])
    assert r.status_code == 201 and money(r.json()["refunded"]) == 0
    assert bar.count(Payment, Payment.kind == "refund") == 1


def test_refund_rules_roles_and_other_clubs(bar):
    shake = bar.product(sale_price="4.00")
    bar.receive(shake["id"], 10, "1.00")
    sale = bar.sold([(shake["id"], 1)])
    r = _refund(bar, sale["id"], staff=bar.desk)
    assert r.status_code == 403 and bar.on_hand(shake["id"]) == 9
    r = _refund(bar, sale["id"], lines=[{"product_id": shake["id"] + 999, "quantity": 1}])
    assert r.status_code == 422 and r.json()["error"] == "product_not_in_sale"
    other_club = bar.world.club("Hilltop")
    other_manager = bar.world.staff(other_club, "manager")
    assert _refund(bar, sale["id"], staff=other_manager).status_code == 404
    plan = bar.post("/api/v1/plans", {"name": "Month", "duration_months": 1, "price": "50"})
    membership = bar.post(f"/api/v1/members/{bar.member()}/memberships",
                          {"plan_id": plan.json()["id"]}, staff=bar.desk).json()
    r = _refund(bar, membership["sale"]["id"])
    assert r.status_code == 422 and r.json()["error"] == "no_products_in_sale"
    assert bar.count(StockMovement, StockMovement.kind == "return") == 0
    assert bar.count(Payment, Payment.kind == "refund") == 0
