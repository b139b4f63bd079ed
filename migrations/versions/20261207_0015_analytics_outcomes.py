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
membership's touchpoints of that definition that are sent, held out, and planned at all, filled
from the existing rows and kept exact by triggers on `scheduled_touchpoints`: every insert and
delete, and every update that changes a row's club, membership, definition or whether it is
sent or held out (the `ON DELETE SET NULL` from `memberships` is such an update). A pair whose
count reaches 0 is deleted. PostgreSQL: once per statement (transition tables; an update
statement compares old and new rows by id), SQLite: once per row. The touchpoint report counts
these pairs instead of grouping every touchpoint row by (definition, membership).

Note for later migrations: a SQLite batch rebuild of `scheduled_touchpoints` drops its
triggers — recreate them (`_create_pair_triggers`) after any such batch operation.

Revision ID: 0015_analytics_outcomes
Revises: 0013_analytics_facts
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_analytics_outcomes"
down_revision: str | None = "0013_analytics_facts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


PAIR_KEY = ("club_id", "membership_id", "definition_id")
PAIR_COLUMNS = (*PAIR_KEY, "sent", "held", "planned")


def _counts(row: str, sign: str = "") -> str:
    """A touchpoint row's contribution to its pair: sent, held out, planned."""
    return (f"{row}.club_id, {row}.membership_id, {row}.definition_id, "
            f"{sign}CASE WHEN {row}.status = 'sent' THEN 1 ELSE 0 END, "
            f"{sign}CASE WHEN {row}.status = 'held_out' THEN 1 ELSE 0 END, {sign}1")


def _apply_pg(rows: str, zeros: str | None) -> str:
    """PL/pgSQL: add the summed per-pair deltas of `rows`; drop the pairs `zeros` touched that
    reached 0. Upserts in key order, so concurrent statements lock pairs in the same order."""
    cols = ", ".join(PAIR_COLUMNS)
    key = ", ".join(PAIR_KEY)
    body = f"""
    INSERT INTO analytics_touchpoint_pairs ({cols})
    SELECT {key}, sum(sent), sum(held), sum(planned)
    FROM ({rows}) AS delta ({cols})
    WHERE membership_id IS NOT NULL
    GROUP BY {key} HAVING sum(sent) <> 0 OR sum(held) <> 0 OR sum(planned) <> 0
    ORDER BY {key}
    ON CONFLICT ({key}) DO UPDATE SET
        sent = analytics_touchpoint_pairs.sent + EXCLUDED.sent,
        held = analytics_touchpoint_pairs.held + EXCLUDED.held,
        planned = analytics_touchpoint_pairs.planned + EXCLUDED.planned;"""
    if zeros:
        body += f"""
    DELETE FROM analytics_touchpoint_pairs p USING ({zeros}) AS z ({key})
    WHERE p.club_id = z.club_id AND p.membership_id = z.membership_id
      AND p.definition_id = z.definition_id AND p.planned = 0;"""
    return body


PAIR_CHANGED_PG = ("o.club_id IS DISTINCT FROM n.club_id "
                   "OR o.membership_id IS DISTINCT FROM n.membership_id "
                   "OR o.definition_id IS DISTINCT FROM n.definition_id "
                   "OR (o.status = 'sent') <> (n.status = 'sent') "
                   "OR (o.status = 'held_out') <> (n.status = 'held_out')")
MOVED_PAIRS = f"old_rows o JOIN new_rows n ON n.id = o.id WHERE {PAIR_CHANGED_PG}"

