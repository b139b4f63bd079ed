"""A club set up for SEPA direct debit, for tests/dues/test_sepa.py and test_returns.py.

Arranges what the billing run would leave behind (a payer, an invoice issued through
`invoicing.issue_invoice`, a planned SEPA `Collection` with its mandate and end-to-end id) and
talks to the API as the club's manager or desk. Reading the file back is independent of the app:
lxml parses it, xmlschema validates it against the XSD sepaxml ships.
"""
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path

import sepaxml
import xmlschema
from lxml import etree

from app.clubs import service as clubs_service
from app.core.actors import Role
from app.core.db import transaction
from app.dues import invoicing
from app.dues.invoicing import LineIn
from app.dues.models import Collection, DuesSettings, Payer

CREDITOR_ID = "DE98ZZZ09999999999"
CREDITOR_IBAN = "DE89370400440532013000"  # Commerzbank Köln: BIC COBADEFFXXX
PAYER_IBANS = ["DE45120300001234567890", "DE12500105170648489890", "DE02100500000054540402",
               "DE02300209000106531065", "DE02200505501015871393", "DE02700202700010108669"]
PAIN = "urn:iso:std:iso:20022:tech:xsd:pain.008.001.08"
XSD = Path(sepaxml.__file__).parent / "schemas" / "pain.008.001.08.xsd"


@dataclass
class Debtor:
    payer_id: int
    mandate_id: int | None
    name: str


@dataclass
class SepaClub:
    client: object
    world: object
    return_fee: Decimal = Decimal("0.00")
    club: object = None
    manager: object = None
    desk: object = None
    _n: int = field(default=0)

    def __post_init__(self) -> None:
        self.club = self.club or self.world.club("Riverside Fitness")
        self.manager = self.world.staff(self.club, Role.manager)
        self.desk = self.world.staff(self.club, Role.front_desk)
        with transaction(self.world.db.sessionmaker) as s:
            s.add(DuesSettings(club_id=self.club.id, legal_name="Riverside Fitness GmbH",
                               creditor_id=CREDITOR_ID, creditor_name="Riverside Fitness GmbH",
                               creditor_iban=CREDITOR_IBAN, return_fee=self.return_fee))

    @property
    def today(self) -> date:
        return clubs_service.club_today(self.club)

    def api(self, method: str, path: str, staff=None, **kwargs):
        staff = staff or self.manager
        return self.client.request(method, f"/api/v1{path}", headers=staff.headers, **kwargs)

    def add_payer(self, name: str = "Anna Berg") -> int:
        with transaction(self.world.db.sessionmaker) as s:
            payer = Payer(club_id=self.club.id, name=name, email="payer@example.test")
            s.add(payer)
            s.flush()
            return payer.id

    def take_mandate(self, payer_id: int, *, iban: str | None = None, signed_on=None,
                     holder: str = "Anna Berg", **body) -> dict:
        self._n += 1
        r = self.api("POST", f"/payers/{payer_id}/mandates", staff=self.desk, json={
            "iban": iban or PAYER_IBANS[self._n % len(PAYER_IBANS)], "account_holder": holder,
            "signed_on": (signed_on or self.today - timedelta(days=30)).isoformat(), **body})
        assert r.status_code == 201, r.text
        return r.json()

    def debtor(self, name: str = "Anna Berg", **mandate) -> Debtor:
        payer_id = self.add_payer(name)
        return Debtor(payer_id, self.take_mandate(payer_id, holder=name, **mandate)["id"], name)

    def add_debit(self, debtor: Debtor, due_on: date, amount: str = "49.90", *,
                  attempt: int = 1, key: str | None = None, mandate_id=-1) -> int:
        """An invoice for the debtor and its planned SEPA collection, as the billing run leaves
        them; the collection's id."""
        self._n += 1
        with transaction(self.world.db.sessionmaker) as s:
            invoice = invoicing.issue_invoice(
                s, club_id=self.club.id, payer_id=debtor.payer_id, issued_on=due_on,
                due_on=due_on, method="sepa", lines=[LineIn(
                    charge_key=key or f"dues:test:{self._n}", kind="dues",
                    description="Monthly dues", gross=Decimal(amount))])
            collection = Collection(
                club_id=self.club.id, invoice_id=invoice.id, payer_id=debtor.payer_id,
                attempt=attempt, method="sepa", amount=Decimal(amount), due_on=due_on,
                status="planned",
                mandate_id=debtor.mandate_id if mandate_id == -1 else mandate_id,
                end_to_end_id=f"RF-{self.club.id}-{invoice.number}-{attempt}")
            s.add(collection)
            s.flush()
            return collection.id

    def prepare(self, day: date, staff=None):
        return self.api("POST", "/sepa/batches", staff=staff,
                        json={"collection_date": day.isoformat()})

    def file(self, batch_id: int, staff=None):
        return self.api("GET", f"/sepa/batches/{batch_id}/file", staff=staff)

    def submitted(self, *amounts: str) -> list[Collection]:
        """Debits, one per new debtor, in a file the club uploaded and marked submitted."""
        day = self.today + timedelta(days=5)
        ids = [self.add_debit(self.debtor(f"Payer {n}"), day, amount)
               for n, amount in enumerate(amounts)]
        batch = self.prepare(day).json()
        assert self.api("POST", f"/sepa/batches/{batch['id']}/submitted").status_code == 200
        return [self.collection(c) for c in ids]

    def upload_returns(self, content: bytes, name: str = "returns.xml", dry_run: bool = False,
                       staff=None):
        """The bank's returns file, uploaded by a manager (or `staff`)."""
        return self.api("POST", "/sepa/returns", staff=staff,
                        params={"dry_run": str(dry_run).lower()},
                        files={"file": (name, content, "application/octet-stream")})

    def collection(self, collection_id: int) -> Collection:
        with self.world.db.sessionmaker() as s:
            row = s.get(Collection, collection_id)
            s.expunge(row)
            return row


