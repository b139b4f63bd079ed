"""Recurring dues against a hostile user: another club's ids, lower roles, bad input, two at once.

Each test starts where an attacker (or a careless colleague) would and checks the concrete
outcome: the answer (404 for another club's rows, 403 for a lower role, a 4xx in words for bad
input, never a 500) and that nothing was written.
"""
import threading
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.core import clock
from app.core.actors import Actor, Role
from app.core.db import transaction
from app.core.errors import DomainError
from app.dues import desk as desk_service
from app.dues import dunning, invoicing, sepa
from app.dues.invoicing import LineIn
from app.dues.models import (
    Collection,
    DuesPayment,
    DuesSettings,
    DunningCase,
    Mandate,
    Payer,
    ProviderEvent,
    StoredCard,
)
from app.registry import metadata
from tests.dues.sepa_world import Debtor, SepaClub
from tests.dues.stripe_standin import event_body, sign
from tests.dues.test_contracts import RECURRING, _plan, _sold
from tests.web.conftest import csrf_of, sign_in

WH = "whsec_riverside"


@pytest.fixture
def sc(client, world) -> SepaClub:
    return SepaClub(client, world, return_fee=Decimal("3.50"))


def _count(db, model, **equal) -> int:
    with db.sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(model).filter_by(**equal))


def _club_rows(db, club_id: int) -> dict:
    """Every row of the dues tables that belongs to the club, column by column."""
    out = {}
    with db.sessionmaker() as s:
        for name, table in sorted(metadata.tables.items()):
            if name.startswith("dues_") and "club_id" in table.c:
                out[name] = sorted(tuple(map(str, row)) for row in s.execute(
                    select(table).where(table.c.club_id == club_id)))
    return out


def _camt(e2e: str, amount: str = "49.90", booked: str = "2027-03-10",
          charges: str = "3.00") -> bytes:
    """A camt.054 with one returned debit."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.02">
 <BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>N-1</MsgId><CreDtTm>2027-03-10T06:00:00</CreDtTm></GrpHdr>
  <Ntfctn><Id>N-1-1</Id>
   <Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>DBIT</CdtDbtInd><RvslInd>true</RvslInd>
    <Sts>BOOK</Sts><BookgDt><Dt>{booked}</Dt></BookgDt>
    <NtryDtls><TxDtls><Refs><EndToEndId>{e2e}</EndToEndId></Refs>
     <AmtDtls><InstdAmt><Amt Ccy="EUR">{amount}</Amt></InstdAmt></AmtDtls>
     <Chrgs><Amt Ccy="EUR">{charges}</Amt></Chrgs>
     <RtrInf><Rsn><Cd>AM04</Cd></Rsn></RtrInf>
    </TxDtls></NtryDtls></Ntry>
  </Ntfctn></BkToCstmrDbtCdtNtfctn></Document>""".encode()


def _csv(e2e: str, amount: str = "49.90", day: str = "2027-03-10", fee: str = "") -> bytes:
    return f"end_to_end_id,amount,reason_code,date,fee\n{e2e},{amount},AM04,{day},{fee}\n".encode()


LAUGHS = (  # "billion laughs": 1 GB of "a" from entities of ten references each
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">'.encode()
               for n in range(8))
    + b']><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.02">'
      b"<BkToCstmrDbtCdtNtfctn><Ntfctn><Id>&i;</Id></Ntfctn></BkToCstmrDbtCdtNtfctn></Document>")


# --- another club -----------------------------------------------------------------------------------

@dataclass
class ClubA:
    """Riverside's dues, one of each: a payer with a mandate and a card, a contract paid by the
    mandate, an invoice whose debit is in a collection file, a dunning case, a close-out."""

    shop: object
    sc: SepaClub
    member: int
    payer: int
    mandate: int
    card: int
    contract: int
    invoice: int
    collection: Collection
    batch: int
    case: int
    day: date


ONE_OF_EACH = ("payers", "mandates", "cards", "contracts", "invoices", "invoice_lines",
               "collections", "batches", "payments", "dunning_cases", "desk_closeouts")


