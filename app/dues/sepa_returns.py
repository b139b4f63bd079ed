"""Returned SEPA debits: the bank's camt.054 / camt.053 file or a CSV, matched by end-to-end id.

**camt** (ISO 20022 `camt.054` debit/credit notification, `camt.053` statement, also `camt.052`;
versions .001.02 to .001.08 differ in their namespace and a few elements, so elements are read by
local name, whatever the namespace): every booked entry (`Sts` BOOK, or `Sts/Cd` BOOK from .06 on)
whose transaction has a return reason (`RtrInf`) or whose entry is a reversal (`RvslInd` true) is
a returned debit: the original end-to-end id (`Refs/EndToEndId`, or `OrgnlEndToEndId` where a bank
puts it), the amount (`AmtDtls/InstdAmt`, `AmtDtls/TxAmt`, the transaction's `Amt`, or the
entry's), the ISO reason (`RtrInf/Rsn/Cd`), the booking day (`BookgDt/Dt` or `/DtTm`) and the
bank's charges (`Chrgs`: `TtlChrgsAndTaxAmt`, the `Rcrd/Amt`s, or .02's `Chrgs/Amt`). The
collection's own credit (no reason, no reversal) is not a return.

**CSV** (one format): UTF-8 (or Windows-1252), a header row, comma or semicolon separated, columns
`end_to_end_id, amount, reason_code, date, fee` (fee optional), amount with `.` or `,` decimals,
date `YYYY-MM-DD` or `DD.MM.YYYY`.

Each row is **matched** to the club's collection with that end-to-end id (in a file): the
collection is `returned` with the reason code, its text and the day; the ledger gets the return
(`return:<e2e id>`, minus the amount; the debit's own payment `sepa:<id>` is recorded first if the
file was never marked submitted); the club's return fee (`return_fee` > 0) is invoiced to the payer
(charge key `return_fee:<collection id>`, method desk). Rows are **unknown** (no such debit in the
club), **already imported** (the return is recorded), **not in a file**, or **amount mismatch**
(the bank's amount is not the debit's: left for a person). A dry run writes nothing; a second
import of the same file changes nothing.
"""
import csv
import io
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from lxml import etree
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.clubs.models import Club
from app.core import clock
from app.core.actors import Actor
from app.core.errors import Invalid
from app.dues import invoicing, terms
from app.dues.invoicing import LineIn
from app.dues.models import Collection, CollectionBatch, DuesPayment, Mandate, Payer

REASONS = {
    "AC01": "Incorrect account number (IBAN)",
    "AC04": "Account closed",
    "AC06": "Account blocked",
    "AC13": "Debtor account is a consumer account",
    "AG01": "Direct debit not allowed on this account",
    "AG02": "Invalid bank operation code",
    "AM04": "Insufficient funds",
    "AM05": "Duplicate collection",
    "BE05": "Creditor not recognised by the debtor's bank",
    "CNOR": "Creditor bank is not registered for SEPA direct debit",
    "DNOR": "Debtor bank is not registered for SEPA direct debit",
    "FF01": "Invalid file format",
    "MD01": "No valid mandate (unauthorised debit)",
    "MD02": "Mandate data missing or incorrect",
    "MD06": "Refund requested by the debtor (within 8 weeks)",
    "MD07": "Debtor deceased",
    "MS02": "Refused by the debtor (reason not given)",
    "MS03": "Refused (reason not given by the bank)",
    "RC01": "Bank identifier (BIC) incorrect",
    "RR01": "Debtor account or identification missing (regulatory)",
    "RR02": "Debtor name or address missing (regulatory)",
    "RR03": "Creditor name or address missing (regulatory)",
    "RR04": "Regulatory reason",
    "SL01": "Specific service of the debtor's bank (e.g. debit blocked by the debtor)",
    "FOCR": "Return following a cancellation request",
}
CSV_COLUMNS = ("end_to_end_id", "amount", "reason_code", "date")
BOOKED_FROM, BOOKED_TO = date(2000, 1, 1), date(2100, 12, 31)
CHUNK = 1000
RETURNABLE = ("in_file", "submitted", "paid")


def reason_text(code: str | None) -> str:
    """A person's words for an ISO 20022 return reason code."""
    if not code:
        return "No reason given"
    return REASONS.get(code.upper(), f"Return reason {code}")


