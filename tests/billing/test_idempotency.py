"""Idempotency-Key on money-creating POSTs: a retry replays the answer, never sells twice."""
import threading

from sqlalchemy import select

from app.billing.models import Payment, Sale
from app.core.idempotency import IdempotencyKey
from app.memberships.models import Membership


def _sell(shop, member, plan, key, **body):
    return shop.sell(member, plan["id"], headers={"Idempotency-Key": key}, **body)


def test_same_key_and_body_sells_once_and_replays_the_answer(shop):
    plan = shop.plan()
    member = shop.member()
    body = {"payments": [{"method": "card", "amount": "40"}]}
    first = _sell(shop, member, plan, "k-1", **body)
    second = _sell(shop, member, plan, "k-1", **body)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert (shop.count(Sale), shop.count(Membership), shop.count(Payment)) == (1, 1, 1)
    stored = shop.scalar(select(IdempotencyKey))
    assert stored.club_id == shop.club.id and stored.status_code == 201
    assert stored.endpoint == "POST /api/v1/members/{member_id}/memberships"
    assert len(stored.request_hash) == 64


def test_the_same_amount_written_differently_is_the_same_request(shop):
    plan = shop.plan()
    member = shop.member()
    first = _sell(shop, member, plan, "k-2", payments=[{"method": "card", "amount": "40"}])
    again = _sell(shop, member, plan, "k-2", payments=[{"amount": 40.0, "method": "card"}])
    assert again.status_code == 201 and again.json() == first.json()
    assert shop.count(Sale) == 1


def test_same_key_with_a_different_body_is_refused(shop):
    plan = shop.plan()
    member = shop.member()
    _sell(shop, member, plan, "k-3", payments=[{"method": "card", "amount": "40"}])
    r = _sell(shop, member, plan, "k-3", payments=[{"method": "card", "amount": "50"}])
    assert r.status_code == 422 and r.json()["error"] == "idempotency_key_reused"
    assert "new key" in r.json()["message"]
    # the same key for another member is another request too
    r = _sell(shop, shop.member(), plan, "k-3", payments=[{"method": "card", "amount": "40"}])
    assert r.status_code == 422 and r.json()["error"] == "idempotency_key_reused"
    assert shop.count(Sale) == 1


def test_a_failed_request_does_not_burn_its_key(shop):
    plan = shop.plan(price="50")
    member = shop.member()
    body = {"payments": [{"method": "cash", "amount": "60"}]}
    assert _sell(shop, member, plan, "k-4", **body).status_code == 422
    assert shop.count(IdempotencyKey) == 0
    r = _sell(shop, member, plan, "k-4", payments=[{"method": "cash", "amount": "50"}])
    assert r.status_code == 201


def test_keys_are_per_club_and_per_endpoint(shop):
    plan = shop.plan()
    member = shop.member()
    sold = _sell(shop, member, plan, "shared").json()
    r = shop.client.post(f"/api/v1/sales/{sold['sale_id']}/payments",
                         json={"method": "cash", "amount": "10"},
                         headers=shop.desk.headers | {"Idempotency-Key": "shared"})
    assert r.status_code == 201 and len(r.json()["payments"]) == 1
    other = shop.world.club("Elsewhere")
    their_manager = shop.world.staff(other, "manager")
    their_plan = shop.plan(staff=their_manager)
    their_member = shop.member(club=other)
    r = shop.sell(their_member, their_plan["id"], staff=their_manager,
                  headers={"Idempotency-Key": "shared"})
    assert r.status_code == 201 and r.json()["member_id"] == their_member
    assert shop.count(Sale) == 2


def test_a_debt_payment_retried_with_its_key_is_taken_once(shop):
    plan = shop.plan(price="100")
    sold = shop.sold(shop.member(), plan["id"])
    url = f"/api/v1/sales/{sold['sale_id']}/payments"
    h = shop.desk.headers | {"Idempotency-Key": "pay-1"}
    first = shop.client.post(url, json={"method": "cash", "amount": "30"}, headers=h)
    second = shop.client.post(url, json={"method": "cash", "amount": "30"}, headers=h)
    assert first.status_code == second.status_code == 201 and first.json() == second.json()
    assert shop.count(Payment) == 1