@pytest.fixture
def club_a(shop, client, world, db) -> ClubA:
    sc = SepaClub(client, world, club=shop.club)
    plan = _plan(shop)
    member = shop.member()
    payer = shop.client.post("/api/v1/payers", json={"member_id": member},
                             headers=shop.desk.headers).json()["id"]
    mandate = sc.take_mandate(payer)["id"]
    contract = _sold(shop, member, plan["id"], method="sepa", mandate_id=mandate)["contract"]
    day = sc.today + timedelta(days=5)
    collection = sc.collection(sc.add_debit(Debtor(payer, mandate, "Anna Berg"), day))
    batch = sc.prepare(day)
    assert batch.status_code == 201, batch.text
    with transaction(db.sessionmaker) as s:
        card = StoredCard(club_id=shop.club.id, payer_id=payer, setup_ref="cs_test_riverside",
                          customer_ref="cus_riverside", method_ref="pm_riverside", brand="visa",
                          last4="4242", exp_month=12, exp_year=2030)
        s.add(card)
        s.flush()
        card_id = card.id
    world.failed_dues(shop.club, shop.member(), failed_on=sc.today - timedelta(days=1))
    with transaction(db.sessionmaker) as s:
        dunning.advance_dunning(s, club_id=shop.club.id, day=sc.today)
        case = s.scalar(select(DunningCase.id))
    closed = shop.client.post("/api/v1/desk/closeouts", json={
        "desk": "main", "opening_float": "100.00", "counted_cash": "100.00"},
        headers=shop.desk.headers)
    assert closed.status_code == 201, closed.text
    return ClubA(shop, sc, member, payer, mandate, card_id, contract["id"],
                 collection.invoice_id, collection, batch.json()["id"], case, day)


def test_another_clubs_staff_reach_nothing_of_the_clubs_dues(club_a, client, world, db):
    """Hilltop's owner, with Riverside's ids in the path: 404, exactly as for an id nobody has,
    and not one of Riverside's rows changes."""
    a = club_a
    before = _club_rows(db, a.shop.club.id)
    assert all(before[f"dues_{t}"] for t in ONE_OF_EACH)
    hilltop = world.club("Hilltop Gym")
    owner = world.staff(hilltop, Role.owner)
    iban = {"iban": "DE89370400440532013000", "account_holder": "Mallory",
            "signed_on": a.sc.today.isoformat()}
    calls = [  # (method, path with {} for the id, Riverside's id, body)
        ("GET", "/payers/{}", a.payer, None), ("PATCH", "/payers/{}", a.payer, {"name": "Mine"}),
        ("DELETE", "/payers/{}", a.payer, None), ("POST", "/payers/{}/mandates", a.payer, iban),
        ("GET", "/payers/{}/cards", a.payer, None),
        ("POST", "/payers/{}/cards", a.payer, {"send_email": False}),
        ("GET", "/contracts/{}", a.contract, None),
        ("POST", "/contracts/{}/cancel", a.contract, {}),
        ("POST", "/contracts/{}/withdraw-cancellation", a.contract, None),
        ("PATCH", "/contracts/{}/payment", a.contract, {"method": "desk"}),
        ("GET", "/members/{}/dues", a.member, None), ("GET", "/members/{}/balance", a.member, None),
        ("GET", "/mandates/{}", a.mandate, None), ("GET", "/mandates/{}/form", a.mandate, None),
        ("POST", "/mandates/{}/revoke", a.mandate, {}),
        ("POST", "/mandates/{}/iban", a.mandate, {"iban": "DE02120300000000202051"}),
        ("GET", "/cards/{}", a.card, None), ("GET", "/cards/{}/qr.svg", a.card, None),
        ("DELETE", "/cards/{}", a.card, None),
        ("GET", "/invoices/{}", a.invoice, None), ("GET", "/invoices/{}/print", a.invoice, None),
        ("POST", "/invoices/{}/payments", a.invoice, {"amount": "1.00", "method": "cash"}),
        ("POST", "/invoices/{}/credit-note", a.invoice, {"reason": "mine now"}),
        ("POST", "/dunning/{}/write-off", a.case, None),
        ("GET", "/sepa/batches/{}", a.batch, None), ("GET", "/sepa/batches/{}/file", a.batch, None),
        ("POST", "/sepa/batches/{}/submitted", a.batch, None),
    ]
    wrong = []
    for method, path, row_id, body in calls:
        kwargs = {"json": body} if body is not None else {}
        theirs, nobodys = (client.request(method, f"/api/v1{path.format(i)}",
                                          headers=owner.headers, **kwargs)
                           for i in (row_id, 999_999))
        if theirs.status_code != 404 or theirs.json() != nobodys.json():
            wrong.append(f"{method} {path}: {theirs.status_code} {theirs.text[:120]}")
    assert not wrong, "\n".join(wrong)

    # lists, the due debits, close-outs and returns show nothing of Riverside's
    for path in (f"/invoices?payer_id={a.payer}", f"/invoices?member_id={a.member}",
                 f"/payers?member_id={a.member}", "/payers", "/dunning", "/sepa/batches",
                 "/desk/closeouts"):
        body = client.get(f"/api/v1{path}", headers=owner.headers).json()
        assert body == [] or body["items"] == [], (path, body)
    due = client.get(f"/api/v1/sepa/due?date={a.day.isoformat()}", headers=owner.headers).json()
    assert (due["count"], due["blocked"]) == (0, [])
    closed = client.post("/api/v1/desk/closeouts", json={
        "desk": "main", "opening_float": "0.00", "counted_cash": "0.00"}, headers=owner.headers)
    assert closed.status_code == 201 and closed.json()["total"] == "0.00"  # not "closed already"
    returns = client.post("/api/v1/sepa/returns", headers=owner.headers, files={"file": (
        "r.csv", _csv(a.collection.end_to_end_id), "text/csv")}).json()
    assert returns["counts"] == {"unknown": 1} and returns["rows"][0]["payer_name"] is None

    # Riverside's mandate or card named in Hilltop's own contract: refused like ids nobody has
    their_plan = client.post("/api/v1/plans", json=RECURRING, headers=owner.headers).json()
    their_member = world.member(hilltop)
    for means in ({"method": "sepa", "mandate_id": a.mandate},
                  {"method": "card", "card_id": a.card}):
        sold = client.post("/api/v1/sales", headers=owner.headers, json={
            "member_id": their_member, "lines": [{"kind": "contract",
                                                  "plan_id": their_plan["id"]} | means]})
        missing = client.post("/api/v1/sales", headers=owner.headers, json={
            "member_id": their_member, "lines": [{"kind": "contract",
                                                  "plan_id": their_plan["id"]} | {
                k: (999_999 if k.endswith("_id") else v) for k, v in means.items()}]})
        assert (sold.status_code, sold.json()["error"]) == (missing.status_code,
                                                            missing.json()["error"]), sold.text
        assert sold.status_code == 422
    assert _club_rows(db, a.shop.club.id) == before


