"""Member import: external references (issue 7)

Revision ID: 0005
Revises: 0004
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("external_ref", sa.String(length=100), nullable=True))
        batch.create_unique_constraint("uq_members_club_id_external_ref", ["club_id", "external_ref"])


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.drop_constraint("uq_members_club_id_external_ref", type_="unique")
        batch.drop_column("external_ref")
