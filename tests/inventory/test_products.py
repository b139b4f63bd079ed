"""Products: managers create and edit, all staff read — cost and margin only for managers."""
from decimal import Decimal

from app.inventory.models import Product, StockLevel
from tests.inventory.conftest import cost, money

COST_FIELDS = {"avg_cost", "margin", "margin_pct", "stock_value"}


def test_a_manager_creates_a_product_with_zero_stock_and_reads_its_cost(bar):
    p = bar.product(sku=" shake-van ", name="Vanilla shake", category="shakes", unit="cup",
                    sale_price="4.5", reorder_level=5, reorder_quantity=24)
    assert p["sku"] == "SHAKE-VAN" and p["name"] == "Vanilla shake" and p["unit"] == "cup"
    assert money(p["sale_price"]) == money("4.50") and p["on_hand"] == 0 and p["low_stock"]
    assert cost(p["avg_cost"]) == 0 and money(p["stock_value"]) == 0
    assert bar.count(Product) == 1 and bar.count(StockLevel) == 1

    bar.receive(p["id"], 10, "1.80")
    read = bar.get(f"/products/{p['id']}").json()
    assert read["on_hand"] == 10 and not read["low_stock"]
    assert cost(read["avg_cost"]) == cost("1.80")
    assert cost(read["margin"]) == cost("2.70") and Decimal(read["margin_pct"]) == Decimal("60.0")
    assert money(read["stock_value"]) == money("18.00")


def test_front_desk_and_trainers_read_products_and_stock_without_costs(bar):
    p = bar.product(name="Water", sale_price="1.50")
    bar.receive(p["id"], 12, "0.40")
    for staff in (bar.desk, bar.trainer_staff):
        one = bar.get(f"/products/{p['id']}", staff=staff)
        assert one.status_code == 200 and one.json()["on_hand"] == 12
        assert not COST_FIELDS & set(one.json()), one.json()
        page = bar.get("/products", staff=staff).json()
        assert page["total"] == 1 and not COST_FIELDS & set(page["items"][0])
        stock = bar.get("/stock", staff=staff).json()["items"]
        assert [(s["product_id"], s["on_hand"]) for s in stock] == [(p["id"], 12)]
        assert not COST_FIELDS & set(stock[0])
    for staff in (bar.manager, bar.owner):
        stock = bar.get("/stock", staff=staff).json()["items"][0]
        assert cost(stock["avg_cost"]) == cost("0.40") and money(stock["stock_value"]) == money("4.80")
        assert COST_FIELDS <= set(bar.get("/products", staff=staff).json()["items"][0])


def test_only_managers_and_owners_create_and_edit_products(bar):
    body = {"sku": "BAR-1", "name": "Protein bar", "sale_price": "2.20"}
    for staff in (bar.desk, bar.trainer_staff):
        r = bar.post("/products", body, staff=staff)
        assert r.status_code == 403 and r.json()["error"] == "forbidden_role"
    assert bar.count(Product) == 0
    p = bar.product(staff=bar.owner, **body)
    r = bar.patch(f"/products/{p['id']}", {"sale_price": "1.00"}, staff=bar.desk)
    assert r.status_code == 403
    r = bar.patch(f"/products/{p['id']}", {"sale_price": "2.40", "reorder_quantity": 12})
    assert r.status_code == 200, r.text
    assert money(r.json()["sale_price"]) == money("2.40") and r.json()["reorder_quantity"] == 12
    assert r.json()["name"] == "Protein bar"


def test_sku_is_unique_per_club_not_across_clubs(bar):
    first = bar.product(sku="WATER-05")
    r = bar.post("/products", {"sku": "water-05", "name": "Other", "sale_price": "1"})
    assert r.status_code == 409 and r.json()["error"] == "sku_taken" and "WATER-05" in r.json()["message"]
    second = bar.product(sku="WATER-10")
    r = bar.patch(f"/products/{second['id']}", {"sku": "WATER-05"})
    assert r.status_code == 409 and r.json()["details"]["product_id"] == first["id"]
    other_club = bar.world.club("Hilltop")
    other_manager = bar.world.staff(other_club, "manager")
    assert bar.product(staff=other_manager, sku="WATER-05")["sku"] == "WATER-05"


def test_cost_and_stock_cannot_be_set_by_hand(bar):
    p = bar.product()
    for field, value in (("avg_cost", "0.10"), ("on_hand", 100), ("club_id", 2), ("cost", "1")):
        r = bar.patch(f"/products/{p['id']}", {field: value})
        assert r.status_code == 422 and field in r.json()["message"], (field, r.text)
        r = bar.post("/products", {"sku": f"X-{field}", "name": "X", "sale_price": "1",
                                   field: value})
        assert r.status_code == 422, (field, r.text)
    assert bar.on_hand(p["id"]) == 0 and bar.count(Product) == 1


def test_list_filters_by_category_search_activity_and_low_stock(bar):
    water = bar.product(name="Still water", category="drinks", reorder_level=2)
    shake = bar.product(name="Chocolate shake", category="shakes", reorder_level=2)
    old = bar.product(name="Old bar", category="snacks", active=False)
    bar.receive(water["id"], 10, "0.30")

    def ids(**params):
        r = bar.get("/products", **params)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    assert ids(category="shakes") == [shake["id"]]
    assert ids(q="WATER") == [water["id"]]
    assert ids(active="false") == [old["id"]]
    assert ids(low_stock="true", active="true") == [shake["id"]]
    assert sorted(ids()) == sorted([water["id"], shake["id"], old["id"]])
    stock_ids = [s["product_id"] for s in bar.get("/stock", low_only="true").json()["items"]]
    assert stock_ids == [shake["id"]]  # inactive products are left out by default


def test_another_clubs_product_is_not_found(bar):
    other_club = bar.world.club("Hilltop")
    other_manager = bar.world.staff(other_club, "manager")
    theirs = bar.product(staff=other_manager)
    for staff in (bar.manager, bar.desk):
        r = bar.get(f"/products/{theirs['id']}", staff=staff)
        assert r.status_code == 404 and r.json()["error"] == "product_not_found"
    r = bar.patch(f"/products/{theirs['id']}", {"name": "Mine now"})
    assert r.status_code == 404
    assert bar.get("/products").json()["total"] == 0
    assert bar.get(f"/products/{theirs['id']}", staff=other_manager).json()["name"] != "Mine now"
