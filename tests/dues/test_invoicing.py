"""Invoice numbers without gaps, invoices issued once per charge, payments recorded once."""
import threading
from datetime import date
from decimal import Decimal

import pytest

from app.core.db import transaction
from app.dues import invoicing
from app.dues.invoicing import LineIn
from app.dues.models import DuesPayment, DuesSettings, Invoice, InvoiceLine, Payer

D = Decimal


@pytest.fixture
def payer(db, world):
    club = world.club()
    with transaction(db.sessionmaker) as s:
        s.add(DuesSettings(club_id=club.id, invoice_number_format="R{year}-{seq:04d}",
                           legal_name="Riverside Fitness GmbH", vat_registered=True))
        payer = Payer(club_id=club.id, name="Anna Berg", email="anna@example.test")
        s.add(payer)
        s.flush()
        return payer.id, club.id


def _line(key: str, gross: str, rate: str = "19.00") -> LineIn:
    return LineIn(charge_key=key, kind="dues", description=f"Dues {key}", gross=D(gross),
                  tax_rate=D(rate))


def test_an_invoice_is_issued_once_per_charge_with_the_next_number_and_lines_rounded_each(
        db, payer):
    payer_id, club_id = payer
    with transaction(db.sessionmaker) as s:
        first = invoicing.issue_invoice(
            s, club_id=club_id, payer_id=payer_id, issued_on=date(2027, 3, 1),
            due_on=date(2027, 3, 6), method="sepa",
            lines=[_line("dues:1:2027-03-06", "49.90"), _line("join:1", "19.99")])
        assert first.number == "R2027-0001"
        assert (first.net, first.tax, first.gross) == (D("58.73"), D("11.16"), D("69.89"))
        assert first.seller_snapshot["name"] == "Riverside Fitness GmbH"
        again = invoicing.issue_invoice(
            s, club_id=club_id, payer_id=payer_id, issued_on=date(2027, 3, 1),
            due_on=date(2027, 3, 6), method="sepa", lines=[_line("dues:1:2027-03-06", "49.90")])
        assert again is None
        second = invoicing.issue_invoice(
            s, club_id=club_id, payer_id=payer_id, issued_on=date(2027, 3, 2),
            due_on=date(2027, 3, 7), method="sepa",
            lines=[_line("dues:1:2027-03-06", "49.90"), _line("dues:1:2027-04-06", "49.90")])
        assert second.number == "R2027-0002" and second.gross == D("49.90")
        next_year = invoicing.issue_invoice(
            s, club_id=club_id, payer_id=payer_id, issued_on=date(2028, 1, 2),
            due_on=date(2028, 1, 7), method="desk", lines=[_line("fee:x", "5.00", "0")])
        assert next_year.number == "R2028-0001"
    with db.sessionmaker() as s:
        assert s.query(InvoiceLine).filter_by(club_id=club_id).count() == 4
        assert [line.net for line in s.query(InvoiceLine).filter_by(invoice_id=first.id)
                .order_by(InvoiceLine.id)] == [D("41.93"), D("16.80")]


def test_a_rolled_back_invoice_gives_its_number_back(db, payer):
    payer_id, club_id = payer
    with pytest.raises(RuntimeError), transaction(db.sessionmaker) as s:
        invoicing.issue_invoice(s, club_id=club_id, payer_id=payer_id,
                                issued_on=date(2027, 3, 1), due_on=date(2027, 3, 1),
                                method="desk", lines=[_line("a", "10.00")])
        raise RuntimeError("the run was killed")
    with transaction(db.sessionmaker) as s:
        invoice = invoicing.issue_invoice(s, club_id=club_id, payer_id=payer_id,
                                          issued_on=date(2027, 3, 1), due_on=date(2027, 3, 1),
                                          method="desk", lines=[_line("a", "10.00")])
        assert invoice.number == "R2027-0001"


@pytest.mark.postgres_only
def test_writers_at_once_take_consecutive_numbers_without_gaps(db, payer):
    payer_id, club_id = payer
    errors = []

    def issue(n: int) -> None:
        try:
            for k in range(5):
                with transaction(db.sessionmaker) as s:
                    invoicing.issue_invoice(s, club_id=club_id, payer_id=payer_id,
                                            issued_on=date(2027, 5, 1), due_on=date(2027, 5, 1),
                                            method="desk", lines=[_line(f"w{n}:{k}", "1.00")])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=issue, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.sessionmaker() as s:
        numbers = sorted(s.query(Invoice.number).filter_by(club_id=club_id).all())
    assert [n for (n,) in numbers] == [f"R2027-{i:04d}" for i in range(1, 31)]


def test_a_payment_delivered_twice_is_recorded_once(db, payer):
    payer_id, club_id = payer
    with transaction(db.sessionmaker) as s:
        invoice = invoicing.issue_invoice(s, club_id=club_id, payer_id=payer_id,
                                          issued_on=date(2027, 3, 1), due_on=date(2027, 3, 1),
                                          method="card", lines=[_line("a", "49.90")])
        for _ in range(3):
            invoicing.record_payment(s, club_id=club_id, invoice_id=invoice.id,
                                     amount=D("49.90"), method="card",
                                     occurred_on=date(2027, 3, 1), event_key="pi_123")
        assert invoicing.open_amount(s, invoice) == D("0.00")
        invoicing.record_payment(s, club_id=club_id, invoice_id=invoice.id, amount=D("-49.90"),
                                 kind="return", method="sepa", occurred_on=date(2027, 3, 9))
        assert invoicing.open_amount(s, invoice) == D("49.90")
    with db.sessionmaker() as s:
        assert s.query(DuesPayment).filter_by(club_id=club_id).count() == 2


def test_another_clubs_payer_is_not_found(db, world, payer):
    payer_id, _ = payer
    other = world.club("Other Gym")
    with transaction(db.sessionmaker) as s, pytest.raises(Exception, match="Payer not found"):
        invoicing.issue_invoice(s, club_id=other.id, payer_id=payer_id,
                                issued_on=date(2027, 3, 1), due_on=date(2027, 3, 1),
                                method="desk", lines=[_line("a", "1.00")])
