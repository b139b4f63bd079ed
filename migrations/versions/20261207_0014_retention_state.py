"""Retention member facts (issue 19): per-member membership facts the daily run keeps, marked
stale by triggers

`retention_member_facts` holds, per member, what the stage computation derives from the
member's memberships and freezes (tenure start, current membership, covering freeze, last
freeze end) as of the day it was computed, with the day it can next change (`valid_until`) and
the instant a membership sold for later becomes known (`known_next_at`). Triggers on
`memberships` (insert, delete, update of the club, member, plan, dates, cancellation or sale
instant — not `visits_used`) and on `freezes` (insert, delete, update of the membership or
dates) bump the member's `seq`, creating the row if needed; the daily run recomputes the rows
whose `seq` moved or whose validity ended (`app.retention.facts`), and all of a club's when
`retention_state.facts_key` says they were built under other settings, or not at all (no
backfill here: the first run builds them).

PostgreSQL: insert and delete mark once per statement (transition tables), an update once per
changed row. SQLite: once per row.

Note for later migrations: a SQLite batch rebuild of `memberships` or `freezes` drops their
triggers — recreate them after any such batch operation (as 0013's note says for its own).

Revision ID: 0014_retention_state
Revises: 0013_analytics_facts
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_retention_state"
down_revision: str | None = "0013_analytics_facts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

M_COLUMNS = ("club_id", "member_id", "plan_id", "start_date", "end_date", "cancelled_on",
             "created_at")
F_COLUMNS = ("membership_id", "start_date", "end_date")


def _changed(columns, pg: bool) -> str:
    op_ = "IS DISTINCT FROM" if pg else "IS NOT"
    return " OR ".join(f"OLD.{c} {op_} NEW.{c}" for c in columns)


BUMP = """INSERT INTO retention_member_facts (club_id, member_id, seq)
    {select}
    ON CONFLICT (club_id, member_id) DO UPDATE SET seq = retention_member_facts.seq + 1"""

PG = [
    f"""CREATE FUNCTION retention_facts_memberships() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {BUMP.format(select="SELECT club_id, member_id, 1 FROM changed_rows "
                 "GROUP BY club_id, member_id ORDER BY club_id, member_id")};
    RETURN NULL;
END $$""",
    f"""CREATE FUNCTION retention_facts_membership_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {BUMP.format(select="SELECT DISTINCT c, m, 1 FROM (VALUES (OLD.club_id, OLD.member_id), "
                 "(NEW.club_id, NEW.member_id)) AS v (c, m) ORDER BY 1, 2")};
    RETURN NULL;
END $$""",
    f"""CREATE FUNCTION retention_facts_freezes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {BUMP.format(select="SELECT m.club_id, m.member_id, 1 FROM changed_rows f "
                 "JOIN memberships m ON m.id = f.membership_id "
                 "GROUP BY m.club_id, m.member_id ORDER BY m.club_id, m.member_id")};
    RETURN NULL;
END $$""",
    f"""CREATE FUNCTION retention_facts_freeze_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {BUMP.format(select="SELECT DISTINCT m.club_id, m.member_id, 1 FROM memberships m "
                 "WHERE m.id IN (OLD.membership_id, NEW.membership_id) "
                 "ORDER BY 1, 2")};
    RETURN NULL;
