"""Portable pieces of set-based SQL, written once for SQLite and PostgreSQL: the dialect's INSERT
(for ON CONFLICT), list parameters, date and month arithmetic, club-local days as UTC instants,
greatest/least, prefix ranges.

Dates people mean (membership start and end, due dates) are `DATE` columns; instants (visits,
sales, interactions) are UTC. Where a query compares an instant with a club-local day it turns
the *day* into the instant it begins (`day_start` in SQL, `local_day_start` for a day known in
Python), so PostgreSQL can still range-scan the instant's index. PostgreSQL does the time-zone
arithmetic itself (`timezone(zone, timestamp)`); SQLite has no time-zone database, so a few
deterministic functions (`fitclub_*`) are registered on every SQLite connection as it opens
(`register_sqlite_functions`, from `app.core.db.make_engine`) and called from SQL.
"""
import calendar
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Date, Integer, String, any_, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from app.core.types import UTCDateTime

_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a DateTime on SQLite


def compiled_args(element, compiler, **kw) -> list[str]:
    return [compiler.process(c, **kw) for c in element.clauses]


# --- the dialect ---------------------------------------------------------------------------------

def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def dialect_insert(session: Session, table):
    """The dialect's INSERT (for ON CONFLICT DO NOTHING / DO UPDATE)."""
    return insert_for(is_postgres(session), table)


def insert_for(postgres: bool, table):
    """`dialect_insert` by flag, for a statement built once per dialect (an `lru_cache` on the
    flag, as with `in_list`)."""
    return postgresql.insert(table) if postgres else sqlite.insert(table)


@contextmanager
def unprepared(session: Session) -> Iterator[None]:
    """Inside: no server-side prepared statements on the session's PostgreSQL connection.

    psycopg prepares a query after it ran 5 times on a connection, and PostgreSQL may then
    plan it generically — for a batch job's date ranges and id lists that was 5x slower. This
    does what `SET plan_cache_mode = force_custom_plan` did for such jobs without its cost: that
    setting also re-plans the foreign-key checks of every inserted row (bulk inserts 2-3x
    slower). No-op on SQLite.
    """
    if not is_postgres(session):
        yield
        return
    raw = session.connection().connection.driver_connection
    before = raw.prepare_threshold
    raw.prepare_threshold = None
    try:
        yield
    finally:
        raw.prepare_threshold = before


