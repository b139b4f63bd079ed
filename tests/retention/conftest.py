"""Retention tests use `rw` (tests/conftest.py): members, plans, memberships, freezes and visits
written as rows, and the engine (tests/builders.py `Retention`). Dates are fixed so every test is
reproducible; `local(day, hh)` is a club-local wall-clock time as an aware instant.
"""
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from tests.builders import Retention, local  # noqa: F401 - for the tests

BERLIN = ZoneInfo("Europe/Berlin")
D = Retention.D  # a Monday: "today" in most tests


def ago(n: int, ref: date = D) -> date:
    return ref - timedelta(days=n)