END $$""",
    """CREATE TRIGGER retention_facts_insert AFTER INSERT ON memberships
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT
    EXECUTE FUNCTION retention_facts_memberships()""",
    """CREATE TRIGGER retention_facts_delete AFTER DELETE ON memberships
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT
    EXECUTE FUNCTION retention_facts_memberships()""",
    f"""CREATE TRIGGER retention_facts_update AFTER UPDATE OF {", ".join(M_COLUMNS)}
    ON memberships FOR EACH ROW WHEN ({_changed(M_COLUMNS, True)})
    EXECUTE FUNCTION retention_facts_membership_row()""",
    """CREATE TRIGGER retention_facts_insert AFTER INSERT ON freezes
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT
    EXECUTE FUNCTION retention_facts_freezes()""",
    """CREATE TRIGGER retention_facts_delete AFTER DELETE ON freezes
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT
    EXECUTE FUNCTION retention_facts_freezes()""",
    f"""CREATE TRIGGER retention_facts_update AFTER UPDATE OF {", ".join(F_COLUMNS)}
    ON freezes FOR EACH ROW WHEN ({_changed(F_COLUMNS, True)})
    EXECUTE FUNCTION retention_facts_freeze_row()""",
]

PG_DROP = [
    "DROP TRIGGER IF EXISTS retention_facts_update ON freezes",
    "DROP TRIGGER IF EXISTS retention_facts_delete ON freezes",
    "DROP TRIGGER IF EXISTS retention_facts_insert ON freezes",
    "DROP TRIGGER IF EXISTS retention_facts_update ON memberships",
    "DROP TRIGGER IF EXISTS retention_facts_delete ON memberships",
    "DROP TRIGGER IF EXISTS retention_facts_insert ON memberships",
    "DROP FUNCTION IF EXISTS retention_facts_freeze_row()",
    "DROP FUNCTION IF EXISTS retention_facts_freezes()",
    "DROP FUNCTION IF EXISTS retention_facts_membership_row()",
    "DROP FUNCTION IF EXISTS retention_facts_memberships()",
]


def _bump_sqlite(select: str) -> str:
    # SQLite: an INSERT ... SELECT with ON CONFLICT needs a WHERE in its SELECT
    return BUMP.format(select=select) + ";\n"


def _of_membership(row: str) -> str:
    return f"SELECT {row}.club_id, {row}.member_id, 1 WHERE true"


def _of_freeze(row: str) -> str:
    return f"SELECT club_id, member_id, 1 FROM memberships WHERE id = {row}.membership_id"


MOVED = "(OLD.club_id IS NOT NEW.club_id OR OLD.member_id IS NOT NEW.member_id)"
SQLITE = [
    f"""CREATE TRIGGER retention_facts_insert AFTER INSERT ON memberships BEGIN
    {_bump_sqlite(_of_membership("NEW"))}END""",
    f"""CREATE TRIGGER retention_facts_delete AFTER DELETE ON memberships BEGIN
    {_bump_sqlite(_of_membership("OLD"))}END""",
    f"""CREATE TRIGGER retention_facts_update AFTER UPDATE OF {", ".join(M_COLUMNS)}
    ON memberships WHEN {_changed(M_COLUMNS, False)} BEGIN
    {_bump_sqlite(_of_membership("NEW"))}    {_bump_sqlite(
        f"SELECT OLD.club_id, OLD.member_id, 1 WHERE {MOVED}")}END""",
    f"""CREATE TRIGGER retention_facts_fz_insert AFTER INSERT ON freezes BEGIN
    {_bump_sqlite(_of_freeze("NEW"))}END""",
    f"""CREATE TRIGGER retention_facts_fz_delete AFTER DELETE ON freezes BEGIN
    {_bump_sqlite(_of_freeze("OLD"))}END""",
    f"""CREATE TRIGGER retention_facts_fz_update AFTER UPDATE OF {", ".join(F_COLUMNS)}
    ON freezes WHEN {_changed(F_COLUMNS, False)} BEGIN
    {_bump_sqlite(_of_freeze("NEW"))}    {_bump_sqlite(
        _of_freeze("OLD") + " AND OLD.membership_id IS NOT NEW.membership_id")}END""",
]

SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS retention_facts_fz_update",
    "DROP TRIGGER IF EXISTS retention_facts_fz_delete",
    "DROP TRIGGER IF EXISTS retention_facts_fz_insert",
    "DROP TRIGGER IF EXISTS retention_facts_update",
    "DROP TRIGGER IF EXISTS retention_facts_delete",
    "DROP TRIGGER IF EXISTS retention_facts_insert",
]


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "retention_member_facts",
        sa.Column("club_id", big_id, autoincrement=False, nullable=False),
        sa.Column("member_id", big_id, autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("computed_seq", sa.BigInteger(), nullable=True),
        sa.Column("computed_on", sa.Date(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("known_next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started", sa.Integer(), nullable=True),
        sa.Column("tenure_start", sa.Date(), nullable=True),
        sa.Column("top_end", sa.Date(), nullable=True),
        sa.Column("top_id", sa.BigInteger(), nullable=True),
        sa.Column("top_plan_id", sa.BigInteger(), nullable=True),
        sa.Column("key_start", sa.BigInteger(), nullable=True),
        sa.Column("latest_start_days", sa.Integer(), nullable=True),
        sa.Column("freeze_id", sa.BigInteger(), nullable=True),
        sa.Column("freeze_start", sa.Date(), nullable=True),
        sa.Column("freeze_end", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("club_id", "member_id", name=op.f("pk_retention_member_facts")),
    )
    with op.batch_alter_table("retention_state") as batch:
        batch.add_column(sa.Column("facts_key", sa.String(length=40), nullable=True))
    for statement in PG if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    for statement in PG_DROP if op.get_bind().dialect.name == "postgresql" else SQLITE_DROP:
        op.execute(statement)
    with op.batch_alter_table("retention_state") as batch:
        batch.drop_column("facts_key")
    op.drop_table("retention_member_facts")
