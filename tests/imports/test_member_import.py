"""Importing the club's old member list: dry run, all-or-nothing, skip bad rows, re-runs, CLI, API."""
import csv
import io
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.imports.csvfile import CsvFile
from app.imports.members import import_members
from app.members import service as members_service
from app.members.models import Card, Consent, Member, MemberNote, MemberSearchTerm
from app.members.schemas import MemberCreate
from app.registry import metadata

DATA = Path(__file__).parent / "data"
MESSY = DATA / "members_messy.csv"
BOM = DATA / "members_bom.csv"

# (row, column) of every error in members_messy.csv; row 1 is the header, row 11 is blank
MESSY_ERRORS = {
    (3, "E-Mail"),  # anna(at)example
    (4, "Vorname"),  # no first name
    (6, "Telefon"), (6, "Geburtsdatum"),  # "12"; 31.02.1970
    (7, "Geburtsdatum"), (7, "Karte"),  # born 2099; "KARTE#1"
    (8, "Karte"),  # row 2's card without spaces (row 2's email in capitals is only a warning)
    (11, "E-Mail"), (11, "Newsletter"),  # lisa@example; "vielleicht"
    (12, "Karte"),  # card-77 belongs to an existing member
}


def counts(session) -> dict[str, int]:
    return {table.name: session.scalar(select(func.count()).select_from(table))
            for table in metadata.sorted_tables}


@pytest.fixture
def club(world):
    return world.club()


@pytest.fixture
def existing(session, club):
    """Eva Braun is already a member (same email as row 9); card CARD-77 is someone else's."""
    eva = members_service.create_member(session, club_id=club.id, data=MemberCreate(
        first_name="Eva", last_name="Braun", email="eva@example.de"))
    other = members_service.create_member(session, club_id=club.id, data=MemberCreate(
        first_name="Otto", last_name="Card", card="CARD-77"))
    session.commit()
    return eva.id, other.id


def run(session, club, path=MESSY, **options):
    with CsvFile.open(path) as f:
        return import_members(session, club_id=club.id, csv=f, **options)


def where(report, severity="error"):
    return {(p.row, p.column) for p in report.problems if p.severity == severity}


def test_a_dry_run_of_the_messy_file_names_every_problem_and_writes_nothing(session, club,
                                                                             existing):
    eva_id, otto_id = existing
    before = counts(session)

    report = run(session, club, dry_run=True)
    session.commit()

    assert counts(session) == before
    assert where(report) == MESSY_ERRORS
    # row 5 shares row 2's phone (written differently): a family — imported, with a warning
    assert where(report, "warning") == {(5, "Telefon"), (9, "E-Mail")}
    duplicate = next(p for p in report.problems if p.severity == "warning" and p.row == 9)
    assert f"member #{eva_id}" in duplicate.message and "email" in duplicate.message
    assert (report.rows, report.created, report.updated, report.duplicates, report.errors) == (
        11, 3, 0, 1, 7)
    assert not report.written
    assert "would create 3" in report.summary() and "nothing was written" in report.summary()
    messages = {(p.row, p.column): p.message for p in report.problems}
    assert messages[(5, "Telefon")] == "the same phone as row 2 (Jürgen Groß): both are imported"
    assert messages[(8, "Karte")] == "the same card as row 2"
    assert messages[(4, "Vorname")] == "first name is missing"
    assert messages[(7, "Geburtsdatum")] == "birth date cannot be in the future"
    assert "not a real date" in messages[(6, "Geburtsdatum")]
    assert "not a valid phone number" in messages[(6, "Telefon")]
    assert f"member #{otto_id}" in messages[(12, "Karte")]
    assert report.columns == {
        "first_name": "Vorname", "last_name": "Nachname", "email": "E-Mail", "phone": "Telefon",
        "birth_date": "Geburtsdatum", "gender": "Geschlecht", "external_id": "Mitgliedsnummer",
        "card": "Karte", "email_consent": "Newsletter", "note": "Bemerkung"}


def test_all_or_nothing_with_errors_writes_nothing_and_says_so(session, club, existing):
    before = counts(session)

    report = run(session, club)
    session.commit()

    assert counts(session) == before
    assert not report.written and report.errors == 7
    assert "nothing was written" in report.summary() and "skip_bad" in report.summary()


