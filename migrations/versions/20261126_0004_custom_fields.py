"""Custom member fields per club (issue 7)

Revision ID: 0004
Revises: 0003
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _search_string(length: int):
    return sa.String(length=length).with_variant(sa.String(length=length, collation="C"),
                                                 "postgresql")


def upgrade() -> None:
    op.create_table(
        "custom_fields",
        sa.Column("club_id", BigId, nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=10), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("searchable", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("archived_at", _instant(), nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("updated_at", _instant(), nullable=False),
        sa.ForeignKeyConstraint(["club_id"], ["clubs.id"],
                                name=op.f("fk_custom_fields_club_id_clubs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_fields")),
        sa.UniqueConstraint("club_id", "key", name=op.f("uq_custom_fields_club_id_key")),
    )
    op.create_table(
        "custom_field_values",
        sa.Column("club_id", BigId, nullable=False),
        sa.Column("member_id", BigId, nullable=False),
        sa.Column("field_id", BigId, nullable=False),
        sa.Column("value_text", sa.String(length=500), nullable=True),
        sa.Column("value_folded", _search_string(500), nullable=True),
        sa.Column("value_number", sa.Numeric(15, 4), nullable=True),
        sa.Column("value_date", sa.Date(), nullable=True),
        sa.Column("value_bool", sa.Boolean(), nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("updated_at", _instant(), nullable=False),
        sa.ForeignKeyConstraint(["club_id"], ["clubs.id"],
                                name=op.f("fk_custom_field_values_club_id_clubs"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["field_id"], ["custom_fields.id"],
                                name=op.f("fk_custom_field_values_field_id_custom_fields"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"],
                                name=op.f("fk_custom_field_values_member_id_members"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_field_values")),
        sa.UniqueConstraint("member_id", "field_id",
                            name=op.f("uq_custom_field_values_member_id_field_id")),
    )
    with op.batch_alter_table("custom_field_values") as batch:
        batch.create_index(batch.f("ix_custom_field_values_club_id"), ["club_id"], unique=False)
        batch.create_index("ix_custom_field_values_field_folded",
                           ["field_id", "value_folded", "member_id"], unique=False)
        batch.create_index("ix_custom_field_values_field_number", ["field_id", "value_number"],
                           unique=False)
        batch.create_index("ix_custom_field_values_field_date", ["field_id", "value_date"],
                           unique=False)
        batch.create_index("ix_custom_field_values_field_bool", ["field_id", "value_bool"],
                           unique=False)


def downgrade() -> None:
    with op.batch_alter_table("custom_field_values") as batch:
        batch.drop_index("ix_custom_field_values_field_bool")
        batch.drop_index("ix_custom_field_values_field_date")
        batch.drop_index("ix_custom_field_values_field_number")
        batch.drop_index("ix_custom_field_values_field_folded")
        batch.drop_index(batch.f("ix_custom_field_values_club_id"))
    op.drop_table("custom_field_values")
    op.drop_table("custom_fields")
