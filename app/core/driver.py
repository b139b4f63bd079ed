"""Core statements run straight on PostgreSQL's driver, for the few a request path runs all day.

`Connection.execute` builds an execution context and a result object around every statement, and
psycopg describes every result column for it; for the turnstile's two statements that was about
a fifth of a check-in's CPU (#19). `first(conn, statement, params)` runs the same statement,
compiled once, on the connection's own psycopg cursor, with the same bind and result
processors, so it returns what `conn.execute(statement, params).first()` would (a named tuple
rather than a `Row`). What stays the same:

- the statement runs in the connection's transaction (or its autocommit), as any other;
- a driver error goes through SQLAlchemy's handling: it is raised wrapped in `DBAPIError`, a
  lost connection invalidates it (`connection_invalidated`), the engine's `handle_error`
  listeners run;
- the engine's `before_/after_cursor_execute` listeners still see the statement (tests count
  statements with them); with SQL echo on, or on SQLite, it is simply `conn.execute`.
"""
from collections import namedtuple
from dataclasses import dataclass
from typing import Any

from psycopg import pq
from sqlalchemy.engine import Connection


@dataclass(slots=True)
class _Compiled:
    sql: str
    defaults: dict[str, Any]  # the statement's own bound values (constants, limits)
    bind_processors: tuple[tuple[str, Any], ...]
    row: type
    types: list  # the result columns' types
    result_processors: tuple[Any, ...] | None = None  # per column; found at the first result
    described: bool = False


_compiled: dict[int, tuple[object, _Compiled]] = {}
_ROWS = pq.ExecStatus.TUPLES_OK


def _compile(statement, dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    if "POSTCOMPILE" in str(compiled):
        raise ValueError("driver.first cannot run a statement with expanding (IN) parameters")
    defaults = {name: bind.value for name, bind in compiled.binds.items()
                if not bind.required and bind.callable is None}
    binds = []
    for name, bind in compiled.binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            binds.append((name, process))
    columns = list(statement.selected_columns)
    return _Compiled(sql=str(compiled), defaults=defaults, bind_processors=tuple(binds),
                     row=namedtuple("Row", [c.key for c in columns]),
                     types=[c.type.dialect_impl(dialect) for c in columns])


def _describe(c: _Compiled, dialect, result: pq.PGresult) -> None:
    """The result processors, once: some depend on the column's type as the server sent it
    (a NUMERIC's OID), which only a first result tells."""
    found = tuple(type_.result_processor(dialect, result.ftype(i))
                  for i, type_ in enumerate(c.types))
    c.result_processors = found if any(found) else None
    c.described = True


def _lookup(statement, dialect) -> _Compiled:
    found = _compiled.get(id(statement))
    if found is None or found[0] is not statement:  # (the statement is kept alive with it)
        found = _compiled[id(statement)] = (statement, _compile(statement, dialect))
    return found[1]


def first(conn: Connection, statement, params: dict[str, Any]):
    """`conn.execute(statement, params).first()`, on the driver's cursor on PostgreSQL.

    For statements built once (module constants, or cached as the check-in's grant is): each
    is compiled on first use and kept. A NULL is returned as None without its type's result
    processor (none of SQLAlchemy's or ours turns NULL into anything else)."""
    if conn.dialect.name != "postgresql" or conn._echo:
        return conn.execute(statement, params).first()
    c = _lookup(statement, conn.dialect)
    if not conn.in_transaction():  # as `execute` would: the driver's implicit BEGIN is tracked
        conn.begin()
    values = c.defaults | params
    for name, process in c.bind_processors:
        if name in values:
            values[name] = process(values[name])
    cursor = conn.connection.driver_connection.cursor()
    events = conn._has_events or conn.engine._has_events
    if events:
        conn.dispatch.before_cursor_execute(conn, cursor, c.sql, values, None, False)
    try:
        cursor.execute(c.sql, values)
        result = cursor.pgresult
        fetched = cursor.fetchone() if result.status == _ROWS else None
        if fetched is not None and not c.described:
            _describe(c, conn.dialect, result)
    except conn.dialect.loaded_dbapi.Error as error:
        conn._handle_dbapi_exception(error, c.sql, values, cursor, None)
        raise  # (it raises; this line is never reached)
    finally:
        cursor.close()
    if events:
        conn.dispatch.after_cursor_execute(conn, cursor, c.sql, values, None, False)
    if fetched is None:
        return None
    if c.result_processors is not None:
        fetched = [value if process is None or value is None else process(value)
                   for process, value in zip(c.result_processors, fetched, strict=True)]
    return c.row._make(fetched)