PAIRS_PG = [
    f"""CREATE FUNCTION analytics_pairs_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{_apply_pg(f"SELECT {_counts('r')} FROM new_rows r", None)}
    RETURN NULL;
END $$""",
    f"""CREATE FUNCTION analytics_pairs_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{_apply_pg(f"SELECT {_counts('r', '-')} FROM old_rows r",
                "SELECT DISTINCT club_id, membership_id, definition_id FROM old_rows")}
    RETURN NULL;
END $$""",
    f"""CREATE FUNCTION analytics_pairs_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{_apply_pg(f"SELECT {_counts('o', '-')} FROM {MOVED_PAIRS} "
                f"UNION ALL SELECT {_counts('n')} FROM {MOVED_PAIRS}",
                f"SELECT DISTINCT o.club_id, o.membership_id, o.definition_id FROM {MOVED_PAIRS}")}
    RETURN NULL;
END $$""",
    """CREATE TRIGGER analytics_pairs_insert AFTER INSERT ON scheduled_touchpoints
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION analytics_pairs_insert()""",
    """CREATE TRIGGER analytics_pairs_delete AFTER DELETE ON scheduled_touchpoints
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION analytics_pairs_delete()""",
    """CREATE TRIGGER analytics_pairs_update AFTER UPDATE ON scheduled_touchpoints
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION analytics_pairs_update()""",
]

PAIRS_PG_DROP = [
    "DROP TRIGGER IF EXISTS analytics_pairs_update ON scheduled_touchpoints",
    "DROP TRIGGER IF EXISTS analytics_pairs_delete ON scheduled_touchpoints",
    "DROP TRIGGER IF EXISTS analytics_pairs_insert ON scheduled_touchpoints",
    "DROP FUNCTION IF EXISTS analytics_pairs_update()",
    "DROP FUNCTION IF EXISTS analytics_pairs_delete()",
    "DROP FUNCTION IF EXISTS analytics_pairs_insert()",
]


def _add_sqlite(row: str) -> str:
    return (f"INSERT OR IGNORE INTO analytics_touchpoint_pairs ({', '.join(PAIR_COLUMNS)}) "
            f"SELECT {row}.club_id, {row}.membership_id, {row}.definition_id, 0, 0, 0 "
            f"WHERE {row}.membership_id IS NOT NULL;\n"
            f"    UPDATE analytics_touchpoint_pairs SET "
            f"sent = sent + ({row}.status = 'sent'), held = held + ({row}.status = 'held_out'), "
            f"planned = planned + 1 WHERE {_pair_sqlite(row)};\n")


def _remove_sqlite(row: str) -> str:
    return (f"UPDATE analytics_touchpoint_pairs SET "
            f"sent = sent - ({row}.status = 'sent'), held = held - ({row}.status = 'held_out'), "
            f"planned = planned - 1 WHERE {_pair_sqlite(row)};\n"
            f"    DELETE FROM analytics_touchpoint_pairs WHERE {_pair_sqlite(row)} "
            f"AND planned = 0;\n")


def _pair_sqlite(row: str) -> str:
    return " AND ".join(f"{c} = {row}.{c}" for c in PAIR_KEY)


PAIR_CHANGED_SQLITE = ("OLD.club_id IS NOT NEW.club_id OR OLD.membership_id IS NOT NEW.membership_id "
                       "OR OLD.definition_id IS NOT NEW.definition_id "
                       "OR (OLD.status = 'sent') IS NOT (NEW.status = 'sent') "
                       "OR (OLD.status = 'held_out') IS NOT (NEW.status = 'held_out')")
PAIRS_SQLITE = [
    f"""CREATE TRIGGER analytics_pairs_insert AFTER INSERT ON scheduled_touchpoints BEGIN
    {_add_sqlite("NEW")}END""",
    f"""CREATE TRIGGER analytics_pairs_delete AFTER DELETE ON scheduled_touchpoints BEGIN
    {_remove_sqlite("OLD")}END""",
    f"""CREATE TRIGGER analytics_pairs_update
    AFTER UPDATE OF club_id, membership_id, definition_id, status ON scheduled_touchpoints
    WHEN {PAIR_CHANGED_SQLITE} BEGIN
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
    op.drop_table("analytics_touchpoint_pairs")
    _empty()
    with _batch() as batch:
        batch.drop_index("ix_analytics_membership_facts_last_day")
        batch.drop_column("grace_end")
        batch.drop_column("renewed")
