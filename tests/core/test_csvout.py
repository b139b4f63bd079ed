"""CSV injection: every text cell that holds a separator-like character, a quote, a newline or a
formula character is quoted, and a formula start is neutralised at the start of a cell and after
a separator-like character inside it (issue 16: `x;=2+3;` was written unquoted)."""
import csv
import io
import re

import pytest

from app.core.actors import Role
from app.core.csvout import csv_response, field, writer

# the cell as a spreadsheet in a semicolon / comma / tab / pipe locale may split it
SPLITTERS = re.compile(r"[,;\t|\r\n]")
FORMULA = ("=", "+", "-", "@")


def _pieces_a_naive_spreadsheet_sees(line: str) -> list[str]:
    """A spreadsheet that ignores quotes and splits on any separator-like character."""
    return [p.strip(' "') for p in SPLITTERS.split(line)]


@pytest.mark.parametrize("value", [
    "x;=2+3;", "x,=2+3,", "x\t=2+3", "x|=2+3", "a; -1+2", 'x;"=1+1', "x; @SUM(A1)",
    "line\n=HYPERLINK(\"http://evil\")", "=1+1", "+4930123", "-5", "@SUM(1)",
])
def test_no_piece_of_a_cell_starts_a_formula_in_any_locale(value):
    text = field(value)
    assert text.startswith('"') and text.endswith('"'), text  # quoted: it holds such a char
    for piece in _pieces_a_naive_spreadsheet_sees(text):
        assert not piece.startswith(FORMULA), (value, text, piece)
    # a CSV reader gets the text back, neutralised only by added quotes (')
    [[back]] = list(csv.reader(io.StringIO(text)))
    assert back.replace("'", "") == value.replace("'", "")


def test_semicolon_locale_sees_no_formula_in_a_whole_row():
    out = io.StringIO()
    writer(out).writerows([["Anna", "x;=2+3;", 7], ["Bert", 'said "hi"', -5]])
    text = out.getvalue()
    assert text == 'Anna,"x;\'=2+3;",7\nBert,"said ""hi""",-5\n'
    for line in text.splitlines():
        assert not any(p.startswith(FORMULA) for p in line.split(";")[1:]), line
    assert list(csv.reader(io.StringIO(text))) == [["Anna", "x;'=2+3;", "7"],
                                                   ["Bert", 'said "hi"', "-5"]]


def test_plain_text_numbers_and_dates_stay_as_they_are():
    from datetime import date
    from decimal import Decimal

    assert [field(v) for v in ("Anna", 3, Decimal("-2.50"), date(2026, 1, 2), True, None)] == [
        "Anna", "3", "-2.50", "2026-01-02", "true", ""]
    response = csv_response("t", ["name", "note"], [["Anna", "a,b"]])
    assert response.body.decode() == 'name,note\nAnna,"a,b"\n'


def test_member_export_quotes_and_neutralises_the_cell(client, world):
    club = world.club()
    manager = world.staff(club, Role.manager)
    r = client.post("/api/v1/members", headers=manager.headers,
                    json={"first_name": "Eve", "last_name": "x;=2+3;"})
    assert r.status_code == 201, r.text
    export = client.get("/api/v1/exports/members.csv", headers=manager.headers)
    assert export.status_code == 200
    text = export.content.decode("utf-8-sig")
    assert '"x;\'=2+3;"' in text
    for line in text.splitlines()[1:]:
        assert not any(p.startswith(FORMULA) for p in line.split(";")[1:]), line
