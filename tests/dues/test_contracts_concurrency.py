"""Two at once: two cancellations of one contract, two contracts for one payer."""
import threading
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.billing import service as billing_service
from app.core.actors import Actor, Role
from app.core.db import transaction
from app.core.errors import DomainError
from app.dues import club_settings, contracts
from app.dues.models import Contract, Notice
from tests.dues.test_contracts import _payer, _plan, _sold


def _both(db, work) -> list:
    """Run `work(session)` in two threads at once, each in its own transaction; the outcomes."""
    barrier, outcomes = threading.Barrier(2), []

    def run():
        try:
            with transaction(db.sessionmaker) as s:
                barrier.wait()
                outcomes.append(work(s))
        except DomainError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes


@pytest.fixture
def desk(shop) -> Actor:
    return Actor(shop.desk.user_id, "desk", shop.club.id, Role.front_desk)


def test_two_cancellations_at_once_end_it_once(shop, db, desk):
    if not db.is_postgres:
        pytest.skip("row locks are a PostgreSQL matter (SQLite has one writer at a time)")
    sold = _sold(shop, shop.member(), _plan(shop)["id"])
    cid = sold["contract"]["id"]
    outcomes = _both(db, lambda s: contracts.cancel_contract(s, actor=desk,
                                                             contract_id=cid).ends_on)
    assert sorted(map(str, outcomes)) == sorted([sold["contract"]["term_end"],
                                                 "already_cancelled"])
    assert shop.count(Notice) == 1


def test_two_contracts_for_one_payer_at_once_get_one_discount(shop, db, desk):
    if not db.is_postgres:
        pytest.skip("row locks are a PostgreSQL matter (SQLite has one writer at a time)")
    r = shop.client.patch("/api/v1/dues/settings", json={"household_discount": "20"},
                          headers=shop.manager.headers)
    assert r.status_code == 200
    plan = _plan(shop)
    parent = _payer(shop, name="Pat Parent")
    kids = iter([shop.member(), shop.member()])
    lock = threading.Lock()

    def sell(s):
        with lock:
            member = next(kids)
        return billing_service.create_sale(s, actor=desk, member_id=member, lines=[{
            "kind": "contract", "plan_id": plan["id"], "payer_id": parent["id"],
            "payer_relation": "parent"}]).id

    outcomes = _both(db, sell)
    assert all(isinstance(o, int) for o in outcomes), outcomes
    prices = sorted(shop.scalars(select(Contract.price)))
    assert prices == [Decimal("39.20"), Decimal("49.00")]


def test_two_managers_saving_the_first_settings_at_once_both_land(shop, db):
    if not db.is_postgres:
        pytest.skip("row locks are a PostgreSQL matter (SQLite has one writer at a time)")
    changes = iter([{"prenotice_days": 7}, {"household_discount": Decimal(5)}])
    lock = threading.Lock()

    def save(s):
        with lock:
            change = next(changes)
        return club_settings.update_settings(s, club_id=shop.club.id, changes=change).club_id

    assert _both(db, save) == [shop.club.id, shop.club.id]
    body = shop.client.get("/api/v1/dues/settings", headers=shop.manager.headers).json()
    assert body["prenotice_days"] == 7 and Decimal(body["household_discount"]) == 5
