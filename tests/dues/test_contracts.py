"""Contracts: selling a recurring membership, payers, cancellation end dates, the confirmation
email, freezes, the member's dues panel, other clubs and bad input."""
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.billing.models import Sale
from app.core.actors import Role
from app.core.config import Settings
from app.core.i18n import day
from app.dues import notices
from app.dues.contracts import cancel_end
from app.dues.models import Contract, DuesPayment, Invoice, Mandate, Notice, Payer
from app.memberships.models import Membership
from app.memberships.rules import add_months
from tests.builders import money
from tests.retention.servers import SmtpServer, free_port

RECURRING = {"name": "Flex 12", "price": "49.00", "billing": "recurring",
             "billing_period": "month", "minimum_months": 12, "notice_value": 1,
             "notice_unit": "months", "renewal": "monthly", "joining_fee": "29.00",
             "freeze_days": 30}


def _plan(shop, **fields) -> dict:
    body = RECURRING | fields
    body.pop("duration_months", None)
    r = shop.client.post("/api/v1/plans", json=body, headers=shop.manager.headers)
    assert r.status_code == 201, r.text
    return r.json()


def _sell(shop, member, plan_id, staff=None, **line):
    return shop.client.post("/api/v1/sales", json={
        "member_id": member, "lines": [{"kind": "contract", "plan_id": plan_id} | line]},
        headers=(staff or shop.desk).headers)


def _sold(shop, member, plan_id, **line) -> dict:
    r = _sell(shop, member, plan_id, **line)
    assert r.status_code == 201, r.text
    [sale_line] = r.json()["lines"]
    contract = shop.client.get(f"/api/v1/contracts/{sale_line['item_id']}",
                               headers=shop.desk.headers)
    assert contract.status_code == 200, contract.text
    return {"sale": r.json(), "line": sale_line, "contract": contract.json()}


def _payer(shop, **body) -> dict:
    r = shop.client.post("/api/v1/payers", json=body, headers=shop.desk.headers)
    assert r.status_code == 201, r.text
    return r.json()


def _counts(shop) -> tuple:
    return (shop.count(Contract), shop.count(Membership), shop.count(Sale), shop.count(Payer))


# ----------------------------------------------------------------------------- selling

def test_selling_a_contract_snapshots_the_terms_and_puts_zero_on_the_receipt(shop):
    plan = _plan(shop)
    member = shop.member()
    sold = _sold(shop, member, plan["id"], method="desk")
    today = shop.today
    contract = sold["contract"]
    assert money(sold["sale"]["total"]) == 0 and money(sold["line"]["amount"]) == 0
    assert "49.00 per month" in sold["line"]["description"]
    assert "minimum 12 months" in sold["line"]["description"]
    assert "joining fee 29.00" in sold["line"]["description"]
    minimum_end = add_months(today, 12) - timedelta(days=1)
    assert {k: contract[k] for k in (
        "period", "minimum_months", "notice_value", "notice_unit", "renewal", "method",
        "payer_relation")} == {"period": "month", "minimum_months": 12, "notice_value": 1,
                               "notice_unit": "months", "renewal": "monthly", "method": "desk",
                               "payer_relation": "self"}
    assert money(contract["price"]) == money("49.00")
    assert money(contract["joining_fee"]) == money("29.00")
    assert contract["starts_on"] == contract["next_due"] == today.isoformat()
    assert contract["term_end"] == minimum_end.isoformat()
    membership = shop.get_membership(contract["membership_id"])
    assert membership["end_date"] == minimum_end.isoformat()
    assert membership["status"] == "active"
    payer = shop.client.get(f"/api/v1/payers/{contract['payer_id']}",
                            headers=shop.desk.headers).json()
    assert payer["member_id"] == member
    assert payer["name"] == f"{member.first_name} {member.last_name}"

    # a later price change of the plan does not touch the contract as sold
    r = shop.client.patch(f"/api/v1/plans/{plan['id']}", json={"price": "59.00", "minimum_months": 6},
                          headers=shop.manager.headers)
    assert r.status_code == 200, r.text
    again = shop.client.get(f"/api/v1/contracts/{contract['id']}", headers=shop.desk.headers)
    assert money(again.json()["price"]) == money("49.00")
    assert again.json()["minimum_months"] == 12


