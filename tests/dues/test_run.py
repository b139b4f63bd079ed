"""The daily billing run: periods charged once (catch-up, anchors, price changes, freezes),
households on one invoice, terms rolled, cancelled contracts stopped, collections and emails,
exactly once per club and day, and the same outcome after a failure at any chunk."""
import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import typer
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.billing.models import Payment, Sale, SaleLine
from app.core import clock
from app.core.actors import Actor, Role
from app.core.db import transaction
from app.dues import cli as dues_cli
from app.dues import documents, terms
from app.dues import jobs as billing_jobs
from app.dues import run as billing
from app.dues.models import (
    BillingRun,
    Collection,
    Contract,
    DuesPayment,
    DuesSettings,
    Invoice,
    InvoiceLine,
    Mandate,
    Notice,
    Payer,
    StoredCard,
)
from app.memberships.models import Membership

D = Decimal


@pytest.fixture
def club(db, world):
    club = world.club()
    with transaction(db.sessionmaker) as s:
        s.add(DuesSettings(club_id=club.id, legal_name="Riverside Fitness GmbH",
                           invoice_number_format="R{year}-{seq:04d}", vat_registered=True,
                           creditor_id="DE98ZZZ09999999999", prenotice_days=5))
    return club


class Book:
    """Payers, mandates and contracts written directly, as the contracts service would."""

    def __init__(self, db, world, club):
        self.db, self.world, self.club = db, world, club
        self.mandates = 0

    def payer(self, name="Anna Berg", email="anna@example.test") -> int:
        with transaction(self.db.sessionmaker) as s:
            payer = Payer(club_id=self.club.id, name=name, email=email)
            s.add(payer)
            s.flush()
            return payer.id

    def mandate(self, payer_id: int, iban="DE89370400440532013000") -> int:
        self.mandates += 1
        with transaction(self.db.sessionmaker) as s:
            mandate = Mandate(club_id=self.club.id, payer_id=payer_id,
                              reference=f"M-{payer_id}-{self.mandates}",
                              account_holder="Anna Berg", iban=iban, signed_on=date(2027, 1, 1))
            s.add(mandate)
            s.flush()
            return mandate.id

    def contract(self, payer_id: int, start: date, *, period="month", price="49.90",
                 method="sepa", mandate_id=None, minimum=12, notice=(1, "months"),
                 renewal="monthly", renewal_months=1, joining_fee="0.00", next_due=None,
                 term_end=None, member=None, **extra) -> int:
        """A contract sold from `start`: term to the minimum's end, nothing paid yet."""
        member = member or self.world.member(self.club)
        term_end = term_end or terms.minimum_end(start, minimum) or terms.period_end(
            start, period, 0)
        plan = self.world.plan(self.club, "Flex", months=1)
        membership = self.world.membership(self.club, member, plan, start, term_end)
        if method == "sepa" and mandate_id is None:
            mandate_id = self.mandate(payer_id)
        with transaction(self.db.sessionmaker) as s:
            contract = Contract(
                club_id=self.club.id, membership_id=membership, member_id=int(member),
                payer_id=payer_id, method=method, mandate_id=mandate_id, period=period,
                price=D(price), tax_rate=D("19.00"), joining_fee=D(joining_fee),
                starts_on=start, minimum_months=minimum, notice_value=notice[0],
                notice_unit=notice[1], renewal=renewal, renewal_months=renewal_months,
                term_end=term_end, next_due=next_due or start, **extra)
            s.add(contract)
            s.flush()
            return contract.id


@pytest.fixture
def book(db, world, club):
    return Book(db, world, club)


def _run(db, club, day, **kw):
    return billing.run_billing(db.sessionmaker, club_id=club.id, day=day, **kw)


def _lines(db, club, contract_id=None):
    with db.sessionmaker() as s:
        stmt = (select(InvoiceLine.charge_key, Invoice.due_on, InvoiceLine.gross, Invoice.number)
                .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
                .where(InvoiceLine.club_id == club.id).order_by(InvoiceLine.id))
        if contract_id:
            stmt = stmt.where(InvoiceLine.contract_id == contract_id)
        return [tuple(row) for row in s.execute(stmt)]


