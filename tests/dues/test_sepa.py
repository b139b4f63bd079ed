"""SEPA Direct Debit: mandates, the pain.008 collection file (FRST/RCUR, amendments, expiry),
the same file for the same date, one file per charge, submitted = paid unless returned."""
import threading
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from app.core import clock
from app.core.actors import Actor, Role
from app.core.db import transaction
from app.core.errors import Invalid
from app.dues import invoicing, sepa, sepa_batches
from app.dues.models import (
    Collection,
    CollectionBatch,
    DuesPayment,
    DuesSettings,
    Invoice,
    Mandate,
)
from app.dues.sepa_file import Creditor, Debit, build_file
from app.memberships.rules import add_months
from tests.dues.sepa_world import CREDITOR_ID, SepaClub, read_pain


@pytest.fixture
def sc(client, world) -> SepaClub:
    return SepaClub(client, world)


def _count(db, model, **equal) -> int:
    with db.sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(model).filter_by(**equal))


# --- mandates -----------------------------------------------------------------------------------

def test_the_desk_takes_a_mandate_with_the_iban_normalised_the_bic_derived_and_a_form(sc):
    payer = sc.add_payer("Jörg Müller")
    mandate = sc.take_mandate(payer, iban="de89 3704 0044 0532 0130 00", holder="Jörg Müller")
    assert mandate["iban"] == "DE89370400440532013000"
    assert mandate["bic"] == "COBADEFFXXX"
    assert mandate["reference"] == f"FC-{payer}-1" and mandate["status"] == "active"
    assert mandate["expires_on"] == add_months(date.fromisoformat(mandate["signed_on"]),
                                               36).isoformat()
    second = sc.take_mandate(payer, iban="NL91ABNA0417164300", reference="ABC-2027/01")
    assert (second["bic"], second["reference"]) == ("ABNANL2A", "ABC-2027/01")

    form = sc.api("GET", f"/mandates/{mandate['id']}/form", staff=sc.desk)
    assert form.status_code == 200 and form.headers["content-type"].startswith("text/html")
    page = form.text
    for expected in (CREDITOR_ID, mandate["reference"], "Riverside Fitness GmbH",
                     "DE89 3704 0044 0532 0130 00", "Jörg Müller",
                     "you authorise (A) Riverside Fitness GmbH to send instructions",
                     "Ich ermächtige Riverside Fitness GmbH, Zahlungen von meinem Konto"):
        assert expected in page
    assert sc.api("GET", f"/mandates/{mandate['id']}", staff=sc.desk).json() == mandate


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"iban": "DE89370400440532013001"}, 422, "invalid_iban"),  # check digits
    ({"iban": "XX89370400440532013000"}, 422, "invalid_iban"),  # no such country
    ({"iban": "DE8937040044053201300"}, 422, "invalid_iban"),  # too short
    ({"bic": "COBADEFF1"}, 422, "invalid_bic"),
    ({"bic": "ABNANL2A"}, 422, "bic_iban_mismatch"),
    ({"reference": "MANDATE#1"}, 422, "invalid_mandate_reference"),
    ({"reference": "/LEADING"}, 422, "invalid_mandate_reference"),
    ({"reference": "A//B"}, 422, "invalid_mandate_reference"),
    ({"reference": "X" * 36}, 422, "request_validation_failed"),
    ({"signed_on": "2999-01-01"}, 422, "invalid_signature_date"),
])
def test_a_bad_account_or_reference_is_refused_with_the_reason(sc, body, status, code):
    payer = sc.add_payer()
    r = sc.api("POST", f"/payers/{payer}/mandates", staff=sc.desk, json={
        "iban": "DE89370400440532013000", "account_holder": "Anna Berg",
        "signed_on": "2026-01-05", **body})
    assert r.status_code == status, r.text
    if code != "request_validation_failed":
        assert r.json()["error"] == code and r.json()["message"]
    assert _count(sc.world.db, Mandate) == 0