def test_another_clubs_staff_reach_nothing_through_the_pages(club_a, app, world, db):
    a = club_a
    upload = _page_client(app, a.sc.manager)
    token = csrf_of(upload.get("/manage/billing/returns").text)
    uploaded = upload.post("/manage/billing/returns", data={"csrf_token": token}, files={
        "file": ("r.csv", _csv(a.collection.end_to_end_id), "text/csv")},
        follow_redirects=False)
    assert uploaded.status_code == 303, uploaded.text
    returns = uploaded.headers["location"]
    upload.close()
    before = _club_rows(db, a.shop.club.id)
    hilltop = world.club("Hilltop Gym")
    web = _page_client(app, world.staff(hilltop, Role.owner))
    for path in (f"/desk/members/{a.member}/payments", f"/desk/mandates/{a.mandate}/form",
                 f"/desk/cards/{a.card}", f"/manage/billing/collections/{a.batch}/file",
                 returns):
        assert web.get(path).status_code == 404, path
    token = csrf_of(web.get("/desk").text)
    for path, form in ((f"/desk/invoices/{a.invoice}/payments", {"amount": "1.00",
                                                                   "method": "cash"}),
                       (f"/desk/contracts/{a.contract}/cancel", {}),
                       (f"/desk/members/{a.member}/mandates", {
                           "account_holder": "Mallory", "iban": "DE89370400440532013000",
                           "payer_id": a.payer}),
                       (f"/desk/members/{a.member}/cards", {"payer_id": a.payer}),
                       (f"/desk/members/{a.member}/contracts", {"plan_id": 1, "method": "desk"}),
                       (f"/manage/billing/collections/{a.batch}/submitted", {}),
                       (returns, {})):
        answer = web.post(path, data={"csrf_token": token} | form)
        assert "not found" in answer.text.lower() or answer.status_code == 404, (
            path, answer.status_code, answer.text[:300])
    web.close()
    assert _club_rows(db, a.shop.club.id) == before


