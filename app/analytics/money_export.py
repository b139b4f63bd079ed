"""The accounting export of a month: invoices, credit notes, payments and returns.

Two shapes of the same records (docs/billing.md, "Money figures"):

* `rows(...)` → fitclub's CSV: one row per invoice or credit note and tax rate (issued in the
  month), then one per dues payment that moved money in the month (`occurred_on`): `payment`
  (money in), `return` (a debit the bank gave back) or `refund` (paid back), each negative when
  money went out. A payment of kind `credit` (a credit note settling an invoice) moves no money
  and is not a row: the credit note is.
* `datev(...)` → DATEV's booking batch (EXTF, header version 700, category 21 "Buchungsstapel",
  format version 13): the 31-field header line, the column header, one booking per row above;
  semicolons, CRLF, amounts with a decimal comma and no sign (the sign is the Soll/Haben flag),
  Belegdatum DDMM, Belegfeld 1 the invoice (or credit note) number, encoded Windows-1252 (what
  DATEV reads; characters it cannot hold become "?").
"""
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core import clock, sql
from app.core.csvout import csv_response
from app.dues.models import Collection, DuesPayment, Invoice, InvoiceLine, Payer

COLUMNS = ["record", "date", "document", "corrects", "payer_id", "payer", "method", "tax_rate",
           "net", "tax", "gross", "currency", "due_on", "reference", "reason"]

# SKR03 defaults (confirm with the club's tax adviser): the collective debtor, revenue by VAT
# rate (automatic accounts: DATEV takes the VAT out of the gross), bank and cash.
DEBTORS = 10000
REVENUE = {Decimal("19.00"): 8400, Decimal("7.00"): 8300}
REVENUE_OTHER = 8200
BANK = 1200
CASH = 1000
CASH_METHODS = ("cash",)
ACCOUNT_LENGTH = 4
DATEV_COLUMNS = ["Umsatz (ohne Soll/Haben-Kz)", "Soll/Haben-Kennzeichen", "WKZ Umsatz", "Kurs",
                 "Basis-Umsatz", "WKZ Basis-Umsatz", "Konto", "Gegenkonto (ohne BU-Schlüssel)",
                 "BU-Schlüssel", "Belegdatum", "Belegfeld 1", "Belegfeld 2", "Skonto",
                 "Buchungstext"]


@dataclass(frozen=True)
class Record:
    record: str
    date: date
    document: str
    corrects: str | None
    payer_id: int
    payer: str
    method: str
    tax_rate: Decimal | None
    net: Decimal | None
    tax: Decimal | None
    gross: Decimal
    currency: str
    due_on: date | None
    reference: str | None
    reason: str | None

    def values(self) -> list:
        return [getattr(self, c) for c in COLUMNS]


def _documents(session: Session, club_id: int, first: date, last: date) -> list[Record]:
    i, line, p = Invoice.__table__, InvoiceLine.__table__, Payer.__table__
    orig = Invoice.__table__.alias("orig")
    rows = session.execute(
        select(i.c.kind, i.c.issued_on, i.c.number, orig.c.number, i.c.payer_id, p.c.name,
               i.c.method, line.c.tax_rate, func.sum(line.c.net), func.sum(line.c.tax),
               func.sum(line.c.gross), i.c.currency, i.c.due_on)
        .select_from(i.join(line, line.c.invoice_id == i.c.id).join(p, p.c.id == i.c.payer_id)
                     .outerjoin(orig, orig.c.id == i.c.corrects_id))
        .where(i.c.club_id == club_id, i.c.issued_on >= first, i.c.issued_on <= last)
        .group_by(i.c.id, i.c.kind, i.c.issued_on, i.c.number, orig.c.number, i.c.payer_id,
                  p.c.name, i.c.method, line.c.tax_rate, i.c.currency, i.c.due_on)
        .order_by(i.c.issued_on, i.c.number, line.c.tax_rate))
    out = []
    for kind, issued, number, corrects, payer_id, name, method, rate, net, tax, gross, cur, due \
            in rows:
        credit = kind == "credit_note"  # a credit note's amounts: −|x| (and 0, not −0)
        net, tax, gross = (-abs(Decimal(v)) + 0 if credit else Decimal(v)
                           for v in (net, tax, gross))
        out.append(Record(kind, issued, number, corrects, payer_id, name, method,
                          Decimal(rate).quantize(Decimal("0.01")), net, tax, gross, cur, due,
                          None, None))
    return out