def test_a_reference_is_unique_in_the_club_whatever_the_case_and_payers_are_the_clubs_own(
        sc, client, world):
    payer = sc.add_payer()
    sc.take_mandate(payer, reference="GYM-0001")
    r = sc.api("POST", f"/payers/{payer}/mandates", staff=sc.desk, json={
        "iban": "DE89370400440532013000", "account_holder": "Anna Berg",
        "signed_on": "2026-01-05", "reference": "gym-0001"})
    assert (r.status_code, r.json()["error"]) == (409, "mandate_reference_taken")
    other = SepaClub(client, world, club=world.club("Hilltop Gym"))
    r = other.api("POST", f"/payers/{payer}/mandates", staff=other.desk, json={
        "iban": "DE89370400440532013000", "account_holder": "Anna Berg",
        "signed_on": "2026-01-05", "reference": "GYM-0001"})
    assert r.status_code == 404
    theirs = other.debtor("Ben Hill", reference="GYM-0001")  # another club: free
    for path in (f"/mandates/{theirs.mandate_id}", f"/mandates/{theirs.mandate_id}/form"):
        assert sc.api("GET", path, staff=sc.desk).status_code == 404
    assert sc.api("POST", f"/mandates/{theirs.mandate_id}/revoke").status_code == 404


def test_the_creditor_identifier_is_checked_with_mod_97_10():
    assert sepa.check_creditor_id("de98 zzz 09999999999") == "DE98ZZZ09999999999"
    assert sepa.check_creditor_id("NL29ZZZKVK12345678") == "NL29ZZZKVK12345678"
    assert sepa.check_creditor_id("DE98ABC09999999999") == "DE98ABC09999999999"  # business code
    for wrong in ("DE97ZZZ09999999999", "DE98ZZZ09999999990", "DE98ZZZ", "98DEZZZ0999",
                  "DE98ZZZ0999999999#"):
        with pytest.raises(Invalid) as caught:
            sepa.check_creditor_id(wrong)
        assert caught.value.code == "invalid_creditor_id"


def test_without_valid_creditor_details_no_file_is_prepared(sc, db):
    debtor = sc.debtor()
    sc.add_debit(debtor, sc.today + timedelta(days=6))
    with transaction(db.sessionmaker) as s:
        s.execute(update(DuesSettings).values(creditor_id="DE97ZZZ09999999999"))
    r = sc.prepare(sc.today + timedelta(days=6))
    assert (r.status_code, r.json()["error"]) == (422, "invalid_creditor_id")
    with transaction(db.sessionmaker) as s:
        s.execute(update(DuesSettings).values(creditor_id=None))
    r = sc.prepare(sc.today + timedelta(days=6))
    assert (r.status_code, r.json()["error"]) == (422, "creditor_missing")
    assert "creditor identifier" in r.json()["message"]
    assert _count(db, CollectionBatch) == 0 and _count(db, Collection, status="planned") == 1


# --- the collection file ------------------------------------------------------------------------

def test_first_debits_are_frst_then_rcur_and_the_file_follows_the_schema(sc, db):
    anna, ben = sc.debtor("Anna Berg"), sc.debtor("Ben Øster & Söhne")
    day = sc.today + timedelta(days=6)
    ids = [sc.add_debit(anna, day, "49.90"), sc.add_debit(ben, day, "29.00"),
           sc.add_debit(ben, day, "5.10", key="cafe:1")]
    due = sc.api("GET", "/sepa/due", params={"date": day.isoformat()}).json()
    assert (due["count"], Decimal(due["total"])) == (3, Decimal("84.00"))
    assert {i["sequence"] for i in due["items"]} == {"FRST"} and due["blocked"] == []

    r = sc.prepare(day)
    assert r.status_code == 201, r.text
    batch = r.json()
    assert (batch["count"], Decimal(batch["total"])) == (3, Decimal("84.00"))
    assert batch["message_id"] == f"FC{sc.club.id}-{day:%Y%m%d}-{ids[0]}"
    download = sc.file(batch["id"])
    assert download.headers["content-type"] == "application/xml"
    assert f'filename="{batch["message_id"]}.xml"' in download.headers["content-disposition"]
    pain = read_pain(download.content)
    rows = {c: sc.collection(c) for c in ids}
    assert (pain["count"], pain["total"], pain["message_id"]) == (3, Decimal("84.00"),
                                                                  batch["message_id"])
    assert set(pain["debits"]) == {c.end_to_end_id for c in rows.values()}
    for c in rows.values():
        line = pain["debits"][c.end_to_end_id]
        assert (line["sequence"], line["amount"], line["date"]) == ("FRST", c.amount,
                                                                    day.isoformat())
        assert (line["creditor_id"], line["amended"]) == (CREDITOR_ID, False)
        assert (c.status, c.batch_id, c.sequence) == ("in_file", batch["id"], "FRST")
    with db.sessionmaker() as s:
        assert s.get(Mandate, anna.mandate_id).first_collected_on == day
        assert s.get(Mandate, anna.mandate_id).last_collected_on == day

    next_month = add_months(day, 1)
    again = [sc.add_debit(anna, next_month), sc.add_debit(ben, next_month)]
    pain = read_pain(sc.file(sc.prepare(next_month).json()["id"]).content)
    assert {d["sequence"] for d in pain["debits"].values()} == {"RCUR"}
    assert {sc.collection(c).sequence for c in again} == {"RCUR"}