def _contract(db, contract_id) -> Contract:
    with db.sessionmaker() as s:
        return s.get(Contract, contract_id)


def _state(db, club):
    """Everything the run writes, as comparable values (ids left out)."""
    with db.sessionmaker() as s:
        invoices = sorted((i.number, i.payer_id, i.due_on, i.method, i.gross)
                          for i in s.scalars(select(Invoice).where(Invoice.club_id == club.id)))
        lines = sorted(s.scalars(select(InvoiceLine.charge_key)
                                 .where(InvoiceLine.club_id == club.id)))
        collections = s.scalar(select(func.count()).select_from(Collection)
                               .where(Collection.club_id == club.id))
        mails = s.scalar(select(func.count()).select_from(Notice)
                         .where(Notice.club_id == club.id))
        contracts = sorted((c.id, c.next_due, c.term_end) for c in s.scalars(
            select(Contract).where(Contract.club_id == club.id)))
        ends = sorted(s.scalars(select(Membership.end_date)
                                .where(Membership.club_id == club.id)))
        return invoices, lines, collections, mails, contracts, ends


def test_a_month_end_start_is_charged_on_its_anchor_and_missed_periods_are_caught_up(
        db, club, book):
    payer = book.payer()
    cid = book.contract(payer, date(2027, 1, 31), joining_fee="19.99", minimum=6)
    result = _run(db, club, date(2027, 4, 1))
    assert (result.invoices, result.lines) == (3, 4)
    assert [(key, due) for key, due, _gross, _n in _lines(db, club)] == [
        (f"dues:{cid}:2027-01-31", date(2027, 1, 31)), (f"join:{cid}", date(2027, 1, 31)),
        (f"dues:{cid}:2027-02-28", date(2027, 2, 28)),
        (f"dues:{cid}:2027-03-31", date(2027, 3, 31))]
    assert [n for *_rest, n in _lines(db, club)] == [
        "R2027-0001", "R2027-0001", "R2027-0002", "R2027-0003"]
    assert _contract(db, cid).next_due == date(2027, 4, 30)
    # 25 April: 30 April is within the 5 pre-notification days
    assert _run(db, club, date(2027, 4, 24)).lines == 0
    assert _run(db, club, date(2027, 4, 25)).lines == 1
    assert _lines(db, club, cid)[-1][:2] == (f"dues:{cid}:2027-04-30", date(2027, 4, 30))
    with db.sessionmaker() as s:
        line = s.scalars(select(InvoiceLine).where(
            InvoiceLine.charge_key == f"dues:{cid}:2027-02-28")).one()
        assert (line.period_start, line.period_end) == (date(2027, 2, 28), date(2027, 3, 30))
        assert "28.02.2027 – 30.03.2027" in line.description
        assert (line.net, line.tax, line.gross) == (D("41.93"), D("7.97"), D("49.90"))


def test_four_weekly_and_yearly_periods(db, club, book):
    payer = book.payer()
    mandate = book.mandate(payer)
    weeks = book.contract(payer, date(2027, 1, 4), period="4weeks", price="39.00",
                          mandate_id=mandate)
    year = book.contract(payer, date(2027, 1, 4), period="year", price="499.00",
                         mandate_id=mandate)
    _run(db, club, date(2027, 3, 1))
    assert [(k, g) for k, _due, g, _n in _lines(db, club, weeks)] == [
        (f"dues:{weeks}:2027-01-04", D("39.00")), (f"dues:{weeks}:2027-02-01", D("39.00")),
        (f"dues:{weeks}:2027-03-01", D("39.00"))]
    assert _contract(db, weeks).next_due == date(2027, 3, 29)
    assert [k for k, *_ in _lines(db, club, year)] == [f"dues:{year}:2027-01-04"]
    assert _contract(db, year).next_due == date(2028, 1, 4)
    with db.sessionmaker() as s:  # the two contracts due on 4 January share one invoice
        first = s.scalars(select(Invoice).where(Invoice.due_on == date(2027, 1, 4))).one()
        assert first.gross == D("538.00")


