"""SQL building blocks the analytics queries share, written once for SQLite and PostgreSQL.

Dates people mean (membership start and end, due dates) are `DATE` columns; instants (visits,
sales, interactions) are UTC. Where a query compares an instant with a club-local day it turns
the *day* into the instant it begins (`day_start`), so PostgreSQL can still range-scan the
instant's index. PostgreSQL does the time-zone arithmetic itself (`timezone(zone, timestamp)`);
SQLite has no time-zone database, so a few deterministic functions are registered on its
connection (`prepare`) and called from SQL. Every query stays one set-based statement.
"""
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Integer, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from app.core.sql import add_days, compiled_args, days_between  # noqa: F401 - re-exported
from app.core.types import UTCDateTime

_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a DateTime on SQLite


_args = compiled_args


class add_months(FunctionElement):
    """`day + n` calendar months, clamped to the month's last day (31 Jan + 1 → 28/29 Feb),
    exactly like `app.memberships.rules.add_months`."""

    type = Date()
    inherit_cache = True
    name = "add_months"


@compiles(add_months)
def _add_months_pg(element, compiler, **kw):
    day, n = _args(element, compiler, **kw)
    return f"CAST(({day} + make_interval(months => CAST({n} AS INTEGER))) AS DATE)"


@compiles(add_months, "sqlite")
def _add_months_sqlite(element, compiler, **kw):
    day, n = _args(element, compiler, **kw)
    return f"fitclub_add_months({day}, {n})"


class day_start(FunctionElement):
    """The UTC instant a club-local day begins: `day_start(date_expr, zone_name)`."""

    type = UTCDateTime()
    inherit_cache = True
    name = "day_start"


@compiles(day_start)
def _day_start_pg(element, compiler, **kw):
    day, zone = _args(element, compiler, **kw)
    return f"timezone(CAST({zone} AS TEXT), CAST({day} AS TIMESTAMP))"


@compiles(day_start, "sqlite")
def _day_start_sqlite(element, compiler, **kw):
    day, zone = _args(element, compiler, **kw)
    return f"fitclub_day_start({day}, {zone})"


class add_seconds(FunctionElement):
    """An instant plus n seconds."""

    type = UTCDateTime()
    inherit_cache = True
    name = "add_seconds"


@compiles(add_seconds)
def _add_seconds_pg(element, compiler, **kw):
    instant, n = _args(element, compiler, **kw)
    return f"({instant} + make_interval(secs => CAST({n} AS INTEGER)))"


@compiles(add_seconds, "sqlite")
def _add_seconds_sqlite(element, compiler, **kw):
    instant, n = _args(element, compiler, **kw)
    return f"fitclub_add_seconds({instant}, {n})"


class greatest(FunctionElement):
    inherit_cache = True
    name = "greatest"

    @property
    def type(self):
        return next(iter(self.clauses)).type


@compiles(greatest)
def _greatest_pg(element, compiler, **kw):
    return f"GREATEST({', '.join(_args(element, compiler, **kw))})"


@compiles(greatest, "sqlite")
def _greatest_sqlite(element, compiler, **kw):
    return f"MAX({', '.join(_args(element, compiler, **kw))})"


class least(FunctionElement):
    inherit_cache = True
    name = "least"

    @property
    def type(self):
        return next(iter(self.clauses)).type


@compiles(least)
def _least_pg(element, compiler, **kw):
    return f"LEAST({', '.join(_args(element, compiler, **kw))})"


@compiles(least, "sqlite")
def _least_sqlite(element, compiler, **kw):
    return f"MIN({', '.join(_args(element, compiler, **kw))})"


class cents(FunctionElement):
    """A money column as whole cents (an exact integer on both backends, so sums are exact)."""

    type = Integer()
    inherit_cache = True
    name = "cents"


@compiles(cents)
def _cents(element, compiler, **kw):
    (value,) = _args(element, compiler, **kw)
    return f"CAST(ROUND({value} * 100) AS BIGINT)"


class text_key(FunctionElement):
    """An expression as text (for grouping keys of mixed types)."""

    type = String()
    inherit_cache = True
    name = "text_key"


@compiles(text_key)
def _text_key(element, compiler, **kw):
    (value,) = _args(element, compiler, **kw)
    return f"CAST({value} AS VARCHAR(40))"


