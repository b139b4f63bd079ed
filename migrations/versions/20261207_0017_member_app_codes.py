"""Member app codes (issue 21, "get in"): the per-member secret of the rotating QR code, and
how each check-in attempt named the person

`member_app_codes`: one row per member, made on the member's first code (`key`, 8 digits unique
per club, the fixed part of every code; `secret`, replaced by staff when a phone is lost).
`access_events.identified_by`: `card`, `app_code` or `member` (device PIN / desk); NULL for the
attempts recorded before (a nullable column: no rewrite of the table on PostgreSQL).

Revision ID: 0017_member_app_codes
Revises: 0016_dues
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017_member_app_codes'
down_revision: str | None = '0016_dues'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('member_app_codes',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('key', sa.String(length=8), nullable=False),
    sa.Column('secret', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reset_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reset_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_member_app_codes_club_id_clubs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_app_codes_member_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reset_by'], ['staff_users.id'], name=op.f('fk_member_app_codes_reset_by_staff_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_app_codes')),
    sa.UniqueConstraint('club_id', 'key', name=op.f('uq_member_app_codes_club_id_key')),
    sa.UniqueConstraint('member_id', name=op.f('uq_member_app_codes_member_id'))
    )
    with op.batch_alter_table('access_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('identified_by', sa.String(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('access_events', schema=None) as batch_op:
        batch_op.drop_column('identified_by')

    op.drop_table('member_app_codes')
