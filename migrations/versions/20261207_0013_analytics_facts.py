"""Analytics membership facts (issue 19): per-membership sequence facts kept exact by a counter

`analytics_membership_facts` holds, per running membership, what the retention reports derive
from the member's other memberships (coverage start, previous last day, tenure spell and its
end, first start and entry plan). Triggers on `memberships` mark the member (old and new) dirty
in `analytics_fact_dirty` on every insert and delete, and on updates that change the club,
member, plan, dates or cancellation — not on `visits_used` (check-ins) or any other column; the
reports recompute the dirty members' facts first (all of a club's when `analytics_fact_builds`
says they were built under another grace window, or not at all).

PostgreSQL: insert and delete mark once per statement (transition tables: one upsert per
member), an update once per changed row. SQLite: once per row.

Note for later migrations: a SQLite batch rebuild of `memberships` drops its triggers — recreate
them (`_create_triggers`) after any such batch operation.

Revision ID: 0013_analytics_facts
Revises: 0012_analytics
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_analytics_facts"
down_revision: str | None = "0012_analytics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("club_id", "member_id", "plan_id", "start_date", "end_date", "cancelled_on")
CHANGED_PG = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in COLUMNS)
CHANGED_SQLITE = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in COLUMNS)

PG = [
    """CREATE FUNCTION analytics_facts_bump_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_fact_dirty (club_id, member_id, seq)
    SELECT club_id, member_id, 1 FROM changed_rows GROUP BY club_id, member_id
    ORDER BY club_id, member_id
    ON CONFLICT (club_id, member_id) DO UPDATE SET seq = analytics_fact_dirty.seq + 1;
    RETURN NULL;
END $$""",
    """CREATE FUNCTION analytics_facts_bump_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_fact_dirty (club_id, member_id, seq)
    SELECT DISTINCT c, m, 1
    FROM (VALUES (OLD.club_id, OLD.member_id), (NEW.club_id, NEW.member_id)) AS v (c, m)
    ORDER BY 1, 2
    ON CONFLICT (club_id, member_id) DO UPDATE SET seq = analytics_fact_dirty.seq + 1;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER analytics_facts_insert AFTER INSERT ON memberships
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT
    EXECUTE FUNCTION analytics_facts_bump_statement()""",
    """CREATE TRIGGER analytics_facts_delete AFTER DELETE ON memberships
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT
    EXECUTE FUNCTION analytics_facts_bump_statement()""",
    f"""CREATE TRIGGER analytics_facts_update AFTER UPDATE OF {", ".join(COLUMNS)}
    ON memberships FOR EACH ROW WHEN ({CHANGED_PG})
    EXECUTE FUNCTION analytics_facts_bump_row()""",
]

PG_DROP = [
    "DROP TRIGGER IF EXISTS analytics_facts_update ON memberships",
    "DROP TRIGGER IF EXISTS analytics_facts_delete ON memberships",
    "DROP TRIGGER IF EXISTS analytics_facts_insert ON memberships",
    "DROP FUNCTION IF EXISTS analytics_facts_bump_row()",
    "DROP FUNCTION IF EXISTS analytics_facts_bump_statement()",
]


def _mark_sqlite(row: str, when: str = "") -> str:
    return (f"INSERT OR IGNORE INTO analytics_fact_dirty (club_id, member_id, seq) "
            f"SELECT {row}.club_id, {row}.member_id, 0{when};\n"
            f"    UPDATE analytics_fact_dirty SET seq = seq + 1 WHERE club_id = {row}.club_id "
            f"AND member_id = {row}.member_id{when.replace(' WHERE', ' AND')};\n")


MOVED = " WHERE (OLD.club_id IS NOT NEW.club_id OR OLD.member_id IS NOT NEW.member_id)"
SQLITE = [
    f"""CREATE TRIGGER analytics_facts_insert AFTER INSERT ON memberships BEGIN
    {_mark_sqlite("NEW")}END""",
    f"""CREATE TRIGGER analytics_facts_delete AFTER DELETE ON memberships BEGIN
    {_mark_sqlite("OLD")}END""",
    f"""CREATE TRIGGER analytics_facts_update AFTER UPDATE OF {", ".join(COLUMNS)}
    ON memberships WHEN {CHANGED_SQLITE} BEGIN
    {_mark_sqlite("NEW")}    {_mark_sqlite("OLD", MOVED)}END""",
]

SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS analytics_facts_update",
    "DROP TRIGGER IF EXISTS analytics_facts_delete",
    "DROP TRIGGER IF EXISTS analytics_facts_insert",
]


def _create_triggers() -> None:
    for statement in PG if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(statement)


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "analytics_fact_dirty",
        sa.Column("club_id", big_id, autoincrement=False, nullable=False),
        sa.Column("member_id", big_id, autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("club_id", "member_id", name=op.f("pk_analytics_fact_dirty")),
    )
    op.create_table(
        "analytics_fact_builds",
        sa.Column("club_id", big_id, autoincrement=False, nullable=False),
        sa.Column("grace", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["club_id"], ["clubs.id"],
                                name=op.f("fk_analytics_fact_builds_club_id_clubs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("club_id", name=op.f("pk_analytics_fact_builds")),
    )
    op.create_table(
        "analytics_membership_facts",
        sa.Column("club_id", big_id, autoincrement=False, nullable=False),
        sa.Column("membership_id", big_id, autoincrement=False, nullable=False),
        sa.Column("member_id", big_id, nullable=False),
        sa.Column("plan_id", big_id, nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("prev_end", sa.Date(), nullable=True),
        sa.Column("next_start", sa.Date(), nullable=True),
        sa.Column("first_start", sa.Date(), nullable=False),
        sa.Column("entry_plan", big_id, nullable=False),
        sa.Column("new_spell", sa.Integer(), nullable=False),
        sa.Column("cov_from", sa.Date(), nullable=False),
        sa.Column("spell_end", sa.Date(), nullable=False),
        sa.Column("before_month", sa.Date(), nullable=False),
        sa.Column("last_month", sa.Date(), nullable=False),
        sa.Column("spell_end_month", sa.Date(), nullable=False),
        sa.Column("start_month", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["club_id"], ["clubs.id"],
                                name=op.f("fk_analytics_membership_facts_club_id_clubs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("club_id", "membership_id",
                                name=op.f("pk_analytics_membership_facts")),
    )
    with op.batch_alter_table("analytics_membership_facts") as batch:
        batch.create_index("ix_analytics_membership_facts_member", ["club_id", "member_id"],
                           unique=False)
    _create_triggers()


def downgrade() -> None:
    for statement in PG_DROP if op.get_bind().dialect.name == "postgresql" else SQLITE_DROP:
        op.execute(statement)
    op.drop_table("analytics_membership_facts")
    op.drop_table("analytics_fact_builds")
    op.drop_table("analytics_fact_dirty")
