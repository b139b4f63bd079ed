"""CSV for people: cells a spreadsheet opens safely, and a CSV download response.

A cell starting with = + - @ (or a tab/CR) would run as a formula in Excel or LibreOffice
("CSV injection"); it is prefixed with a quote. The member import strips that quote again, so
an export imports unchanged.
"""
import csv
import io
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fastapi import Response

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """A value as CSV text, safe to open in a spreadsheet."""
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
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_response(name: str, header: list[str], rows) -> Response:
    """A CSV attachment `name`.csv: the header, then each row's values through `cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([cell(v) for v in row] for row in rows)
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