def test_the_same_date_twice_gives_the_same_file_and_a_charge_is_never_in_two_files(sc, db):
    debtor = sc.debtor()
    day = sc.today + timedelta(days=5)
    first = sc.add_debit(debtor, day)
    one = sc.prepare(day).json()
    again = sc.prepare(day)
    assert again.status_code == 201 and again.json() == one
    assert sc.file(one["id"]).content == sc.file(one["id"]).content
    assert sc.file(one["id"]).content.decode() == _stored_xml(db, one["id"])

    late = sc.add_debit(sc.debtor("Carla Diaz"), day)  # planned after the first file
    two = sc.prepare(day).json()
    assert two["id"] != one["id"] and two["count"] == 1
    files = [read_pain(sc.file(b["id"]).content)["debits"] for b in (one, two)]
    assert set(files[0]) == {sc.collection(first).end_to_end_id}
    assert set(files[1]) == {sc.collection(late).end_to_end_id}
    listed = sc.api("GET", "/sepa/batches").json()
    assert listed["total"] == 2 and [b["id"] for b in listed["items"]] == [two["id"], one["id"]]
    nothing = sc.prepare(day + timedelta(days=1))
    assert (nothing.status_code, nothing.json()["error"]) == (422, "nothing_due")
    missed = sc.today - timedelta(days=1)
    sc.add_debit(sc.debtor("Dora Late"), missed)
    late = sc.prepare(missed)
    assert (late.status_code, late.json()["error"]) == (422, "collection_date_past")


def _stored_xml(db, batch_id: int) -> str:
    with db.sessionmaker() as s:
        return s.get(CollectionBatch, batch_id).xml


def test_an_iban_change_is_reported_in_the_next_debit_only(sc):
    other_bank, same_bank = sc.debtor("Anna Berg"), sc.debtor("Ben Hill",
                                                               iban="DE89370400440532013000")
    day = sc.today + timedelta(days=5)
    sc.add_debit(other_bank, day), sc.add_debit(same_bank, day)
    sc.prepare(day)
    old = sc.api("GET", f"/mandates/{other_bank.mandate_id}").json()
    changed = sc.api("POST", f"/mandates/{other_bank.mandate_id}/iban", staff=sc.desk,
                     json={"iban": "DE62 3704 0044 0532 0130 01"}).json()
    assert (changed["reference"], changed["iban"], changed["previous_iban"]) == (
        old["reference"], "DE62370400440532013001", old["iban"])
    sc.api("POST", f"/mandates/{same_bank.mandate_id}/iban", staff=sc.desk,
           json={"iban": "DE62370400440532013001"})

    later = add_months(day, 1)
    amended = [sc.add_debit(other_bank, later), sc.add_debit(same_bank, later)]
    pain = read_pain(sc.file(sc.prepare(later).json()["id"]).content)["debits"]
    moved = pain[sc.collection(amended[0]).end_to_end_id]
    assert (moved["amended"], moved["original_other"], moved["original_iban"]) == (
        True, "SMNDA", None)
    assert (moved["sequence"], moved["iban"]) == ("RCUR", "DE62370400440532013001")
    kept = pain[sc.collection(amended[1]).end_to_end_id]
    assert (kept["amended"], kept["original_iban"]) == (True, "DE89370400440532013000")
    assert sc.api("GET", f"/mandates/{other_bank.mandate_id}").json()["previous_iban"] is None

    after = add_months(day, 2)
    sc.add_debit(other_bank, after)
    pain = read_pain(sc.file(sc.prepare(after).json()["id"]).content)["debits"]
    assert [d["amended"] for d in pain.values()] == [False]


