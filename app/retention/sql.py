"""Small SQL helpers the engine needs on both SQLite and PostgreSQL."""
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Date, Integer, String, any_, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement


class add_days(FunctionElement):
    """`date_column + n days` as a date: `(d + n)` on PostgreSQL, `date(d, '+n days')` on SQLite."""

    type = Date()
    inherit_cache = True
    name = "add_days"


@compiles(add_days)
def _add_days_pg(element, compiler, **kw):
    day, n = list(element.clauses)
    return f"({compiler.process(day, **kw)} + CAST({compiler.process(n, **kw)} AS INTEGER))"


@compiles(add_days, "sqlite")
def _add_days_sqlite(element, compiler, **kw):
    day, n = list(element.clauses)
    return f"date({compiler.process(day, **kw)}, printf('%+d days', {compiler.process(n, **kw)}))"


class days_between(FunctionElement):
    """`a - b` in days (integer) for two date columns."""

    type = Integer()
    inherit_cache = True
    name = "days_between"


@compiles(days_between)
def _days_between_pg(element, compiler, **kw):
    a, b = list(element.clauses)
    return f"({compiler.process(a, **kw)} - {compiler.process(b, **kw)})"


@compiles(days_between, "sqlite")
def _days_between_sqlite(element, compiler, **kw):
    a, b = list(element.clauses)
    return (f"CAST(julianday({compiler.process(a, **kw)}) - "
            f"julianday({compiler.process(b, **kw)}) AS INTEGER)")


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


def in_list(column, name: str, postgres: bool):
    """`column IN (…)` for a list given at execution: one array parameter on PostgreSQL
    (`= ANY(:name)`, the same short query for any length), an expanding IN on SQLite."""
    if postgres:
        return column == any_(bindparam(name, type_=postgresql.ARRAY(BigInteger())))
    return column.in_(bindparam(name, expanding=True))


def dialect_insert(session: Session, table):
    """The dialect's INSERT (for ON CONFLICT DO NOTHING)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


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
