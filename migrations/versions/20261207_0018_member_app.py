"""The member app (issue 21, first slice): sign-ins, device sessions, cancellations received

New tables (see app/memberapp/models.py): `member_sign_ins` (an emailed link or an SMS code:
digests only, expiring in minutes, single use; not tied to a club), `member_app_sessions` (a
member signed in on a device; separate from the staff's `auth_tokens`) and
`member_app_cancellations` (every contract cancellation declared in the app, §312k BGB: when it
arrived, what it said, what came of it).

`members` gains indexes on `email`, `phone` and `external_ref` alone: the member app finds a
person by them in any club (the existing indexes lead with `club_id`). Plain CREATE INDEX on
both backends; no table is rebuilt.

Revision ID: 0018_member_app
Revises: 0017_member_app_codes
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018_member_app'
down_revision: str | None = '0017_member_app_codes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('member_sign_ins',
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=True),
    sa.Column('member_ids', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('choice_hash', sa.String(length=64), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_sign_ins')),
    sa.UniqueConstraint('choice_hash', name=op.f('uq_member_sign_ins_choice_hash')),
    sa.UniqueConstraint('secret_hash', name=op.f('uq_member_sign_ins_secret_hash'))
    )
    with op.batch_alter_table('member_sign_ins', schema=None) as batch_op:
        batch_op.create_index('ix_member_sign_ins_expires_at', ['expires_at'], unique=False)

    op.create_table('member_app_sessions',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('device', sa.String(length=60), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sa.String(length=10), nullable=True),
    sa.Column('revoked_by_staff', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_member_app_sessions_club_id_clubs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_app_sessions_member_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['revoked_by_staff'], ['staff_users.id'], name=op.f('fk_member_app_sessions_revoked_by_staff_staff_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_app_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_member_app_sessions_token_hash'))
    )
    with op.batch_alter_table('member_app_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_member_app_sessions_member', ['member_id', 'revoked_at'], unique=False)

    op.create_table('member_app_cancellations',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('contract_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=15), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('member_number', sa.String(length=64), nullable=True),
    sa.Column('contact', sa.String(length=254), nullable=True),
    sa.Column('signed_in', sa.Boolean(), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_member_app_cancellations_club_id_clubs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contract_id'], ['dues_contracts.id'], name=op.f('fk_member_app_cancellations_contract_id_dues_contracts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_app_cancellations_member_id_members'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_app_cancellations'))
    )
    with op.batch_alter_table('member_app_cancellations', schema=None) as batch_op:
        batch_op.create_index('ix_member_app_cancellations_club_received', ['club_id', 'received_at'], unique=False)
        batch_op.create_index('ix_member_app_cancellations_member', ['member_id'], unique=False)

    op.create_index('ix_members_email', 'members', ['email'], unique=False)
    op.create_index('ix_members_external_ref', 'members', ['external_ref'], unique=False)
    op.create_index('ix_members_phone', 'members', ['phone'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_members_phone', table_name='members')
    op.drop_index('ix_members_external_ref', table_name='members')
    op.drop_index('ix_members_email', table_name='members')

    with op.batch_alter_table('member_app_cancellations', schema=None) as batch_op:
        batch_op.drop_index('ix_member_app_cancellations_member')
        batch_op.drop_index('ix_member_app_cancellations_club_received')

    op.drop_table('member_app_cancellations')
    with op.batch_alter_table('member_app_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_member_app_sessions_member')

    op.drop_table('member_app_sessions')
    with op.batch_alter_table('member_sign_ins', schema=None) as batch_op:
        batch_op.drop_index('ix_member_sign_ins_expires_at')

    op.drop_table('member_sign_ins')
