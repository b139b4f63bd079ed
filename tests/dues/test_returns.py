"""Returned SEPA debits: camt.054 (.02 and .08), camt.053 and the CSV format, matched by
end-to-end id, with the dry run, the return fee, and a second import that changes nothing.

The camt files below are written by hand after the ISO 20022 message structure (element order
of `BkToCstmrDbtCdtNtfctn` / `BkToCstmrStmt`, `ReportEntry2` / `ReportEntry10`,
`EntryTransaction2` / `EntryTransaction10`). No camt XSD ships with an installed package, so they
are not validated against one here.
"""
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.core.actors import Actor, Role
from app.core.db import transaction
from app.dues import invoicing, sepa_returns
from app.dues.models import DuesPayment, Invoice, InvoiceLine, Mandate
from tests.dues.sepa_world import CREDITOR_IBAN, SepaClub


@pytest.fixture
def sc(client, world) -> SepaClub:
    return SepaClub(client, world, return_fee=Decimal("3.50"))


def _entry_02(e2e: str, amount: str, reason: str | None, booked: str, *, charges: str = "3.00",
              reversal: bool = True) -> str:
    total = Decimal(amount) + Decimal(charges)
    rtr = (f"<RtrInf><Orgtr><Nm>Debtor bank</Nm></Orgtr><Rsn><Cd>{reason}</Cd></Rsn>"
           f"<AddtlInf>Ruecklastschrift</AddtlInf></RtrInf>") if reason else ""
    return f"""
      <Ntry>
        <Amt Ccy="EUR">{total}</Amt>
        <CdtDbtInd>DBIT</CdtDbtInd>
        {"<RvslInd>true</RvslInd>" if reversal else ""}
        <Sts>BOOK</Sts>
        <BookgDt><Dt>{booked}</Dt></BookgDt>
        <ValDt><Dt>{booked}</Dt></ValDt>
        <AcctSvcrRef>2027031000{e2e[-4:]}</AcctSvcrRef>
        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>IDDT</Cd><SubFmlyCd>UPDD</SubFmlyCd></Fmly></Domn>
          <Prtry><Cd>NTRF+109</Cd><Issr>DK</Issr></Prtry></BkTxCd>
        <NtryDtls><TxDtls>
          <Refs><EndToEndId>{e2e}</EndToEndId><MndtId>FC-1-1</MndtId></Refs>
          <AmtDtls><InstdAmt><Amt Ccy="EUR">{amount}</Amt></InstdAmt>
            <TxAmt><Amt Ccy="EUR">{total}</Amt></TxAmt></AmtDtls>
          <Chrgs><Amt Ccy="EUR">{charges}</Amt></Chrgs>
          <RltdPties><Dbtr><Nm>Anna Berg</Nm></Dbtr></RltdPties>
          {rtr}
        </TxDtls></NtryDtls>
      </Ntry>"""


def _credit_entry_02(total: str, booked: str) -> str:
    """The collection's own credit to the club: not a return."""
    return f"""
      <Ntry>
        <Amt Ccy="EUR">{total}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
        <BookgDt><Dt>{booked}</Dt></BookgDt><ValDt><Dt>{booked}</Dt></ValDt>
        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>IDDT</Cd><SubFmlyCd>ESDD</SubFmlyCd></Fmly></Domn>
          </BkTxCd>
        <NtryDtls><Btch><NbOfTxs>2</NbOfTxs></Btch></NtryDtls>
      </Ntry>"""


