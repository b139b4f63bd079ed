"""The CSV reader every import uses: encodings, separators, headers and cell formats."""
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from app.imports.csvfile import (
    CsvFile,
    FileProblem,
    match_columns,
    normalise_header,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_int,
    parse_money,
    write_rejects,
)

BERLIN = ZoneInfo("Europe/Berlin")


def rows(data: bytes) -> tuple[CsvFile, list]:
    f = CsvFile.from_bytes(data, "members.csv")
    return f, list(f.rows())


@pytest.mark.parametrize(("data", "encoding"), [
    ("Vorname;Nachname\nJürgen;Groß\n".encode(), "utf-8"),
    ("Vorname;Nachname\nJürgen;Groß\n".encode("utf-8-sig"), "utf-8-sig"),
    ("Vorname;Nachname\nJürgen;Groß\n".encode("cp1252"), "cp1252"),
    ("Vorname;Nachname\nJürgen;Groß\n".encode("utf-16"), "utf-16"),
])
def test_the_encodings_excel_writes_are_read_back_as_the_same_text(data, encoding):
    f, got = rows(data)
    assert f.encoding == encoding
    assert f.headers == ["vorname", "nachname"]
    assert [r.values for r in got] == [{"vorname": "Jürgen", "nachname": "Groß"}]


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_the_separator_is_whatever_splits_the_header(sep):
    data = sep.join(["First Name", "Last Name", "E-Mail"]) + "\n" + sep.join(
        ["Ann", '"Lee, Jr"' if sep == "," else "Lee, Jr", "a@x.org"]) + "\n"
    f, got = rows(data.encode())
    assert f.separator == sep
    assert f.headers == ["first_name", "last_name", "e_mail"]
    assert got[0].values == {"first_name": "Ann", "last_name": "Lee, Jr", "e_mail": "a@x.org"}


def test_rows_keep_spreadsheet_line_numbers_skip_blank_lines_and_report_overlong_rows():
    data = b'name,note\nAnn,"two\nlines"\n\n,\nBob,ok,extra\nCid\n'
    problems = []
    f = CsvFile.from_bytes(data, "m.csv")
    got = list(f.rows(problems))
    assert [(r.number, r.values) for r in got] == [
        (2, {"name": "Ann", "note": "two\nlines"}), (6, {"name": "Cid", "note": ""})]
    assert len(problems) == 1 and problems[0].row == 5 and "3 cells" in problems[0].message
    assert "row 5" in str(problems[0])


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"), (b"\n\nname\n", "empty"), (b"name,Name\nx,y\n", "appears twice"),
    (b'"' + b"x" * 2_000_000 + b'"\nA\n', "first line cannot be read")])
def test_a_file_that_cannot_be_read_says_why(data, message):
    with pytest.raises(FileProblem, match=message):
        CsvFile.from_bytes(data, "m.csv")


def test_position_reaches_the_size_for_a_progress_bar(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(50_000)))
    with CsvFile.open(path) as f:
        assert sum(1 for _ in f.rows()) == 50_000
        assert f.position == f.size == path.stat().st_size


def test_columns_match_by_synonym_and_the_users_mapping_wins():
    fields = {"first_name": ("vorname", "given name"), "email": ("e-mail", "mail")}
    chosen, errors = match_columns(["vorname", "e_mail", "mail"], fields)
    assert chosen == {"first_name": "vorname", "email": "e_mail"} and errors == []
    chosen, errors = match_columns(["vorname", "e_mail", "mail"], fields,
                                   {"email": "Mail", "phone": "x", "first_name": "Name"})
    assert chosen == {"email": "mail"}
    assert any("unknown field 'phone'" in e for e in errors)
    assert any("no such column" in e for e in errors)
    assert normalise_header("\ufeff  E-Mail Address ") == "e_mail_address"


@pytest.mark.parametrize(("raw", "expected"), [
    ("2024-03-05", date(2024, 3, 5)), ("2024/3/5", date(2024, 3, 5)),
    ("05.03.2024", date(2024, 3, 5)), ("5.3.24", date(2024, 3, 5)),
    ("05/03/2024", date(2024, 3, 5)), ("31-12-1999", date(1999, 12, 31)), ("", None)])
def test_dates_in_the_formats_clubs_use(raw, expected):
    assert parse_date(raw) == expected


def test_month_first_dates_when_told_but_dotted_dates_stay_day_first():
    assert parse_date("03/05/2024", day_first=False) == date(2024, 3, 5)
    assert parse_date("05.03.2024", day_first=False) == date(2024, 3, 5)


@pytest.mark.parametrize(("raw", "message"), [
    ("31.02.2024", "not a real date"), ("yesterday", "not a date"), ("2024-13-01", "real date")])
def test_bad_dates_say_what_to_write(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_date(raw)


def test_datetimes_with_an_offset_or_in_club_time():
    assert parse_datetime("2024-03-05T18:05:00+01:00", BERLIN) == datetime(
        2024, 3, 5, 17, 5, tzinfo=UTC)
    assert parse_datetime("2024-03-05T17:05:00Z", BERLIN) == datetime(2024, 3, 5, 17, 5, tzinfo=UTC)
    local = parse_datetime("2024-07-05 18:05", BERLIN)
    assert local.utcoffset() == timedelta(hours=2) and local.hour == 18
    assert parse_datetime("05.07.2024 18:05:30", BERLIN) == datetime(2024, 7, 5, 18, 5, 30,
                                                                     tzinfo=BERLIN)
    assert parse_datetime("", BERLIN) is None
    for bad in ("2024-07-05 25:00", "soon", "05.07.2024 18h"):
        with pytest.raises(ValueError):
            parse_datetime(bad, BERLIN)


@pytest.mark.parametrize(("raw", "expected"), [
    ("49.90", "49.90"), ("49,90", "49.90"), ("1.234,56", "1234.56"), ("1,234.56", "1234.56"),
    ("€ 49", "49.00"), ("49.90 EUR", "49.90"), ("1,234", "1234.00"), ("-5,5", "-5.50")])
def test_money_in_european_and_english_notation(raw, expected):
    assert parse_money(raw) == Decimal(expected)


@pytest.mark.parametrize("raw", ["abc", "1.999", "NaN", "1e20"])
def test_bad_money_is_refused(raw):
    with pytest.raises(ValueError):
        parse_money(raw)


def test_whole_numbers_and_yes_no():
    assert parse_int(" 12 ") == 12 and parse_int("") is None
    with pytest.raises(ValueError, match="at least 0"):
        parse_int("-1", minimum=0)
    with pytest.raises(ValueError, match="whole number"):
        parse_int("1.5")
    assert [parse_bool(v) for v in ("Ja", "no", "1", "", "x")] == [True, False, True, None, True]
    with pytest.raises(ValueError, match="yes or no"):
        parse_bool("maybe")


def test_rejected_rows_are_written_back_with_their_problem(tmp_path):
    path = tmp_path / "rejects.csv"
    write_rejects(path, ["Vorname", "E-Mail"], [(["Jürgen", "bad@"], "row 2, column E-Mail: …")])
    with CsvFile.open(path) as f:
        assert f.original_headers == ["Vorname", "E-Mail", "problem"]
        assert [r.values for r in f.rows()] == [
            {"vorname": "Jürgen", "e_mail": "bad@", "problem": "row 2, column E-Mail: …"}]
