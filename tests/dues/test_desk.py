"""Paying invoices at the desk (part payments, too much, twice) and each desk's daily close-out."""
import threading
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from app.core import clock
from app.core.actors import Actor, Role
from app.core.db import transaction
from app.core.errors import Conflict
from app.dues import desk as desk_service
from app.dues import invoicing
from app.dues.models import Collection, CollectionBatch, DeskCloseout, DuesPayment
from tests.dues.sepa_world import SepaClub, read_pain

D = Decimal
BERLIN = ZoneInfo("Europe/Berlin")


def _pay(shop, invoice_id, staff=None, key=None, **body):
    headers = (staff or shop.desk).headers | ({"Idempotency-Key": key} if key else {})
    return shop.client.post(f"/api/v1/invoices/{invoice_id}/payments",
                            json={"method": "cash", "desk": "front"} | body, headers=headers)


def _invoice(shop, **fields):
    member = shop.member()
    return shop.world.failed_dues(shop.club, member, failed_on=clock.today(BERLIN)
                                  - timedelta(days=1), **fields)


def test_part_payments_add_up_and_more_than_is_open_is_refused(shop, session):
    invoice_id = _invoice(shop)
    first = _pay(shop, invoice_id, amount="20")
    assert first.status_code == 201, first.text
    assert (first.json()["open_after"], first.json()["desk"], first.json()["staff_id"]) == (
        "29.00", "front", shop.desk.user_id)
    too_much = _pay(shop, invoice_id, amount="29.01")
    assert too_much.status_code == 422 and too_much.json()["error"] == "amount_exceeds_open"
    assert "Only 29.00 is open" in too_much.json()["message"]
    rest = _pay(shop, invoice_id, amount="29.00", method="card_terminal")
    assert rest.status_code == 201 and rest.json()["open_after"] == "0.00"
    paid = _pay(shop, invoice_id, amount="1")
    assert paid.status_code == 409 and paid.json()["error"] == "invoice_paid"
    assert session.scalar(select(func.count()).select_from(DuesPayment).where(
        DuesPayment.invoice_id == invoice_id, DuesPayment.desk == "front")) == 2


def test_bad_amounts_methods_and_desks_are_422_and_write_nothing(shop, session):
    invoice_id = _invoice(shop)
    for body in ({"amount": "0"}, {"amount": "-5"}, {"amount": "1.234"}, {"amount": "abc"},
                 {"amount": "5", "method": "bitcoin"}, {"amount": "5", "desk": ""},
                 {"amount": "5", "desk": "x" * 41}, {"amount": "5", "club_id": 2}):
        r = _pay(shop, invoice_id, **body)
        assert r.status_code == 422, (body, r.text)
    assert session.scalar(select(func.count()).select_from(DuesPayment).where(
        DuesPayment.invoice_id == invoice_id, DuesPayment.desk.is_not(None))) == 0


def test_another_club_and_a_trainer_cannot_take_the_money(shop, world):
    invoice_id = _invoice(shop)
    other = world.club("Other Gym")
    assert _pay(shop, invoice_id, world.staff(other, Role.owner), amount="5").status_code == 404
    assert _pay(shop, invoice_id, world.staff(shop.club, Role.trainer),
                amount="5").status_code == 403
    assert _pay(shop, 10**9, amount="5").status_code == 404


def test_a_repeated_idempotency_key_pays_once(shop, session):
    invoice_id = _invoice(shop)
    first = _pay(shop, invoice_id, key="pay-1", amount="10")
    again = _pay(shop, invoice_id, key="pay-1", amount="10")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = _pay(shop, invoice_id, key="pay-1", amount="11")
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    assert session.scalar(select(func.count()).select_from(DuesPayment).where(
        DuesPayment.invoice_id == invoice_id, DuesPayment.desk.is_not(None))) == 1


def _preview(shop, staff=None, **params):
    return shop.client.get("/api/v1/desk/closeouts/preview", params=params,
                           headers=(staff or shop.desk).headers)


def _close(shop, staff=None, **body):
    return shop.client.post("/api/v1/desk/closeouts", json={"desk": "front"} | body,
                            headers=(staff or shop.desk).headers)


