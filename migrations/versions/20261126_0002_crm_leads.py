"""CRM: leads pipeline, channel preference, task and interaction extensions (issue 7)

Revision ID: 0002
Revises: 0001
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("preferred_channel", sa.String(length=10), nullable=True))
    with op.batch_alter_table("interactions") as batch:
        batch.add_column(sa.Column("next_step", sa.String(length=500), nullable=True))

    op.create_table(
        "leads",
        sa.Column("club_id", BigId, nullable=False),
        sa.Column("member_id", BigId, nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("source_detail", sa.String(length=200), nullable=True),
        sa.Column("utm_source", sa.String(length=100), nullable=True),
        sa.Column("utm_medium", sa.String(length=100), nullable=True),
        sa.Column("utm_campaign", sa.String(length=100), nullable=True),
        sa.Column("assignee_user_id", BigId, nullable=True),
        sa.Column("trial_date", sa.Date(), nullable=True),
        sa.Column("lost_reason", sa.String(length=30), nullable=True),
        sa.Column("lost_note", sa.String(length=500), nullable=True),
        sa.Column("first_contact_at", _instant(), nullable=True),
        sa.Column("won_at", _instant(), nullable=True),
        sa.Column("won_membership_id", BigId, nullable=True),
        sa.Column("lost_at", _instant(), nullable=True),
        sa.Column("created_by", BigId, nullable=True),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("updated_at", _instant(), nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(["assignee_user_id"], ["staff_users.id"],
                                name=op.f("fk_leads_assignee_user_id_staff_users"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["club_id"], ["clubs.id"], name=op.f("fk_leads_club_id_clubs"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["staff_users.id"],
                                name=op.f("fk_leads_created_by_staff_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"],
                                name=op.f("fk_leads_member_id_members"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["won_membership_id"], ["memberships.id"],
                                name=op.f("fk_leads_won_membership_id_memberships"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
        sa.UniqueConstraint("member_id", name=op.f("uq_leads_member_id")),
    )
    with op.batch_alter_table("leads") as batch:
        batch.create_index("ix_leads_club_created", ["club_id", "created_at"], unique=False)
        batch.create_index("ix_leads_club_stage", ["club_id", "stage"], unique=False)

    op.create_table(
        "lead_stage_changes",
        sa.Column("club_id", BigId, nullable=False),
        sa.Column("lead_id", BigId, nullable=False),
        sa.Column("from_stage", sa.String(length=20), nullable=True),
        sa.Column("to_stage", sa.String(length=20), nullable=False),
        sa.Column("lost_reason", sa.String(length=30), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("staff_id", BigId, nullable=True),
        sa.Column("at", _instant(), nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(["club_id"], ["clubs.id"],
                                name=op.f("fk_lead_stage_changes_club_id_clubs"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"],
                                name=op.f("fk_lead_stage_changes_lead_id_leads"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_users.id"],
                                name=op.f("fk_lead_stage_changes_staff_id_staff_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_stage_changes")),
    )
    with op.batch_alter_table("lead_stage_changes") as batch:
        batch.create_index(batch.f("ix_lead_stage_changes_lead_id"), ["lead_id"], unique=False)

    op.create_table(
        "website_keys",
        sa.Column("club_id", BigId, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", BigId, nullable=True),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("revoked_at", _instant(), nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(["club_id"], ["clubs.id"],
                                name=op.f("fk_website_keys_club_id_clubs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["staff_users.id"],
                                name=op.f("fk_website_keys_created_by_staff_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_website_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_website_keys_key_hash")),
    )
    with op.batch_alter_table("website_keys") as batch:
        batch.create_index(batch.f("ix_website_keys_club_id"), ["club_id"], unique=False)

    op.create_table(
        "website_submissions",
        sa.Column("club_id", BigId, nullable=False),
        sa.Column("key_id", BigId, nullable=True),
        sa.Column("form_id", sa.String(length=100), nullable=True),
        sa.Column("member_id", BigId, nullable=True),
        sa.Column("lead_id", BigId, nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(["club_id"], ["clubs.id"],
                                name=op.f("fk_website_submissions_club_id_clubs"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["key_id"], ["website_keys.id"],
                                name=op.f("fk_website_submissions_key_id_website_keys"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"],
                                name=op.f("fk_website_submissions_lead_id_leads"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"],
                                name=op.f("fk_website_submissions_member_id_members"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_website_submissions")),
        sa.UniqueConstraint("club_id", "form_id", name=op.f("uq_website_submissions_club_id_form_id")),
    )
    with op.batch_alter_table("website_submissions") as batch:
        batch.create_index("ix_website_submissions_club_created", ["club_id", "created_at"],
                           unique=False)
        batch.create_index(batch.f("ix_website_submissions_member_id"), ["member_id"],
                           unique=False)

    op.create_table(
        "rate_limit_buckets",
        sa.Column("bucket", sa.String(length=100), nullable=False),
        sa.Column("window_start", _instant(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_limit_buckets")),
        sa.UniqueConstraint("bucket", "window_start", name=op.f("uq_rate_limit_buckets_bucket_window_start")),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_buckets")
    with op.batch_alter_table("website_submissions") as batch:
        batch.drop_index(batch.f("ix_website_submissions_member_id"))
        batch.drop_index("ix_website_submissions_club_created")
    op.drop_table("website_submissions")
    with op.batch_alter_table("website_keys") as batch:
        batch.drop_index(batch.f("ix_website_keys_club_id"))
    op.drop_table("website_keys")
    with op.batch_alter_table("lead_stage_changes") as batch:
        batch.drop_index(batch.f("ix_lead_stage_changes_lead_id"))
    op.drop_table("lead_stage_changes")
    with op.batch_alter_table("leads") as batch:
        batch.drop_index("ix_leads_club_stage")
        batch.drop_index("ix_leads_club_created")
    op.drop_table("leads")
    with op.batch_alter_table("interactions") as batch:
        batch.drop_column("next_step")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("preferred_channel")