def _page_client(app, staff) -> TestClient:
    web = TestClient(app)
    sign_in(web, staff.email)
    return web


# --- lower roles ------------------------------------------------------------------------------------

def test_lower_roles_are_refused_the_managers_and_the_desks_money_pages(club_a, app, world, db):
    """The desk may not open the billing settings, collection files, returns or the owner's
    money; a trainer may not take money, mandates or cancellations at the desk. The API's roles
    are the authorisation matrix's (tests/reliability/test_authorisation.py)."""
    a = club_a
    before = _club_rows(db, a.shop.club.id)
    manager_only = [("GET", "/manage/billing", {}), ("POST", "/manage/billing", {
        "creditor_iban": "DE02120300000000202051", "return_fee": "99"}),
        ("GET", "/manage/billing/plans", {}), ("POST", "/manage/billing/plans", {
            "name": "Cheap", "price": "1", "billing_period": "month"}),
        ("GET", "/manage/billing/collections", {}),
        ("POST", "/manage/billing/collections", {"collection_date": a.day.isoformat()}),
        ("GET", f"/manage/billing/collections/{a.batch}/file", {}),
        ("POST", f"/manage/billing/collections/{a.batch}/submitted", {}),
        ("GET", "/manage/billing/returns", {}), ("GET", "/owner/money", {}),
        ("GET", "/owner/money/csv/mrr.csv", {}),
        ("GET", f"/owner/money/export.csv?month={a.day:%Y-%m}", {})]
    desk_only = [("GET", f"/desk/members/{a.member}/payments", {}),
                 ("GET", f"/desk/mandates/{a.mandate}/form", {}),
                 ("GET", f"/desk/cards/{a.card}", {}),
                 ("POST", f"/desk/invoices/{a.invoice}/payments", {"amount": "1.00",
                                                                   "method": "cash"}),
                 ("POST", f"/desk/members/{a.member}/mandates", {
                     "account_holder": "Anna", "iban": "DE02120300000000202051"}),
                 ("POST", f"/desk/contracts/{a.contract}/cancel", {})]
    desk = _page_client(app, a.shop.desk)
    trainer = _page_client(app, world.staff(a.shop.club, Role.trainer))
    wrong = []
    for web, calls in ((desk, manager_only), (trainer, manager_only + desk_only)):
        token = csrf_of(web.get("/me/password").text)
        for method, path, form in calls:
            data = {"data": {"csrf_token": token} | form} if method == "POST" else {}
            r = web.request(method, path, follow_redirects=False, **data)
            if r.status_code != 403 or "Not allowed" not in r.text:  # not "Form expired"
                wrong.append(f"{method} {path}: {r.status_code}")
        returns = web.post("/manage/billing/returns", data={"csrf_token": token}, files={
            "file": ("r.csv", _csv(a.collection.end_to_end_id), "text/csv")},
            follow_redirects=False)
        if returns.status_code != 403 or "Not allowed" not in returns.text:
            wrong.append(f"POST /manage/billing/returns: {returns.status_code}")
        web.close()
    assert not wrong, "\n".join(wrong)
    assert _club_rows(db, a.shop.club.id) == before


def test_keys_that_are_not_a_staff_token_open_no_dues_endpoint(club_a, app, world):
    """A turnstile's device key, the website form's key or a page session's cookie value, sent
    as a bearer token (or as what they are) to the dues API: 401, whatever the role behind it."""
    a = club_a
    device = world.device(a.shop.club)
    website = a.shop.client.post("/api/v1/website-keys", json={"name": "www"},
                                 headers=a.shop.manager.headers).json()["key"]
    page = _page_client(app, a.sc.manager)
    cookie = page.cookies.get("fitclub_session")
    page.close()
    assert cookie
    headers = [{"Authorization": f"Bearer {device.key}"}, device.headers,
               {"Authorization": f"Bearer {website}"}, {"X-Api-Key": website},
               {"Authorization": f"Bearer {cookie}"}]
    for method, path in (("GET", f"/payers/{a.payer}"), ("GET", f"/invoices/{a.invoice}"),
                         ("POST", "/sepa/batches"), ("GET", f"/sepa/batches/{a.batch}/file"),
                         ("GET", "/dues/settings"), ("POST", "/dues/cards/charge"),
                         ("GET", "/analytics/money/export?month=2026-01")):
        for header in headers:
            r = a.shop.client.request(method, f"/api/v1{path}", headers=header,
                                      json={"collection_date": a.day.isoformat()})
            assert r.status_code == 401, (method, path, header, r.status_code)