@dataclass
class ReturnRow:
    end_to_end_id: str | None
    amount: Decimal
    reason_code: str | None
    booked_on: date
    fee: Decimal | None = None
    source: str = ""
    status: str = ""
    reason: str = ""
    collection_id: int | None = None
    invoice_id: int | None = None
    payer_name: str | None = None
    fee_invoice_id: int | None = None


# --- parsing ------------------------------------------------------------------------------------

def _local(element) -> str | None:
    return etree.QName(element).localname if isinstance(element.tag, str) else None


def _kids(element, name: str) -> list:
    return [c for c in element if _local(c) == name] if element is not None else []


def _find(element, *path: str):
    for name in path:
        found = _kids(element, name)
        if not found:
            return None
        element = found[0]
    return element


def _text(element, *path: str) -> str | None:
    found = _find(element, *path)
    return found.text.strip() if found is not None and found.text else None


def _money(text: str | None, where: str) -> Decimal | None:
    if text is None:
        return None
    value = text.strip().replace(" ", "")
    if "," in value and "." not in value:
        value = value.replace(",", ".")
    try:
        amount = Decimal(value)
        if not amount.is_finite():
            raise InvalidOperation
        return terms.cents(abs(amount))  # 1e999999 has no cents: InvalidOperation too
    except InvalidOperation as exc:
        raise Invalid(f"{where}: {text!r} is not an amount", code="unreadable_returns_file") \
            from exc


def _day(text: str | None, where: str) -> date:
    value = (text or "").strip()
    for fmt, size in (("%Y-%m-%d", 10), ("%d.%m.%Y", 10)):
        try:
            day = datetime.strptime(value[:size], fmt).date()
        except ValueError:
            continue
        if not BOOKED_FROM <= day <= BOOKED_TO:  # a day the dunning sequence can count from
            raise Invalid(f"{where}: {text!r} is not a booking day (the years 2000 to 2100)",
                          code="unreadable_returns_file")
        return day
    raise Invalid(f"{where}: {text!r} is not a date (YYYY-MM-DD or DD.MM.YYYY)",
                  code="unreadable_returns_file")


def _charges(element, where: str) -> Decimal | None:
    total = None
    for charges in _kids(element, "Chrgs"):
        amounts = ([_find(charges, "TtlChrgsAndTaxAmt")] if _find(charges, "TtlChrgsAndTaxAmt")
                   is not None else [_find(r, "Amt") for r in _kids(charges, "Rcrd")]
                   or [_find(charges, "Amt")])
        for amount in amounts:
            if amount is not None and amount.text:
                total = (total or terms.ZERO) + _money(amount.text, f"{where}, charges")
    return total


def _end_to_end(tx) -> str | None:
    e2e = _text(tx, "Refs", "EndToEndId")
    if not e2e or e2e.upper() == "NOTPROVIDED":
        found = next((el for el in tx.iter() if _local(el) == "OrgnlEndToEndId"), None)
        e2e = found.text.strip() if found is not None and found.text else None
    return e2e


def _entry_rows(entry, where: str) -> list[ReturnRow]:
    status = _text(entry, "Sts") or _text(entry, "Sts", "Cd")
    if status and status.upper() != "BOOK":
        return []
    reversal = (_text(entry, "RvslInd") or "").lower() == "true"
    booked = _text(entry, "BookgDt", "Dt") or _text(entry, "BookgDt", "DtTm") \
        or _text(entry, "ValDt", "Dt") or _text(entry, "ValDt", "DtTm")
    txs = [tx for details in _kids(entry, "NtryDtls") for tx in _kids(details, "TxDtls")]
    rows = []
    for n, tx in enumerate(txs or [None], start=1):
        if _find(tx, "RtrInf") is None and not reversal:
            continue
        spot = f"{where}, transaction {n}"
        amount = (_text(tx, "AmtDtls", "InstdAmt", "Amt") or _text(tx, "AmtDtls", "TxAmt", "Amt")
                  or _text(tx, "Amt") or (_text(entry, "Amt") if len(txs) <= 1 else None))
        reason = _text(tx, "RtrInf", "Rsn", "Cd") or _text(tx, "RtrInf", "Rsn", "Prtry")
        fee = (_charges(tx, spot) if tx is not None else None) or (
            _charges(entry, spot) if len(txs) <= 1 else None)
        rows.append(ReturnRow(
            end_to_end_id=_end_to_end(tx) if tx is not None else None,
            amount=_money(amount, spot) or terms.ZERO, reason_code=reason,
            booked_on=_day(booked, spot), fee=fee, source=spot))
    return rows