def test_a_price_change_applies_to_periods_from_its_day(db, club, book):
    payer = book.payer()
    cid = book.contract(payer, date(2027, 1, 1), next_price=D("54.90"),
                        next_price_from=date(2027, 3, 1))
    _run(db, club, date(2027, 4, 1))
    assert [g for _k, _d, g, _n in _lines(db, club, cid)] == [
        D("49.90"), D("49.90"), D("54.90"), D("54.90")]


def test_periods_starting_in_a_freeze_are_not_charged_unless_the_club_bills_through(
        db, world, club, book):
    payer = book.payer()
    cid = book.contract(payer, date(2027, 1, 10))
    membership = _contract(db, cid).membership_id
    world.freeze(club, membership, date(2027, 2, 1), date(2027, 3, 15))
    _run(db, club, date(2027, 4, 1))
    charged = [k.rsplit(":", 1)[1] for k, *_ in _lines(db, club, cid)]
    assert charged == ["2027-01-10"]  # 10 February and 10 March fall inside the freeze
    assert _contract(db, cid).next_due == date(2027, 4, 10)
    with transaction(db.sessionmaker) as s:
        s.execute(DuesSettings.__table__.update().values(freeze_moves_billing=False))
    other = book.contract(payer, date(2027, 1, 10))
    world.freeze(club, _contract(db, other).membership_id, date(2027, 2, 1), date(2027, 3, 15))
    _run(db, club, date(2027, 4, 2))
    assert len(_lines(db, club, other)) == 3


def test_a_household_of_two_is_one_invoice_collected_by_one_mandate_and_prenotified(
        db, club, book):
    parent = book.payer("Maria Koch", "maria@example.test")
    mandate = book.mandate(parent, iban="DE89 3704 0044 0532 0130 00")
    first = book.contract(parent, date(2027, 2, 1), mandate_id=mandate, price="29.90")
    second = book.contract(parent, date(2027, 2, 1), mandate_id=mandate, price="24.90",
                           payer_relation="parent")
    result = _run(db, club, date(2027, 1, 27))
    assert (result.invoices, result.lines, result.collections, result.notices) == (1, 2, 1, 1)
    with db.sessionmaker() as s:
        invoice = s.scalars(select(Invoice)).one()
        assert (invoice.payer_id, invoice.gross, invoice.issued_on, invoice.due_on,
                invoice.method) == (parent, D("54.80"), date(2027, 1, 27), date(2027, 2, 1),
                                    "sepa")
        assert {line.contract_id for line in s.scalars(select(InvoiceLine))} == {first, second}
        collection = s.scalars(select(Collection)).one()
        assert (collection.status, collection.amount, collection.due_on, collection.mandate_id,
                collection.attempt, collection.end_to_end_id, collection.prenotified_on) == (
            "planned", D("54.80"), date(2027, 2, 1), mandate, 1,
            f"FC{club.id}-{invoice.id}-1", date(2027, 1, 27))
        notice = s.scalars(select(Notice)).one()
        assert (notice.key, notice.to, notice.kind) == (
            f"invoice:{invoice.id}", "maria@example.test", "invoice")
        for text in ("54.80", "01.02.2027", f"M-{parent}-1", "DE98ZZZ09999999999",
                     "DE89 **** **** 3000", invoice.number):
            assert text in notice.body
        assert "0532" not in notice.body


