"""Portable pieces of set-based SQL for SQLite and PostgreSQL: the dialect's INSERT (for ON
CONFLICT), list parameters, date arithmetic, prefix ranges."""
from sqlalchemy import BigInteger, Date, Integer, any_, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement


def compiled_args(element, compiler, **kw) -> list[str]:
    return [compiler.process(c, **kw) for c in element.clauses]


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


def in_list(column, name: str, postgres: bool):
    """`column IN (…)` for a list given at execution: one array parameter on PostgreSQL
    (`= ANY(:name)`, the same short query for any length), an expanding IN on SQLite."""
    if postgres:
        return column == any_(bindparam(name, type_=postgresql.ARRAY(BigInteger())))
    return column.in_(bindparam(name, expanding=True))


def dialect_insert(session: Session, table):
    """The dialect's INSERT (for ON CONFLICT DO NOTHING / DO UPDATE)."""
    return insert_for(is_postgres(session), table)


def insert_for(postgres: bool, table):
    """`dialect_insert` by flag, for a statement built once per dialect (an `lru_cache` on the
    flag, as with `in_list`)."""
    return postgresql.insert(table) if postgres else sqlite.insert(table)


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