# --- hostile input: the bank's returns file -------------------------------------------------------

@pytest.mark.parametrize(("make", "words"), [
    (lambda e2e: _csv(e2e, amount="1e999999"), "is not an amount"),
    (lambda e2e: _camt(e2e, amount="1e999999"), "is not an amount"),
    (lambda e2e: _camt(e2e, charges="lots"), "is not an amount"),
    (lambda e2e: _camt(e2e, charges="NaN"), "is not an amount"),
    (lambda e2e: _camt(e2e, charges="1e999999"), "is not an amount"),
    (lambda e2e: _csv(e2e, day="9999-12-31"), "is not a booking day"),
    (lambda e2e: _camt(e2e, booked="0001-01-01"), "is not a booking day"),
    (lambda e2e: _csv('"' + e2e + "x" * 200_000 + '"'), "line 2: the CSV cannot be read"),
    (lambda e2e: _csv(e2e + "\rX"), "line 2: the CSV cannot be read"),
    (lambda e2e: LAUGHS, "not well-formed XML"),
    (lambda e2e: b"<a>" * 5000 + b"</a>" * 5000, "not well-formed XML"),
    (lambda e2e: bytes(range(256)) * 40, "neither camt XML nor the CSV"),
])
def test_a_hostile_returns_file_is_a_422_in_words_and_returns_nothing(sc, db, make, words):
    anna, = sc.submitted("49.90")
    before = _club_rows(db, sc.club.id)
    for dry_run in (True, False):
        r = sc.upload_returns(make(anna.end_to_end_id), name="returns.csv", dry_run=dry_run)
        assert (r.status_code, r.json()["error"]) == (422, "unreadable_returns_file"), r.text
        assert words in r.json()["message"]
    assert _club_rows(db, sc.club.id) == before
    assert sc.collection(anna.id).status == "submitted"


def test_a_returns_csv_naming_another_clubs_debits_touches_none_of_them(sc, client, world, db):
    anna, = sc.submitted("49.90")
    before = _club_rows(db, sc.club.id)
    other = SepaClub(client, world, club=world.club("Hilltop Gym"))
    for content in (_csv(anna.end_to_end_id), _camt(anna.end_to_end_id)):
        report = other.upload_returns(content, name="returns.csv").json()
        assert report["counts"] == {"unknown": 1}
        assert report["rows"][0]["collection_id"] is None
        assert report["rows"][0]["payer_name"] is None  # nothing of Riverside's shows
    assert _club_rows(db, sc.club.id) == before
    assert _count(db, DuesPayment, kind="return") == 0


# --- hostile input: Stripe's webhook --------------------------------------------------------------

def _card_collection(world, db) -> tuple[object, int]:
    """A club with a webhook secret and a card collection charged as `pi_hostile` (pending)."""
    club = world.club("Riverside Fitness")
    with transaction(db.sessionmaker) as s:
        s.add(DuesSettings(club_id=club.id, stripe_secret_key="sk_test_x",
                           stripe_webhook_secret=WH))
        payer = Payer(club_id=club.id, name="Anna Berg", email="anna@example.test")
        s.add(payer)
        s.flush()
        day = clock.today("Europe/Berlin")
        invoice = invoicing.issue_invoice(
            s, club_id=club.id, payer_id=payer.id, issued_on=day, due_on=day, method="card",
            lines=[LineIn(charge_key="dues:hostile", kind="dues", description="Monthly dues",
                          gross=Decimal("49.90"))])
        row = Collection(club_id=club.id, invoice_id=invoice.id, payer_id=payer.id, attempt=1,
                         method="card", amount=invoice.gross, due_on=day, status="pending",
                         provider_ref="pi_hostile")
        s.add(row)
        s.flush()
        return club, row.id