def test_desk_and_card_invoices(db, club, book):
    desk = book.contract(book.payer("Desk Payer", None), date(2027, 2, 1), method="desk")
    payer = book.payer("Card Payer", "card@example.test")
    with transaction(db.sessionmaker) as s:
        card = StoredCard(club_id=club.id, payer_id=payer, setup_ref="cs_1", method_ref="pm_1")
        s.add(card)
        s.flush()
        card_id = card.id
    book.contract(payer, date(2027, 2, 1), method="card", card_id=card_id)
    _run(db, club, date(2027, 2, 1))
    desk_payer = _contract(db, desk).payer_id
    with db.sessionmaker() as s:
        collections = s.scalars(select(Collection)).all()
        assert [(c.method, c.card_id, c.mandate_id) for c in collections] == [
            ("card", card_id, None)]
        assert s.scalar(select(func.count()).select_from(Invoice)) == 2
        desk_notice = s.scalars(select(Notice).where(Notice.payer_id == desk_payer)).one()
        assert desk_notice.to is None and "front desk" in desk_notice.body


def test_terms_roll_when_the_notice_day_has_passed_and_the_membership_follows(
        db, club, book):
    payer = book.payer()
    monthly = book.contract(payer, date(2027, 1, 1), minimum=3)  # term to 31 March
    yearly = book.contract(payer, date(2027, 1, 1), minimum=12, renewal="term",
                           renewal_months=12, notice=(3, "months"))
    _run(db, club, date(2027, 3, 1))  # notice given today still ends the contract on 31 March
    assert _contract(db, monthly).term_end == date(2027, 3, 31)
    _run(db, club, date(2027, 3, 2))  # too late now: it runs another month
    assert _contract(db, monthly).term_end == date(2027, 4, 30)
    assert _contract(db, yearly).term_end == date(2027, 12, 31)
    _run(db, club, date(2027, 10, 1))
    assert _contract(db, yearly).term_end == date(2027, 12, 31)
    _run(db, club, date(2027, 10, 2))  # 1 October was the last day for 3 months' notice
    assert _contract(db, monthly).term_end == date(2027, 11, 30)
    assert _contract(db, yearly).term_end == date(2028, 12, 31)
    with db.sessionmaker() as s:
        ends = {c.id: s.get(Membership, c.membership_id).end_date
                for c in s.scalars(select(Contract))}
    assert ends == {monthly: date(2027, 11, 30), yearly: date(2028, 12, 31)}
    assert len(_lines(db, club, monthly)) == 10  # January to October, caught up
    assert _run(db, club, date(2027, 9, 30)).renewed == 0


def test_a_cancelled_contract_is_billed_to_its_end_and_then_stops(db, club, book):
    payer = book.payer()
    cid = book.contract(payer, date(2027, 1, 1), minimum=3, cancel_received_on=date(2027, 2, 10),
                        ends_on=date(2027, 3, 31))
    result = _run(db, club, date(2027, 6, 1))
    assert result.renewed == 0 and len(_lines(db, club, cid)) == 3
    assert _contract(db, cid).term_end == date(2027, 3, 31)
    ended = book.contract(payer, date(2027, 1, 1), minimum=3)
    with transaction(db.sessionmaker) as s:
        s.get(Membership, _contract(db, ended).membership_id).cancelled_on = date(2027, 1, 1)
    _run(db, club, date(2027, 6, 2))
    assert _lines(db, club, ended) == []


def test_sales_charged_to_account_join_the_next_invoice_and_are_settled(db, club, book, world):
    payer = book.payer()
    member = world.member(club)
    cid = book.contract(payer, date(2027, 2, 1), member=member)
    with transaction(db.sessionmaker) as s:
        sale = Sale(club_id=club.id, member_id=int(member), total=D("12.50"), to_account=True,
                    created_at=clock.now())
        s.add(sale)
        s.flush()
        s.add(SaleLine(club_id=club.id, sale_id=sale.id, kind="product", description="Shake",
                       unit_price=D("12.50"), amount=D("12.50")))
        s.add(Payment(club_id=club.id, sale_id=sale.id, method="cash", amount=D("2.50"),
                      created_at=clock.now()))
        sale_id = sale.id
    _run(db, club, date(2027, 2, 1))
    assert [(k, g) for k, _d, g, _n in _lines(db, club)] == [
        (f"dues:{cid}:2027-02-01", D("49.90")), (f"sale:{sale_id}", D("10.00"))]
    with db.sessionmaker() as s:
        assert s.scalars(select(InvoiceLine.kind).where(InvoiceLine.sale_id == sale_id)).one() \
            == "cafe"
        assert sorted((p.method, p.amount) for p in s.scalars(
            select(Payment).where(Payment.sale_id == sale_id))) == [
            ("account", D("10.00")), ("cash", D("2.50"))]
    _run(db, club, date(2027, 3, 1))
    assert [k for k, *_ in _lines(db, club)][-1] == f"dues:{cid}:2027-03-01"