def test_an_expired_or_revoked_mandate_is_not_collected_and_says_why(sc, db):
    day = sc.today + timedelta(days=5)
    old = sc.debtor("Otto Alt", signed_on=add_months(day, -36))  # never used for 36 months
    gone = sc.debtor("Rita Weg")
    debits = {"old": sc.add_debit(old, day), "gone": sc.add_debit(gone, day)}
    revoked = sc.api("POST", f"/mandates/{gone.mandate_id}/revoke", staff=sc.desk, json={})
    assert revoked.json()["status"] == "revoked"
    assert sc.api("GET", f"/mandates/{old.mandate_id}").json()["expires_on"] == day.isoformat()

    due = sc.api("GET", "/sepa/due", params={"date": day.isoformat()}).json()
    assert due["count"] == 0
    reasons = {b["payer_name"]: b["blocked"] for b in due["blocked"]}
    assert "expired on" in reasons["Otto Alt"] and "not used for 36 months" in reasons["Otto Alt"]
    assert "was revoked on" in reasons["Rita Weg"]
    r = sc.prepare(day)
    assert (r.status_code, r.json()["error"]) == (422, "nothing_due")
    assert "not used for 36 months" in r.json()["message"]
    assert _count(db, CollectionBatch) == 0

    fresh = sc.take_mandate(old.payer_id, holder="Otto Alt")  # the payer signs a new one
    pain = read_pain(sc.file(sc.prepare(day).json()["id"]).content)["debits"]
    line = pain[sc.collection(debits["old"]).end_to_end_id]
    assert (line["mandate"], line["sequence"]) == (fresh["reference"], "FRST")
    assert sc.collection(debits["gone"]).status == "planned"
    assert sc.collection(debits["old"]).mandate_id == fresh["id"]


def test_a_file_that_fails_the_schema_is_a_422_naming_the_fault_and_nothing_is_written(sc, db):
    debtor = sc.debtor()
    day = sc.today + timedelta(days=5)
    collection = sc.add_debit(debtor, day)
    with transaction(db.sessionmaker) as s:  # a BIC no bank has: what only the XSD catches
        s.execute(update(Mandate).values(bic="cobadeff"))
    r = sc.prepare(day)
    assert (r.status_code, r.json()["error"]) == (422, "invalid_collection_file")
    assert "BICFI" in r.json()["message"] and r.json()["details"]["errors"]
    assert _count(db, CollectionBatch) == 0
    row = sc.collection(collection)
    assert (row.status, row.batch_id, row.sequence) == ("planned", None, None)
    with db.sessionmaker() as s:
        assert s.get(Mandate, debtor.mandate_id).first_collected_on is None


def test_submitted_debits_count_as_paid_once(sc, db):
    debtor = sc.debtor()
    day = sc.today + timedelta(days=5)
    ids = [sc.add_debit(debtor, day, "49.90"), sc.add_debit(debtor, day, "10.00", key="x")]
    batch = sc.prepare(day).json()
    for _ in range(2):
        r = sc.api("POST", f"/sepa/batches/{batch['id']}/submitted")
        assert r.status_code == 200 and r.json()["submitted_at"]
    assert {sc.collection(c).status for c in ids} == {"submitted"}
    with db.sessionmaker() as s:
        payments = s.scalars(select(DuesPayment).order_by(DuesPayment.id)).all()
        assert [(p.event_key, p.kind, p.method, p.amount, p.occurred_on) for p in payments] == [
            (f"sepa:{ids[0]}", "payment", "sepa", Decimal("49.90"), day),
            (f"sepa:{ids[1]}", "payment", "sepa", Decimal("10.00"), day)]
        for invoice in s.scalars(select(Invoice)):
            assert invoicing.open_amount(s, invoice) == Decimal("0.00")


