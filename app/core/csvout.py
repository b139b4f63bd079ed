"""CSV for people: cells a spreadsheet opens safely, and a CSV download response.

"CSV injection": a spreadsheet runs a cell that starts with = + - @ (or a tab/CR) as a formula.
Two things keep an export inert, whatever locale opens it:

* a text cell starting with a formula character gets a leading `'` (the member import strips it
  again, so "+4930…" survives a round trip), and so does a formula character that follows a
  separator-like character (`,` `;` tab `|` CR LF, optionally after spaces or a `"`) inside the
  cell: a spreadsheet that splits `x;=2+3;` on `;` (a semicolon locale) would otherwise see
  a cell `=2+3`;
* every text cell that holds a separator-like character, a quote, a newline or a formula
  character is quoted (`"…"`, quotes doubled), not only those holding the comma.

Numbers, dates and booleans are written as they are (they cannot be formulas). Write CSV through
`writer(...)` (or `csv_response`), never `csv.writer` + `cell`, so both rules apply.
"""
import io
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fastapi import Response

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SEPARATOR_LIKE = ",;\t|\r\n"
_INNER_FORMULA = re.compile(r'([,;\t|\r\n][ "]*)([=+\-@])')
_QUOTE_IF = frozenset(SEPARATOR_LIKE + '"=+-@')


def _text(value: Any) -> str | None:
    """Typed values (numbers, dates, booleans) as text; None for a string (to be neutralised)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return None


def neutralise(text: str) -> str:
    """Text no spreadsheet runs as a formula: a `'` before a leading formula character and before
    one that follows a separator-like character."""
    text = _INNER_FORMULA.sub(r"\1'\2", text)
    return "'" + text if text.startswith(FORMULA_START) else text


def cell(value: Any) -> str:
    """A value as CSV text, safe to open in a spreadsheet (unquoted; `writer` quotes)."""
    typed = _text(value)
    return typed if typed is not None else neutralise(str(value))


def field(value: Any) -> str:
    """A value as one CSV field: neutralised, and quoted when it holds a separator-like
    character, a quote, a newline or a formula character."""
    typed = _text(value)
    if typed is not None:
        return typed
    text = neutralise(str(value))
    if any(ch in _QUOTE_IF for ch in text):
        return '"' + text.replace('"', '""') + '"'
    return text


class Writer:
    """`csv.writer`'s `writerow`/`writerows`, with every value through `field`."""

    def __init__(self, out, *, lineterminator: str = "\n"):
        self.out = out
        self.lineterminator = lineterminator

    def writerow(self, row) -> None:
        self.out.write(",".join(field(v) for v in row) + self.lineterminator)

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)


def writer(out, *, lineterminator: str = "\n") -> Writer:
    """A CSV writer on a text stream (anything with `write(str)`), safe for spreadsheets."""
    return Writer(out, lineterminator=lineterminator)


def csv_response(name: str, header: list[str], rows) -> Response:
    """A CSV attachment `name`.csv: the header, then each row's values through `field`."""
    buffer = io.StringIO()
    out = writer(buffer)
    out.writerow(header)
    out.writerows(rows)
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