def test_a_second_member_of_one_payer_gets_the_household_discount(shop):
    r = shop.client.patch("/api/v1/dues/settings", json={"household_discount": "10"},
                          headers=shop.manager.headers)
    assert r.status_code == 200, r.text
    plan = _plan(shop)
    parent = _payer(shop, name="Pat Parent", email="pat@example.org")
    kids = [shop.member(), shop.member()]
    first = _sold(shop, kids[0], plan["id"], payer_id=parent["id"], payer_relation="parent")
    second = _sold(shop, kids[1], plan["id"], payer_id=parent["id"], payer_relation="parent")
    assert money(first["contract"]["price"]) == money("49.00")
    assert money(second["contract"]["price"]) == money("44.10")
    assert first["contract"]["payer_id"] == second["contract"]["payer_id"] == parent["id"]


def test_a_minor_needs_a_parent_or_guardian_who_pays_and_a_refusal_writes_nothing(shop):
    plan = _plan(shop)
    minor = shop.member(birth_date=shop.today.replace(year=shop.today.year - 15))
    before = _counts(shop)
    r = _sell(shop, minor, plan["id"])
    assert r.status_code == 422 and r.json()["error"] == "minor_needs_guardian"
    partner = _payer(shop, name="Sam Partner")
    r = _sell(shop, minor, plan["id"], payer_id=partner["id"], payer_relation="partner")
    assert r.status_code == 422 and r.json()["error"] == "minor_needs_guardian"
    assert _counts(shop) == (before[0], before[1], before[2], before[3] + 1)
    guardian = _payer(shop, name="Gail Guardian")
    sold = _sold(shop, minor, plan["id"], payer_id=guardian["id"], payer_relation="guardian")
    assert sold["contract"]["payer_relation"] == "guardian"


@pytest.mark.parametrize("line, code", [
    ({"payer_relation": "parent"}, "payer_relation_invalid"),
    ({"method": "desk", "mandate_id": 1}, "mandate_needs_sepa"),
    ({"method": "card", "card_id": 99}, "card_not_payers"),
    ({"method": "cheque"}, "validation_error"),
    ({"start_date": "1999-01-01"}, "validation_error"),
    ({"plan_id": 0}, "validation_error"),
])
def test_bad_contract_lines_are_422_and_write_nothing(shop, line, code):
    plan = _plan(shop)
    member = shop.member()
    before = _counts(shop)
    line = dict(line)  # the parameters are shared by both backends' runs
    r = _sell(shop, member, line.pop("plan_id", plan["id"]), **line)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == code
    assert _counts(shop) == before


def test_a_prepaid_plan_is_no_contract_and_a_recurring_plan_no_membership(shop):
    prepaid = shop.plan()
    recurring = _plan(shop)
    member = shop.member()
    r = _sell(shop, member, prepaid["id"])
    assert r.status_code == 422 and r.json()["error"] == "plan_not_recurring"
    r = shop.sell(member, recurring["id"])
    assert r.status_code == 422 and r.json()["error"] == "plan_recurring"
    assert shop.count(Membership) == 0


def test_another_payers_mandate_is_refused_and_its_own_is_taken(shop):
    plan = _plan(shop)
    member = shop.member()
    own = _payer(shop, member_id=member)
    other = _payer(shop, name="Someone Else")
    with shop.db.sessionmaker.begin() as s:
        mandates = [Mandate(club_id=shop.club.id, payer_id=p["id"], reference=f"M-{p['id']}",
                            account_holder=p["name"], iban="DE89370400440532013000",
                            signed_on=shop.today) for p in (own, other)]
        s.add_all(mandates)
        s.flush()
        own_mandate, other_mandate = (m.id for m in mandates)
    r = _sell(shop, member, plan["id"], method="sepa", mandate_id=other_mandate)
    assert r.status_code == 422 and r.json()["error"] == "mandate_not_payers"
    sold = _sold(shop, member, plan["id"], method="sepa", mandate_id=own_mandate)
    assert sold["contract"]["payer_id"] == own["id"]
    panel = shop.client.get(f"/api/v1/members/{member}/dues", headers=shop.desk.headers).json()
    [entry] = panel["contracts"]
    assert entry["mandate"]["iban"] == "DE89 **** 3000"
    assert entry["payer"]["id"] == own["id"]
    assert entry["next_charge_on"] == shop.today.isoformat()
    assert money(entry["next_charge_amount"]) == money("78.00")  # 49.00 + the joining fee

    # pay at the desk instead, then by the other payer's mandate: refused
    url = f"/api/v1/contracts/{sold['contract']['id']}/payment"
    r = shop.client.patch(url, json={"method": "desk"}, headers=shop.desk.headers)
    assert r.status_code == 200 and r.json()["mandate_id"] is None
    r = shop.client.patch(url, json={"method": "sepa", "mandate_id": other_mandate},
                          headers=shop.desk.headers)
    assert r.status_code == 422 and r.json()["error"] == "mandate_not_payers"


