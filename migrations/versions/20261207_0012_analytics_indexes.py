"""Analytics indexes (issue 19): scheduled touchpoints by the membership they were planned for

The touchpoint-effectiveness report and the renewal breakdown by channel join the memberships
that ended in a period to their touchpoints on `membership_id`. Without an index SQLite scanned
all of the club's touchpoints once per membership (56–131 s for a 2,000-member club with the
engine's history); the index also serves the `ON DELETE SET NULL` of `memberships`.

Revision ID: 0012_analytics
Revises: 0011
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0012_analytics"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_scheduled_touchpoints_membership", "scheduled_touchpoints",
                    ["membership_id", "club_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_scheduled_touchpoints_membership", table_name="scheduled_touchpoints")