def test_an_old_signature_with_a_fresh_timestamp_smuggled_in_front_is_refused(client, world, db):
    """Stripe's library reads the first item named exactly `t`; a second `t` with a space in
    front must not make an old delivery look fresh."""
    club, collection_id = _card_collection(world, db)
    now = int(clock.now().timestamp())
    body = event_body({"id": "evt_captured", "object": "event", "type": "payment_intent.succeeded",
                       "created": now - 600, "data": {"object": {
                           "id": "pi_hostile", "object": "payment_intent", "status": "succeeded",
                           "amount": 4990, "amount_received": 4990, "currency": "eur"}}})
    captured = sign(body, WH, timestamp=now - 600)  # t=<10 minutes ago>,v1=<good>
    url = f"/api/v1/dues/stripe/webhook/{club.id}"
    for header in (f"v1=0, t={now},{captured}", f"{captured}, t={now}",
                   f"{captured},t={now}"):
        r = client.post(url, content=body.encode(), headers={"Stripe-Signature": header})
        assert r.status_code == 400, (header, r.text)
        assert r.json()["error"] in ("stale_signature", "bad_signature")
    with db.sessionmaker() as s:
        assert s.get(Collection, collection_id).status == "pending"
        assert s.scalar(select(func.count(ProviderEvent.id))) == 0
        assert s.scalar(select(func.count(DuesPayment.id))) == 0
    fresh = client.post(url, content=body.encode(), headers={"Stripe-Signature": sign(body, WH)})
    assert (fresh.status_code, fresh.json()["outcome"]) == (200, "applied")


# --- hostile input: amounts, accounts, dates at the desk and in the settings ------------------------

def test_an_absurd_amount_typed_at_the_desk_page_is_refused_in_words(client, world, db):
    club = world.club("Riverside Fitness")
    desk = world.staff(club, Role.front_desk)
    member = world.member(club, "Anna", "Owing")
    invoice_id = world.failed_dues(club, member, failed_on=clock.today("Europe/Berlin")
                                   - timedelta(days=1))
    sign_in(client, desk.email)
    token = csrf_of(client.get("/desk").text)
    for amount in ("1e999999", "NaN", "-Infinity", "49.001", "-5", "1e12", "0x10"):
        answer = client.post(f"/desk/invoices/{invoice_id}/payments",
                          data={"csrf_token": token, "amount": amount, "method": "cash"})
        assert answer.status_code == 200, (amount, answer.text[:300])
        assert 'class="flash error"' in answer.text, amount
    assert _count(db, DuesPayment, desk="main") == 0


def test_absurd_amounts_through_the_api_are_422_and_write_nothing(club_a, db):
    a = club_a
    before = _club_rows(db, a.shop.club.id)
    desk, manager = a.shop.desk.headers, a.shop.manager.headers
    for amount in ("NaN", "Infinity", "-Infinity", "sNaN", "1e12", "1e999999", "49.001", -5, 0,
                   1e12, 49.001, True, None, "", "49,00", "0x31"):
        r = a.shop.client.post(f"/api/v1/invoices/{a.invoice}/payments", headers=desk,
                               json={"amount": amount, "method": "cash"})
        assert r.status_code == 422, (amount, r.text)
        for money in ("return_fee", "dunning_fee") if amount != 0 else ():  # 0: no fee
            r = a.shop.client.patch("/api/v1/dues/settings", headers=manager,
                                    json={money: amount})
            assert r.status_code == 422, (money, amount, r.text)
    for query in ("opening_float=NaN", "counted_cash=Infinity", "opening_float=1e999999",
                  "counted_cash=-0.01", "opening_float=0.001"):
        r = a.shop.client.get(f"/api/v1/desk/closeouts/preview?{query}", headers=desk)
        assert r.status_code == 422, (query, r.text)
    assert _club_rows(db, a.shop.club.id) == before