def test_the_dues_panel_shows_open_invoices_with_what_is_still_open(shop):
    plan = _plan(shop)
    member = shop.member()
    sold = _sold(shop, member, plan["id"], method="desk")
    payer_id = sold["contract"]["payer_id"]
    now = shop.scalar(select(Sale.created_at))
    with shop.db.sessionmaker.begin() as s:
        invoices = [Invoice(club_id=shop.club.id, payer_id=payer_id, number=f"2026-{n}",
                            issued_on=shop.today, due_on=shop.today, method="desk",
                            net=Decimal(gross), tax=Decimal("0.00"), gross=Decimal(gross),
                            created_at=now) for n, gross in ((1, "78.00"), (2, "49.00"))]
        s.add_all(invoices)
        s.flush()
        s.add_all([DuesPayment(club_id=shop.club.id, invoice_id=invoices[0].id,
                               payer_id=payer_id, method="cash", amount=Decimal("30.00"),
                               occurred_on=shop.today, created_at=now),
                   DuesPayment(club_id=shop.club.id, invoice_id=invoices[1].id,
                               payer_id=payer_id, method="sepa", amount=Decimal("49.00"),
                               occurred_on=shop.today, created_at=now)])
    panel = shop.client.get(f"/api/v1/members/{member}/dues", headers=shop.desk.headers)
    assert panel.status_code == 200, panel.text
    body = panel.json()
    assert [(i["number"], money(i["open"])) for i in body["open_invoices"]] == [
        ("2026-1", money("48.00"))]
    assert (money(body["invoiced"]), money(body["paid"]), money(body["open"])) == (
        money("78.00"), money("30.00"), money("48.00"))


# ----------------------------------------------------------------------------- cancelling

def _contract(starts_on, period="month", minimum=12, notice=(1, "months"), renewal="monthly",
              renewal_months=1, term_end=None) -> Contract:
    from app.dues.contracts import first_term_end

    return Contract(starts_on=starts_on, period=period, minimum_months=minimum,
                    notice_value=notice[0], notice_unit=notice[1], renewal=renewal,
                    renewal_months=renewal_months,
                    term_end=term_end or first_term_end(starts_on, period, minimum))


