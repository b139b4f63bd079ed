"""The owner's money figures (`app.analytics.money`) and the accounting export, against an
independent plain-Python computation over the same rows.

A scripted small history of one club (January to August 2026): six payers, monthly, 4-weekly and
yearly contracts, a price rise and a price cut, a cancellation received at the desk, a member who
leaves and comes back, a SEPA return written off (the contract ends with unpaid dues), a failed
card charge recovered at the desk, a credit note, a café sale charged to account and desk sales.
The dues rows are written straight into the tables, as the billing, SEPA, card and dunning
services leave them. A second club's rows sit next to them and must never count.
"""
import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.analytics import money, money_export, service
from app.billing.models import Sale, SaleLine
from app.core.db import transaction
from app.dues.models import (
    Collection,
    Contract,
    DuesPayment,
    DunningCase,
    Invoice,
    InvoiceLine,
    Payer,
)
from app.dues.terms import split_gross
from app.memberships.models import Membership
from app.memberships.rules import add_months
from tests.builders import local

BERLIN = ZoneInfo("Europe/Berlin")
FROM, TO, AS_OF = date(2026, 1, 1), date(2026, 8, 31), date(2026, 9, 15)
FAR = date(2027, 12, 31)
CENT = Decimal("0.01")
D = Decimal


# --- writing the dues rows ---------------------------------------------------------------------

@dataclass
class Ledger:
    """Dues rows of one club, written as the dues services leave them."""

    db: object
    world: object
    club: object
    plan_id: int = 0
    numbers: int = 0
    keys: int = 0
    ids: dict = field(default_factory=dict)

    def __post_init__(self):
        self.plan_id = self.world.plan(self.club, months=1)

    def _add(self, row):
        with transaction(self.db.sessionmaker) as s:
            s.add(row)
            s.flush()
            return row.id

    def payer(self, name: str, member: int | None = None) -> int:
        return self._add(Payer(club_id=self.club.id, member_id=member, name=name,
                               email=f"{name.lower()}@example.com"))

    def contract(self, member, payer, period, price, starts, *, ends=None, received=None,
                 next_price=None, next_from=None, cancelled_on=None) -> int:
        ms = self.world.membership(self.club, member, self.plan_id, starts, ends or FAR,
                                   price=price, cancelled_on=cancelled_on)
        return self._add(Contract(
            club_id=self.club.id, membership_id=ms, member_id=int(member), payer_id=payer,
            method="sepa", period=period, price=D(price), starts_on=starts, term_end=ends or FAR,
            next_due=starts, cancel_received_on=received, ends_on=ends,
            next_price=None if next_price is None else D(next_price), next_price_from=next_from))

    def invoice(self, payer, issued, lines, *, kind="invoice", due=None, method="sepa",
                corrects=None) -> int:
        """lines: (kind, gross, contract or None, member or None)."""
        self.numbers += 1
        amounts = [split_gross(D(g), D("19.00")) for _, g, _, _ in lines]
        invoice = self._add(Invoice(
            club_id=self.club.id, payer_id=payer, number=f"{self.club.id}-2026-{self.numbers:05d}",
            kind=kind, corrects_id=corrects, issued_on=issued, due_on=due or issued,
            method=method, net=sum(a.net for a in amounts), tax=sum(a.tax for a in amounts),
            gross=sum(a.gross for a in amounts), created_at=local(issued)))
        with transaction(self.db.sessionmaker) as s:
            for (line_kind, _, contract, member), a in zip(lines, amounts, strict=True):
                self.keys += 1
                s.add(InvoiceLine(club_id=self.club.id, invoice_id=invoice,
                                  charge_key=f"{line_kind}:{self.keys}", kind=line_kind,
                                  contract_id=contract, member_id=member,
                                  description=line_kind, unit_price=a.gross,
                                  tax_rate=D("19.00"), net=a.net, tax=a.tax, gross=a.gross))
        return invoice

    def collection(self, invoice, payer, amount, due, status, *, attempt=1, method="sepa",
                   failed_on=None, code=None) -> int:
        return self._add(Collection(
            club_id=self.club.id, invoice_id=invoice, payer_id=payer, attempt=attempt,
            method=method, amount=D(amount), due_on=due, status=status, failed_on=failed_on,
            failure_code=code))

    def payment(self, invoice, payer, amount, on, *, kind="payment", method="sepa",
                collection=None) -> int:
        self.keys += 1
        return self._add(DuesPayment(
            club_id=self.club.id, invoice_id=invoice, payer_id=payer, collection_id=collection,
            kind=kind, method=method, amount=D(amount), occurred_on=on,
            event_key=f"event-{self.keys}", created_at=local(on)))

    def collected(self, invoice, payer, amount, due) -> None:
        """A SEPA debit paid on its due day."""
        c = self.collection(invoice, payer, amount, due, "paid")
        self.payment(invoice, payer, amount, due, collection=c)

    def dunning(self, invoice, payer, member, opened, *, closed=None, outcome=None) -> int:
        return self._add(DunningCase(club_id=self.club.id, invoice_id=invoice, payer_id=payer,
                                     member_id=int(member), opened_on=opened, amount=D("0"),
                                     closed_on=closed, outcome=outcome))

    def desk_sale(self, member, at: datetime, lines, *, to_account=False) -> int:
        with transaction(self.db.sessionmaker) as s:
            sale = Sale(club_id=self.club.id, member_id=int(member), to_account=to_account,
                        total=sum(D(a) for _, a in lines), created_at=at)
            s.add(sale)
            s.flush()
            for kind, amount in lines:
                s.add(SaleLine(club_id=self.club.id, sale_id=sale.id, kind=kind,
                               description=kind, unit_price=D(amount), amount=D(amount)))
            return sale.id