def test_a_renewal_retried_with_its_key_is_sold_once(shop):
    plan = shop.plan()
    sold = shop.sold(shop.member(), plan["id"])
    url = f"/api/v1/memberships/{sold['id']}/renew"
    h = shop.desk.headers | {"Idempotency-Key": "renew-1"}
    first = shop.client.post(url, json={}, headers=h)
    second = shop.client.post(url, json={}, headers=h)
    assert first.status_code == second.status_code == 201 and first.json() == second.json()
    assert shop.count(Membership) == 2


def test_a_malformed_key_is_refused(shop):
    plan = shop.plan()
    for key in ("has space", "x" * 201, ""):
        r = shop.sell(shop.member(), plan["id"], headers={"Idempotency-Key": key})
        assert r.status_code == 422 and r.json()["error"] == "invalid_idempotency_key", key
    assert shop.count(Sale) == 0


def test_concurrent_repeats_of_one_key_sell_once(shop):
    plan = shop.plan()
    member = shop.member()
    body = {"plan_id": plan["id"], "payments": [{"method": "card", "amount": "100"}]}
    url = f"/api/v1/members/{member}/memberships"
    headers = shop.desk.headers | {"Idempotency-Key": "burst"}
    barrier = threading.Barrier(5)
    answers = [None] * 5

    def post(i: int) -> None:
        barrier.wait()
        answers[i] = shop.client.post(url, json=body, headers=headers)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [a.status_code for a in answers] == [201] * 5, [a.text for a in answers]
    assert all(a.json() == answers[0].json() for a in answers)
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 4
    assert (shop.count(Sale), shop.count(Membership), shop.count(Payment)) == (1, 1, 1)


def test_concurrent_sales_to_one_member_cannot_both_overlap(shop):
    plan = shop.plan()
    member = shop.member()
    url = f"/api/v1/members/{member}/memberships"
    barrier = threading.Barrier(4)
    answers = [None] * 4

    def post(i: int) -> None:
        barrier.wait()
        answers[i] = shop.client.post(url, json={"plan_id": plan["id"]},
                                      headers=shop.desk.headers)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409], [a.text for a in answers]
    assert shop.count(Membership) == 1


def test_a_repeat_waits_for_the_first_request_then_gets_its_answer(shop):
    """The unique key serialises repeats: the second claim blocks until the first commits
    (PostgreSQL: on the index; SQLite: on the write lock) and then replays the stored answer."""
    from app.core import idempotency

    args = {"club_id": shop.club.id, "key": "slow", "endpoint": "POST /x",
            "request_hash": "h" * 64}
    first = shop.db.sessionmaker()
    claim_id = idempotency.claim(first, **args)
    assert isinstance(claim_id, int)
    result = {}

    def repeat() -> None:
        with shop.db.sessionmaker() as second:
            result["answer"] = idempotency.claim(second, **args)

    t = threading.Thread(target=repeat)
    t.start()
    t.join(0.5)
    assert t.is_alive(), "the repeat must wait for the first request"
    idempotency.remember(first, claim_id=claim_id, status_code=201, body={"id": 7})
    first.commit()
    first.close()
    t.join(30)
    assert result["answer"] == idempotency.StoredResponse(201, {"id": 7})


def test_a_repeat_runs_afresh_when_the_first_request_rolled_back(shop):
    from app.core import idempotency

    args = {"club_id": shop.club.id, "key": "doomed", "endpoint": "POST /x",
            "request_hash": "h" * 64}
    first = shop.db.sessionmaker()
    assert isinstance(idempotency.claim(first, **args), int)
    result = {}

    def repeat() -> None:
        with shop.db.sessionmaker() as second:
            result["answer"] = idempotency.claim(second, **args)
            second.commit()

    t = threading.Thread(target=repeat)
    t.start()
    t.join(0.5)
    first.rollback()
    first.close()
    t.join(30)
    assert isinstance(result["answer"], int)
    assert shop.count(IdempotencyKey) == 1
