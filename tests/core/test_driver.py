"""`app.core.driver.first` returns what `conn.execute(...).first()` returns, and fails the way it
fails: the turnstile's statements take this shortcut on PostgreSQL (SQLite takes `execute`)."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import JSON, Numeric, bindparam, cast, literal, select
from sqlalchemy import event as sa_event
from sqlalchemy.exc import DBAPIError

from app.core import driver
from app.core.types import UTCDateTime

AT = datetime(2026, 12, 7, 18, 5, tzinfo=UTC)

_TYPED = select(
    bindparam("at", type_=UTCDateTime()).label("at"),
    (cast(bindparam("amount"), Numeric(10, 2)) - literal(Decimal("0.50"))).label("owed"),
    literal(3).label("constant"),
    literal(None).label("empty"),
    cast(literal('{"grace_days": 30}'), JSON).label("settings"),
)
_NO_ROW = select(literal(1).label("one")).where(bindparam("flag") == literal(True))
_FAILS = select((literal(1) / bindparam("zero")).label("ratio"))


def test_the_same_row_as_execute_with_typed_values(db):
    params = {"at": AT + timedelta(hours=2), "amount": "5.25"}
    with db.engine.connect() as conn:
        expected = conn.execute(_TYPED, params).first()
        for _ in range(2):  # the first call learns the result types; the second reuses them
            got = driver.first(conn, _TYPED, params)
            assert tuple(got) == tuple(expected)
            assert got.at == AT + timedelta(hours=2) and got.at.utcoffset() == timedelta(0)
            assert got.owed == Decimal("4.75") and got.constant == 3 and got.empty is None
            if db.is_postgres:  # (SQLite has no JSON type to cast to)
                assert got.settings == {"grace_days": 30}
        assert driver.first(conn, _NO_ROW, {"flag": False}) is None


def test_a_database_error_is_raised_as_sqlalchemy_raises_it_and_the_connection_stays_usable(db):
    if not db.is_postgres:
        pytest.skip("SQLite divides by zero into NULL; its statements go through execute anyway")
    with db.engine.connect() as conn:
        with pytest.raises(DBAPIError) as raised:
            driver.first(conn, _FAILS, {"zero": 0})
        assert not raised.value.connection_invalidated
        conn.rollback()
        assert driver.first(conn, _FAILS, {"zero": 2}) == conn.execute(_FAILS, {"zero": 2}).first()


def test_the_statement_runs_in_a_transaction_the_connection_knows_and_listeners_see_it(db):
    seen = []

    def after(_conn, _cursor, statement, *_args):
        seen.append(statement.split()[0])

    sa_event.listen(db.engine, "after_cursor_execute", after)
    try:
        with db.engine.connect() as conn:
            assert not conn.in_transaction()
            driver.first(conn, _NO_ROW, {"flag": True})
            assert conn.in_transaction()  # so commit/rollback reach the driver's transaction
            conn.rollback()
    finally:
        sa_event.remove(db.engine, "after_cursor_execute", after)
    assert [s for s in seen if s != "BEGIN"] == ["SELECT"]  # (SQLite: BEGIN IMMEDIATE first)