def camt054_02(*entries: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.02"
          xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <BkToCstmrDbtCdtNtfctn>
    <GrpHdr><MsgId>CAMT054-0001</MsgId><CreDtTm>2027-03-10T06:00:00</CreDtTm></GrpHdr>
    <Ntfctn>
      <Id>NTF-0001</Id><CreDtTm>2027-03-10T06:00:00</CreDtTm>
      <Acct><Id><IBAN>{CREDITOR_IBAN}</IBAN></Id><Ccy>EUR</Ccy></Acct>{"".join(entries)}
    </Ntfctn>
  </BkToCstmrDbtCdtNtfctn>
</Document>
""".encode()


def camt054_08(e2e: str, amount: str, reason: str, booked: str, fee: str) -> bytes:
    """A later version: other namespace, `Sts/Cd`, `BookgDt/DtTm`, `Chrgs/Rcrd`, `TxDtls/Amt`."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">
 <BkToCstmrDbtCdtNtfctn>
  <GrpHdr><MsgId>N8-1</MsgId><CreDtTm>2027-03-11T05:00:00+01:00</CreDtTm></GrpHdr>
  <Ntfctn>
   <Id>N8-1-1</Id><CreDtTm>2027-03-11T05:00:00+01:00</CreDtTm>
   <Acct><Id><IBAN>{CREDITOR_IBAN}</IBAN></Id></Acct>
   <Ntry>
    <NtryRef>1</NtryRef><Amt Ccy="EUR">{Decimal(amount) + Decimal(fee)}</Amt>
    <CdtDbtInd>DBIT</CdtDbtInd><RvslInd>true</RvslInd><Sts><Cd>BOOK</Cd></Sts>
    <BookgDt><DtTm>{booked}T08:15:00+01:00</DtTm></BookgDt><ValDt><Dt>{booked}</Dt></ValDt>
    <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>IDDT</Cd><SubFmlyCd>UPDD</SubFmlyCd></Fmly></Domn>
    </BkTxCd>
    <NtryDtls><TxDtls>
     <Refs><EndToEndId>{e2e}</EndToEndId><UETR>7d1c4cb8-7a6b-4d2e-9b53-8d2a6a1f4c11</UETR></Refs>
     <Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>DBIT</CdtDbtInd>
     <Chrgs><TtlChrgsAndTaxAmt Ccy="EUR">{fee}</TtlChrgsAndTaxAmt>
      <Rcrd><Amt Ccy="EUR">{fee}</Amt><CdtDbtInd>DBIT</CdtDbtInd></Rcrd></Chrgs>
     <RtrInf><Rsn><Cd>{reason}</Cd></Rsn></RtrInf>
    </TxDtls></NtryDtls>
   </Ntry>
   <Ntry>
    <Amt Ccy="EUR">10.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><RvslInd>true</RvslInd>
    <Sts><Cd>PDNG</Cd></Sts><BookgDt><Dt>{booked}</Dt></BookgDt>
    <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>IDDT</Cd><SubFmlyCd>UPDD</SubFmlyCd></Fmly></Domn>
    </BkTxCd>
   </Ntry>
  </Ntfctn>
 </BkToCstmrDbtCdtNtfctn>
</Document>
""".encode()


def camt053_02(*entries: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>STMT-0001</MsgId><CreDtTm>2027-03-12T22:00:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>STMT-0001-1</Id><ElctrncSeqNb>61</ElctrncSeqNb><CreDtTm>2027-03-12T22:00:00</CreDtTm>
      <Acct><Id><IBAN>{CREDITOR_IBAN}</IBAN></Id><Ccy>EUR</Ccy></Acct>
      <Bal><Tp><CdOrPrtry><Cd>PRCD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">1000.00</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2027-03-11</Dt></Dt></Bal>
      <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">900.00</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2027-03-12</Dt></Dt></Bal>{"".join(entries)}
    </Stmt>
  </BkToCstmrStmt>
</Document>
""".encode()


def _count(db, model, **equal) -> int:
    with db.sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(model).filter_by(**equal))


def _ledger(db) -> list[tuple]:
    with db.sessionmaker() as s:
        return [(p.event_key, p.kind, p.amount) for p in
                s.scalars(select(DuesPayment).order_by(DuesPayment.id))]


