"""Analytics outcomes (issue 19): renewal outcomes in the facts, touchpoint pairs kept by triggers

`analytics_membership_facts` gains `renewed` (1 when the member started another membership,
not void and starting later than this one started, between 30 days before and grace days
after its last day) and `grace_end` (its last day + grace: the last day a renewal may still
come). Both depend only on the member's own memberships in the club and on the grace window —
exactly what the 0013 triggers already mark a member dirty for — so the renewal reports read
the outcome instead of recomputing the renewal window: renewed, else `in_grace` while
`grace_end` ≥ today, else lost. An index on (club_id, last_day) finds the memberships ending
in a period.

The stored facts are emptied (and their build records with them): the next report rebuilds
each club's facts with the new columns. The 0013 triggers on `memberships` stay as they are
(this migration does not rebuild that table).

`analytics_touchpoint_pairs`: per (club, membership, touchpoint definition) the number of the
membership's touchpoints of that definition that are sent, held out, and planned at all; and
`analytics_channel_sends`: per (club, membership, channel) the number sent on that channel.
Both are filled from the existing rows and kept exact by triggers on `scheduled_touchpoints`:
every insert and delete, and every update that changes a row's club, membership, definition,
channel or whether it is sent or held out (the `ON DELETE SET NULL` from `memberships` is such
an update). A pair whose
count reaches 0 is deleted. PostgreSQL: once per statement (transition tables; an update
statement compares old and new rows by id), SQLite: once per row. The touchpoint report counts
these pairs instead of grouping every touchpoint row by (definition, membership); the channel
breakdown reads the channel sends instead of grouping the delivered touchpoints per membership.

Note for later migrations: a SQLite batch rebuild of `scheduled_touchpoints` drops its
triggers — recreate them (`_create_pair_triggers`) after any such batch operation.

Revision ID: 0015_analytics_outcomes
Revises: 0013_analytics_facts
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_analytics_outcomes"
down_revision: str | None = "0014_retention_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


PAIR_KEY = ("club_id", "membership_id", "definition_id")
PAIR_COLUMNS = (*PAIR_KEY, "sent", "held", "planned")
SEND_KEY = ("club_id", "membership_id", "channel")
SEND_COLUMNS = (*SEND_KEY, "sent")


def _pair_counts(row: str, sign: str = "") -> str:
    """A touchpoint row's contribution to its pair: sent, held out, planned."""
    return (f"{row}.club_id, {row}.membership_id, {row}.definition_id, "
            f"{sign}CASE WHEN {row}.status = 'sent' THEN 1 ELSE 0 END, "
            f"{sign}CASE WHEN {row}.status = 'held_out' THEN 1 ELSE 0 END, {sign}1")


def _send_counts(row: str, sign: str = "") -> str:
    """A sent touchpoint row's contribution to its (membership, channel)."""
    return f"{row}.club_id, {row}.membership_id, {row}.channel, {sign}1"


def _apply_pg(table: str, key: tuple, columns: tuple, rows: str, zeros: str | None) -> str:
    """PL/pgSQL: add the summed per-key deltas of `rows` to `table`; drop the rows of the keys
    `zeros` touched whose counts reached 0 (the last count column is the total). Upserts in key
    order, so concurrent statements lock the same rows in the same order."""
    counts = columns[len(key):]
    keys = ", ".join(key)
    body = f"""
    INSERT INTO {table} ({", ".join(columns)})
    SELECT {keys}, {", ".join(f"sum({c})" for c in counts)}
    FROM ({rows}) AS delta ({", ".join(columns)})
    WHERE membership_id IS NOT NULL
    GROUP BY {keys} HAVING {" OR ".join(f"sum({c}) <> 0" for c in counts)}
    ORDER BY {keys}
    ON CONFLICT ({keys}) DO UPDATE SET
        {", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in counts)};"""
    if zeros:
        body += f"""
    DELETE FROM {table} p USING ({zeros}) AS z ({keys})
    WHERE {" AND ".join(f"p.{c} = z.{c}" for c in key)} AND p.{counts[-1]} = 0;"""
    return body


def _changed_pg(key: tuple, *flags: str) -> str:
    return " OR ".join([*(f"o.{c} IS DISTINCT FROM n.{c}" for c in key),
                        *(f"(o.status = '{f}') <> (n.status = '{f}')" for f in flags)])


def _moved(key: tuple, *flags: str) -> str:
    return f"old_rows o JOIN new_rows n ON n.id = o.id WHERE ({_changed_pg(key, *flags)})"