def parse_camt(content: bytes) -> tuple[str, list[ReturnRow]]:
    """The returned debits of a camt.052/053/054 file (any version), and the message name."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False)
    try:
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as exc:
        raise Invalid(f"The returns file is not well-formed XML: {exc}",
                      code="unreadable_returns_file") from exc
    namespace = etree.QName(root).namespace or ""
    message = next((c for c in root if _local(c) in (
        "BkToCstmrDbtCdtNtfctn", "BkToCstmrStmt", "BkToCstmrAcctRpt")), None)
    if _local(root) != "Document" or message is None:
        raise Invalid("The XML file is not a bank statement or notification (camt.053, camt.054 "
                      f"or camt.052): its root is <{_local(root)}> {namespace}".strip(),
                      code="unreadable_returns_file")
    name = namespace.rsplit(":", 1)[-1] if "camt." in namespace else _local(message)
    rows = []
    for report in message:
        if _local(report) not in ("Ntfctn", "Stmt", "Rpt"):
            continue
        report_id = _text(report, "Id") or "?"
        for k, entry in enumerate(_kids(report, "Ntry"), start=1):
            rows.extend(_entry_rows(entry, f"{_local(report)} {report_id}, entry {k}"))
    return name, rows


def parse_csv(content: bytes) -> list[ReturnRow]:
    """The rows of the CSV return format (see the module's docstring)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = content.decode("cp1252", errors="replace")
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise Invalid("The returns file is neither camt XML nor the CSV return format: the "
                          "CSV needs the columns end_to_end_id, amount, reason_code, date (and "
                          "fee); missing: " + ", ".join(missing), code="unreadable_returns_file")
        reader.fieldnames = header
        rows = []
        for row in reader:
            line = f"line {reader.line_num}"
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            rows.append(ReturnRow(
                end_to_end_id=(row.get("end_to_end_id") or "").strip() or None,
                amount=_money(row.get("amount") or "", line) or terms.ZERO,
                reason_code=(row.get("reason_code") or "").strip().upper() or None,
                booked_on=_day(row.get("date"), line),
                fee=_money((row.get("fee") or "").strip() or None, line), source=line))
    except csv.Error as exc:  # a field over the size limit, a stray carriage return...
        raise Invalid(f"line {reader.reader.line_num}: the CSV cannot be read ({exc})",
                      code="unreadable_returns_file") from exc
    return rows


def parse_returns(content: bytes, filename: str = "") -> tuple[str, list[ReturnRow]]:
    """The returned debits in a camt XML or CSV file; Invalid (422) when it cannot be read."""
    if not content or not content.strip():
        raise Invalid("The returns file is empty", code="unreadable_returns_file")
    head = content.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return parse_camt(head)
    if filename.lower().endswith(".xml"):
        raise Invalid("The returns file is named .xml but holds no XML",
                      code="unreadable_returns_file")
    return "csv", parse_csv(content)


# --- importing ----------------------------------------------------------------------------------

@dataclass
class Known:
    """What the club has for a file's end-to-end ids: the collections, their payers' names and
    the returns recorded already."""

    collections: dict[str, Collection]
    payer_names: dict[int, str]
    recorded: set[str]


def _known(session: Session, club_id: int, rows: list[ReturnRow]) -> Known:
    """Looked up a thousand ids at a time: a few queries per thousand rows, not a few per row."""
    ids = sorted({row.end_to_end_id for row in rows if row.end_to_end_id})
    known = Known({}, {}, set())
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        known.collections.update((c.end_to_end_id, c) for c in session.scalars(
            select(Collection).where(Collection.club_id == club_id,
                                     Collection.end_to_end_id.in_(chunk))))
        known.recorded.update(key.removeprefix("return:") for key in session.scalars(
            select(DuesPayment.event_key).where(
                DuesPayment.club_id == club_id,
                DuesPayment.event_key.in_([f"return:{e2e}" for e2e in chunk]))))
    payer_ids = sorted({c.payer_id for c in known.collections.values()})
    for start in range(0, len(payer_ids), CHUNK):
        known.payer_names.update((payer_id, name) for payer_id, name in session.execute(
            select(Payer.id, Payer.name).where(Payer.id.in_(payer_ids[start:start + CHUNK]))))
    return known


def _classify(row: ReturnRow, known: Known, seen: set[str]) -> Collection | None:
    """The row's status and its collection (None unless it is to be imported)."""
    row.reason = reason_text(row.reason_code)
    collection = known.collections.get(row.end_to_end_id) if row.end_to_end_id else None
    if collection is None:
        row.status = "unknown"
        return None
    row.collection_id, row.invoice_id = collection.id, collection.invoice_id
    row.payer_name = known.payer_names.get(collection.payer_id)
    if row.end_to_end_id in seen or collection.status == "returned" \
            or row.end_to_end_id in known.recorded:
        row.status = "already_imported"
        return None
    if collection.status not in RETURNABLE:
        row.status = "not_in_a_file"
        return None
    if row.amount != collection.amount:
        row.status = "amount_mismatch"
        return None
    row.status = "matched"
    seen.add(row.end_to_end_id)
    return collection


def _apply(session: Session, actor: Actor, row: ReturnRow, collection: Collection,
           fee: Decimal, today: date) -> None:
    club_id = actor.club_id
    batch = session.get(CollectionBatch, collection.batch_id) if collection.batch_id else None
    invoicing.record_payment(  # the debit itself, when the file was never marked submitted
        session, club_id=club_id, invoice_id=collection.invoice_id, amount=collection.amount,
        method="sepa", occurred_on=batch.collection_date if batch else collection.due_on,
        event_key=f"sepa:{collection.id}", collection_id=collection.id,
        reference=batch.message_id if batch else None, staff_id=actor.user_id,
        follow=False)  # the return below takes it back at once
    changed = session.execute(
        update(Collection).where(Collection.id == collection.id,
                                 Collection.status.in_(RETURNABLE))
        .values(status="returned", failure_code=(row.reason_code or "")[:30] or None,
                failure_reason=row.reason[:200], failed_on=row.booked_on)
        .execution_options(synchronize_session=False)).rowcount
    if not changed:  # a concurrent import returned it first
        row.status = "already_imported"
        return
    invoicing.record_payment(
        session, club_id=club_id, invoice_id=collection.invoice_id, amount=-row.amount,
        method="sepa", kind="return", occurred_on=row.booked_on,
        event_key=f"return:{row.end_to_end_id}", collection_id=collection.id,
        reference=(row.reason_code or "")[:140] or None, staff_id=actor.user_id)
    if collection.sequence == "FRST" and collection.mandate_id:
        _first_again_if_alone(session, collection)
    if fee > 0:
        invoice = invoicing.issue_invoice(
            session, club_id=club_id, payer_id=collection.payer_id, issued_on=today,
            due_on=today, method="desk", lines=[LineIn(
                charge_key=f"return_fee:{collection.id}", kind="return_fee",
                description=f"Return fee: direct debit {row.end_to_end_id} returned "
                            f"({row.reason_code or 'no reason'}: {row.reason})", gross=fee)])
        row.fee_invoice_id = invoice.id if invoice is not None else None


def _first_again_if_alone(session: Session, collection: Collection) -> None:
    """A returned first debit leaves the mandate uncollected: the next one is FRST again."""
    others = session.scalar(select(func.count()).select_from(Collection).where(
        Collection.mandate_id == collection.mandate_id, Collection.id != collection.id,
        Collection.status.in_(RETURNABLE)))
    if not others:
        session.execute(update(Mandate).where(Mandate.id == collection.mandate_id)
                        .values(first_collected_on=None)
                        .execution_options(synchronize_session=False))


def import_returns(session: Session, *, actor: Actor, content: bytes, filename: str,
                   dry_run: bool) -> dict:
    """Read a returns file and apply each returned debit once; a dry run only reports."""
    kind, rows = parse_returns(content, filename)
    club = session.get(Club, actor.club_id)
    today = clock.today(club.timezone or "UTC")
    fee = terms.cents(terms.settings_for(session, actor.club_id).return_fee or 0)
    seen: set[str] = set()
    known = _known(session, actor.club_id, rows)
    for row in rows:
        collection = _classify(row, known, seen)
        if collection is not None and not dry_run:
            _apply(session, actor, row, collection, fee, today)
    if not dry_run:
        session.flush()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return {"format": kind, "filename": filename, "dry_run": dry_run, "counts": counts,
            "rows": [_row_out(row) for row in rows],
            "return_fee": str(fee) if fee > 0 else None}


def _row_out(row: ReturnRow) -> dict:
    out = asdict(row)
    out["amount"] = str(row.amount)
    out["fee"] = str(row.fee) if row.fee is not None else None
    out["booked_on"] = row.booked_on.isoformat()
    return out