def monthly_invoices(book: Ledger, payer, member, contract, price_of, first, last, *,
                     skip=()) -> dict[date, int]:
    """One dues invoice per month from `first` to `last` (first days), collected on the day."""
    out, day = {}, first
    while day <= last:
        price = price_of(day)
        invoice = book.invoice(payer, day, [("dues", price, contract, member)])
        if day not in skip:
            book.collected(invoice, payer, price, day)
        out[day] = invoice
        day = add_months(day, 1)
    return out


@pytest.fixture
def history(db, world):
    club = world.club()
    book = Ledger(db, world, club)
    anna, ben, cara, dan, eve, finn, gus = (world.member(club, n) for n in (
        "Anna", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus"))
    p = {name: book.payer(name, member) for name, member in (
        ("Anna", anna), ("Ben", ben), ("Cara", cara), ("Dan", dan), ("Eve", eve),
        ("Finn", finn))}
    # Anna: monthly 49.00, 54.00 from April (expansion); a joining fee; café to account in March
    c_anna = book.contract(anna, p["Anna"], "month", "49.00", date(2026, 1, 1),
                           next_price="54.00", next_from=date(2026, 4, 1))
    first = book.invoice(p["Anna"], date(2026, 1, 1), [("dues", "49.00", c_anna, anna),
                                                      ("joining_fee", "19.00", c_anna, anna)])
    book.collected(first, p["Anna"], "68.00", date(2026, 1, 1))
    cafe = book.desk_sale(anna, local(date(2026, 2, 20)), [("product", "12.50")],
                          to_account=True)
    march = book.invoice(p["Anna"], date(2026, 3, 1), [("dues", "49.00", c_anna, anna),
                                                      ("cafe", "12.50", None, anna)])
    book.collected(march, p["Anna"], "61.50", date(2026, 3, 1))
    with transaction(db.sessionmaker) as s:  # the café line names its sale
        s.execute(InvoiceLine.__table__.update().where(InvoiceLine.invoice_id == march,
                                                       InvoiceLine.kind == "cafe")
                  .values(sale_id=cafe))
    for day in (date(2026, 2, 1), *(date(2026, m, 1) for m in range(4, 9))):
        price = "49.00" if day < date(2026, 4, 1) else "54.00"
        book.collected(book.invoice(p["Anna"], day, [("dues", price, c_anna, anna)]),
                       p["Anna"], price, day)
    # Ben: every 4 weeks 39.90 (43.23 a month) from 10 Feb; cancelled at the desk on 20 April,
    # ends 31 May (voluntary)
    c_ben = book.contract(ben, p["Ben"], "4weeks", "39.90", date(2026, 2, 10),
                          ends=date(2026, 5, 31), received=date(2026, 4, 20))
    day = date(2026, 2, 10)
    while day <= date(2026, 5, 31):
        book.collected(book.invoice(p["Ben"], day, [("dues", "39.90", c_ben, ben)]),
                       p["Ben"], "39.90", day)
        day += timedelta(days=28)
    # Cara: yearly 499.00 (41.58 a month) from 1 March
    c_cara = book.contract(cara, p["Cara"], "year", "499.00", date(2026, 3, 1))
    book.collected(book.invoice(p["Cara"], date(2026, 3, 1), [("dues", "499.00", c_cara, cara)]),
                   p["Cara"], "499.00", date(2026, 3, 1))
    # Dan: monthly 59.00 from 15 Jan; May's debit returned (AM04) with the bank's fee on June's
    # invoice, June's never collected; dunning from 8 May, written off 30 June; the contract
    # ends 30 June (involuntary)
    c_dan = book.contract(dan, p["Dan"], "month", "59.00", date(2026, 1, 15),
                          ends=date(2026, 6, 30))
    dans = monthly_invoices(book, p["Dan"], dan, c_dan, lambda d: "59.00", date(2026, 1, 15),
                            date(2026, 4, 15))
    may = book.invoice(p["Dan"], date(2026, 5, 15), [("dues", "59.00", c_dan, dan)])
    debit = book.collection(may, p["Dan"], "59.00", date(2026, 5, 15), "returned",
                            failed_on=date(2026, 5, 20), code="AM04")
    book.payment(may, p["Dan"], "59.00", date(2026, 5, 15), collection=debit)
    book.payment(may, p["Dan"], "-59.00", date(2026, 5, 20), kind="return", collection=debit)
    june = book.invoice(p["Dan"], date(2026, 6, 15), [("dues", "59.00", c_dan, dan),
                                                     ("return_fee", "3.00", None, dan)])
    book.collection(june, p["Dan"], "62.00", date(2026, 6, 15), "cancelled")
    book.dunning(may, p["Dan"], dan, date(2026, 5, 20), closed=date(2026, 6, 30),
                 outcome="written_off")
    # Eve: monthly 69.00 from 1 Feb, 59.00 from June (contraction); June's card charge fails on
    # 3 June, paid in cash on 10 June (recovered)
    c_eve = book.contract(eve, p["Eve"], "month", "69.00", date(2026, 2, 1),
                          next_price="59.00", next_from=date(2026, 6, 1))
    eves = monthly_invoices(book, p["Eve"], eve, c_eve,
                            lambda d: "69.00" if d < date(2026, 6, 1) else "59.00",
                            date(2026, 2, 1), date(2026, 8, 1), skip=(date(2026, 6, 1),))
    failed = book.collection(eves[date(2026, 6, 1)], p["Eve"], "59.00", date(2026, 6, 3),
                             "failed", method="card", failed_on=date(2026, 6, 3),
                             code="card_declined")
    book.payment(eves[date(2026, 6, 1)], p["Eve"], "59.00", date(2026, 6, 10), method="cash")
    book.dunning(eves[date(2026, 6, 1)], p["Eve"], eve, date(2026, 6, 3),
                 closed=date(2026, 6, 10), outcome="recovered")
    # Finn: monthly 39.00 January and February (cancelled), 10.00 credited in February; back
    # with a new contract from May (reactivated)
    c_finn = book.contract(finn, p["Finn"], "month", "39.00", date(2026, 1, 1),
                           ends=date(2026, 2, 28), received=date(2026, 1, 20))
    book.collected(book.invoice(p["Finn"], date(2026, 1, 1), [("dues", "39.00", c_finn, finn)]),
                   p["Finn"], "39.00", date(2026, 1, 1))
    feb = book.invoice(p["Finn"], date(2026, 2, 1), [("dues", "39.00", c_finn, finn)])
    credit = book.invoice(p["Finn"], date(2026, 2, 5), [("credit", "10.00", c_finn, finn)],
                          kind="credit_note", corrects=feb)
    book.payment(feb, p["Finn"], "10.00", date(2026, 2, 5), kind="credit", method="credit_note")
    book.collected(feb, p["Finn"], "29.00", date(2026, 2, 6))
    c_finn2 = book.contract(finn, p["Finn"], "month", "39.00", date(2026, 5, 1))
    monthly_invoices(book, p["Finn"], finn, c_finn2, lambda d: "39.00", date(2026, 5, 1),
                     date(2026, 8, 1))
    # Gus: a membership cancelled on its first day never ran
    book.contract(gus, p["Anna"], "month", "99.00", date(2026, 3, 1),
                  cancelled_on=date(2026, 3, 1))
    # desk sales in March (one after 23:00 Berlin on 31 March: still March) and one in April
    book.desk_sale(cara, local(date(2026, 3, 3)), [("membership", "100.00"),
                                                   ("product", "4.50")])
    book.desk_sale(cara, local(date(2026, 3, 31), 23, 30), [("pt_package", "300.00")])
    book.desk_sale(ben, local(date(2026, 4, 2)), [("product", "3.20")])
    # another club: never counted
    other = world.club("Elsewhere")
    there = Ledger(db, world, other)
    zed = world.member(other, "Zed")
    pz = there.payer("Zed", zed)
    cz = there.contract(zed, pz, "month", "500.00", date(2026, 1, 1))
    iz = there.invoice(pz, date(2026, 3, 1), [("dues", "500.00", cz, zed)])
    there.collection(iz, pz, "500.00", date(2026, 3, 1), "returned",
                     failed_on=date(2026, 3, 4))
    there.dunning(iz, pz, zed, date(2026, 3, 4))
    there.desk_sale(zed, local(date(2026, 3, 3)), [("product", "999.00")])
    return {"club": club, "other": other, "eve_failed": failed, "dans": dans, "credit": credit}


# --- the independent computation ---------------------------------------------------------------

def _rows(db, club_id):
    with transaction(db.sessionmaker) as s:
        def all_of(model):
            return list(s.scalars(select(model).where(model.club_id == club_id)))
        out = {m.__name__: all_of(m) for m in (Contract, Membership, Invoice, InvoiceLine,
                                               Collection, DuesPayment, DunningCase, Sale,
                                               SaleLine, Payer)}
        s.expunge_all()
    return out


def _month_days(date_from=FROM, date_to=TO):
    day = date_from.replace(day=1)
    while day <= date_to:
        nxt = add_months(day, 1)
        yield f"{day:%Y-%m}", min(nxt - timedelta(days=1), date_to), day - timedelta(days=1)
        day = nxt


def ref_monthly(c, day) -> Decimal:
    price = c.next_price if c.next_price_from and c.next_price_from <= day else c.price
    monthly = {"month": price, "4weeks": price * 13 / 12, "year": price / 12}[c.period]
    return monthly.quantize(CENT, rounding=ROUND_HALF_UP)


def ref_mrr(r):
    ms = {m.id: m for m in r["Membership"]}

    def void(c):
        m = ms[c.membership_id]
        return m.cancelled_on is not None and m.cancelled_on <= m.start_date

    def runs(c, day):
        m = ms[c.membership_id]
        return (not void(c) and c.starts_on <= day and (c.ends_on is None or c.ends_on >= day)
                and (m.cancelled_on is None or m.cancelled_on > day))

    def per_member(day):
        out, running = {}, set()
        for c in r["Contract"]:
            if runs(c, day):
                out[c.member_id] = out.get(c.member_id, D(0)) + ref_monthly(c, day)
                running.add(c.member_id)
        return out, running

    result = {}
    for label, day, prev in _month_days():
        now, running = per_member(day)
        then, _ = per_member(prev)
        f = {k: D(0) for k in ("new", "reactivated", "expansion", "contraction", "churned")}
        for member in set(now) | set(then):
            a, b = then.get(member, D(0)), now.get(member, D(0))
            before = any(c.member_id == member and not void(c) and c.starts_on <= prev
                         for c in r["Contract"])
            if a == 0 and b > 0:
                f["reactivated" if before else "new"] += b
            elif a > 0 and b == 0:
                f["churned"] += a
            elif 0 < a < b:
                f["expansion"] += b - a
            elif 0 < b < a:
                f["contraction"] += a - b
        total = sum(now.values(), D(0))
        result[label] = dict(day=day, mrr=total, starting=sum(then.values(), D(0)),
                             members=len(running), **f,
                             arpm=(total / len(running)).quantize(CENT, ROUND_HALF_UP)
                             if running else None)
    return result


def ref_revenue(r):
    out = {}
    invoices = {i.id: i for i in r["Invoice"]}
    for line in r["InvoiceLine"]:
        i = invoices[line.invoice_id]
        if FROM <= i.issued_on <= TO:
            amount = -abs(line.gross) if i.kind == "credit_note" else line.gross
            key = (f"{i.issued_on:%Y-%m}", "invoices", line.kind)
            out[key] = out.get(key, D(0)) + amount
    sales = {s.id: s for s in r["Sale"]}
    names = {"membership": "membership", "pt_package": "pt", "product": "cafe"}
    for line in r["SaleLine"]:
        sale = sales[line.sale_id]
        day = sale.created_at.astimezone(BERLIN).date()
        if not sale.to_account and FROM <= day <= TO:
            key = (f"{day:%Y-%m}", "desk", names.get(line.kind, line.kind))
            out[key] = out.get(key, D(0)) + line.amount
    return out


def ref_receivables(r, date_from=FROM):
    out = {}
    for label, day, _ in _month_days(date_from):
        for i in r["Invoice"]:
            if i.kind != "invoice" or i.issued_on > day:
                continue
            open_ = i.gross - sum((p.amount for p in r["DuesPayment"]
                                   if p.invoice_id == i.id and p.occurred_on <= day), D(0))
            if open_ <= 0:
                continue
            late = (day - i.due_on).days
            band = ("not_due" if late < 0 else "0-30" if late <= 30 else "31-60" if late <= 60
                    else "61-90" if late <= 90 else "90+")
            n, v = out.get((label, band), (0, D(0)))
            out[(label, band)] = (n + 1, v + open_)
    return out


def ref_collections(r, as_of):
    out = {label: {"attempted": 0, "failed": 0, "failed_invoices": 0, "recovered": 0,
                   "pending": 0} for label, _, _ in _month_days()}
    for c in r["Collection"]:
        if FROM <= c.due_on <= TO:
            row = out[f"{c.due_on:%Y-%m}"]
            row["attempted"] += c.status in ("submitted", "pending", "paid", "returned", "failed")
            row["failed"] += c.status in ("returned", "failed")
    firsts = {}
    for c in r["Collection"]:
        if c.status in ("returned", "failed"):
            day = c.failed_on or c.due_on
            firsts[c.invoice_id] = min(day, firsts.get(c.invoice_id, day))
    invoices = {i.id: i for i in r["Invoice"]}
    for invoice_id, day in firsts.items():
        if not FROM <= day <= TO:
            continue
        row = out[f"{day:%Y-%m}"]
        paid = sum((p.amount for p in r["DuesPayment"] if p.invoice_id == invoice_id
                    and p.occurred_on <= day + timedelta(days=30)), D(0))
        row["failed_invoices"] += 1
        if paid >= invoices[invoice_id].gross:
            row["recovered"] += 1
        elif day + timedelta(days=30) >= as_of:
            row["pending"] += 1
    return out


def ref_churn(r):
    ms = {m.id: m for m in r["Membership"]}
    out = {label: {"involuntary": 0, "voluntary": 0, "other": 0}
           for label, _, _ in _month_days()}
    for c in r["Contract"]:
        m = ms[c.membership_id]
        if m.cancelled_on is not None and m.cancelled_on <= m.start_date:
            continue
        ends = [d for d in (c.ends_on, m.cancelled_on and m.cancelled_on - timedelta(days=1))
                if d is not None]
        if not ends or not FROM <= min(ends) <= TO:
            continue
        last = min(ends)
        unpaid = any((d.member_id == c.member_id or d.payer_id == c.payer_id)
                     and d.opened_on <= last
                     and (d.closed_on is None or d.closed_on >= last
                          or d.outcome == "written_off") for d in r["DunningCase"])
        kind = "involuntary" if unpaid else "voluntary" if c.cancel_received_on else "other"
        out[f"{last:%Y-%m}"][kind] += 1
    return out


# --- the figures against it --------------------------------------------------------------------

def _report(db, fn, club, as_of=AS_OF):
    with transaction(db.sessionmaker) as s:
        return fn(s, club_id=club.id, as_of=as_of, date_from=FROM, date_to=TO)


def test_mrr_and_its_movement_match_the_reference(db, history):
    r = _rows(db, history["club"].id)
    expected = ref_mrr(r)
    items = _report(db, money.mrr_report, history["club"]).items
    assert [i.month for i in items] == list(expected)
    for i in items:
        e = expected[i.month]
        assert (i.day, i.mrr, i.starting, i.members, i.arpm) == (
            e["day"], e["mrr"], e["starting"], e["members"], e["arpm"]), i.month
        assert (i.new, i.reactivated, i.expansion, i.contraction, i.churned) == (
            e["new"], e["reactivated"], e["expansion"], e["contraction"], e["churned"]), i.month
        assert i.starting + i.new + i.reactivated + i.expansion - i.contraction - i.churned \
            == i.mrr
    for a, b in pairwise(items):
        assert b.starting == a.mrr  # a month starts where the last ended
    by = {i.month: i for i in items}
    # known by construction: 4-weekly 39.90 → 43.23, yearly 499.00 → 41.58 a month
    assert by["2026-03"].new == D("41.58")
    assert by["2026-02"].new == D("69.00") + D("43.23")
    assert by["2026-03"].churned == D("39.00")  # Finn ran to 28 February
    assert by["2026-04"].expansion == D("5.00")
    assert by["2026-05"].reactivated == D("39.00")
    assert by["2026-06"].churned == D("43.23") and by["2026-06"].contraction == D("10.00")
    assert by["2026-07"].churned == D("59.00")  # Dan's last day was 30 June
    assert by["2026-08"].mrr == D("54.00") + D("41.58") + D("59.00") + D("39.00")
    assert by["2026-08"].members == 4 and by["2026-08"].arpm == D("48.40")


def test_revenue_by_month_and_kind_matches_the_reference(db, history):
    r = _rows(db, history["club"].id)
    expected = ref_revenue(r)
    report = _report(db, money.revenue_report, history["club"])
    got = {(i.month, i.source, i.kind): i.amount for i in report.items}
    assert got == expected
    assert got[("2026-02", "invoices", "credit")] == D("-10.00")
    assert got[("2026-03", "invoices", "cafe")] == D("12.50")
    assert ("2026-02", "desk", "cafe") not in got  # charged to account: on the invoice only
    assert got[("2026-03", "desk", "pt")] == D("300.00")  # 23:30 Berlin on 31 March
    for m in report.months:
        inv = sum((v for (k, src, _), v in expected.items() if k == m.month
                   and src == "invoices"), D(0))
        desk = sum((v for (k, src, _), v in expected.items() if k == m.month and src == "desk"),
                   D(0))
        assert (m.invoiced, m.desk, m.total) == (inv, desk, inv + desk)


def test_receivables_by_age_match_the_reference(db, history):
    r = _rows(db, history["club"].id)
    expected = ref_receivables(r)
    items = _report(db, money.receivables_report, history["club"]).items
    for i in items:
        assert (i.invoices, i.amount) == expected.get((i.month, i.band), (0, D(0))), i
    assert sum(n for n, _ in expected.values()) > 0
    later = date(2026, 6, 1)  # what was settled before then is not joined to every month
    with transaction(db.sessionmaker) as s:
        june_on = money.receivables_report(s, club_id=history["club"].id, as_of=AS_OF,
                                           date_from=later, date_to=TO).items
    expected_later = ref_receivables(r, later)
    assert [(i.month, i.band, i.invoices, i.amount) for i in june_on] == [
        (i.month, i.band, *expected_later.get((i.month, i.band), (0, D(0))))
        for i in june_on]
    assert {i.month for i in june_on} == {"2026-06", "2026-07", "2026-08"}
    aug = {i.band: i for i in items if i.month == "2026-08"}
    # Dan's May invoice (returned, 108 days late on 31 Aug) and June's (77 days)
    assert aug["90+"].amount == D("59.00") and aug["61-90"].amount == D("62.00")


def test_failed_payments_and_recovery_match_the_reference(db, history):
    r = _rows(db, history["club"].id)
    for as_of in (AS_OF, date(2026, 6, 20)):
        to = min(TO, as_of)
        expected = ref_collections(r, as_of)
        with transaction(db.sessionmaker) as s:
            items = money.collections_report(s, club_id=history["club"].id, as_of=as_of,
                                             date_from=FROM, date_to=to).items
        for i in items:
            e = expected[i.month]
            assert (i.attempted, i.failed, i.failed_invoices, i.recovered, i.pending) == (
                e["attempted"], e["failed"], e["failed_invoices"], e["recovered"],
                e["pending"]), (as_of, i)
    by = {i.month: i for i in _report(db, money.collections_report, history["club"]).items}
    assert (by["2026-05"].failed_invoices, by["2026-05"].recovered) == (1, 0)
    assert by["2026-05"].recovery_rate == 0.0
    assert (by["2026-06"].failed, by["2026-06"].recovered, by["2026-06"].recovery_rate) == (
        1, 1, 1.0)
    assert by["2026-05"].failed_rate == round(1 / by["2026-05"].attempted, 4)


def test_involuntary_and_voluntary_churn_match_the_reference(db, history):
    r = _rows(db, history["club"].id)
    expected = ref_churn(r)
    items = _report(db, money.churn_report, history["club"]).items
    for i in items:
        e = expected[i.month]
        assert (i.involuntary, i.voluntary, i.other) == (
            e["involuntary"], e["voluntary"], e["other"]), i.month
        assert i.ended == i.involuntary + i.voluntary + i.other
    by = {i.month: i for i in items}
    assert by["2026-02"].voluntary == 1 and by["2026-05"].voluntary == 1
    assert by["2026-06"].involuntary == 1
    assert sum(i.ended for i in items) == 3  # Gus's void membership never ran


def test_another_clubs_rows_count_only_there(db, history):
    other = history["other"]
    mrr = _report(db, money.mrr_report, other).items
    assert {i.mrr for i in mrr} == {D("500.00")} and mrr[0].new == D("500.00")
    revenue = _report(db, money.revenue_report, other).items
    assert {(i.month, i.source, i.kind, i.amount) for i in revenue} == {
        ("2026-03", "invoices", "dues", D("500.00")), ("2026-03", "desk", "cafe", D("999.00"))}
    ages = _report(db, money.receivables_report, other).items
    assert sum(i.amount for i in ages) == 6 * D("500.00")  # open from March to August
    churn = _report(db, money.churn_report, other).items
    assert sum(i.ended for i in churn) == 0


# --- the HTTP edge -----------------------------------------------------------------------------

FIGURES = ["mrr", "revenue", "receivables", "collections", "churn"]
PERIOD = "from=2026-01-01&to=2026-08-31"


def test_owners_and_managers_only(client, world, history):
    club = history["club"]
    staff = {role: world.staff(club, role) for role in ("owner", "manager", "front_desk",
                                                        "trainer")}
    paths = [f"/api/v1/analytics/money/{f}?{PERIOD}" for f in FIGURES] + [
        "/api/v1/analytics/money/export?month=2026-05",
        "/api/v1/analytics/money/export?month=2026-05&format=datev"]
    for path in paths:
        for role, status in (("owner", 200), ("manager", 200), ("front_desk", 403),
                             ("trainer", 403)):
            r = client.get(path, headers=staff[role].headers)
            assert r.status_code == status, (path, role, r.text)
            if status == 403:
                assert r.json()["error"] == "forbidden_role"
        assert client.get(path).status_code == 401


def test_json_csv_and_svg_of_every_figure(client, world, history, db):
    owner = world.staff(history["club"], "owner")
    for figure in FIGURES:
        base = f"/api/v1/analytics/money/{figure}?{PERIOD}"
        data = client.get(base, headers=owner.headers).json()
        assert data["date_from"] == "2026-01-01" and data["items"], figure
        r = client.get(base + "&format=csv", headers=owner.headers)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert len(rows) == len(data["items"]), figure
        assert list(rows[0]) == list(data["items"][0]), figure
        for item, row in zip(data["items"], rows, strict=True):
            for key, value in item.items():
                assert row[key] == ("" if value is None else str(value)), (figure, key)
        svg = client.get(base + "&format=svg", headers=owner.headers)
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg")
        assert svg.text.startswith("<svg") and "data-value" in svg.text, figure
    mrr = client.get(f"/api/v1/analytics/money/mrr?{PERIOD}", headers=owner.headers).json()
    aug = mrr["items"][-1]
    assert (aug["month"], D(aug["mrr"]), aug["members"]) == ("2026-08", D("193.58"), 4)
    svg = client.get(f"/api/v1/analytics/money/mrr?{PERIOD}&format=svg",
                     headers=owner.headers).text
    assert 'data-key="2026-08" data-value="193.58"' in svg


def test_bad_input_is_refused(client, world, history):
    owner = world.staff(history["club"], "owner")
    for path in ("/api/v1/analytics/money/mrr?from=2026-05-01&to=2026-04-01",
                 "/api/v1/analytics/money/mrr?from=2020-01-01&to=2026-01-01",
                 "/api/v1/analytics/money/mrr?format=pdf",
                 "/api/v1/analytics/money/export?month=2026-13",
                 "/api/v1/analytics/money/export?month=0000-01",
                 "/api/v1/analytics/money/export?month=9999-12",
                 "/api/v1/analytics/money/export?month=May",
                 "/api/v1/analytics/money/export",
                 "/api/v1/analytics/money/export?month=2026-05&format=xls",
                 "/api/v1/analytics/money/export?month=2026-05&format=datev&consultant=12"):
        r = client.get(path, headers=owner.headers)
        assert r.status_code in (400, 422), (path, r.status_code, r.text)


# --- the accounting export ---------------------------------------------------------------------

def test_the_accounting_csv_of_a_month(client, world, history, db):
    owner = world.staff(history["club"], "owner")
    r = client.get("/api/v1/analytics/money/export?month=2026-05", headers=owner.headers)
    assert r.status_code == 200 and 'filename="accounting-2026-05.csv"' in \
        r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    rr = _rows(db, history["club"].id)
    may = [i for i in rr["Invoice"] if i.issued_on.strftime("%Y-%m") == "2026-05"]
    docs = [row for row in rows if row["record"] in ("invoice", "credit_note")]
    assert sorted(row["document"] for row in docs) == sorted(i.number for i in may)
    assert sum(D(row["gross"]) for row in docs) == sum(i.gross for i in may)
    moves = [p for p in rr["DuesPayment"] if p.occurred_on.strftime("%Y-%m") == "2026-05"
             and p.kind != "credit"]
    money_rows = [row for row in rows if row["record"] in ("payment", "return", "refund")]
    assert len(money_rows) == len(moves)
    assert sum(D(row["gross"]) for row in money_rows) == sum(p.amount for p in moves)
    returned = next(row for row in money_rows if row["record"] == "return")
    assert (D(returned["gross"]), returned["reason"], returned["date"]) == (
        D("-59.00"), "AM04", "2026-05-20")
    other = client.get("/api/v1/analytics/money/export?month=2026-03",
                       headers=world.staff(history["other"], "owner").headers)
    assert [row["gross"] for row in csv.DictReader(io.StringIO(other.text))] == ["500.00"]
    feb = list(csv.DictReader(io.StringIO(client.get(
        "/api/v1/analytics/money/export?month=2026-02", headers=owner.headers).text)))
    note = next(row for row in feb if row["record"] == "credit_note")
    invoices = {i.id: i.number for i in rr["Invoice"]}
    feb_invoice = next(i for i in rr["Invoice"] if i.id == history["credit"]).corrects_id
    assert D(note["gross"]) == D("-10.00") and note["corrects"] == invoices[feb_invoice]
    assert not any(row["record"] == "credit" for row in feb)  # a credit settles, moves no money


def test_the_datev_booking_batch(client, world, history, db):
    owner = world.staff(history["club"], "owner")
    r = client.get("/api/v1/analytics/money/export?month=2026-05&format=datev"
                   "&consultant=29098&client=55003", headers=owner.headers)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=windows-1252"
    assert 'filename="EXTF_Buchungsstapel_2026-05.csv"' in r.headers["content-disposition"]
    text = r.content.decode("cp1252")
    assert "\r\n" in text and "Gegenkonto (ohne BU-Schlüssel)" in text
    lines = text.rstrip("\r\n").split("\r\n")
    head = lines[0].split(";")
    assert len(head) == 31
    assert head[:5] == ['"EXTF"', "700", "21", '"Buchungsstapel"', "13"]
    assert head[10:16] == ["29098", "55003", "20260101", "4", "20260501", "20260531"]
    assert lines[1].split(";")[0] == "Umsatz (ohne Soll/Haben-Kz)"
    bookings = [line.split(";") for line in lines[2:]]
    rr = _rows(db, history["club"].id)
    may = {i.number: i for i in rr["Invoice"] if i.issued_on.strftime("%Y-%m") == "2026-05"}
    invoices = [b for b in bookings if b[6] == "10000"]
    assert sorted(b[10].strip('"') for b in invoices) == sorted(may)
    for b in invoices:
        i = may[b[10].strip('"')]
        assert (b[0], b[1], b[7], b[9]) == (f"{i.gross:.2f}".replace(".", ","), '"S"', "8400",
                                            i.issued_on.strftime("%d%m"))
    ret = [b for b in bookings if b[1] == '"H"']
    assert [(b[0], b[6], b[7], b[9]) for b in ret] == [("59,00", "1200", "10000", "2005")]
    assert all("." not in b[0] for b in bookings)


def test_the_export_of_an_empty_month_is_headers_only(client, world, history):
    owner = world.staff(history["club"], "owner")
    r = client.get("/api/v1/analytics/money/export?month=2025-01", headers=owner.headers)
    assert r.text.strip().split("\n") == [",".join(money_export.COLUMNS)]
    assert money_export.COLUMNS == [
        "record", "date", "document", "corrects", "payer_id", "payer", "method", "tax_rate",
        "net", "tax", "gross", "currency", "due_on", "reference", "reason"]
    d = client.get("/api/v1/analytics/money/export?month=2025-01&format=datev",
                   headers=owner.headers)
    assert len(d.content.decode("cp1252").rstrip("\r\n").split("\r\n")) == 2


def test_month_days_are_the_last_day_or_to(db, history):
    with transaction(db.sessionmaker) as s:
        items = money.mrr_report(s, club_id=history["club"].id, as_of=AS_OF,
                                 date_from=date(2026, 2, 10), date_to=date(2026, 4, 10)).items
    assert [(i.month, i.day) for i in items] == [("2026-02", date(2026, 2, 28)),
                                                ("2026-03", date(2026, 3, 31)),
                                                ("2026-04", date(2026, 4, 10))]
    assert items[0].starting == D("49.00") + D("59.00") + D("39.00")


def test_the_renewal_breakdown_by_dues_splits_involuntary_from_voluntary(db, history, client,
                                                                         world):
    """`/renewals/breakdown?by=dues`: the memberships that ended, by how they ended — the same
    rule as the churn split (Ben and Finn cancelled, Dan ended with dues written off)."""
    with transaction(db.sessionmaker) as s:
        report = service.renewal_breakdown(s, club_id=history["club"].id, as_of=AS_OF,
                                           by="dues", date_from=FROM, date_to=TO)
    got = {r.key: r.ended for r in report.items}
    expected = {k: sum(v[k] for v in ref_churn(_rows(db, history["club"].id)).values())
                for k in ("involuntary", "voluntary", "other")}
    assert got == {k: n for k, n in expected.items() if n} == {"involuntary": 1, "voluntary": 2}
    assert sum(r.ended for r in report.items) == report.totals.ended
    owner = world.staff(history["club"], "owner")
    r = client.get(f"/api/v1/analytics/renewals/breakdown?by=dues&{PERIOD}&format=csv",
                   headers=owner.headers)
    assert r.status_code == 200 and "ended with unpaid dues" in r.text


def test_the_export_is_inert_in_a_spreadsheet_and_datev_text_is_quoted(client, world, history,
                                                                        db):
    with transaction(db.sessionmaker) as s:
        s.execute(Payer.__table__.update().where(Payer.club_id == history["club"].id,
                                                 Payer.name == "Dan")
                  .values(name='=HYPERLINK("x");Jürgen'))
    owner = world.staff(history["club"], "owner")
    text = client.get("/api/v1/analytics/money/export?month=2026-05",
                      headers=owner.headers).text
    payers = {row["payer"] for row in csv.DictReader(io.StringIO(text))}
    assert '\'=HYPERLINK("x");Jürgen' in payers
    datev = client.get("/api/v1/analytics/money/export?month=2026-05&format=datev",
                       headers=owner.headers).content.decode("cp1252")
    assert '"Rücklastschrift =HYPERLINK(""x"");Jürgen"' in datev  # one quoted field
    row = next(line for line in datev.split("\r\n") if "Rücklastschrift" in line)
    # 14 columns (13 separators) plus the name's own ';', inside the quotes
    assert row.count(";") == len(money_export.DATEV_COLUMNS) - 1 + 1


def test_a_figure_without_rows_still_names_its_columns(client, world):
    """A club with no dues: each CSV is its header alone, the columns of a figure's rows (the
    same from the API and the money page, `app.analytics.money_figures`)."""
    owner = world.staff(world.club(), "owner")
    r = client.get(f"/api/v1/analytics/money/revenue?{PERIOD}&format=csv", headers=owner.headers)
    assert r.status_code == 200 and r.text.splitlines() == ["month,source,kind,amount"]
    assert client.get(f"/api/v1/analytics/money/revenue?{PERIOD}",
                      headers=owner.headers).json()["items"] == []