def _payments(session: Session, club_id: int, first: date, last: date) -> list[Record]:
    d, i, p, c = (DuesPayment.__table__, Invoice.__table__, Payer.__table__,
                  Collection.__table__)
    rows = session.execute(
        select(d.c.kind, d.c.occurred_on, i.c.number, d.c.payer_id, p.c.name, d.c.method,
               d.c.amount, i.c.currency, d.c.reference, c.c.failure_code)
        .select_from(d.join(i, i.c.id == d.c.invoice_id).join(p, p.c.id == d.c.payer_id)
                     .outerjoin(c, c.c.id == d.c.collection_id))
        .where(d.c.club_id == club_id, d.c.occurred_on >= first, d.c.occurred_on <= last,
               d.c.kind != "credit")
        .order_by(d.c.occurred_on, d.c.id))
    return [Record(kind, on, number, None, payer_id, name, method, None, None, None,
                   Decimal(amount), cur, None, reference,
                   code if kind == "return" else None)
            for kind, on, number, payer_id, name, method, amount, cur, reference, code in rows]


def rows(session: Session, *, club_id: int, first: date, last: date) -> list[Record]:
    """The month's documents (by issue day) then its money movements (by day)."""
    return _documents(session, club_id, first, last) + _payments(session, club_id, first, last)


# --- DATEV -------------------------------------------------------------------------------------

def _text(value: str | None, limit: int) -> str:
    """A DATEV text field: quoted, quotes doubled, at most `limit` characters."""
    clean = (value or "").replace("\r", " ").replace("\n", " ")[:limit]
    return '"' + clean.replace('"', '""') + '"'


def _amount(value: Decimal) -> str:
    return f"{abs(value):.2f}".replace(".", ",")


def booking(r: Record) -> list[str]:
    """One row → one DATEV booking (Konto, Gegenkonto, Soll/Haben)."""
    if r.record in ("invoice", "credit_note"):
        account = DEBTORS
        contra = REVENUE.get(r.tax_rate, REVENUE_OTHER)
        side = "S" if r.gross >= 0 else "H"  # the debtor owes more (invoice) or less (credit)
        text = f"{'Rechnung' if r.record == 'invoice' else 'Gutschrift'} {r.payer}"
    else:
        account = CASH if r.method in CASH_METHODS else BANK
        contra = DEBTORS
        side = "S" if r.gross >= 0 else "H"  # money in: bank debit; a return: bank credit
        text = f"{'Zahlung' if r.gross >= 0 else 'Rücklastschrift'} {r.payer}"
    return [_amount(r.gross), f'"{side}"', '"EUR"', "", "", "", str(account), str(contra), "",
            r.date.strftime("%d%m"), _text(r.document, 36), "", "", _text(text, 60)]


def header(*, first: date, last: date, consultant: int, client: int,
           created: datetime | None = None) -> list[str]:
    """The 31 fields of the EXTF header line."""
    created = created or clock.now()
    fields = ['"EXTF"', "700", "21", '"Buchungsstapel"', "13",
              created.strftime("%Y%m%d%H%M%S") + f"{created.microsecond // 1000:03d}", "",
              '"RE"', '"fitclub"', '""', str(consultant), str(client),
              first.replace(month=1, day=1).strftime("%Y%m%d"), str(ACCOUNT_LENGTH),
              first.strftime("%Y%m%d"), last.strftime("%Y%m%d"),
              _text(f"fitclub {first:%m/%Y}", 30), '""', "1", "0", "0", '"EUR"']
    return fields + [""] * (31 - len(fields))


def datev(records: list[Record], *, first: date, last: date, consultant: int,
          client: int) -> bytes:
    """The booking batch as DATEV imports it (Windows-1252, CRLF, semicolons)."""
    lines = [";".join(header(first=first, last=last, consultant=consultant, client=client)),
             ";".join(DATEV_COLUMNS)]
    lines += [";".join(booking(r)) for r in records if r.gross != 0]
    return ("\r\n".join(lines) + "\r\n").encode("cp1252", errors="replace")


# --- the download ------------------------------------------------------------------------------

def download(session: Session, *, club_id: int, month: str, datev_batch: bool = False,
             consultant: int = 1001, client: int = 1) -> Response:
    """The month (`YYYY-MM`) as fitclub's CSV (`accounting-<month>.csv`), or with
    `datev_batch` as DATEV's booking batch (`EXTF_Buchungsstapel_<month>.csv`): the API's
    `/money/export` and the money page's download."""
    first = date(int(month[:4]), int(month[5:]), 1)
    last = sql.month_of(sql.index_of(first) + 1) - timedelta(days=1)
    records = rows(session, club_id=club_id, first=first, last=last)
    if not datev_batch:
        return csv_response(f"accounting-{month}", COLUMNS, [r.values() for r in records])
    body = datev(records, first=first, last=last, consultant=consultant, client=client)
    return Response(body, media_type="text/csv; charset=windows-1252", headers={
        "Content-Disposition": f'attachment; filename="EXTF_Buchungsstapel_{month}.csv"'})
