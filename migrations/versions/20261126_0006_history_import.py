"""History import from the old system: external references, import jobs (issue 11)

Revision ID: 0006
Revises: 0005
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# tables that gain the old system's id, unique per club (re-running an import finds its rows)
REFERENCED = ("plans", "memberships", "freezes", "pt_packages")


def upgrade() -> None:
    for table in REFERENCED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("external_ref", sa.String(length=100), nullable=True))
            batch.create_unique_constraint(f"uq_{table}_club_id_external_ref",
                                           ["club_id", "external_ref"])
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "import_jobs",
        sa.Column("club_id", big_id, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("runner", sa.String(length=100), nullable=True),
        sa.Column("staff_id", big_id, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(["club_id"], ["clubs.id"], name=op.f("fk_import_jobs_club_id_clubs"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_users.id"],
                                name=op.f("fk_import_jobs_staff_id_staff_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_jobs")),
    )
    with op.batch_alter_table("import_jobs") as batch:
        batch.create_index("ix_import_jobs_club_created", ["club_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("import_jobs") as batch:
        batch.drop_index("ix_import_jobs_club_created")
    op.drop_table("import_jobs")
    for table in reversed(REFERENCED):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_club_id_external_ref", type_="unique")
            batch.drop_column("external_ref")
