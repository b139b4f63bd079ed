"""Privacy: audit log, merges and erasures records, dismissed duplicate pairs (issue 7)

Revision ID: 0003
Revises: 0002
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _id() -> sa.Column:
    return sa.Column("id", BigId, autoincrement=True, nullable=False)


def _club_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["club_id"], ["clubs.id"], name=op.f(f"fk_{table}_club_id_clubs"),
                                   ondelete="CASCADE")


def _staff_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["staff_id"], ["staff_users.id"],
                                   name=op.f(f"fk_{table}_staff_id_staff_users"),
                                   ondelete="SET NULL")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("club_id", BigId, nullable=False),
        sa.Column("at", _instant(), nullable=False),
        sa.Column("staff_id", BigId, nullable=True),
        sa.Column("actor_label", sa.String(length=100), nullable=True),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("entity", sa.String(length=30), nullable=False),
        sa.Column("entity_id", BigId, nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        _id(),
        _club_fk("audit_log"),
        _staff_fk("audit_log"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log") as batch:
        batch.create_index("ix_audit_log_club_entity", ["club_id", "entity", "entity_id", "at"])
        batch.create_index("ix_audit_log_club_at", ["club_id", "at"])
        batch.create_index("ix_audit_log_club_staff_at", ["club_id", "staff_id", "at"])

    op.create_table(
        "member_merges",
        sa.Column("club_id", BigId, nullable=False),
        sa.Column("kept_member_id", BigId, nullable=False),
        sa.Column("merged_member_id", BigId, nullable=False),
        sa.Column("staff_id", BigId, nullable=True),
        sa.Column("at", _instant(), nullable=False),
        sa.Column("taken", sa.JSON(), nullable=False),
        sa.Column("moved", sa.JSON(), nullable=False),
        sa.Column("dropped", sa.JSON(), nullable=False),
        _id(),
        _club_fk("member_merges"),
        _staff_fk("member_merges"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_merges")),
        sa.UniqueConstraint("club_id", "merged_member_id",
                            name=op.f("uq_member_merges_club_id_merged_member_id")),
    )
    with op.batch_alter_table("member_merges") as batch:
        batch.create_index("ix_member_merges_club_kept", ["club_id", "kept_member_id"])

    op.create_table(
        "duplicate_dismissals",
        sa.Column("club_id", BigId, nullable=False),
        sa.Column("member_a_id", BigId, nullable=False),
        sa.Column("member_b_id", BigId, nullable=False),
        sa.Column("staff_id", BigId, nullable=True),
        sa.Column("at", _instant(), nullable=False),
        _id(),
        _club_fk("duplicate_dismissals"),
        _staff_fk("duplicate_dismissals"),
        sa.ForeignKeyConstraint(["member_a_id"], ["members.id"],
                                name=op.f("fk_duplicate_dismissals_member_a_id_members"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["member_b_id"], ["members.id"],
                                name=op.f("fk_duplicate_dismissals_member_b_id_members"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duplicate_dismissals")),
        sa.UniqueConstraint("member_a_id", "member_b_id",
                            name=op.f("uq_duplicate_dismissals_member_a_id_member_b_id")),
    )
    with op.batch_alter_table("duplicate_dismissals") as batch:
        batch.create_index(batch.f("ix_duplicate_dismissals_club_id"), ["club_id"])
        batch.create_index(batch.f("ix_duplicate_dismissals_member_b_id"), ["member_b_id"])

    op.create_table(
        "member_erasures",
        sa.Column("club_id", BigId, nullable=False),
        sa.Column("member_id", BigId, nullable=False),
        sa.Column("staff_id", BigId, nullable=True),
        sa.Column("at", _instant(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        _id(),
        _club_fk("member_erasures"),
        _staff_fk("member_erasures"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_erasures")),
        sa.UniqueConstraint("club_id", "member_id",
                            name=op.f("uq_member_erasures_club_id_member_id")),
    )


def downgrade() -> None:
    op.drop_table("member_erasures")
    with op.batch_alter_table("duplicate_dismissals") as batch:
        batch.drop_index(batch.f("ix_duplicate_dismissals_member_b_id"))
        batch.drop_index(batch.f("ix_duplicate_dismissals_club_id"))
    op.drop_table("duplicate_dismissals")
    with op.batch_alter_table("member_merges") as batch:
        batch.drop_index("ix_member_merges_club_kept")
    op.drop_table("member_merges")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_index("ix_audit_log_club_staff_at")
        batch.drop_index("ix_audit_log_club_entity")
        batch.drop_index("ix_audit_log_club_at")
    op.drop_table("audit_log")
