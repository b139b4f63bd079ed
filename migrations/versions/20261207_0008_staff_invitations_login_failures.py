"""Staff invitations (an existing account joins a club only by accepting) and failed sign-ins per
client address (issue 16, items 2 and 7)

Revision ID: 0008
Revises: 0007
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "staff_invitations",
        sa.Column("club_id", big_id, nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("invited_by", big_id, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_by", big_id, nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(["club_id"], ["clubs.id"],
                                name=op.f("fk_staff_invitations_club_id_clubs"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["invited_by"], ["staff_users.id"],
                                name=op.f("fk_staff_invitations_invited_by_staff_users"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["accepted_by"], ["staff_users.id"],
                                name=op.f("fk_staff_invitations_accepted_by_staff_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_staff_invitations_token_hash")),
    )
    with op.batch_alter_table("staff_invitations") as batch:
        batch.create_index(op.f("ix_staff_invitations_club_id"), ["club_id"], unique=False)
        batch.create_index(op.f("ix_staff_invitations_email"), ["email"], unique=False)
        batch.create_index(op.f("ix_staff_invitations_invited_by"), ["invited_by"], unique=False)
        batch.create_index(op.f("ix_staff_invitations_accepted_by"), ["accepted_by"],
                           unique=False)
    op.create_table(
        "login_failures",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
        sa.UniqueConstraint("address", "window_start",
                            name=op.f("uq_login_failures_address_window_start")),
    )
    with op.batch_alter_table("login_failures") as batch:
        batch.create_index(op.f("ix_login_failures_window_start"), ["window_start"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_failures") as batch:
        batch.drop_index(op.f("ix_login_failures_window_start"))
    op.drop_table("login_failures")
    with op.batch_alter_table("staff_invitations") as batch:
        batch.drop_index(op.f("ix_staff_invitations_accepted_by"))
        batch.drop_index(op.f("ix_staff_invitations_invited_by"))
        batch.drop_index(op.f("ix_staff_invitations_email"))
        batch.drop_index(op.f("ix_staff_invitations_club_id"))
    op.drop_table("staff_invitations")