def test_a_desk_closes_its_day_once_with_takings_by_method(shop, world, session):
    back_desk = world.staff(shop.club, Role.front_desk)
    invoice_id = _invoice(shop)
    assert _pay(shop, invoice_id, amount="20").status_code == 201  # dues, cash, front
    assert _pay(shop, invoice_id, back_desk, amount="10",
                desk="back").status_code == 201  # dues, cash, back
    plan = shop.plan(price="49.50")
    shop.sold(shop.member(), plan["id"], payments=[{"method": "cash", "amount": "30"},
                                                   {"method": "card", "amount": "19.50"}])
    preview = _preview(shop, desk="front", opening_float="100", counted_cash="148")
    assert preview.status_code == 200, preview.text
    p = preview.json()
    assert p["takings"] == {"cash": "50.00", "card_terminal": "19.50", "transfer": "0.00"}
    assert (p["total"], p["expected_cash"], p["difference"], p["closed"]) == (
        "69.50", "150.00", "-2.00", None)

    closed = _close(shop, opening_float="100", counted_cash="148")
    assert closed.status_code == 201, closed.text
    c = closed.json()
    assert (c["takings"], c["expected_cash"], c["counted_cash"], c["difference"],
            c["closed_by"]) == (p["takings"], "150.00", "148.00", "-2.00", shop.desk.user_id)
    twice = _close(shop, opening_float="100", counted_cash="150")
    assert twice.status_code == 409 and twice.json()["error"] == "desk_closed"
    assert twice.json()["details"]["closeout"]["id"] == str(c["id"])
    assert twice.json()["details"]["closeout"]["difference"] == "-2.00"
    assert _preview(shop, desk="front").json()["closed"]["id"] == c["id"]

    # the back desk: its own dues money; the front desk's sale is not counted twice
    back = _close(shop, back_desk, desk="back", opening_float="50", counted_cash="60")
    assert back.status_code == 201
    assert back.json()["takings"]["cash"] == "10.00" and back.json()["difference"] == "0.00"
    listed = shop.client.get("/api/v1/desk/closeouts", headers=shop.manager.headers).json()
    assert sorted(x["desk"] for x in listed) == ["back", "front"]
    assert session.scalar(select(func.count()).select_from(DeskCloseout)) == 2


def test_close_out_input_is_checked_and_another_club_sees_none(shop, world):
    tomorrow = (clock.today(BERLIN) + timedelta(days=1)).isoformat()
    assert _close(shop, business_day=tomorrow, opening_float="0",
                  counted_cash="0").status_code == 422
    assert _close(shop, business_day="0001-01-01", opening_float="0",
                  counted_cash="0").status_code == 422
    assert _preview(shop, business_day="1999-12-31").status_code == 422
    assert _close(shop, opening_float="-1", counted_cash="0").status_code == 422
    assert _close(shop, opening_float="0").status_code == 422
    assert _preview(shop, desk="a/b").status_code == 422
    assert _close(shop, opening_float="0", counted_cash="0").status_code == 201
    stranger = world.staff(world.club("Other Gym"), Role.owner)
    assert shop.client.get("/api/v1/desk/closeouts", headers=stranger.headers).json() == []
    assert _preview(shop, stranger, desk="front").json()["closed"] is None
    trainer = world.staff(shop.club, Role.trainer)
    assert _preview(shop, trainer).status_code == 403