D = date
CASES = [
    # inside the minimum term: it ends with the minimum term
    ("inside minimum", _contract(D(2026, 1, 15)), D(2026, 3, 10), D(2027, 1, 14)),
    # the notice runs past the minimum term, monthly after it: the end of that period
    ("notice past minimum", _contract(D(2026, 1, 15), notice=(3, "months")),
     D(2026, 12, 1), D(2027, 3, 14)),
    ("after minimum, monthly", _contract(D(2026, 1, 15)), D(2027, 5, 20), D(2027, 7, 14)),
    # renewing for 12 months: exactly in time, and one day late
    ("term, just in time", _contract(D(2026, 1, 15), notice=(3, "months"), renewal="term",
                                     renewal_months=12), D(2026, 10, 15), D(2027, 1, 14)),
    ("term, a day late", _contract(D(2026, 1, 15), notice=(3, "months"), renewal="term",
                                   renewal_months=12), D(2026, 10, 16), D(2028, 1, 14)),
    # 4-week periods
    ("4 weeks, no minimum", _contract(D(2026, 1, 5), period="4weeks", minimum=0,
                                      notice=(2, "weeks")), D(2026, 3, 10), D(2026, 3, 29)),
    ("4 weeks after 6 months", _contract(D(2026, 1, 5), period="4weeks", minimum=6,
                                         notice=(4, "weeks")), D(2026, 6, 20), D(2026, 7, 19)),
    # month-end days: a contract from 31 January
    ("31 Jan, no minimum", _contract(D(2026, 1, 31), minimum=0), D(2026, 2, 15), D(2026, 3, 30)),
    ("31 Jan, minimum end", _contract(D(2026, 1, 31)), D(2026, 12, 31), D(2027, 1, 30)),
    ("31 Jan, a day later", _contract(D(2026, 1, 31)), D(2027, 1, 1), D(2027, 2, 27)),
    ("29 Feb, yearly", _contract(D(2028, 2, 29), period="year", notice=(3, "months"),
                                 renewal="term", renewal_months=12), D(2028, 12, 15),
     D(2030, 2, 27)),
    ("14 days notice", _contract(D(2026, 1, 15), minimum=0, notice=(14, "days")),
     D(2026, 4, 1), D(2026, 4, 14)),
    # a freeze moved the term's end by 14 days
    ("frozen term", _contract(D(2026, 1, 15), term_end=D(2027, 1, 28)), D(2026, 3, 10),
     D(2027, 1, 28)),
]


@pytest.mark.parametrize("name, contract, received, expected", CASES,
                         ids=[c[0] for c in CASES])
def test_cancellation_end_dates(name, contract, received, expected):
    assert cancel_end(contract, received) == expected


def _mail_settings(db, port: int) -> Settings:
    return Settings(database_url=db.url, scheduler_enabled=False, _env_file=None,
                    smtp_host="127.0.0.1", smtp_port=port, smtp_timeout=5)


def test_a_cancellation_ends_the_membership_and_the_confirmation_arrives(shop, db):
    plan = _plan(shop)
    member = shop.member(email="kid@example.org")
    parent = _payer(shop, name="Pat Parent", email="pat@example.org")
    sold = _sold(shop, member, plan["id"], payer_id=parent["id"], payer_relation="parent")
    contract_id = sold["contract"]["id"]
    url = f"/api/v1/contracts/{contract_id}/cancel"
    r = shop.client.post(url, json={"channel": "letter"}, headers=shop.desk.headers)
    assert r.status_code == 200, r.text
    expected_end = add_months(shop.today, 12) - timedelta(days=1)
    assert r.json()["ends_on"] == expected_end.isoformat()
    assert r.json()["cancel_received_on"] == shop.today.isoformat()
    assert r.json()["cancel_channel"] == "letter" and r.json()["cancelled_by"] == shop.desk.user_id
    assert shop.get_membership(sold["contract"]["membership_id"])["end_date"] == \
        expected_end.isoformat()

    again = shop.client.post(url, json={}, headers=shop.desk.headers)
    assert again.status_code == 409 and again.json()["error"] == "already_cancelled"
    assert again.json()["details"]["ends_on"] == expected_end.isoformat()
    assert shop.count(Notice) == 2

    with SmtpServer() as smtp:
        with db.sessionmaker.begin() as s:
            assert notices.send_pending(s, settings=_mail_settings(db, smtp.port)) == 2
        received = {tuple(rcpts): msg for _, rcpts, msg in smtp.messages}
    assert set(received) == {("pat@example.org",), ("kid@example.org",)}
    for msg in received.values():  # in the club's member language (English by default)
        assert msg["Subject"].endswith(f"your membership ends on {day('en', expected_end)}")
        assert f"The contract ends on {day('en', expected_end)}" in msg.get_content()
    with db.sessionmaker.begin() as s:
        assert notices.send_pending(s, settings=_mail_settings(db, free_port())) == 0
    assert shop.count(Notice, Notice.sent_at.is_(None)) == 0


