"""Many rows of one table written at once, for the billing run (100,000 invoices a day).

On PostgreSQL the rows go through `COPY ... FROM STDIN` on the session's own connection (so in
its transaction): per row, a multi-row INSERT costs the driver more Python time to parse its
placeholders than the server takes to store it, COPY costs neither. Ids, when asked for, are
taken from the table's sequence first. On SQLite a multi-row INSERT ... RETURNING (one statement
per 1,000 rows). Column defaults the model gives in Python (`created_at`, `updated_at`, ...)
are filled in as an INSERT would.
"""
from collections.abc import Sequence

from psycopg.types.json import Json
from sqlalchemy import JSON, BigInteger, Integer, any_, bindparam, insert, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session


def _with_defaults(table, rows: Sequence[dict]) -> list[dict]:
    given = set(rows[0])
    missing = {}
    for column in table.columns:
        if column.key in given or column.default is None or column.key == "id":
            continue
        default = column.default
        missing[column.key] = default.arg(None) if default.is_callable else default.arg
    return [{**missing, **row} for row in rows] if missing else list(rows)


def insert_rows(session: Session, model, rows: Sequence[dict], *,
                ids: bool = False) -> list[int]:
    """Insert `rows` (dicts with the same keys) into the model's table; their new ids in the
    rows' order when `ids` (else an empty list)."""
    if not rows:
        return []
    table = model.__table__
    if session.get_bind().dialect.name != "postgresql":
        result = session.execute(insert(table).returning(table.c.id,
                                                         sort_by_parameter_order=True), rows)
        new = list(result.scalars())
        return new if ids else []
    rows = _with_defaults(table, rows)
    new: list[int] = []
    if ids:
        new = sorted(session.scalars(text(
            "SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table.name, "n": len(rows)}))
        rows = [{**row, "id": i} for row, i in zip(rows, new, strict=True)]
    columns = list(rows[0])
    json = {c for c in columns if isinstance(table.c[c].type, JSON)}
    names = ", ".join(f'"{c}"' for c in columns)
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([Json(row[c]) if c in json and row[c] is not None else row[c]
                            for c in columns])
    return new


def among(session: Session, column, values):
    """`column IN values` for long lists: on PostgreSQL one array parameter (`= ANY(:values)`),
    which the driver neither renders nor parses value by value; elsewhere `IN (...)`."""
    values = list(values)
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    item = column.type if not isinstance(column.type, BigInteger | Integer) else BigInteger()
    return column == any_(bindparam(None, values, type_=ARRAY(item)))


def update_rows(session: Session, model, rows: Sequence[dict], *, key: str,
                columns: dict[str, str]) -> None:
    """Set `columns` (column name → the rows' key holding its value) on the rows of the model's
    table whose id is `row[key]`: on PostgreSQL one UPDATE ... FROM unnest(arrays), elsewhere
    an executemany UPDATE."""
    if not rows:
        return
    table = model.__table__
    if session.get_bind().dialect.name != "postgresql":
        session.execute(update(table).where(table.c.id == bindparam(key)).values(
            {name: bindparam(source) for name, source in columns.items()}), list(rows))
        return
    casts = {name: table.c[name].type.compile(session.get_bind().dialect) for name in columns}
    sets = ", ".join(f'"{name}" = v."{name}"' for name in columns)
    unnest = ", ".join(["CAST(:ids AS BIGINT[])"] + [
        f"CAST(:{name} AS {casts[name]}[])" for name in columns])
    names = ", ".join(["id"] + [f'"{name}"' for name in columns])
    params = {"ids": [row[key] for row in rows]}
    params.update({name: [row[source] for row in rows] for name, source in columns.items()})
    session.execute(text(f'UPDATE "{table.name}" AS t SET {sets} FROM unnest({unnest}) '
                         f"AS v({names}) WHERE t.id = v.id"), params)
