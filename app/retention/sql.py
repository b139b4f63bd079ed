"""Small SQL helpers the engine needs on both SQLite and PostgreSQL."""
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from app.core.sql import add_days, days_between  # noqa: F401 - re-exported for the engine


class month_day(FunctionElement):
    """'MM-DD' of a date column."""

    type = String()
    inherit_cache = True
    name = "month_day"


@compiles(month_day)
def _month_day_pg(element, compiler, **kw):
    (day,) = list(element.clauses)
    return f"to_char({compiler.process(day, **kw)}, 'MM-DD')"


@compiles(month_day, "sqlite")
def _month_day_sqlite(element, compiler, **kw):
    (day,) = list(element.clauses)
    return f"strftime('%m-%d', {compiler.process(day, **kw)})"


def day_start(zone: ZoneInfo, day: date) -> datetime:
    """The UTC instant a club-local day begins."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def local_at(zone: ZoneInfo, day: date, at: time) -> datetime:
    """The UTC instant of a wall-clock time on a club-local day."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def local_date(zone: ZoneInfo, instant: datetime) -> date:
    return instant.astimezone(zone).date()


def days(n: int) -> timedelta:
    return timedelta(days=n)