def test_a_withdrawn_cancellation_restores_the_term(shop):
    plan = _plan(shop, minimum_months=0, notice_value=6, notice_unit="weeks")
    member = shop.member()
    sold = _sold(shop, member, plan["id"])
    cid = sold["contract"]["id"]
    r = shop.client.post(f"/api/v1/contracts/{cid}/cancel", json={}, headers=shop.desk.headers)
    assert r.status_code == 200, r.text
    # six weeks' notice run past the first month: the second period's end
    assert r.json()["ends_on"] > sold["contract"]["term_end"]
    r = shop.client.post(f"/api/v1/contracts/{cid}/withdraw-cancellation",
                         headers=shop.desk.headers)
    assert r.status_code == 200 and r.json()["ends_on"] is None
    assert shop.get_membership(sold["contract"]["membership_id"])["end_date"] == \
        sold["contract"]["term_end"]
    r = shop.client.post(f"/api/v1/contracts/{cid}/withdraw-cancellation",
                         headers=shop.desk.headers)
    assert r.status_code == 409 and r.json()["error"] == "not_cancelled"


def test_a_cancellation_received_tomorrow_is_refused(shop):
    plan = _plan(shop)
    sold = _sold(shop, shop.member(), plan["id"])
    r = shop.client.post(f"/api/v1/contracts/{sold['contract']['id']}/cancel",
                         json={"received_on": shop.day(1).isoformat()}, headers=shop.desk.headers)
    assert r.status_code == 422 and r.json()["error"] == "received_in_future"
    assert shop.count(Contract, Contract.ends_on.is_not(None)) == 0


def test_a_freeze_moves_the_contracts_term_with_the_membership(shop):
    plan = _plan(shop)
    sold = _sold(shop, shop.member(), plan["id"])
    contract = sold["contract"]
    r = shop.client.post(f"/api/v1/memberships/{contract['membership_id']}/freezes",
                         json={"start_date": shop.day(10).isoformat(),
                               "end_date": shop.day(23).isoformat()},
                         headers=shop.desk.headers)
    assert r.status_code == 201, r.text
    moved = (date.fromisoformat(contract["term_end"]) + timedelta(days=14)).isoformat()
    assert r.json()["membership"]["end_date"] == moved
    after = shop.client.get(f"/api/v1/contracts/{contract['id']}", headers=shop.desk.headers)
    assert after.json()["term_end"] == moved
    # a cancellation inside the (moved) term ends on the moved day
    r = shop.client.post(f"/api/v1/contracts/{contract['id']}/cancel", json={},
                         headers=shop.desk.headers)
    assert r.json()["ends_on"] == moved


# ----------------------------------------------------------------------------- other clubs, roles

def test_another_clubs_contract_payer_and_member_are_not_found(shop, world):
    plan = _plan(shop)
    member = shop.member()
    sold = _sold(shop, member, plan["id"])
    other = world.club("Hilltop Gym")
    stranger = world.staff(other, Role.manager)
    cid, pid = sold["contract"]["id"], sold["contract"]["payer_id"]
    for method, url, body in (
            ("get", f"/api/v1/contracts/{cid}", None),
            ("post", f"/api/v1/contracts/{cid}/cancel", {}),
            ("patch", f"/api/v1/contracts/{cid}/payment", {"method": "desk"}),
            ("get", f"/api/v1/payers/{pid}", None),
            ("patch", f"/api/v1/payers/{pid}", {"name": "Mine Now"}),
            ("get", f"/api/v1/members/{member}/dues", None)):
        kwargs = {"json": body} if body is not None else {}
        r = getattr(shop.client, method)(url, headers=stranger.headers, **kwargs)
        assert r.status_code == 404, (url, r.text)
    # nor can another club's plan or payer be used in a sale
    their_payer = shop.client.post("/api/v1/payers", json={"name": "Theirs"},
                                   headers=stranger.headers).json()
    r = _sell(shop, member, plan["id"], payer_id=their_payer["id"], payer_relation="other",
              start_date=shop.day(400).isoformat())
    assert r.status_code == 404 and r.json()["error"] == "payer_not_found"
    assert shop.client.get(f"/api/v1/contracts/{cid}", headers=shop.desk.headers).json()[
        "ends_on"] is None