# --- SQLite: the time-zone and calendar functions, registered on the connection ------------------

@lru_cache(maxsize=65536)
def _sqlite_day_start(day: str | None, zone: str) -> str | None:
    if day is None:
        return None
    instant = datetime.combine(date.fromisoformat(day[:10]), time(0), tzinfo=ZoneInfo(zone))
    return instant.astimezone(UTC).replace(tzinfo=None).strftime(_SQLITE_FORMAT)


@lru_cache(maxsize=65536)
def _sqlite_add_months(day: str | None, n: int) -> str | None:
    if day is None:
        return None
    from app.memberships.rules import add_months as add

    return add(date.fromisoformat(day[:10]), int(n)).isoformat()


def _sqlite_add_seconds(instant: str | None, n: int) -> str | None:
    if instant is None:
        return None
    return (datetime.fromisoformat(instant) + timedelta(seconds=int(n))).strftime(_SQLITE_FORMAT)


REPORT_WORK_MEM = "64MB"


def prepare(session: Session) -> None:
    """Ready this session's transaction for report queries (idempotent).

    PostgreSQL: `SET LOCAL work_mem` so the sorts and hashes of a report stay in memory, and
    `jit = off` (compiling costs more than it saves at these sizes); both end with the
    transaction. SQLite: register the time-zone and calendar functions on the connection.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'")
        connection.exec_driver_sql("SET LOCAL jit = off")
        return
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.driver_connection
    raw.create_function("fitclub_day_start", 2, _sqlite_day_start, deterministic=True)
    raw.create_function("fitclub_add_months", 2, _sqlite_add_months, deterministic=True)
    raw.create_function("fitclub_add_seconds", 2, _sqlite_add_seconds, deterministic=True)


def local_day_start(zone: ZoneInfo, day: date) -> datetime:
    """The same as `day_start` for a constant day, computed here."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def month_of(index: int) -> date:
    """The first day of the month numbered `index` (year * 12 + month - 1)."""
    return date(index // 12, index % 12 + 1, 1)


def index_of(day: date) -> int:
    return day.year * 12 + day.month - 1


# --- window functions with a literal frame ----------------------------------------------------------

PRIOR_ROWS = "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
LATER_ROWS = "ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING"


class window(ColumnElement):
    """`fn OVER (PARTITION BY … ORDER BY … <frame>)` with the frame written out literally.

    Functions over the same partition, order and frame then share one window pass on
    PostgreSQL (SQLAlchemy 2.1 sends frame offsets as bound parameters, which makes each
    `OVER` a different window and costs a pass each).
    """

    inherit_cache = False

    def __init__(self, fn, *, partition_by, order_by, frame: str = PRIOR_ROWS):
        self.fn = fn
        self.partition_by = list(partition_by) if isinstance(partition_by, (list, tuple)) \
            else [partition_by]
        self.order_by = list(order_by) if isinstance(order_by, (list, tuple)) else [order_by]
        self.frame = frame
        self.type = fn.type

    def get_children(self, **kw):
        return [self.fn, *self.partition_by, *self.order_by]

    @property
    def _from_objects(self):
        return [f for c in self.get_children() for f in c._from_objects]


@compiles(window)
def _window(element, compiler, **kw):
    fn = compiler.process(element.fn, **kw)
    partition = ", ".join(compiler.process(c, **kw) for c in element.partition_by)
    order = ", ".join(compiler.process(c, **kw) for c in element.order_by)
    return f"{fn} OVER (PARTITION BY {partition} ORDER BY {order} {element.frame})"


class month_start(FunctionElement):
    """The first day of a date's month: a cheap grouping key (`date_trunc` on PostgreSQL);
    Python turns it into a month number with `index_of`."""

    type = Date()
    inherit_cache = True
    name = "month_start"


@compiles(month_start)
def _month_start_pg(element, compiler, **kw):
    (day,) = _args(element, compiler, **kw)
    return f"CAST(date_trunc('month', CAST({day} AS TIMESTAMP)) AS DATE)"


@compiles(month_start, "sqlite")
def _month_start_sqlite(element, compiler, **kw):
    (day,) = _args(element, compiler, **kw)
    return f"date({day}, 'start of month')"