def test_skip_bad_imports_the_good_rows_and_the_fixed_rejects_import_cleanly(session, club,
                                                                             existing, tmp_path):
    rejects = io.StringIO()
    report = run(session, club, mode="skip_bad", rejects=rejects, staff_id=None)
    session.commit()

    assert report.written and (report.created, report.duplicates, report.errors) == (3, 1, 7)
    jurgen = session.scalar(select(Member).where(Member.external_ref == "A-1001"))
    assert (jurgen.first_name, jurgen.last_name, jurgen.phone, jurgen.birth_date) == (
        "Jürgen", "Groß", "+4915123456789", date(1980, 3, 5))
    assert jurgen.email_consent is True and jurgen.gender == "male"
    assert session.scalar(select(Card.code).where(Card.member_id == jurgen.id)) == "04A23B1C"
    notes = session.scalars(select(MemberNote.text).where(MemberNote.member_id == jurgen.id))
    assert "Zahlt bar, Schließfach 12" in set(notes)
    consent = session.scalar(select(Consent).where(Consent.member_id == jurgen.id))
    assert (consent.channel, consent.granted, consent.source) == ("email", True, "import")
    lena = session.scalar(select(Member).where(Member.external_ref == "A-1011"))
    assert lena.birth_date == date(2001, 4, 3)  # 03/04/2001, day first
    # the desk finds imported members by name and by phone
    found = members_service.search_members(session, club_id=club.id, q="gross")
    assert [m["id"] for m in found["items"]] == [jurgen.id]
    zoe = session.scalar(select(Member).where(Member.external_ref == "A-1004"))
    found = members_service.search_members(session, club_id=club.id, q="6789")
    assert sorted(m["id"] for m in found["items"]) == sorted([jurgen.id, zoe.id])  # one phone

    lines = list(csv.reader(io.StringIO(rejects.getvalue())))
    assert lines[0][-1] == "problem" and lines[0][0] == "Vorname"
    assert [line[6] for line in lines[1:]] == ["A-1002", "A-1003", "A-1005", "A-1006", "A-1007",
                                               "A-1009", "A-1010"]
    assert "E-Mail: not a valid email address" in lines[1][-1]

    fixes = {"anna(at)example": "anna@example.de", "0151/23456789": "0160 5556667",
             "31.02.1970": "28.02.1970", "2099-01-01": "1999-01-01", "KARTE#1": "K-1",
             "JUERGEN@example.de": "tom@example.de", "04A23B1C": "K-2", "12": "",
             "lisa@example": "lisa@example.de", "vielleicht": "nein", "card-77": "K-3"}
    fixed = [[fixes.get(cell, cell) for cell in line] for line in lines[1:]]
    fixed[1][0] = "Karl"  # the missing first name
    path = tmp_path / "fixed.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        csv.writer(out).writerows([lines[0], *fixed])

    again = run(session, club, path, mode="all_or_nothing")
    session.commit()
    assert again.problems == [] and again.written
    assert (again.created, again.errors, again.duplicates) == (7, 0, 0)
    assert session.scalar(select(func.count()).select_from(Member)
                          .where(Member.club_id == club.id)) == 2 + 3 + 7


def test_re_importing_the_same_file_creates_nothing_twice(session, club):
    first = run(session, club, BOM)
    session.commit()
    assert first.written and first.created == 4
    before = counts(session)

    second = run(session, club, BOM)
    session.commit()

    assert counts(session) == before
    assert (second.created, second.duplicates, second.errors) == (0, 4, 0)
    assert {p.column for p in second.problems} == {"Member ID"}  # matched by external id first


def test_update_existing_updates_the_matched_member_and_records_consent_changes(session, club):
    run(session, club, BOM)
    session.commit()
    changed = BOM.read_text(encoding="utf-8-sig").replace(
        "Noah,Jones,noah@example.com,,03/04/1990,C-2,M2,false",
        "Noah,Jones-Baker,noah@example.com,+44 7911 223344,03/04/1990,C-2,M2,true")
    data = changed.encode("utf-8-sig")

    report = import_members(session, club_id=club.id, csv=CsvFile.from_bytes(data, "m.csv"),
                            update_existing=True)
    session.commit()

    assert (report.created, report.updated, report.duplicates, report.errors) == (0, 4, 0, 0)
    noah = session.scalar(select(Member).where(Member.external_ref == "M2"))
    assert (noah.last_name, noah.phone, noah.sms_consent) == ("Jones-Baker", "+447911223344", True)
    history = session.execute(select(Consent.granted, Consent.source).where(
        Consent.member_id == noah.id, Consent.channel == "sms").order_by(Consent.id)).all()
    assert history == [(False, "import"), (True, "import")]
    assert session.scalar(select(func.count()).select_from(Card)
                          .where(Card.member_id == noah.id)) == 1
    terms = set(session.scalars(select(MemberSearchTerm.term)
                                .where(MemberSearchTerm.member_id == noah.id)))
    assert terms == {"noah", "jones", "baker"}


def test_dates_in_several_formats_and_month_first(session, club):
    report = run(session, club, BOM, day_first=False)
    session.commit()

    assert report.errors == 0
    born = dict(session.execute(select(Member.external_ref, Member.birth_date)
                                .where(Member.club_id == club.id)).all())
    assert born == {"M1": date(1988, 2, 29), "M2": date(1990, 3, 4), "M3": date(1993, 5, 4),
                    "M4": date(1991, 12, 1)}  # dotted dates are always day first