def test_dues_settings_are_for_managers_and_owners_and_never_show_secrets(shop, world):
    trainer = world.staff(shop.club, Role.trainer)
    owner = world.staff(shop.club, Role.owner)
    for staff in (trainer, shop.desk):
        assert shop.client.get("/api/v1/dues/settings", headers=staff.headers).status_code == 403
        r = shop.client.patch("/api/v1/dues/settings", json={"household_discount": "50"},
                              headers=staff.headers)
        assert r.status_code == 403
    r = shop.client.patch("/api/v1/dues/settings", json={
        "stripe_secret_key": "sk_test_123", "creditor_id": "de98 zzz 09999999999",
        "invoice_number_format": "FC-{year}-{seq:06d}"}, headers=shop.manager.headers)
    assert r.status_code == 200, r.text
    body = shop.client.get("/api/v1/dues/settings", headers=owner.headers).json()
    assert body["stripe_secret_key_set"] is True and body["stripe_webhook_secret_set"] is False
    assert "sk_test_123" not in str(body) and "stripe_secret_key" not in body
    assert body["creditor_id"] == "DE98ZZZ09999999999"
    assert body["invoice_number_format"] == "FC-{year}-{seq:06d}"
    for bad, code in (({"invoice_number_format": "FC-{year}"}, "invoice_format_invalid"),
                      ({"invoice_number_format": "FC-{seq}-{month}"}, "invoice_format_invalid"),
                      ({"invoice_number_format": "FC-{seq[0]}"}, "invoice_format_invalid"),
                      ({"invoice_number_format": "{seq:>999999999}"}, "invoice_format_invalid"),
                      ({"creditor_id": "12345"}, "creditor_id_invalid"),
                      ({"household_discount": "101"}, "validation_error"),
                      ({"prenotice_days": None}, "setting_required")):
        r = shop.client.patch("/api/v1/dues/settings", json=bad, headers=shop.manager.headers)
        assert r.status_code == 422 and r.json()["error"] == code, (bad, r.text)
    after = shop.client.get("/api/v1/dues/settings", headers=shop.manager.headers).json()
    assert after == body


def test_the_desk_manages_payers(shop):
    member = shop.member(email="own@example.org")
    own = _payer(shop, member_id=member)
    assert own["email"] == "own@example.org" and own["member_id"] == member
    r = shop.client.post("/api/v1/payers", json={"email": "x@example.org"},
                         headers=shop.desk.headers)
    assert r.status_code == 422 and r.json()["error"] == "payer_name_required"
    r = shop.client.post("/api/v1/payers", json={"name": "Bad", "email": "not-an-email"},
                         headers=shop.desk.headers)
    assert r.status_code == 422
    parent = _payer(shop, name="Pat Parent")
    r = shop.client.patch(f"/api/v1/payers/{parent['id']}", json={"phone": "+49 30 1234"},
                          headers=shop.desk.headers)
    assert r.status_code == 200 and r.json()["phone"] == "+49 30 1234"
    listed = shop.client.get("/api/v1/payers", params={"q": "pat"}, headers=shop.desk.headers)
    assert [p["id"] for p in listed.json()["items"]] == [parent["id"]]
    assert shop.client.delete(f"/api/v1/payers/{parent['id']}",
                              headers=shop.desk.headers).status_code == 204
    trainer = shop.world.staff(shop.club, Role.trainer)
    assert shop.client.get("/api/v1/payers", headers=trainer.headers).status_code == 403


def test_a_membership_cancelled_outright_ends_its_contract_the_day_before(shop):
    plan = _plan(shop)
    sold = _sold(shop, shop.member(), plan["id"])
    contract = sold["contract"]
    effective = shop.day(20)
    r = shop.client.post(f"/api/v1/memberships/{contract['membership_id']}/cancel",
                         json={"reason": "moved_away", "effective_on": effective.isoformat()},
                         headers=shop.manager.headers)
    assert r.status_code == 200, r.text
    after = shop.client.get(f"/api/v1/contracts/{contract['id']}", headers=shop.desk.headers)
    assert after.json()["ends_on"] == (effective - timedelta(days=1)).isoformat()
    r = shop.client.post(f"/api/v1/contracts/{contract['id']}/cancel", json={},
                         headers=shop.desk.headers)
    assert r.status_code == 409 and r.json()["error"] == "already_cancelled"