def test_a_file_debits_only_what_is_open_and_never_an_invoice_settled_meanwhile(sc, db):
    """Payments left in the ledger without their planned debits following (as this version's
    predecessors wrote them): the file still takes only what is open."""
    day = sc.today + timedelta(days=5)
    paid, part, untouched = (sc.add_debit(sc.debtor(name), day, "49.90")
                             for name in ("Anna Berg", "Ben Hill", "Carla Diaz"))
    with transaction(db.sessionmaker) as s:
        for collection_id, amount in ((paid, "49.90"), (part, "20.00")):
            c = s.get(Collection, collection_id)
            s.add(DuesPayment(club_id=c.club_id, invoice_id=c.invoice_id, payer_id=c.payer_id,
                              kind="payment", method="transfer", amount=Decimal(amount),
                              occurred_on=sc.today, created_at=clock.now()))
    due = sc.api("GET", "/sepa/due", params={"date": day.isoformat()}).json()
    assert [(i["collection_id"], i["amount"]) for i in due["items"]] == [
        (part, "29.90"), (untouched, "49.90")]
    assert (due["count"], due["total"]) == (2, "79.80")

    batch = sc.prepare(day).json()
    assert (batch["count"], batch["total"]) == (2, "79.80")
    pain = read_pain(sc.file(batch["id"]).content)["debits"]
    assert {sc.collection(c).end_to_end_id: pain[sc.collection(c).end_to_end_id]["amount"]
            for c in (part, untouched)} == {sc.collection(part).end_to_end_id: Decimal("29.90"),
                                            sc.collection(untouched).end_to_end_id:
                                                Decimal("49.90")}
    assert sc.collection(paid).end_to_end_id not in pain
    assert (sc.collection(paid).status, sc.collection(paid).batch_id) == ("cancelled", None)
    assert (sc.collection(part).status, sc.collection(part).amount) == ("in_file",
                                                                        Decimal("29.90"))
    sc.api("POST", f"/sepa/batches/{batch['id']}/submitted")
    with db.sessionmaker() as s:
        for invoice in s.scalars(select(Invoice)):
            assert invoicing.open_amount(s, invoice) == Decimal("0.00")


def test_collection_files_are_for_managers_of_the_club_only(sc, client, world):
    day = sc.today + timedelta(days=5)
    sc.add_debit(sc.debtor(), day)
    batch = sc.prepare(day).json()
    for method, path, kwargs in (
            ("GET", f"/sepa/due?date={day}", {}), ("GET", "/sepa/batches", {}),
            ("POST", "/sepa/batches", {"json": {"collection_date": day.isoformat()}}),
            ("GET", f"/sepa/batches/{batch['id']}/file", {}),
            ("POST", f"/sepa/batches/{batch['id']}/submitted", {})):
        r = sc.api(method, path, staff=sc.desk, **kwargs)
        assert (r.status_code, r.json()["error"]) == (403, "forbidden_role"), path
    other = SepaClub(client, world, club=world.club("Hilltop Gym"))
    for method, path in (("GET", f"/sepa/batches/{batch['id']}"),
                         ("GET", f"/sepa/batches/{batch['id']}/file"),
                         ("POST", f"/sepa/batches/{batch['id']}/submitted")):
        assert other.api(method, path).status_code == 404, path
    assert other.api("GET", "/sepa/batches").json()["total"] == 0
    assert other.prepare(day).json()["error"] == "nothing_due"


@pytest.mark.postgres_only
def test_two_managers_preparing_the_same_date_at_once_get_one_file(sc, db):
    if not db.is_postgres:
        pytest.skip("row locks: PostgreSQL")
    day = sc.today + timedelta(days=5)
    ids = [sc.add_debit(sc.debtor(f"Payer {n}"), day) for n in range(12)]
    second = sc.world.staff(sc.club, Role.manager)
    actors = [Actor(staff.user_id, "m", sc.club.id, Role.manager) for staff in (sc.manager,
                                                                               second)]
    start, results, errors = threading.Barrier(len(actors) * 2), [], []

    def prepare(actor: Actor) -> None:
        try:
            start.wait()
            with transaction(db.sessionmaker) as s:
                results.append(sepa_batches.prepare_batch(s, actor=actor,
                                                          collection_date=day).id)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=prepare, args=(a,)) for a in actors * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1 and _count(db, CollectionBatch) == 1
    assert {sc.collection(c).batch_id for c in ids} == set(results)


def test_build_file_is_deterministic_and_checks_its_input():
    creditor = Creditor("Riverside Fitness GmbH", "DE89370400440532013000", None, CREDITOR_ID)
    debits = [Debit(f"E2E-{n}", Decimal("19.99"), "RCUR", f"M-{n}", date(2026, 1, 2),
                    "Zoë Ñúñez", "DE12500105170648489890", None, f"Invoice {n}")
              for n in range(3)]
    made = [build_file(creditor=creditor, message_id="M1", created=datetime(2027, 2, 20, 9, 30),
                       collection_date=date(2027, 3, 1), debits=debits) for _ in range(2)]
    assert made[0] == made[1]
    pain = read_pain(made[0])
    assert (pain["count"], pain["total"]) == (3, Decimal("59.97"))
    assert b"Zoe Nunez" in made[0] and b"NOTPROVIDED" in made[0]
    with pytest.raises(Invalid):
        build_file(creditor=creditor, message_id="M1", created=datetime(2027, 2, 20, 9, 30),
                   collection_date=date(2027, 3, 1), debits=[])

