"""Rate-limit counts expire: rate_limit_buckets.expires_at (the end of the window), indexed

Revision ID: 0010
Revises: 0009
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # the rows are only counters of the current minute or hour: starting them afresh is harmless,
    # and it spares computing each old row's window end in two SQL dialects
    op.execute(sa.text("DELETE FROM rate_limit_buckets"))
    with op.batch_alter_table("rate_limit_buckets") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False))
        batch.create_index("ix_rate_limit_buckets_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rate_limit_buckets") as batch:
        batch.drop_index("ix_rate_limit_buckets_expires_at")
        batch.drop_column("expires_at")