def test_a_camt054_dry_run_reports_each_row_and_writes_nothing_then_the_import_applies_once(
        sc, db):
    anna, ben, carl = sc.submitted("49.90", "29.00", "15.00")
    booked = (sc.today + timedelta(days=8)).isoformat()
    content = camt054_02(
        _credit_entry_02("93.90", booked),
        _entry_02(anna.end_to_end_id, "49.90", "AM04", booked),
        _entry_02(ben.end_to_end_id, "29.00", "MD06", booked, charges="0.00"),
        _entry_02("NOT-OURS-123", "12.00", "AC04", booked))
    before = _ledger(db)

    dry = sc.upload_returns(content, dry_run=True)
    assert dry.status_code == 200, dry.text
    report = dry.json()
    assert (report["format"], report["dry_run"]) == ("camt.054.001.02", True)
    assert [(r["end_to_end_id"], r["status"], r["reason_code"]) for r in report["rows"]] == [
        (anna.end_to_end_id, "matched", "AM04"), (ben.end_to_end_id, "matched", "MD06"),
        ("NOT-OURS-123", "unknown", "AC04")]
    assert report["rows"][0]["reason"] == "Insufficient funds"
    assert (report["rows"][0]["fee"], report["rows"][0]["amount"]) == ("3.00", "49.90")
    assert report["rows"][0]["payer_name"] == "Payer 0"
    assert _ledger(db) == before and sc.collection(anna.id).status == "submitted"
    assert _count(db, InvoiceLine, kind="return_fee") == 0

    done = sc.upload_returns(content).json()
    assert done["counts"] == {"matched": 2, "unknown": 1} and done["dry_run"] is False
    returned = sc.collection(anna.id)
    assert (returned.status, returned.failure_code, returned.failure_reason,
            returned.failed_on.isoformat()) == ("returned", "AM04", "Insufficient funds", booked)
    assert sc.collection(ben.id).failure_reason.startswith("Refund requested by the debtor")
    assert sc.collection(carl.id).status == "submitted"
    assert _ledger(db) == before + [(f"return:{anna.end_to_end_id}", "return", Decimal("-49.90")),
                                    (f"return:{ben.end_to_end_id}", "return", Decimal("-29.00"))]
    with db.sessionmaker() as s:
        assert invoicing.open_amount(s, s.get(Invoice, anna.invoice_id)) == Decimal("49.90")
        fees = s.scalars(select(InvoiceLine).where(InvoiceLine.kind == "return_fee")
                         .order_by(InvoiceLine.id)).all()
        assert [(f.charge_key, f.gross) for f in fees] == [
            (f"return_fee:{anna.id}", Decimal("3.50")), (f"return_fee:{ben.id}", Decimal("3.50"))]
        fee_invoice = s.get(Invoice, fees[0].invoice_id)
        assert (fee_invoice.payer_id, fee_invoice.method) == (anna.payer_id, "desk")
        assert done["rows"][0]["fee_invoice_id"] == fee_invoice.id

    again = sc.upload_returns(content).json()
    assert again["counts"] == {"already_imported": 2, "unknown": 1}
    assert _ledger(db) == before + [(f"return:{anna.end_to_end_id}", "return", Decimal("-49.90")),
                                    (f"return:{ben.end_to_end_id}", "return", Decimal("-29.00"))]
    assert _count(db, InvoiceLine, kind="return_fee") == 2
    assert sc.upload_returns(content, dry_run=True).json()["counts"] == {"already_imported": 2,
                                                                   "unknown": 1}


def test_later_camt_versions_and_a_statement_are_read_whatever_the_namespace(sc):
    anna, ben = sc.submitted("49.90", "29.00")
    booked = (sc.today + timedelta(days=9)).isoformat()
    report = sc.upload_returns(camt054_08(anna.end_to_end_id, "49.90", "AC04", booked, "4.25")).json()
    assert report["format"] == "camt.054.001.08"
    assert [(r["status"], r["reason_code"], r["fee"], r["booked_on"]) for r in report["rows"]] \
        == [("matched", "AC04", "4.25", booked)]  # the pending entry is not a booked return
    assert sc.collection(anna.id).failure_reason == "Account closed"

    statement = camt053_02(_credit_entry_02("78.90", booked),
                           _entry_02(ben.end_to_end_id, "29.00", "MS02", booked))
    report = sc.upload_returns(statement, name="statement.xml").json()
    assert report["format"] == "camt.053.001.02"
    assert [(r["status"], r["reason_code"]) for r in report["rows"]] == [("matched", "MS02")]
    assert sc.collection(ben.id).status == "returned"


def test_the_csv_return_format_with_semicolons_and_decimal_commas(sc, db):
    anna, ben = sc.submitted("49.90", "29.00")
    csv = ("end_to_end_id;amount;reason_code;date;fee\n"
           f"{anna.end_to_end_id};49,90;am04;10.03.2027;3,00\n"
           f"{ben.end_to_end_id};30,00;MD06;2027-03-10;\n"
           "UNKNOWN-1;5,00;AC01;2027-03-10;\n"
           f"{anna.end_to_end_id};49,90;AM04;10.03.2027;3,00\n").encode("utf-8-sig")
    report = sc.upload_returns(csv, name="ruecklastschriften.csv").json()
    assert report["format"] == "csv"
    assert [(r["status"], r["reason_code"], r["booked_on"]) for r in report["rows"]] == [
        ("matched", "AM04", "2027-03-10"), ("amount_mismatch", "MD06", "2027-03-10"),
        ("unknown", "AC01", "2027-03-10"), ("already_imported", "AM04", "2027-03-10")]
    assert sc.collection(ben.id).status == "submitted"  # left for a person to look at
    assert _count(db, DuesPayment, kind="return") == 1


