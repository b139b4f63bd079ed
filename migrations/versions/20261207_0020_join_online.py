"""Joining and renewing online in the member app (issue 21): `member_app_signatures`

A contract signed in the member app: the terms as shown, the name typed, when, from where, the
plan, the member, the contract (app/memberapp/join.py). A new table only; the club setting
`online_plans` (the plans sold online) lives in the clubs' JSON settings (defaults filled in on
read), so no data changes.

Revision ID: 0020_join_online
Revises: 0019_freeze_requests
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0020_join_online'
down_revision: str | None = '0019_freeze_requests'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('member_app_signatures',
    sa.Column('club_id', ID, nullable=False),
    sa.Column('member_id', ID, nullable=False),
    sa.Column('plan_id', ID, nullable=False),
    sa.Column('contract_id', ID, nullable=True),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('request_key', sa.String(length=64), nullable=False),
    sa.Column('terms_text', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=5), nullable=False),
    sa.Column('typed_name', sa.String(length=210), nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ip_address', sa.String(length=64), nullable=True),
    sa.Column('lead_id', ID, nullable=True),
    sa.Column('task_id', ID, nullable=True),
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'],
                            name=op.f('fk_member_app_signatures_club_id_clubs'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'],
                            name=op.f('fk_member_app_signatures_member_id_members'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'],
                            name=op.f('fk_member_app_signatures_plan_id_plans'),
                            ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['contract_id'], ['dues_contracts.id'],
                            name=op.f('fk_member_app_signatures_contract_id_dues_contracts'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'],
                            name=op.f('fk_member_app_signatures_lead_id_leads'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'],
                            name=op.f('fk_member_app_signatures_task_id_tasks'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_app_signatures')),
    sa.UniqueConstraint('club_id', 'request_key',
                        name=op.f('uq_member_app_signatures_club_id_request_key')),
    )
    with op.batch_alter_table('member_app_signatures', schema=None) as batch_op:
        batch_op.create_index('ix_member_app_signatures_member', ['member_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('member_app_signatures', schema=None) as batch_op:
        batch_op.drop_index('ix_member_app_signatures_member')

    op.drop_table('member_app_signatures')
