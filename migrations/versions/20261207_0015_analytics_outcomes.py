"""Analytics outcomes (issue 19): each membership's renewal outcome stored with its facts

`analytics_membership_facts` gains `renewed` (1 when the member started another membership,
not void and starting later than this one started, between 30 days before and grace days
after its last day) and `grace_end` (its last day + grace: the last day a renewal may still
come). Both depend only on the member's own memberships in the club and on the grace window —
exactly what the 0013 triggers already mark a member dirty for — so the renewal reports read
the outcome instead of recomputing the renewal window: renewed, else `in_grace` while
`grace_end` ≥ today, else lost. An index on (club_id, last_day) finds the memberships ending
in a period.

The stored facts are emptied (and their build records with them): the next report rebuilds
each club's facts with the new columns. No trigger changes: the 0013 triggers on
`memberships` stay as they are (this migration does not rebuild that table).

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


def _empty() -> None:
    """Facts are derived data: drop them; the next report rebuilds a club's facts."""
    op.execute("DELETE FROM analytics_membership_facts")
    op.execute("DELETE FROM analytics_fact_builds")
    op.execute("DELETE FROM analytics_fact_dirty")


def _batch():
    """SQLite adds a NOT NULL column without a default only by rebuilding the (empty) table."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    return op.batch_alter_table("analytics_membership_facts",
                                recreate="always" if sqlite else "auto")


def upgrade() -> None:
    _empty()
    with _batch() as batch:
        batch.add_column(sa.Column("renewed", sa.Integer(), nullable=False))
        batch.add_column(sa.Column("grace_end", sa.Date(), nullable=False))
        batch.create_index("ix_analytics_membership_facts_last_day", ["club_id", "last_day"],
                           unique=False)


def downgrade() -> None:
    _empty()
    with _batch() as batch:
        batch.drop_index("ix_analytics_membership_facts_last_day")
        batch.drop_column("grace_end")
        batch.drop_column("renewed")