def test_a_finished_run_is_not_redone_and_a_second_day_changes_nothing_new(db, club, book):
    payer = book.payer()
    book.contract(payer, date(2027, 1, 1))
    first = _run(db, club, date(2027, 3, 1))
    before = _state(db, club)
    again = _run(db, club, date(2027, 3, 1))
    assert again.done_before and again.invoices == 0 and first.invoices == 3
    assert _run(db, club, date(2027, 3, 2)).invoices == 0
    assert _state(db, club) == before
    with db.sessionmaker() as s:
        runs = s.scalars(select(BillingRun).order_by(BillingRun.day)).all()
        assert [(r.day, r.invoices, r.lines, r.finished_at is not None) for r in runs] == [
            (date(2027, 3, 1), 3, 3, True), (date(2027, 3, 2), 0, 0, True)]


def _many(book, payers=7):
    """A club of several payers: households, catch-up, joining fees."""
    for n in range(payers):
        payer = book.payer(f"Payer {n}", f"p{n}@example.test")
        mandate = book.mandate(payer)
        for k in range(1 + n % 3):
            book.contract(payer, date(2027, 1, 1 + n + k), mandate_id=mandate,
                          joining_fee="10.00" if k == 0 else "0.00",
                          method="sepa" if n % 2 else "desk")


class Killed(Exception):
    pass


def test_a_run_failing_at_any_chunk_and_run_again_charges_each_period_once(
        db, club, book, world, empty_all_tables):
    _many(book)
    day = date(2027, 3, 1)
    reference = _run(db, club, day, chunk_payers=2)
    expected = _state(db, club)
    chunks = reference.chunks
    assert chunks >= 4 and reference.invoices > 10
    for k in range(1, chunks + 1):
        empty_all_tables(db)  # ids start again at 1: the same keys as the reference run
        fresh = world.club()
        book.club = fresh
        with transaction(db.sessionmaker) as s:
            s.add(DuesSettings(club_id=fresh.id, invoice_number_format="R{year}-{seq:04d}",
                               prenotice_days=5))
        _many(book)

        def fail(n, k=k):
            if n == k:
                raise Killed(f"killed in chunk {k}")

        with pytest.raises(Killed):
            _run(db, fresh, day, chunk_payers=2, on_chunk=fail)
        _run(db, fresh, day, chunk_payers=2)
        got = _state(db, fresh)
        assert got[0] == expected[0] and got[1:4] == expected[1:4], f"failed at chunk {k}"


@pytest.mark.postgres_only
def test_two_runs_at_once_run_once(db, club, book):
    _many(book)
    day = date(2027, 3, 1)
    results, errors = [], []

    def go():
        try:
            results.append(_run(db, club, day, chunk_payers=1))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with db.sessionmaker() as s:
        invoices = s.scalar(select(func.count()).select_from(Invoice))
        numbers = sorted(int(n.rsplit("-", 1)[1]) for n in s.scalars(select(Invoice.number)))
        run = s.scalars(select(BillingRun)).one()
    assert sum(r.invoices for r in results) == invoices == run.invoices
    assert numbers == list(range(1, invoices + 1))
    assert _run(db, club, day).done_before


