"""Import files in the database: uploads waiting for their import and rejects files (issue 16)

Revision ID: 0011
Revises: 0010
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "import_files",
        sa.Column("club_id", big_id, nullable=False),
        sa.Column("user_id", big_id, nullable=True),
        sa.Column("job_id", big_id, nullable=True),
        sa.Column("bundle", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("size", big_id, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(["club_id"], ["clubs.id"],
                                name=op.f("fk_import_files_club_id_clubs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["job_id"], ["import_jobs.id"],
                                name=op.f("fk_import_files_job_id_import_jobs"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["staff_users.id"],
                                name=op.f("fk_import_files_user_id_staff_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_files")),
        sa.UniqueConstraint("bundle", "purpose", "name",
                            name=op.f("uq_import_files_bundle_purpose_name")),
    )
    with op.batch_alter_table("import_files") as batch:
        batch.create_index("ix_import_files_club_bundle", ["club_id", "bundle"], unique=False)
        batch.create_index("ix_import_files_expires_at", ["expires_at"], unique=False)
    op.create_table(
        "import_file_parts",
        sa.Column("file_id", big_id, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(["file_id"], ["import_files.id"],
                                name=op.f("fk_import_file_parts_file_id_import_files"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_file_parts")),
        sa.UniqueConstraint("file_id", "seq", name=op.f("uq_import_file_parts_file_id_seq")),
    )


def downgrade() -> None:
    op.drop_table("import_file_parts")
    with op.batch_alter_table("import_files") as batch:
        batch.drop_index("ix_import_files_expires_at")
        batch.drop_index("ix_import_files_club_bundle")
    op.drop_table("import_files")
