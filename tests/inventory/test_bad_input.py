"""Whatever is sent, every inventory write answers 4xx with a message — never a 500 — and
writes nothing."""
from app.billing.models import Payment, Sale
from app.inventory.models import Product, StockMovement

HUGE = [2**63, 2**64, 10**30, -1, 0]
NUL = "a\x00b"


def write_requests(product_id: int, sale_id: int) -> list[tuple[str, str, object]]:
    p = product_id
    receipt = {"product_id": p, "quantity": 1, "unit_cost": "1.00"}
    return [
        ("post", "/products", {"sku": NUL, "name": "A", "sale_price": "1"}),
        ("post", "/products", {"sku": "has space", "name": "A", "sale_price": "1"}),
        ("post", "/products", {"sku": "S" * 41, "name": "A", "sale_price": "1"}),
        ("post", "/products", {"sku": "S1", "name": "", "sale_price": "1"}),
        ("post", "/products", {"sku": "S1", "name": "A" * 121, "sale_price": "1"}),
        ("post", "/products", {"sku": "S1", "name": "A", "sale_price": "-1"}),
        ("post", "/products", {"sku": "S1", "name": "A", "sale_price": "1.999"}),
        ("post", "/products", {"sku": "S1", "name": "A", "sale_price": "1e20"}),
        ("post", "/products", {"sku": "S1", "name": "A", "sale_price": "NaN"}),
        ("post", "/products", {"sku": "S1", "name": "A", "sale_price": "1", "reorder_level": -1}),
        ("post", "/products", {"sku": "S1", "name": "A", "sale_price": "1",
                               "reorder_quantity": 0}),
        ("post", "/products", {"sku": "S1", "name": "A", "sale_price": "1", "club_id": 2}),
        ("post", "/products", {"sku": "S1", "name": "A", "sale_price": "1", "on_hand": 5}),
        ("post", "/products", {"sku": "S1", "name": "A", "sale_price": "1", "avg_cost": "1"}),
        ("post", "/products", {"sku": ["S1"], "name": "A", "sale_price": "1"}),
        ("post", "/products", {"name": "A", "sale_price": "1"}),
        ("post", "/products", []),
        ("patch", f"/products/{p}", {"name": NUL}),
        ("patch", f"/products/{p}", {"name": None}),
        ("patch", f"/products/{p}", {"sale_price": None}),
        ("patch", f"/products/{p}", {"sku": ""}),
        ("patch", f"/products/{p}", {"reorder_level": 10**20}),
        ("patch", f"/products/{p}", {"id": 9}),
        ("post", "/receipts", receipt | {"quantity": 0}),
        ("post", "/receipts", receipt | {"quantity": -5}),
        ("post", "/receipts", receipt | {"quantity": 10**9}),
        ("post", "/receipts", receipt | {"quantity": 1.5}),
        ("post", "/receipts", receipt | {"unit_cost": "-0.01"}),
        ("post", "/receipts", receipt | {"unit_cost": "0.00001"}),
        ("post", "/receipts", receipt | {"unit_cost": "123456789.0"}),
        ("post", "/receipts", receipt | {"unit_cost": "Infinity"}),
        ("post", "/receipts", receipt | {"quantity": 100_000, "unit_cost": "99999999.9999"}),
        ("post", "/receipts", receipt | {"supplier": NUL}),
        ("post", "/receipts", receipt | {"supplier": "s" * 201}),
        ("post", "/receipts", receipt | {"product_id": 2**63}),
        ("post", "/receipts", receipt | {"product_id": 0}),
        ("post", "/receipts", receipt | {"on_hand_after": 3}),
        ("post", "/receipts", {"product_id": p, "quantity": 1}),
        ("post", "/write-offs", {"product_id": p, "quantity": 1, "reason": "stolen"}),
        ("post", "/write-offs", {"product_id": p, "quantity": 0, "reason": "expired"}),
        ("post", "/write-offs", {"product_id": p, "quantity": 1, "reason": "other", "note": NUL}),
        ("post", "/write-offs", {"product_id": p, "quantity": 1}),
        ("post", "/write-offs", {"product_id": p, "quantity": 1, "reason": "other",
                                 "unit_cost": "0"}),
        ("post", "/stocktakes", {"counts": []}),
        ("post", "/stocktakes", {"counts": [{"product_id": p, "counted": -1}]}),
        ("post", "/stocktakes", {"counts": [{"product_id": p, "counted": 1},
                                            {"product_id": p, "counted": 2}]}),
        ("post", "/stocktakes", {"counts": [{"product_id": p}]}),
        ("post", "/stocktakes", {"counts": [{"product_id": 10**30, "counted": 1}]}),
        ("post", "/stocktakes", {"counts": {"product_id": p, "counted": 1}}),
        ("post", "/sales", {"items": []}),
        ("post", "/sales", {"items": [{"product_id": p, "quantity": 0}]}),
        ("post", "/sales", {"items": [{"product_id": p, "quantity": 1, "price": "0.01"}]}),
        ("post", "/sales", {"items": [{"product_id": p}], "payments": [{"method": "iou",
                                                                          "amount": "1"}]}),
        ("post", "/sales", {"items": [{"product_id": p}], "member_id": 2**64}),
        ("post", "/sales", {"items": [{"product_id": p}], "note": NUL}),
        ("post", "/api/v1/sales", {"lines": [{"kind": "product", "product_id": p,
                                              "quantity": 0}]}),
        ("post", "/api/v1/sales", {"lines": [{"kind": "product", "quantity": 1}]}),
        ("post", "/api/v1/sales", {"lines": [{"kind": "product", "product_id": p,
                                              "unit_price": "0.01"}]}),
        ("post", "/api/v1/sales", {"lines": [{"kind": "product", "product_id": "one"}]}),
        ("post", f"/sales/{sale_id}/refund", {"method": "cheque"}),
        ("post", f"/sales/{sale_id}/refund", {"lines": []}),
        ("post", f"/sales/{sale_id}/refund", {"lines": [{"product_id": p, "quantity": 0}]}),
        ("post", f"/sales/{sale_id}/refund", {"lines": [{"product_id": p, "quantity": 1},
                                                        {"product_id": p, "quantity": 1}]}),
        ("post", f"/sales/{sale_id}/refund", {"lines": [{"product_id": p, "quantity": 99}]}),
        ("post", f"/sales/{sale_id}/refund", {"amount": "100"}),
    ]