def test_another_clubs_contracts_are_not_touched(db, club, book, world):
    book.contract(book.payer(), date(2027, 1, 1))
    other = world.club("Other Gym")
    assert billing.run_billing(db.sessionmaker, club_id=other.id,
                               day=date(2027, 3, 1)).invoices == 0
    assert _lines(db, club) == []
    assert _contract(db, _first_contract(db)).next_due == date(2027, 1, 1)


def _first_contract(db) -> int:
    with db.sessionmaker() as s:
        return s.scalars(select(Contract.id)).first()


def test_the_numbers_have_no_gap_after_failures(db, club, book):
    _many(book)
    for k in (2, 3, 5):
        def fail(n, k=k):
            if n == k:
                raise Killed()
        with pytest.raises(Killed):
            _run(db, club, date(2027, 3, 1), chunk_payers=1, on_chunk=fail)
    _run(db, club, date(2027, 3, 1), chunk_payers=1)
    with db.sessionmaker() as s:
        numbers = sorted(int(n.rsplit("-", 1)[1]) for n in s.scalars(select(Invoice.number)))
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) > 5


# --- invoices as documents, through the API ------------------------------------------------


@pytest.fixture
def billed(db, club, book, world, clock):
    """Today's billing run of a household (two contracts, one SEPA mandate) through the API."""
    clock.set(datetime(2027, 2, 1, 9, 0, tzinfo=UTC))
    payer = book.payer("Maria Koch", "maria@example.test")
    mandate = book.mandate(payer)
    member = world.member(club)
    book.contract(payer, date(2027, 2, 1), mandate_id=mandate, price="29.90", member=member)
    book.contract(payer, date(2027, 2, 1), mandate_id=mandate, price="24.90")
    return payer, member


def test_the_run_now_endpoint_runs_today_once_and_managers_only(client, world, club, billed):
    manager, desk = world.staff(club, "manager"), world.staff(club, "front_desk")
    assert client.post("/api/v1/dues/run", headers=desk.headers).status_code == 403
    first = client.post("/api/v1/dues/run", headers=manager.headers)
    assert first.status_code == 200, first.text
    assert first.json() | {"day": None} == {
        "club_id": club.id, "day": None, "invoices": 1, "lines": 2, "renewed": 0,
        "collections": 1, "notices": 1, "done_before": False}
    assert first.json()["day"] == "2027-02-01"
    again = client.post("/api/v1/dues/run", headers=manager.headers).json()
    assert again["done_before"] is True and again["invoices"] == 0


def test_invoices_are_listed_shown_and_printed_and_never_changed(client, db, world, club,
                                                                  billed):
    payer, member = billed
    _run(db, club, date(2027, 2, 1))
    desk = world.staff(club, "front_desk")
    page = client.get("/api/v1/invoices", headers=desk.headers).json()
    assert page["total"] == 1
    invoice = page["items"][0]
    assert (invoice["payer_id"], invoice["payer_name"], invoice["gross"], invoice["open"],
            invoice["number"]) == (payer, "Maria Koch", "54.80", "54.80", "R2027-0001")
    for query, total in ((f"payer_id={payer}", 1), (f"payer_id={payer + 99}", 0),
                         (f"member_id={int(member)}", 1), ("member_id=999999", 0),
                         ("open=true", 1)):
        assert client.get(f"/api/v1/invoices?{query}", headers=desk.headers).json()[
            "total"] == total, query
    detail = client.get(f"/api/v1/invoices/{invoice['id']}", headers=desk.headers).json()
    assert [line["gross"] for line in detail["lines"]] == ["29.90", "24.90"]
    assert detail["payments"] == [] and detail["seller"]["name"] == "Riverside Fitness GmbH"
    printed = client.get(f"/api/v1/invoices/{invoice['id']}/print", headers=desk.headers)
    assert printed.status_code == 200 and printed.headers["content-type"].startswith("text/html")
    for text in ("Invoice R2027-0001", "Riverside Fitness GmbH", "Maria Koch", "01.02.2027",
                 "25.13", "4.77", "54.80", "Net total", "DE98ZZZ09999999999"):
        assert text in printed.text, text
    for method in ("patch", "delete", "put"):
        assert getattr(client, method)(f"/api/v1/invoices/{invoice['id']}",
                                       headers=desk.headers).status_code == 405
    other = world.club("Other Gym")
    stranger = world.staff(other, "owner")
    for path in (f"/api/v1/invoices/{invoice['id']}", f"/api/v1/invoices/{invoice['id']}/print"):
        assert client.get(path, headers=stranger.headers).status_code == 404
    assert client.get("/api/v1/invoices", headers=stranger.headers).json()["total"] == 0
    trainer = world.staff(club, "trainer")
    assert client.get("/api/v1/invoices", headers=trainer.headers).status_code == 403