def bulk_insert(session: Session, table, rows: list[dict]) -> None:
    """Insert many rows (thousands): `COPY … FROM STDIN` on PostgreSQL, executemany elsewhere.

    COPY sends the rows in one stream instead of one INSERT each (psycopg's executemany); for
    100k rows that is several times less time. Values must be plain (numbers, text, dates,
    aware datetimes, None): they bypass SQLAlchemy's type processing on PostgreSQL. Rows are
    grouped by their set of keys (a column left out gets the table's default only through
    the executemany path, so give every column a value). No ON CONFLICT: use the dialect's
    INSERT for that.
    """
    if not rows:
        return
    if not is_postgres(session):
        session.execute(table.insert(), rows)
        return
    session.flush()
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    raw = session.connection().connection.driver_connection
    for columns, batch in groups.items():
        names = ", ".join(f'"{c}"' for c in columns)
        with raw.cursor() as cursor, cursor.copy(
                f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in batch:
                copy.write_row([row[c] for c in columns])


def bulk_insert_new(session: Session, table, rows: list[dict], key: list) -> None:
    """Insert many rows, skipping those whose `key` (a unique index's columns) exists already:
    `INSERT … ON CONFLICT (key) DO NOTHING`. PostgreSQL: the rows are COPYed into a temporary
    table first and inserted from it in one statement (not one INSERT per row); elsewhere
    executemany. Every row gives the same keys; plain values only (see `bulk_insert`)."""
    if not rows:
        return
    if not is_postgres(session):
        session.execute(insert_for(False, table).on_conflict_do_nothing(index_elements=key), rows)
        return
    session.flush()
    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    temp = f"bulk_{table.name}"
    conflict = ", ".join(f'"{c.name}"' for c in key)
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cursor:
        cursor.execute(f'CREATE TEMPORARY TABLE "{temp}" ON COMMIT DROP AS '
                       f'SELECT {names} FROM "{table.name}" WITH NO DATA')
        with cursor.copy(f'COPY "{temp}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
        cursor.execute(f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM "{temp}" '
                       f"ON CONFLICT ({conflict}) DO NOTHING")
        cursor.execute(f'DROP TABLE "{temp}"')


def in_list(column, name: str, postgres: bool):
    """`column IN (…)` for a list given at execution: one array parameter on PostgreSQL
    (`= ANY(:name)`, the same short query for any length), an expanding IN on SQLite."""
    if postgres:
        return column == any_(bindparam(name, type_=postgresql.ARRAY(BigInteger())))
    return column.in_(bindparam(name, expanding=True))


# --- dates and months in SQL ---------------------------------------------------------------------

class add_days(FunctionElement):
    """`day + n` days, as a date."""

    type = Date()
    inherit_cache = True
    name = "add_days"


@compiles(add_days)
def _add_days_pg(element, compiler, **kw):
    day, n = compiled_args(element, compiler, **kw)
    return f"CAST(({day} + CAST({n} AS INTEGER)) AS DATE)"


@compiles(add_days, "sqlite")
def _add_days_sqlite(element, compiler, **kw):
    day, n = compiled_args(element, compiler, **kw)
    return f"date({day}, printf('%+d days', {n}))"


class days_between(FunctionElement):
    """`a - b` in whole days for two dates."""

    type = Integer()
    inherit_cache = True
    name = "days_between"


@compiles(days_between)
def _days_between_pg(element, compiler, **kw):
    a, b = compiled_args(element, compiler, **kw)
    return f"({a} - {b})"


@compiles(days_between, "sqlite")
def _days_between_sqlite(element, compiler, **kw):
    a, b = compiled_args(element, compiler, **kw)
    return f"CAST(round(julianday({a}) - julianday({b})) AS INTEGER)"


class add_months(FunctionElement):
    """`day + n` calendar months, clamped to the month's last day (31 Jan + 1 → 28/29 Feb),
    exactly like `app.memberships.rules.add_months`."""

    type = Date()
    inherit_cache = True
    name = "add_months"


@compiles(add_months)
def _add_months_pg(element, compiler, **kw):
    day, n = compiled_args(element, compiler, **kw)
    return f"CAST(({day} + make_interval(months => CAST({n} AS INTEGER))) AS DATE)"


@compiles(add_months, "sqlite")
def _add_months_sqlite(element, compiler, **kw):
    day, n = compiled_args(element, compiler, **kw)
    return f"fitclub_add_months({day}, {n})"


class month_start(FunctionElement):
    """The first day of a date's month: a cheap grouping key (`date_trunc` on PostgreSQL);
    Python turns it into a month number with `index_of`."""

    type = Date()
    inherit_cache = True
    name = "month_start"


@compiles(month_start)
def _month_start_pg(element, compiler, **kw):
    (day,) = compiled_args(element, compiler, **kw)
    return f"CAST(date_trunc('month', CAST({day} AS TIMESTAMP)) AS DATE)"


@compiles(month_start, "sqlite")
def _month_start_sqlite(element, compiler, **kw):
    (day,) = compiled_args(element, compiler, **kw)
    return f"date({day}, 'start of month')"


class month_day(FunctionElement):
    """'MM-DD' of a date column."""

    type = String()
    inherit_cache = True
    name = "month_day"


@compiles(month_day)
def _month_day_pg(element, compiler, **kw):
    (day,) = compiled_args(element, compiler, **kw)
    return f"to_char({day}, 'MM-DD')"


@compiles(month_day, "sqlite")
def _month_day_sqlite(element, compiler, **kw):
    (day,) = compiled_args(element, compiler, **kw)
    return f"strftime('%m-%d', {day})"


def month_of(index: int) -> date:
    """The first day of the month numbered `index` (year * 12 + month - 1)."""
    return date(index // 12, index % 12 + 1, 1)


def index_of(day: date) -> int:
    return day.year * 12 + day.month - 1


# --- instants and club-local days ----------------------------------------------------------------

class day_start(FunctionElement):
    """The UTC instant a club-local day begins: `day_start(date_expr, zone_name)`."""

    type = UTCDateTime()
    inherit_cache = True
    name = "day_start"


@compiles(day_start)
def _day_start_pg(element, compiler, **kw):
    day, zone = compiled_args(element, compiler, **kw)
    return f"timezone(CAST({zone} AS TEXT), CAST({day} AS TIMESTAMP))"


@compiles(day_start, "sqlite")
def _day_start_sqlite(element, compiler, **kw):
    day, zone = compiled_args(element, compiler, **kw)
    return f"fitclub_day_start({day}, {zone})"


class add_seconds(FunctionElement):
    """An instant plus n seconds."""

    type = UTCDateTime()
    inherit_cache = True
    name = "add_seconds"


@compiles(add_seconds)
def _add_seconds_pg(element, compiler, **kw):
    instant, n = compiled_args(element, compiler, **kw)
    return f"({instant} + make_interval(secs => CAST({n} AS INTEGER)))"


@compiles(add_seconds, "sqlite")
def _add_seconds_sqlite(element, compiler, **kw):
    instant, n = compiled_args(element, compiler, **kw)
    return f"fitclub_add_seconds({instant}, {n})"


def local_day_start(zone: ZoneInfo, day: date) -> datetime:
    """The UTC instant a club-local day begins (`day_start` for a day known in Python)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def local_at(zone: ZoneInfo, day: date, at: time) -> datetime:
    """The UTC instant of a wall-clock time on a club-local day."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def local_date(zone: ZoneInfo, instant: datetime) -> date:
    """The club-local day an instant falls on."""
    return instant.astimezone(zone).date()


# --- values --------------------------------------------------------------------------------------

class greatest(FunctionElement):
    inherit_cache = True
    name = "greatest"

    @property
    def type(self):
        return next(iter(self.clauses)).type


@compiles(greatest)
def _greatest_pg(element, compiler, **kw):
    return f"GREATEST({', '.join(compiled_args(element, compiler, **kw))})"


@compiles(greatest, "sqlite")
def _greatest_sqlite(element, compiler, **kw):
    return f"MAX({', '.join(compiled_args(element, compiler, **kw))})"


class least(FunctionElement):
    inherit_cache = True
    name = "least"

    @property
    def type(self):
        return next(iter(self.clauses)).type


@compiles(least)
def _least_pg(element, compiler, **kw):
    return f"LEAST({', '.join(compiled_args(element, compiler, **kw))})"


@compiles(least, "sqlite")
def _least_sqlite(element, compiler, **kw):
    return f"MIN({', '.join(compiled_args(element, compiler, **kw))})"


class cents(FunctionElement):
    """A money column as whole cents (an exact integer on both backends, so sums are exact)."""

    type = Integer()
    inherit_cache = True
    name = "cents"


@compiles(cents)
def _cents(element, compiler, **kw):
    (value,) = compiled_args(element, compiler, **kw)
    return f"CAST(ROUND({value} * 100) AS BIGINT)"


class text_key(FunctionElement):
    """An expression as text (for grouping keys of mixed types)."""

    type = String()
    inherit_cache = True
    name = "text_key"


@compiles(text_key)
def _text_key(element, compiler, **kw):
    (value,) = compiled_args(element, compiler, **kw)
    return f"CAST({value} AS VARCHAR(40))"


def successor(prefix: str) -> str:
    """The smallest string greater than every string starting with `prefix` (code-point order):
    `col >= prefix AND col < successor(prefix)` is "starts with" as a btree range."""
    while prefix:
        last = ord(prefix[-1]) + 1
        if 0xD800 <= last <= 0xDFFF:
            last = 0xE000
        if last <= 0x10FFFF:
            return prefix[:-1] + chr(last)
        prefix = prefix[:-1]
    return "\U0010ffff"


# --- SQLite: the time-zone and calendar functions, registered on each connection -----------------

@lru_cache(maxsize=65536)
def _sqlite_day_start(day: str | None, zone: str) -> str | None:
    if day is None:
        return None
    instant = datetime.combine(date.fromisoformat(day[:10]), time(0), tzinfo=ZoneInfo(zone))
    return instant.astimezone(UTC).replace(tzinfo=None).strftime(_SQLITE_FORMAT)


@lru_cache(maxsize=65536)
def _sqlite_add_months(day: str | None, n: int) -> str | None:
    # the calendar rule of `app.memberships.rules.add_months` (core does not import a domain;
    # tests/core/test_sql.py checks the two agree)
    if day is None:
        return None
    start = date.fromisoformat(day[:10])
    month0 = start.month - 1 + int(n)
    year, month = start.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1])).isoformat()


def _sqlite_add_seconds(instant: str | None, n: int) -> str | None:
    if instant is None:
        return None
    return (datetime.fromisoformat(instant) + timedelta(seconds=int(n))).strftime(_SQLITE_FORMAT)


def register_sqlite_functions(dbapi_connection) -> None:
    """Register the `fitclub_*` functions on a new sqlite3 connection (`make_engine` does, once
    per connection)."""
    dbapi_connection.create_function("fitclub_day_start", 2, _sqlite_day_start,
                                     deterministic=True)
    dbapi_connection.create_function("fitclub_add_months", 2, _sqlite_add_months,
                                     deterministic=True)
    dbapi_connection.create_function("fitclub_add_seconds", 2, _sqlite_add_seconds,
                                     deterministic=True)