PAIRS = ("analytics_touchpoint_pairs", PAIR_KEY, PAIR_COLUMNS)
SENDS = ("analytics_channel_sends", SEND_KEY, SEND_COLUMNS)
MOVED_PAIR = _moved(PAIR_KEY, "sent", "held_out")
MOVED_SEND = _moved(SEND_KEY, "sent")
SENT = "status = 'sent'"
PG_BODIES = {
    "insert": _apply_pg(*PAIRS, f"SELECT {_pair_counts('r')} FROM new_rows r", None)
    + _apply_pg(*SENDS, f"SELECT {_send_counts('r')} FROM new_rows r WHERE r.{SENT}", None),
    "delete": _apply_pg(*PAIRS, f"SELECT {_pair_counts('r', '-')} FROM old_rows r",
                        f"SELECT DISTINCT {', '.join(PAIR_KEY)} FROM old_rows")
    + _apply_pg(*SENDS, f"SELECT {_send_counts('r', '-')} FROM old_rows r WHERE r.{SENT}",
                f"SELECT DISTINCT {', '.join(SEND_KEY)} FROM old_rows WHERE {SENT}"),
    "update": _apply_pg(*PAIRS, f"SELECT {_pair_counts('o', '-')} FROM {MOVED_PAIR} "
                        f"UNION ALL SELECT {_pair_counts('n')} FROM {MOVED_PAIR}",
                        f"SELECT DISTINCT {', '.join('o.' + c for c in PAIR_KEY)} "
                        f"FROM {MOVED_PAIR}")
    + _apply_pg(*SENDS, f"SELECT {_send_counts('o', '-')} FROM {MOVED_SEND} AND o.{SENT} "
                f"UNION ALL SELECT {_send_counts('n')} FROM {MOVED_SEND} AND n.{SENT}",
                f"SELECT DISTINCT {', '.join('o.' + c for c in SEND_KEY)} "
                f"FROM {MOVED_SEND} AND o.{SENT}"),
}
TRANSITIONS = {"insert": "NEW TABLE AS new_rows", "delete": "OLD TABLE AS old_rows",
               "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows"}

PAIRS_PG = [
    *(f"""CREATE FUNCTION analytics_pairs_{op_}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{body}
    RETURN NULL;
END $$""" for op_, body in PG_BODIES.items()),
    *(f"""CREATE TRIGGER analytics_pairs_{op_} AFTER {op_.upper()} ON scheduled_touchpoints
    REFERENCING {TRANSITIONS[op_]} FOR EACH STATEMENT
    EXECUTE FUNCTION analytics_pairs_{op_}()""" for op_ in PG_BODIES),
]

PAIRS_PG_DROP = [
    *(f"DROP TRIGGER IF EXISTS analytics_pairs_{op_} ON scheduled_touchpoints"
      for op_ in PG_BODIES),
    *(f"DROP FUNCTION IF EXISTS analytics_pairs_{op_}()" for op_ in PG_BODIES),
]


def _where(key: tuple, row: str) -> str:
    return " AND ".join(f"{c} = {row}.{c}" for c in key)


def _add_sqlite(row: str) -> str:
    sends = ", ".join(SEND_COLUMNS)
    return (f"INSERT OR IGNORE INTO analytics_touchpoint_pairs ({', '.join(PAIR_COLUMNS)}) "
            f"SELECT {row}.club_id, {row}.membership_id, {row}.definition_id, 0, 0, 0 "
            f"WHERE {row}.membership_id IS NOT NULL;\n"
            f"    UPDATE analytics_touchpoint_pairs SET "
            f"sent = sent + ({row}.status = 'sent'), held = held + ({row}.status = 'held_out'), "
            f"planned = planned + 1 WHERE {_where(PAIR_KEY, row)};\n"
            f"    INSERT OR IGNORE INTO analytics_channel_sends ({sends}) "
            f"SELECT {row}.club_id, {row}.membership_id, {row}.channel, 0 "
            f"WHERE {row}.membership_id IS NOT NULL AND {row}.{SENT};\n"
            f"    UPDATE analytics_channel_sends SET sent = sent + 1 "
            f"WHERE {_where(SEND_KEY, row)} AND {row}.{SENT};\n")


def _remove_sqlite(row: str) -> str:
    return (f"UPDATE analytics_touchpoint_pairs SET "
            f"sent = sent - ({row}.status = 'sent'), held = held - ({row}.status = 'held_out'), "
            f"planned = planned - 1 WHERE {_where(PAIR_KEY, row)};\n"
            f"    DELETE FROM analytics_touchpoint_pairs WHERE {_where(PAIR_KEY, row)} "
            f"AND planned = 0;\n"
            f"    UPDATE analytics_channel_sends SET sent = sent - 1 "
            f"WHERE {_where(SEND_KEY, row)} AND {row}.{SENT};\n"
            f"    DELETE FROM analytics_channel_sends WHERE {_where(SEND_KEY, row)} "
            f"AND sent = 0;\n")