@pytest.mark.postgres_only
def test_two_desks_paying_the_whole_invoice_at_once_take_the_money_once(db, shop, session):
    """The invoice row is locked while its open amount is read: the second payment waits and
    then finds the invoice paid."""
    invoice_id = _invoice(shop)
    actors = [Actor(user_id=s.user_id, name="desk", club_id=shop.club.id, role=Role.front_desk)
              for s in (shop.desk, shop.manager)]
    barrier, outcomes = threading.Barrier(2), []

    def pay(actor, desk):
        try:
            with transaction(db.sessionmaker) as s:
                barrier.wait()
                desk_service.pay_invoice(s, actor=actor, invoice_id=invoice_id,
                                         amount=D("49.00"), method="cash", desk=desk)
            outcomes.append("paid")
        except Conflict as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=pay, args=(a, d)) for a, d in zip(actors, ("a", "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["invoice_paid", "paid"]
    assert session.scalar(select(func.sum(DuesPayment.amount)).where(
        DuesPayment.invoice_id == invoice_id, DuesPayment.desk.is_not(None))) == D("49.00")


# --- a payment at the desk and the collections planned for the invoice -------------------------

def _card_charge_planned(sc: SepaClub, debtor, due_on, amount: str) -> int:
    """A planned card collection as the billing run leaves it (card invoices are charged by the
    card run, which takes planned collections only)."""
    with transaction(sc.world.db.sessionmaker) as s:
        invoice = invoicing.issue_invoice(
            s, club_id=sc.club.id, payer_id=debtor.payer_id, issued_on=due_on, due_on=due_on,
            method="card", lines=[invoicing.LineIn(charge_key=f"dues:card:{due_on}",
                                                   kind="dues", description="Monthly dues",
                                                   gross=D(amount))])
        row = Collection(club_id=sc.club.id, invoice_id=invoice.id, payer_id=debtor.payer_id,
                         attempt=1, method="card", amount=D(amount), due_on=due_on,
                         status="planned")
        s.add(row)
        s.flush()
        return row.id


def test_an_invoice_paid_in_full_at_the_desk_is_not_debited_by_the_next_file(client, world):
    sc = SepaClub(client, world)
    day = sc.today + timedelta(days=5)
    debtor = sc.debtor("Anna Berg")
    debit = sc.add_debit(debtor, day, "49.90")
    card = _card_charge_planned(sc, debtor, day, "19.90")
    for collection_id, amount in ((debit, "49.90"), (card, "19.90")):
        paid = sc.api("POST", f"/invoices/{sc.collection(collection_id).invoice_id}/payments",
                      staff=sc.desk, json={"amount": amount, "method": "cash", "desk": "front"})
        assert paid.status_code == 201 and paid.json()["open_after"] == "0.00"
        assert sc.collection(collection_id).status == "cancelled"

    due = sc.api("GET", "/sepa/due", params={"date": day.isoformat()}).json()
    assert (due["count"], due["total"], due["blocked"]) == (0, "0.00", [])
    r = sc.prepare(day)
    assert (r.status_code, r.json()["error"]) == (422, "nothing_due")
    with sc.world.db.sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(CollectionBatch)) == 0


def test_a_part_payment_at_the_desk_leaves_only_the_rest_to_debit(client, world):
    sc = SepaClub(client, world)
    day = sc.today + timedelta(days=5)
    debtor = sc.debtor("Ben Hill")
    debit = sc.add_debit(debtor, day, "49.90")
    card = _card_charge_planned(sc, debtor, day, "19.90")
    invoice_id = sc.collection(debit).invoice_id
    paid = sc.api("POST", f"/invoices/{invoice_id}/payments", staff=sc.desk,
                  json={"amount": "20.00", "method": "card_terminal", "desk": "front"})
    assert paid.status_code == 201 and paid.json()["open_after"] == "29.90"
    assert (sc.collection(debit).status, sc.collection(debit).amount) == ("planned", D("29.90"))
    sc.api("POST", f"/invoices/{sc.collection(card).invoice_id}/payments", staff=sc.desk,
           json={"amount": "4.90", "method": "cash", "desk": "front"})
    assert (sc.collection(card).status, sc.collection(card).amount) == ("planned", D("15.00"))

    due = sc.api("GET", "/sepa/due", params={"date": day.isoformat()}).json()
    assert [(i["collection_id"], i["amount"]) for i in due["items"]] == [(debit, "29.90")]
    batch = sc.prepare(day).json()
    assert (batch["count"], batch["total"]) == (1, "29.90")
    pain = read_pain(sc.file(batch["id"]).content)
    assert [d["amount"] for d in pain["debits"].values()] == [D("29.90")]
    assert sc.api("POST", f"/sepa/batches/{batch['id']}/submitted").status_code == 200
    invoice = sc.api("GET", f"/invoices/{invoice_id}", staff=sc.desk).json()
    assert (invoice["paid"], invoice["open"]) == ("49.90", "0.00")


def test_the_desk_refuses_money_for_a_debit_already_in_the_file(client, world):
    """Anna comes to the desk to pay while her debit sits in the file the manager downloaded:
    the desk is told so, and takes the money only once the debit comes back."""
    sc = SepaClub(client, world)
    day = sc.today + timedelta(days=5)
    debit = sc.add_debit(sc.debtor("Anna Berg"), day, "49.90")
    invoice_id = sc.collection(debit).invoice_id
    assert sc.prepare(day).status_code == 201
    assert sc.collection(debit).status == "in_file"

    r = sc.api("POST", f"/invoices/{invoice_id}/payments", staff=sc.desk,
               json={"amount": "49.90", "method": "cash", "desk": "front"})
    assert r.status_code == 409 and r.json()["error"] == "collection_under_way"
    assert "in the collection file" in r.json()["message"]
    with sc.world.db.sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(DuesPayment)) == 0
