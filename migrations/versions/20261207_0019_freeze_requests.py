"""The member app's freeze requests (issue 21): `member_app_freeze_requests`

A freeze asked for in the member app: applied at once or waiting for the desk's approval (the
club setting `app_freeze_mode`; see app/memberapp/freeze.py). A new table only; the club
settings `app_freeze_mode`, `freeze_min_days` and `freeze_notice_days` live in the clubs' JSON
settings (defaults filled in on read), so no data changes.

Revision ID: 0019_freeze_requests
Revises: 0018_member_app
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0019_freeze_requests'
down_revision: str | None = '0018_member_app'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('member_app_freeze_requests',
    sa.Column('club_id', ID, nullable=False),
    sa.Column('member_id', ID, nullable=False),
    sa.Column('membership_id', ID, nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('request_key', sa.String(length=64), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', ID, nullable=True),
    sa.Column('decline_reason', sa.String(length=200), nullable=True),
    sa.Column('freeze_id', ID, nullable=True),
    sa.Column('task_id', ID, nullable=True),
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'],
                            name=op.f('fk_member_app_freeze_requests_club_id_clubs'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'],
                            name=op.f('fk_member_app_freeze_requests_member_id_members'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['membership_id'], ['memberships.id'],
                            name=op.f('fk_member_app_freeze_requests_membership_id_memberships'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['decided_by'], ['staff_users.id'],
                            name=op.f('fk_member_app_freeze_requests_decided_by_staff_users'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['freeze_id'], ['freezes.id'],
                            name=op.f('fk_member_app_freeze_requests_freeze_id_freezes'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'],
                            name=op.f('fk_member_app_freeze_requests_task_id_tasks'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_app_freeze_requests')),
    sa.UniqueConstraint('club_id', 'request_key',
                        name=op.f('uq_member_app_freeze_requests_club_id_request_key')),
    )
    with op.batch_alter_table('member_app_freeze_requests', schema=None) as batch_op:
        batch_op.create_index('ix_member_app_freeze_requests_club_status',
                              ['club_id', 'status'], unique=False)
        batch_op.create_index('ix_member_app_freeze_requests_member', ['member_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('member_app_freeze_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_member_app_freeze_requests_member')
        batch_op.drop_index('ix_member_app_freeze_requests_club_status')

    op.drop_table('member_app_freeze_requests')