def test_a_mapping_names_the_columns_the_synonyms_do_not_know(session, club):
    data = b"Rufname|Familie|Kontakt\nIda|Berg|ida@example.de\n"
    report = import_members(session, club_id=club.id,
                            csv=CsvFile.from_bytes(data, "m.csv"),
                            mapping={"first_name": "Rufname", "last_name": "Familie",
                                     "email": "Kontakt"})
    session.commit()
    assert report.written and report.created == 1
    assert session.scalar(select(Member.email).where(Member.club_id == club.id)) == (
        "ida@example.de")


def test_a_file_without_name_columns_or_with_a_bad_mapping_is_refused_whole(session, club):
    data = b"email,phone\nida@example.de,\n"
    report = import_members(session, club_id=club.id, csv=CsvFile.from_bytes(data, "m.csv"),
                            mapping={"shoe_size": "phone"})
    assert not report.written and report.rows == 0
    assert {p.column for p in report.file_errors} == {None, "first_name", "last_name"}
    assert "unknown field 'shoe_size'" in report.file_errors[0].message


# --- CLI ---------------------------------------------------------------------------------------

def test_cli_dry_run_reports_problems_and_exits_1(cli, session, club, existing):
    result = CliRunner().invoke(cli, ["import", "members", str(MESSY), "--club", str(club.id),
                                      "--dry-run"])
    assert result.exit_code == 1, result.output
    assert "would create 3" in result.output and "errors 7" in result.output
    assert "members_messy.csv, row 3, column E-Mail: not a valid email address" in result.output
    size = MESSY.stat().st_size
    assert "checking members_messy.csv" in result.output and f"{size}/{size} bytes" in result.output
    assert "row 5, column Telefon: the same phone as row 2 (Jürgen Groß): both are imported " \
           "(found '0151/23456789')" in result.output
    assert session.scalar(select(func.count()).select_from(Member)) == 2


def test_cli_skip_bad_imports_and_writes_the_rejects(cli, session, club, existing, tmp_path):
    rejects = tmp_path / "rejects.csv"
    result = CliRunner().invoke(cli, ["import", "members", str(MESSY), "--club", str(club.id),
                                      "--skip-bad", "--rejects", str(rejects)])
    assert result.exit_code == 0, result.output
    assert "created 3" in result.output and str(rejects) in result.output
    assert len(rejects.read_text(encoding="utf-8-sig").splitlines()) == 1 + 7
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Member)) == 5


def test_cli_mapping_and_month_first(cli, session, club, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("Rufname,Familie,Geb\nIda,Berg,03/04/1990\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["import", "members", str(path), "--club", str(club.id),
                                      "--mapping", "first_name=Rufname", "--mapping",
                                      "last_name=Familie", "--mapping", "birth_date=Geb",
                                      "--month-first"])
    assert result.exit_code == 0, result.output
    assert session.scalar(select(Member.birth_date)) == date(1990, 3, 4)
    bad = CliRunner().invoke(cli, ["import", "members", str(path), "--club", str(club.id),
                                   "--mapping", "first_name"])
    assert bad.exit_code == 2 and "FIELD=COLUMN" in bad.output


def test_the_documented_example_file_imports_cleanly(session, club):
    example = Path(__file__).parents[2] / "docs" / "examples" / "members.csv"
    report = run(session, club, example)
    session.commit()
    assert report.written and (report.created, report.errors) == (3, 0)
    # the club has no custom field shirt_size: that column is named as not imported
    assert [(p.column, p.severity) for p in report.problems] == [("custom.shirt_size", "warning")]
    assert session.scalar(select(Member.preferred_channel)
                          .where(Member.external_ref == "A-1001")) == "sms"


def test_custom_fields_by_label_or_key_are_checked_and_stored(session, club):
    from app.customfields import service as custom_fields
    from app.customfields.schemas import CustomFieldCreate

    custom_fields.create_field(session, club_id=club.id, data=CustomFieldCreate(
        key="locker", label="Spind", type="number", required=True))
    custom_fields.create_field(session, club_id=club.id, data=CustomFieldCreate(
        key="shirt_size", label="Shirt size", type="choice", choices=["S", "M", "L"]))
    session.commit()
    data = ("Vorname;Nachname;Spind;custom.shirt_size\n"
            "Ida;Berg;12;m\nOla;Nord;zwölf;XL\nPia;Süd;;S\n").encode()

    report = import_members(session, club_id=club.id, csv=CsvFile.from_bytes(data, "c.csv"),
                            mode="skip_bad")
    session.commit()

    assert where(report) == {(3, "Spind"), (3, "custom.shirt_size"), (4, "Spind")}
    assert next(p.message for p in report.problems if p.row == 4) == "Spind is required"
    ida = session.scalar(select(Member.id).where(Member.first_name == "Ida"))
    assert custom_fields.values_for(session, club_id=club.id, member_ids=[ida])[ida] == {
        "locker": 12, "shirt_size": "M"}