PAIR_CHANGED_SQLITE = " OR ".join([
    *(f"OLD.{c} IS NOT NEW.{c}" for c in ("club_id", "membership_id", "definition_id",
                                          "channel")),
    *(f"(OLD.status = '{f}') IS NOT (NEW.status = '{f}')" for f in ("sent", "held_out"))])
PAIRS_SQLITE = [
    f"""CREATE TRIGGER analytics_pairs_insert AFTER INSERT ON scheduled_touchpoints BEGIN
    {_add_sqlite("NEW")}END""",
    f"""CREATE TRIGGER analytics_pairs_delete AFTER DELETE ON scheduled_touchpoints BEGIN
    {_remove_sqlite("OLD")}END""",
    f"""CREATE TRIGGER analytics_pairs_update
    AFTER UPDATE OF club_id, membership_id, definition_id, channel, status
    ON scheduled_touchpoints WHEN {PAIR_CHANGED_SQLITE} BEGIN
    {_remove_sqlite("OLD")}    {_add_sqlite("NEW")}END""",
]

PAIRS_SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS analytics_pairs_update",
    "DROP TRIGGER IF EXISTS analytics_pairs_delete",
    "DROP TRIGGER IF EXISTS analytics_pairs_insert",
]


def _is_pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _create_pair_triggers() -> None:
    for statement in PAIRS_PG if _is_pg() else PAIRS_SQLITE:
        op.execute(statement)


def _empty() -> None:
    """Facts are derived data: drop them; the next report rebuilds a club's facts."""
    op.execute("DELETE FROM analytics_membership_facts")
    op.execute("DELETE FROM analytics_fact_builds")
    op.execute("DELETE FROM analytics_fact_dirty")


def _batch():
    """SQLite adds a NOT NULL column without a default only by rebuilding the (empty) table."""
    return op.batch_alter_table("analytics_membership_facts",
                                recreate="auto" if _is_pg() else "always")


def upgrade() -> None:
    _empty()
    with _batch() as batch:
        batch.add_column(sa.Column("renewed", sa.Integer(), nullable=False))
        batch.add_column(sa.Column("grace_end", sa.Date(), nullable=False))
        batch.create_index("ix_analytics_membership_facts_last_day", ["club_id", "last_day"],
                           unique=False)
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "analytics_touchpoint_pairs",
        *(sa.Column(c, big_id, autoincrement=False, nullable=False) for c in PAIR_KEY),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("planned", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(*PAIR_KEY, name=op.f("pk_analytics_touchpoint_pairs")),
    )
    op.create_table(
        "analytics_channel_sends",
        sa.Column("club_id", big_id, autoincrement=False, nullable=False),
        sa.Column("membership_id", big_id, autoincrement=False, nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(*SEND_KEY, name=op.f("pk_analytics_channel_sends")),
    )
    op.execute(f"INSERT INTO analytics_channel_sends ({', '.join(SEND_COLUMNS)}) "
               f"SELECT {', '.join(SEND_KEY)}, count(*) FROM scheduled_touchpoints "
               f"WHERE membership_id IS NOT NULL AND {SENT} GROUP BY {', '.join(SEND_KEY)}")
    op.execute(f"INSERT INTO analytics_touchpoint_pairs ({', '.join(PAIR_COLUMNS)}) "
               f"SELECT {', '.join(PAIR_KEY)}, "
               "sum(CASE WHEN status = 'sent' THEN 1 ELSE 0 END), "
               "sum(CASE WHEN status = 'held_out' THEN 1 ELSE 0 END), count(*) "
               "FROM scheduled_touchpoints WHERE membership_id IS NOT NULL "
               f"GROUP BY {', '.join(PAIR_KEY)}")
    _create_pair_triggers()


def downgrade() -> None:
    for statement in PAIRS_PG_DROP if _is_pg() else PAIRS_SQLITE_DROP:
        op.execute(statement)
    op.drop_table("analytics_channel_sends")
    op.drop_table("analytics_touchpoint_pairs")
    _empty()
    with _batch() as batch:
        batch.drop_index("ix_analytics_membership_facts_last_day")
        batch.drop_column("grace_end")
        batch.drop_column("renewed")