def test_a_return_of_a_file_never_marked_submitted_books_the_debit_and_its_return(sc, db):
    debtor = sc.debtor()
    day = sc.today + timedelta(days=5)
    collection = sc.collection(sc.add_debit(debtor, day))
    assert sc.upload_returns(camt054_02(_entry_02(collection.end_to_end_id, "49.90", "AM04",
                                            day.isoformat()))).json()["rows"][0]["status"] \
        == "not_in_a_file"
    sc.prepare(day)
    report = sc.upload_returns(camt054_02(_entry_02(collection.end_to_end_id, "49.90", "AM04",
                                              (day + timedelta(days=3)).isoformat()))).json()
    assert report["counts"] == {"matched": 1}
    assert sorted(_ledger(db)) == sorted([
        (f"sepa:{collection.id}", "payment", Decimal("49.90")),
        (f"return:{collection.end_to_end_id}", "return", Decimal("-49.90"))])
    batch_id = sc.collection(collection.id).batch_id
    sc.api("POST", f"/sepa/batches/{batch_id}/submitted")  # late: changes nothing
    assert sc.collection(collection.id).status == "returned" and len(_ledger(db)) == 2


def test_a_returned_first_debit_makes_the_next_one_first_again(sc, db):
    debtor = sc.debtor()
    day = sc.today + timedelta(days=5)
    first = sc.collection(sc.add_debit(debtor, day))
    sc.prepare(day)
    sc.upload_returns(camt054_02(_entry_02(first.end_to_end_id, "49.90", "AC01", day.isoformat())))
    with db.sessionmaker() as s:
        assert s.get(Mandate, debtor.mandate_id).first_collected_on is None
    retry_day = day + timedelta(days=7)
    retry = sc.add_debit(debtor, retry_day, attempt=2, key="dues:retry")
    sc.prepare(retry_day)
    assert sc.collection(retry).sequence == "FRST"


@pytest.mark.parametrize(("content", "name", "words"), [
    (b"", "empty.csv", "empty"),
    (b"<Document><BkToCstmrStmt>", "broken.xml", "not well-formed XML"),
    ((b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.008.001.08">'
      b"<CstmrDrctDbtInitn/></Document>"), "pain.xml", "not a bank statement"),
    (b"iban,betrag\nDE89,1.00\n", "returns.csv", "missing: end_to_end_id, amount"),
    (b"end_to_end_id,amount,reason_code,date\nE2E-1,lots,AM04,2027-03-10\n", "r.csv",
     "line 2: 'lots' is not an amount"),
    (b"end_to_end_id,amount,reason_code,date\nE2E-1,1.00,AM04,10/03/27\n", "r.csv",
     "line 2: '10/03/27' is not a date"),
    (b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Document>&x;</Document>', "x.xml",
     "not a bank statement"),
])
def test_an_unreadable_file_is_a_422_saying_why(sc, db, content, name, words):
    r = sc.upload_returns(content, name=name)
    assert (r.status_code, r.json()["error"]) == (422, "unreadable_returns_file"), r.text
    assert words in r.json()["message"]


def test_returns_are_for_managers_and_match_only_the_clubs_own_debits(sc, client, world):
    anna, = sc.submitted("49.90")
    content = camt054_02(_entry_02(anna.end_to_end_id, "49.90", "AM04", "2027-03-10"))
    r = sc.upload_returns(content, staff=sc.desk)
    assert (r.status_code, r.json()["error"]) == (403, "forbidden_role")
    other = SepaClub(client, world, club=world.club("Hilltop Gym"))
    assert other.upload_returns(content).json()["counts"] == {"unknown": 1}
    assert sc.collection(anna.id).status == "submitted"


@pytest.mark.postgres_only
def test_two_imports_of_the_same_file_at_once_return_the_debit_once(sc, db):
    if not db.is_postgres:
        pytest.skip("concurrent writers: PostgreSQL")
    anna, = sc.submitted("49.90")
    content = camt054_02(_entry_02(anna.end_to_end_id, "49.90", "AM04", "2027-03-10"))
    actor = Actor(sc.manager.user_id, "m", sc.club.id, Role.manager)
    start, reports, errors = threading.Barrier(3), [], []

    def upload() -> None:
        try:
            start.wait()
            with transaction(db.sessionmaker) as s:
                reports.append(sepa_returns.import_returns(
                    s, actor=actor, content=content, filename="r.xml", dry_run=False))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r["rows"][0]["status"] for r in reports) == [
        "already_imported", "already_imported", "matched"]
    assert _count(db, DuesPayment, kind="return") == 1
    assert _count(db, InvoiceLine, kind="return_fee") == 1