def test_the_settings_api_refuses_an_account_the_bank_would_refuse(shop, db):
    """The creditor's IBAN, BIC and identifier are checked when saved, by the API as by the
    billing page: a wrong one would otherwise block every collection file later."""
    for bad, code in (({"creditor_iban": "DE00370400440532013000"}, "invalid_iban"),
                      ({"creditor_iban": "NOT AN IBAN"}, "invalid_iban"),
                      ({"creditor_bic": "COBADEFF1"}, "invalid_bic"),
                      ({"creditor_id": "DE00ZZZ09999999999"}, "invalid_creditor_id")):
        r = shop.client.patch("/api/v1/dues/settings", json=bad, headers=shop.manager.headers)
        assert (r.status_code, r.json()["error"]) == (422, code), (bad, r.text)
    assert _count(db, DuesSettings) == 0
    r = shop.client.patch("/api/v1/dues/settings", json={
        "creditor_iban": "de89 3704 0044 0532 0130 00", "creditor_bic": "cobadeffxxx",
        "creditor_id": "de98 zzz 09999999999"}, headers=shop.manager.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["creditor_iban"], r.json()["creditor_bic"], r.json()["creditor_id"]) == (
        "DE89370400440532013000", "COBADEFFXXX", "DE98ZZZ09999999999")


def test_mandate_accounts_are_normalised_and_bad_ones_refused(sc, db):
    payer_id = sc.add_payer()
    taken = sc.take_mandate(payer_id, iban="de89 3704 0044 0532 0130 00", bic="cobadeffxxx")
    assert (taken["iban"], taken["bic"]) == ("DE89370400440532013000", "COBADEFFXXX")
    base = {"account_holder": "Anna Berg", "signed_on": sc.today.isoformat()}
    for body, code in (({"iban": "DE89-3704-0044-0532-0130-00"}, "invalid_iban"),
                       ({"iban": "DE89" + "３７０４００４４０５３２０１３０００"}, "invalid_iban"),
                       ({"iban": "DE89370400440532013000", "bic": "BANKXX"}, "invalid_bic"),
                       ({"iban": "DE89370400440532013000", "bic": "BNPAFRPP"},
                        "bic_iban_mismatch"),
                       ({"iban": "DE89370400440532013000", "signed_on": "9999-12-31"},
                        "invalid_signature_date")):
        r = sc.api("POST", f"/payers/{payer_id}/mandates", staff=sc.desk, json=base | body)
        assert (r.status_code, r.json()["error"]) == (422, code), (body, r.text)
    assert _count(db, Mandate) == 1


def test_a_revocation_dated_in_the_future_or_before_the_signature_is_refused(sc, db):
    """A typo of 2099 would otherwise leave the mandate collectable and impossible to revoke
    again (the first revocation date stays)."""
    payer_id = sc.add_payer()
    mandate = sc.take_mandate(payer_id, signed_on=sc.today - timedelta(days=30))
    for day, code in ((sc.today + timedelta(days=1), "invalid_revocation_date"),
                      (date(2099, 12, 31), "invalid_revocation_date"),
                      (sc.today - timedelta(days=31), "invalid_revocation_date")):
        r = sc.api("POST", f"/mandates/{mandate['id']}/revoke", staff=sc.desk,
                   json={"revoked_on": day.isoformat()})
        assert (r.status_code, r.json()["error"]) == (422, code), (day, r.text)
    with db.sessionmaker() as s:
        assert s.get(Mandate, mandate["id"]).revoked_on is None
    r = sc.api("POST", f"/mandates/{mandate['id']}/revoke", staff=sc.desk, json={})
    assert (r.status_code, r.json()["status"]) == (200, "revoked")


def test_a_cancellation_received_before_the_contract_existed_is_refused(club_a, app, db):
    """The API's schema stops at the year 2000; the desk's page passed any day it could parse,
    and year 1 became the day the cancellation was received."""
    a = club_a
    before = _club_rows(db, a.shop.club.id)
    web = _page_client(app, a.shop.desk)
    token = csrf_of(web.get(f"/desk/members/{a.member}/payments").text)
    answer = web.post(f"/desk/contracts/{a.contract}/cancel",
                      data={"csrf_token": token, "received_on": "0001-01-01"})
    assert "is received on" in answer.text and 'class="flash error"' in answer.text
    web.close()
    r = a.shop.client.post(f"/api/v1/contracts/{a.contract}/cancel", headers=a.shop.desk.headers,
                           json={"received_on": (a.sc.today - timedelta(days=1)).isoformat()})
    assert (r.status_code, r.json()["error"]) == (422, "received_before_contract")
    assert _club_rows(db, a.shop.club.id) == before
    r = a.shop.client.post(f"/api/v1/contracts/{a.contract}/cancel", headers=a.shop.desk.headers,
                           json={})
    assert r.status_code == 200 and r.json()["cancel_received_on"] == a.sc.today.isoformat()


