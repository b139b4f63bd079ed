"""PT products and packages: sold through billing's single sale path, with a live balance."""
from sqlalchemy import select

from app.billing.models import Sale, SaleLine
from app.trainers.models import PtPackage
from tests.builders import money


def test_a_package_is_sold_as_a_sale_line_of_kind_pt_package(gym):
    coach = gym.trainer()
    member = gym.member()
    product = gym.pt_product(sessions=10, price="450.00", validity_days=60)
    r = gym.client.post("/api/v1/sales", headers=gym.desk.headers, json={
        "member_id": member,
        "lines": [{"kind": "pt_package", "package_product_id": product, "trainer_id": coach.id}],
        "payments": [{"method": "card", "amount": "450"}]})
    assert r.status_code == 201, r.text
    sale = r.json()
    line = sale["lines"][0]
    assert line["kind"] == "pt_package" and money(line["amount"]) == money("450.00")
    assert money(sale["total"]) == money(450) and money(sale["debt"]) == 0
    view = gym.packages(member)
    assert view["sessions_available"] == 10 and view["sessions_booked"] == 0
    [pkg] = view["items"]
    assert pkg["id"] == line["item_id"] and pkg["sale_id"] == sale["id"]
    assert (pkg["sessions_total"], pkg["sessions_left"], pkg["sessions_used"]) == (10, 10, 0)
    assert pkg["valid_from"] == gym.today.isoformat()
    assert pkg["valid_until"] == gym.day(59).isoformat()
    assert pkg["trainer_id"] == coach.id and pkg["status"] == "active"


def test_a_member_holds_several_packages_and_bookings_show_up(gym):
    coach = gym.trainer()
    member = gym.member()
    small = gym.package(member, gym.pt_product(sessions=5, validity_days=40), start_offset=0)
    big = gym.package(member, gym.pt_product(sessions=10, validity_days=90), start_offset=0)
    gym.booked(coach, member, gym.at(2, 10))
    gym.booked(coach, member, gym.at(3, 10))
    view = gym.packages(member)
    assert [p["id"] for p in view["items"]] == [small["id"], big["id"]]  # expiring first on top
    assert view["sessions_available"] == 15 and view["sessions_booked"] == 2


def test_packages_expire_after_their_last_day(gym):
    member = gym.member()
    pkg = gym.package(member, gym.pt_product(validity_days=30), start_offset=-40)
    assert pkg["valid_until"] == gym.day(-11).isoformat()
    view = gym.packages(member)
    assert view["items"][0]["status"] == "expired" and view["sessions_available"] == 0
    assert gym.packages(member, as_of=gym.day(-11))["items"][0]["status"] == "active"
    assert gym.packages(member, as_of=gym.day(-41))["items"][0]["status"] == "pending"


def test_the_desk_cannot_backdate_or_reprice_and_nothing_is_written(gym):
    member = gym.member()
    product = gym.pt_product()
    r = gym.sell_package(member, product, staff=gym.desk, start_date=gym.day(-1).isoformat())
    assert r.status_code == 403 and r.json()["error"] == "start_in_past"
    r = gym.sell_package(member, product, staff=gym.desk, price="1.00")
    assert r.status_code == 403 and r.json()["error"] == "price_override_forbidden"
    assert gym.count(Sale) == 0 and gym.count(PtPackage) == 0
    r = gym.sell_package(member, product, staff=gym.manager, price="399.00")
    assert r.status_code == 201 and money(r.json()["sale"]["total"]) == money("399.00")


def test_inactive_products_and_foreign_ids_are_refused(gym):
    member = gym.member()
    product = gym.pt_product()
    r = gym.client.patch(f"/api/v1/pt-products/{product}", json={"active": False},
                         headers=gym.manager.headers)
    assert r.status_code == 200 and r.json()["active"] is False
    r = gym.sell_package(member, product, staff=gym.desk)
    assert r.status_code == 422 and r.json()["error"] == "pt_product_inactive"
    elsewhere = gym.world.club("Elsewhere")
    foreign_manager = gym.world.staff(elsewhere, "manager")
    assert gym.sell_package(member, gym.pt_product(), staff=foreign_manager).status_code == 404
    assert gym.client.get(f"/api/v1/members/{member}/pt-packages",
                          headers=foreign_manager.headers).status_code == 404
    assert gym.count(Sale) == 0 and gym.count(SaleLine) == 0


def test_selling_with_an_idempotency_key_sells_once(gym):
    member = gym.member()
    product = gym.pt_product()
    headers = gym.desk.headers | {"Idempotency-Key": "pt-sale-1"}
    body = {"package_product_id": product, "payments": [{"method": "cash", "amount": "100"}]}
    first = gym.client.post(f"/api/v1/members/{member}/pt-packages", json=body, headers=headers)
    again = gym.client.post(f"/api/v1/members/{member}/pt-packages", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert money(first.json()["sale"]["debt"]) == money(400)
    assert gym.scalars(select(PtPackage.id)) == [first.json()["id"]]


def test_only_managers_edit_products_but_all_staff_read_them(gym):
    coach = gym.trainer()
    r = gym.client.post("/api/v1/pt-products", headers=gym.desk.headers,
                        json={"name": "5x", "sessions": 5, "price": "10", "validity_days": 30})
    assert r.status_code == 403
    gym.pt_product(sessions=5)
    listed = gym.client.get("/api/v1/pt-products", headers=coach.headers)
    assert listed.status_code == 200 and [p["sessions"] for p in listed.json()] == [5]
    bad = gym.client.post("/api/v1/pt-products", headers=gym.manager.headers,
                          json={"name": "x", "sessions": 0, "price": "-1", "validity_days": 0})
    assert bad.status_code == 422
    assert {d["field"] for d in bad.json()["details"]} == {"sessions", "price", "validity_days"}