def test_bad_bodies_are_refused_with_a_message_and_change_nothing(bar):
    p = bar.product(sku="SHAKE", name="Shake", sale_price="4")
    bar.receive(p["id"], 10, "1")
    sale = bar.sold([(p["id"], 1)])
    before = (bar.count(Product), bar.count(StockMovement), bar.count(Sale), bar.count(Payment))
    for method, path, body in write_requests(p["id"], sale["id"]):
        staff = bar.desk if path.endswith("/sales") else bar.manager
        r = getattr(bar, method)(path, body, staff=staff)
        assert r.status_code == 422, (method, path, body, r.status_code, r.text)
        payload = r.json()
        assert set(payload) == {"error", "message", "details"} and payload["message"], payload
    after = (bar.count(Product), bar.count(StockMovement), bar.count(Sale), bar.count(Payment))
    assert after == before
    product = bar.get(f"/products/{p['id']}").json()
    assert (product["name"], product["sku"], product["on_hand"]) == ("Shake", "SHAKE", 9)


def test_huge_or_silly_ids_in_paths_and_queries_answer_4xx(bar):
    for value in HUGE:
        r = bar.get(f"/products/{value}")
        assert r.status_code in (404, 422) and r.json()["message"], (value, r.text)
        r = bar.patch(f"/products/{value}", {"name": "x"})
        assert r.status_code in (404, 422), value
        r = bar.post(f"/sales/{value}/refund", {})
        assert r.status_code in (404, 422), value
        r = bar.get("/movements", product_id=value)
        assert r.status_code in (404, 422), value
    assert bar.get("/products/abc").status_code == 422
    assert bar.get("/movements", kind="theft").status_code == 422
    assert bar.get("/products", limit=10**6).status_code == 422


def test_amounts_too_large_to_book_are_refused(bar):
    gold = bar.product(sku="GOLD", sale_price="9999999999.99")
    bar.receive(gold["id"], 5, "1")
    r = bar.sell([(gold["id"], 2)], payments=None, member_id=bar.member())
    assert r.status_code == 422 and r.json()["error"] == "value_too_large", r.text
    r = bar.post("/write-offs", {"product_id": gold["id"], "quantity": 5, "reason": "other"})
    assert r.status_code == 201  # 5 × 1.00 is fine
    assert bar.on_hand(gold["id"]) == 0 and bar.count(Sale) == 0


def test_unknown_products_in_writes_are_not_found(bar):
    missing = 987654
    for path, body, staff in (
            ("/receipts", {"product_id": missing, "quantity": 1, "unit_cost": "1"}, bar.manager),
            ("/write-offs", {"product_id": missing, "quantity": 1, "reason": "other"}, bar.manager),
            ("/stocktakes", {"counts": [{"product_id": missing, "counted": 1}]}, bar.manager),
            ("/sales", {"items": [{"product_id": missing}],
                        "payments": [{"method": "cash", "amount": "1"}]}, bar.desk),
            (f"/sales/{missing}/refund", {}, bar.manager)):
        r = bar.post(path, body, staff=staff)
        assert r.status_code == 404 and r.json()["message"], (path, r.text)
    assert bar.count(StockMovement) == 0


def test_not_signed_in_is_401(bar):
    r = bar.client.get("/api/v1/inventory/stock")
    assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
    r = bar.client.post("/api/v1/inventory/receipts", json={})
    assert r.status_code == 401