def test_the_accounting_export_neutralises_formulas_in_payer_names(shop, world, db, app):
    owner = world.staff(shop.club, Role.owner)
    with transaction(db.sessionmaker) as s:
        payer = Payer(club_id=shop.club.id, name="=cmd|' /C calc'!A0", email="x@example.test")
        s.add(payer)
        s.flush()
        invoicing.issue_invoice(s, club_id=shop.club.id, payer_id=payer.id,
                                issued_on=shop.today, due_on=shop.today, method="desk",
                                lines=[LineIn(charge_key="fee:x", kind="fee",
                                              description="Late fee", gross=Decimal("5.00"))])
    month = shop.today.strftime("%Y-%m")
    r = shop.client.get(f"/api/v1/analytics/money/export?month={month}", headers=owner.headers)
    page = _page_client(app, owner)
    downloaded = page.get(f"/owner/money/export.csv?month={month}")
    page.close()
    for answer in (r, downloaded):
        assert answer.status_code == 200
        assert "\"'=cmd|' /C calc'!A0\"" in answer.text and ",=cmd" not in answer.text


# --- two at once ----------------------------------------------------------------------------------

def _both(db, work, n: int = 2) -> list:
    """Run `work(session, i)` in n threads at once, each in its own transaction; the outcomes
    (a value, or a DomainError's code)."""
    barrier, outcomes, lock = threading.Barrier(n), [], threading.Lock()

    def run(i: int) -> None:
        try:
            with transaction(db.sessionmaker) as s:
                barrier.wait()
                outcome = work(s, i)
        except DomainError as exc:
            outcome = exc.code
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes


def test_two_desks_taking_a_mandate_for_one_payer_at_once_both_get_a_reference(sc, db):
    """Neither desk chose a reference: each gets the next generated one, not a 409 about a
    reference they never typed."""
    if not db.is_postgres:
        pytest.skip("row locks are a PostgreSQL matter (SQLite has one writer at a time)")
    payer_id = sc.add_payer()
    desks = [Actor(sc.desk.user_id, "desk", sc.club.id, Role.front_desk),
             Actor(sc.manager.user_id, "manager", sc.club.id, Role.manager)]
    ibans = ["DE89370400440532013000", "DE02120300000000202051"]

    def take(s, i):
        return sepa.create_mandate(s, actor=desks[i], payer_id=payer_id, iban=ibans[i],
                                   account_holder="Anna Berg",
                                   signed_on=sc.today - timedelta(days=1)).reference

    outcomes = _both(db, take)
    assert sorted(outcomes) == [f"FC-{payer_id}-1", f"FC-{payer_id}-2"], outcomes
    assert _count(db, Mandate, payer_id=payer_id) == 2


def test_two_part_payments_at_once_never_take_more_than_is_open(shop, db):
    """49.00 open; two desks take 30.00 each at the same moment: one is refused."""
    if not db.is_postgres:
        pytest.skip("row locks are a PostgreSQL matter (SQLite has one writer at a time)")
    member = shop.member()
    invoice_id = shop.world.failed_dues(shop.club, member, failed_on=shop.today
                                        - timedelta(days=1))
    desks = [Actor(s.user_id, "desk", shop.club.id, Role.front_desk)
             for s in (shop.desk, shop.world.staff(shop.club, Role.front_desk))]
    def pay(s, i):
        return str(desk_service.pay_invoice(s, actor=desks[i], invoice_id=invoice_id,
                                            amount=Decimal("30.00"), method="cash",
                                            desk=f"desk{i}").amount)

    assert sorted(_both(db, pay)) == ["30.00", "amount_exceeds_open"]
    with db.sessionmaker() as s:
        taken = s.scalar(select(func.sum(DuesPayment.amount)).where(
            DuesPayment.invoice_id == invoice_id, DuesPayment.desk.is_not(None)))
    assert taken == Decimal("30.00")