def test_a_credit_note_credits_lines_once_and_settles_the_original(
        client, db, world, club, billed):
    _run(db, club, date(2027, 2, 1))
    manager, desk = world.staff(club, "manager"), world.staff(club, "front_desk")
    with db.sessionmaker() as s:
        invoice = s.scalars(select(Invoice)).one()
        first, second = s.scalars(select(InvoiceLine.id).order_by(InvoiceLine.id)).all()
    url = f"/api/v1/invoices/{invoice.id}/credit-note"
    assert client.post(url, json={"reason": "x"}, headers=desk.headers).status_code == 403
    bad = client.post(url, json={"reason": "x", "line_ids": [999]}, headers=manager.headers)
    assert bad.status_code == 422 and bad.json()["error"] == "unknown_invoice_line"
    assert client.post(url, json={"line_ids": [first]}, headers=manager.headers
                       ).status_code == 422
    note = client.post(url, json={"reason": "Moved away", "line_ids": [second]},
                       headers=manager.headers)
    assert note.status_code == 201, note.text
    note = note.json()
    assert (note["kind"], note["corrects_id"], note["gross"], note["number"]) == (
        "credit_note", invoice.id, "-24.90", "R2027-0002")
    assert [(line["charge_key"], line["gross"]) for line in note["lines"]] == [
        (f"credit:{second}", "-24.90")]
    assert note["open"] == "0.00"
    again = client.post(url, json={"reason": "twice", "line_ids": [second]},
                        headers=manager.headers)
    assert again.status_code == 409 and again.json()["error"] == "already_credited"
    original = client.get(f"/api/v1/invoices/{invoice.id}", headers=desk.headers).json()
    assert (original["open"], original["credited_line_ids"]) == ("29.90", [second])
    assert [(p["kind"], p["method"], p["amount"]) for p in original["payments"]] == [
        ("credit", "credit_note", "24.90")]
    with db.sessionmaker() as s:
        assert [(c.status, c.amount) for c in s.scalars(select(Collection))] == [
            ("planned", D("29.90"))]
    rest = client.post(url, json={"reason": "Contract voided"}, headers=manager.headers)
    assert rest.status_code == 201 and rest.json()["gross"] == "-29.90"
    assert client.get(f"/api/v1/invoices/{invoice.id}", headers=desk.headers).json()[
        "open"] == "0.00"
    with db.sessionmaker() as s:
        assert [c.status for c in s.scalars(select(Collection))] == ["cancelled"]
    credit = client.post(f"/api/v1/invoices/{note['id']}/credit-note", json={"reason": "x"},
                         headers=manager.headers)
    assert credit.status_code == 422 and credit.json()["error"] == "not_an_invoice"
    stranger = world.staff(world.club("Other Gym"), "owner")
    assert client.post(url, json={"reason": "x"}, headers=stranger.headers).status_code == 404
    assert client.get("/api/v1/invoices?open=true", headers=desk.headers).json()["total"] == 0
    whole = client.post(url, json={"reason": "again"}, headers=manager.headers)
    assert whole.status_code == 409 and whole.json()["error"] == "already_credited"


# --- the scheduler's job and the command ----------------------------------------------------