@cache
def pain_schema() -> xmlschema.XMLSchema:
    """The pain.008 XSD, built once per test process (0.6 s a build)."""
    return xmlschema.XMLSchema(str(XSD))


def read_pain(content: bytes) -> dict:
    """The file as the bank would read it: XSD-valid, and its totals, debits and amendments."""
    pain_schema().validate(content.decode("utf-8"))
    doc = etree.fromstring(content)
    ns = {"p": PAIN}
    header = doc.find("p:CstmrDrctDbtInitn/p:GrpHdr", ns)
    debits = {}
    for info in doc.iterfind("p:CstmrDrctDbtInitn/p:PmtInf", ns):
        sequence = info.findtext("p:PmtTpInf/p:SeqTp", namespaces=ns)
        assert Decimal(info.findtext("p:CtrlSum", namespaces=ns)) == sum(
            Decimal(t.text) for t in info.iterfind("p:DrctDbtTxInf/p:InstdAmt", ns))
        for tx in info.iterfind("p:DrctDbtTxInf", ns):
            related = tx.find("p:DrctDbtTx/p:MndtRltdInf", ns)
            debits[tx.findtext("p:PmtId/p:EndToEndId", namespaces=ns)] = {
                "sequence": sequence, "amount": Decimal(tx.findtext("p:InstdAmt", namespaces=ns)),
                "date": info.findtext("p:ReqdColltnDt", namespaces=ns),
                "mandate": related.findtext("p:MndtId", namespaces=ns),
                "amended": related.findtext("p:AmdmntInd", namespaces=ns) == "true",
                "original_iban": related.findtext(
                    "p:AmdmntInfDtls/p:OrgnlDbtrAcct/p:Id/p:IBAN", namespaces=ns),
                "original_other": related.findtext(
                    "p:AmdmntInfDtls/p:OrgnlDbtrAcct/p:Id/p:Othr/p:Id", namespaces=ns),
                "iban": tx.findtext("p:DbtrAcct/p:Id/p:IBAN", namespaces=ns),
                "creditor_id": info.findtext(
                    "p:CdtrSchmeId/p:Id/p:PrvtId/p:Othr/p:Id", namespaces=ns)}
    return {"message_id": header.findtext("p:MsgId", namespaces=ns),
            "count": int(header.findtext("p:NbOfTxs", namespaces=ns)),
            "total": Decimal(header.findtext("p:CtrlSum", namespaces=ns)), "debits": debits}
