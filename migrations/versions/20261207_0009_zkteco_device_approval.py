"""ZKTeco devices are quarantined until a manager approves them: approval and what a waiting
device was seen calling from

Revision ID: 0009
Revises: 0008

Existing ZKTeco devices start quarantined after this upgrade: a manager approves each one
(`POST /api/v1/devices/{id}/approve` or `fitclub approve-device`), see docs/turnstiles.md.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("device_protocol_settings") as batch:
        batch.add_column(sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("approved_by", _ID, nullable=True))
        batch.add_column(sa.Column("seen_addresses", sa.JSON(), nullable=False,
                                   server_default=sa.text("'[]'")))
        batch.add_column(sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key(op.f("fk_device_protocol_settings_approved_by_staff_users"),
                                 "staff_users", ["approved_by"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("device_protocol_settings") as batch:
        batch.drop_constraint(op.f("fk_device_protocol_settings_approved_by_staff_users"),
                              type_="foreignkey")
        batch.drop_column("last_seen_at")
        batch.drop_column("first_seen_at")
        batch.drop_column("seen_addresses")
        batch.drop_column("approved_by")
        batch.drop_column("approved_at")