def test_the_daily_job_runs_each_club_for_its_own_today_once(db, club, book, world):
    book.contract(book.payer(), date(2027, 2, 1))
    far = world.club("Far East Gym", timezone="Pacific/Auckland")
    at = datetime(2027, 1, 26, 12, 0, tzinfo=UTC)  # 27 January in Auckland already
    results = {r.club_id: r for r in billing_jobs.daily(db.sessionmaker, now=at)}
    assert (results[club.id].day, results[club.id].invoices) == (date(2027, 1, 26), 0)
    assert results[far.id].day == date(2027, 1, 27)
    at = datetime(2027, 1, 27, 9, 0, tzinfo=UTC)
    assert {r.club_id: r.invoices for r in billing_jobs.daily(db.sessionmaker, now=at)}[
        club.id] == 1  # 1 February is within the five days' pre-notification
    assert all(r.done_before for r in billing_jobs.daily(db.sessionmaker, now=at))


def test_the_dues_run_command(monkeypatch, db, club, book):
    book.contract(book.payer(), date(2027, 2, 1))
    monkeypatch.setattr(dues_cli, "_factory", lambda: db.sessionmaker)
    app = typer.Typer()
    dues_cli.register(app)
    runner = CliRunner()
    r = runner.invoke(app, ["dues", "run", "--club", str(club.id), "--day", "2027-02-01"])
    assert r.exit_code == 0, r.output
    assert f"club {club.id} 2027-02-01: 1 invoices, 1 lines, 0 renewed, 1 collections" in r.output
    r = runner.invoke(app, ["dues", "run", "--club", str(club.id), "--day", "2027-02-01"])
    assert "done before" in r.output
    assert runner.invoke(app, ["dues", "run", "--day", "yesterday"]).exit_code != 0
    assert runner.invoke(app, ["dues", "run", "--club", "99999"]).exit_code != 0


def test_bad_input_to_the_invoice_endpoints_is_refused_clearly(client, db, world, club, billed):
    _run(db, club, date(2027, 2, 1))
    manager = world.staff(club, "manager")
    with db.sessionmaker() as s:
        invoice_id = s.scalars(select(Invoice.id)).one()
    url = f"/api/v1/invoices/{invoice_id}/credit-note"
    for body in ({"reason": ""}, {"reason": "x", "line_ids": [0]}, {"reason": "x", "extra": 1},
                 {"reason": "x", "line_ids": "all"}, {}):
        assert client.post(url, json=body, headers=manager.headers).status_code == 422, body
    for path in ("/api/v1/invoices/0", "/api/v1/invoices?payer_id=abc",
                 "/api/v1/invoices?limit=0", "/api/v1/invoices/99999999999999999999"):
        assert client.get(path, headers=manager.headers).status_code == 422, path
    assert client.get("/api/v1/invoices/424242", headers=manager.headers).status_code == 404
    with db.sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(Invoice)) == 1


@pytest.mark.postgres_only
def test_two_credit_notes_at_once_credit_a_line_once(db, world, club, billed):
    _run(db, club, date(2027, 2, 1))
    manager = world.staff(club, "manager")
    actor = Actor(user_id=manager.user_id, name="m", club_id=club.id, role=Role.manager)
    with db.sessionmaker() as s:
        invoice_id = s.scalars(select(Invoice.id)).one()
    outcomes, barrier = [], threading.Barrier(2)

    def credit():
        barrier.wait()
        try:
            with transaction(db.sessionmaker) as s:
                documents.credit_note(s, actor=actor, invoice_id=invoice_id, line_ids=None,
                                      reason="at once")
            outcomes.append("issued")
        except Exception as exc:  # noqa: BLE001 - the loser's error is the outcome
            outcomes.append(getattr(exc, "code", repr(exc)))

    threads = [threading.Thread(target=credit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["already_credited", "issued"]
    with db.sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(Invoice)
                        .where(Invoice.kind == "credit_note")) == 1
        assert s.scalar(select(func.sum(DuesPayment.amount))) == 0  # +54.80 and -54.80
