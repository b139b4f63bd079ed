"""Recurring dues (issue 20): contracts, payers, mandates, cards, invoices, collections, dunning

New tables `dues_*` (see app/dues/models.py): the club's billing settings, payers, SEPA
mandates, stored cards, contracts (the terms a recurring membership was sold with), gap-free
invoice counters, invoices and their lines (`charge_key` unique per club: nothing is charged
twice), collection batches (pain.008 files, kept), collections, the payments ledger
(`event_key` unique per club: a replayed webhook or bank file changes nothing), provider
events, dunning cases and steps, desk close-outs, billing runs and the notices outbox.

`plans` gains the recurring terms (billing prepaid|recurring, period, minimum term, notice,
renewal, joining fee, tax rate, announced price change); every existing plan stays prepaid.
`sales` gains `to_account` (charged to the payer's next invoice); existing sales are not.

Revision ID: 0016_dues
Revises: 0015_analytics_outcomes
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016_dues'
down_revision: str | None = '0015_analytics_outcomes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('dues_batches',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('collection_date', sa.Date(), nullable=False),
    sa.Column('message_id', sa.String(length=35), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('total', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('xml', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('submitted_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_batches_club_id_clubs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by'], ['staff_users.id'], name=op.f('fk_dues_batches_created_by_staff_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['submitted_by'], ['staff_users.id'], name=op.f('fk_dues_batches_submitted_by_staff_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_batches')),
    sa.UniqueConstraint('club_id', 'message_id', name=op.f('uq_dues_batches_club_id_message_id'))
    )
    with op.batch_alter_table('dues_batches', schema=None) as batch_op:
        batch_op.create_index('ix_dues_batches_club_date', ['club_id', 'collection_date'], unique=False)

    op.create_table('dues_desk_closeouts',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('desk', sa.String(length=40), nullable=False),
    sa.Column('business_day', sa.Date(), nullable=False),
    sa.Column('opening_float', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('takings', sa.JSON(), nullable=False),
    sa.Column('expected_cash', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('counted_cash', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('difference', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('closed_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['closed_by'], ['staff_users.id'], name=op.f('fk_dues_desk_closeouts_closed_by_staff_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_desk_closeouts_club_id_clubs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_desk_closeouts')),
    sa.UniqueConstraint('club_id', 'desk', 'business_day', name=op.f('uq_dues_desk_closeouts_club_id_desk_business_day'))
    )
    op.create_table('dues_invoice_counters',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('series', sa.String(length=20), nullable=False),
    sa.Column('last_number', sa.Integer(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_invoice_counters_club_id_clubs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_invoice_counters')),
    sa.UniqueConstraint('club_id', 'series', name=op.f('uq_dues_invoice_counters_club_id_series'))
    )
    op.create_table('dues_provider_events',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('event_id', sa.String(length=100), nullable=False),
    sa.Column('type', sa.String(length=60), nullable=False),
    sa.Column('created', sa.Integer(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_provider_events_club_id_clubs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_provider_events')),
    sa.UniqueConstraint('club_id', 'provider', 'event_id', name=op.f('uq_dues_provider_events_club_id_provider_event_id'))
    )
    op.create_table('dues_runs',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('invoices', sa.Integer(), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_runs_club_id_clubs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_runs')),
    sa.UniqueConstraint('club_id', 'day', name=op.f('uq_dues_runs_club_id_day'))
    )
    op.create_table('dues_settings',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('legal_name', sa.String(length=140), nullable=True),
    sa.Column('legal_address', sa.Text(), nullable=True),
    sa.Column('vat_registered', sa.Boolean(), nullable=False),
    sa.Column('vat_id', sa.String(length=30), nullable=True),
    sa.Column('default_tax_rate', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('invoice_number_format', sa.String(length=60), nullable=False),
    sa.Column('creditor_id', sa.String(length=35), nullable=True),
    sa.Column('creditor_name', sa.String(length=70), nullable=True),
    sa.Column('creditor_iban', sa.String(length=34), nullable=True),
    sa.Column('creditor_bic', sa.String(length=11), nullable=True),
    sa.Column('prenotice_days', sa.Integer(), nullable=False),
    sa.Column('return_fee', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('household_discount', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('freeze_moves_billing', sa.Boolean(), nullable=False),
    sa.Column('card_retry_days', sa.Integer(), nullable=False),
    sa.Column('sepa_retry_days', sa.Integer(), nullable=False),
    sa.Column('max_retries', sa.Integer(), nullable=False),
    sa.Column('reminder_days', sa.Integer(), nullable=False),
    sa.Column('dunning_fee', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('dunning_fee_after_days', sa.Integer(), nullable=False),
    sa.Column('block_entry_after_days', sa.Integer(), nullable=True),
    sa.Column('stripe_secret_key', sa.String(length=200), nullable=True),
    sa.Column('stripe_webhook_secret', sa.String(length=200), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_settings_club_id_clubs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_settings')),
    sa.UniqueConstraint('club_id', name=op.f('uq_dues_settings_club_id'))
    )
    op.create_table('dues_payers',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('name', sa.String(length=140), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_payers_club_id_clubs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_dues_payers_member_id_members'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_payers'))
    )
    with op.batch_alter_table('dues_payers', schema=None) as batch_op:
        batch_op.create_index('ix_dues_payers_club_member', ['club_id', 'member_id'], unique=False)

    op.create_table('dues_cards',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('setup_ref', sa.String(length=100), nullable=False),
    sa.Column('customer_ref', sa.String(length=100), nullable=True),
    sa.Column('method_ref', sa.String(length=100), nullable=True),
    sa.Column('brand', sa.String(length=20), nullable=True),
    sa.Column('last4', sa.String(length=4), nullable=True),
    sa.Column('exp_month', sa.Integer(), nullable=True),
    sa.Column('exp_year', sa.Integer(), nullable=True),
    sa.Column('removed_on', sa.Date(), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_cards_club_id_clubs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['payer_id'], ['dues_payers.id'], name=op.f('fk_dues_cards_payer_id_dues_payers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_cards')),
    sa.UniqueConstraint('club_id', 'setup_ref', name=op.f('uq_dues_cards_club_id_setup_ref'))
    )
    with op.batch_alter_table('dues_cards', schema=None) as batch_op:
        batch_op.create_index('ix_dues_cards_payer', ['payer_id'], unique=False)

    op.create_table('dues_invoices',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('corrects_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('net', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('tax', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('gross', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('payer_snapshot', sa.JSON(), nullable=False),
    sa.Column('seller_snapshot', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_invoices_club_id_clubs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['corrects_id'], ['dues_invoices.id'], name=op.f('fk_dues_invoices_corrects_id_dues_invoices'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['payer_id'], ['dues_payers.id'], name=op.f('fk_dues_invoices_payer_id_dues_payers'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_invoices')),
    sa.UniqueConstraint('club_id', 'number', name=op.f('uq_dues_invoices_club_id_number'))
    )
    with op.batch_alter_table('dues_invoices', schema=None) as batch_op:
        batch_op.create_index('ix_dues_invoices_club_due', ['club_id', 'due_on'], unique=False)
        batch_op.create_index('ix_dues_invoices_payer', ['payer_id'], unique=False)

    op.create_table('dues_mandates',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reference', sa.String(length=35), nullable=False),
    sa.Column('account_holder', sa.String(length=70), nullable=False),
    sa.Column('iban', sa.String(length=34), nullable=False),
    sa.Column('bic', sa.String(length=11), nullable=True),
    sa.Column('signed_on', sa.Date(), nullable=False),
    sa.Column('first_collected_on', sa.Date(), nullable=True),
    sa.Column('last_collected_on', sa.Date(), nullable=True),
    sa.Column('previous_iban', sa.String(length=34), nullable=True),
    sa.Column('revoked_on', sa.Date(), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_mandates_club_id_clubs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['payer_id'], ['dues_payers.id'], name=op.f('fk_dues_mandates_payer_id_dues_payers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_mandates')),
    sa.UniqueConstraint('club_id', 'reference', name=op.f('uq_dues_mandates_club_id_reference'))
    )
    with op.batch_alter_table('dues_mandates', schema=None) as batch_op:
        batch_op.create_index('ix_dues_mandates_payer', ['payer_id'], unique=False)

    op.create_table('dues_notices',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('to', sa.String(length=254), nullable=True),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('html', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=300), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_notices_club_id_clubs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_dues_notices_member_id_members'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['payer_id'], ['dues_payers.id'], name=op.f('fk_dues_notices_payer_id_dues_payers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_notices')),
    sa.UniqueConstraint('club_id', 'key', name=op.f('uq_dues_notices_club_id_key'))
    )
    with op.batch_alter_table('dues_notices', schema=None) as batch_op:
        batch_op.create_index('ix_dues_notices_unsent', ['sent_at', 'attempts'], unique=False)

    op.create_table('dues_collections',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('invoice_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('mandate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('sequence', sa.String(length=4), nullable=True),
    sa.Column('end_to_end_id', sa.String(length=35), nullable=True),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('provider_ref', sa.String(length=100), nullable=True),
    sa.Column('prenotified_on', sa.Date(), nullable=True),
    sa.Column('failed_on', sa.Date(), nullable=True),
    sa.Column('failure_code', sa.String(length=30), nullable=True),
    sa.Column('failure_reason', sa.String(length=200), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['dues_batches.id'], name=op.f('fk_dues_collections_batch_id_dues_batches'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['card_id'], ['dues_cards.id'], name=op.f('fk_dues_collections_card_id_dues_cards'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_collections_club_id_clubs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['invoice_id'], ['dues_invoices.id'], name=op.f('fk_dues_collections_invoice_id_dues_invoices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['mandate_id'], ['dues_mandates.id'], name=op.f('fk_dues_collections_mandate_id_dues_mandates'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['payer_id'], ['dues_payers.id'], name=op.f('fk_dues_collections_payer_id_dues_payers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_collections')),
    sa.UniqueConstraint('club_id', 'end_to_end_id', name=op.f('uq_dues_collections_club_id_end_to_end_id')),
    sa.UniqueConstraint('club_id', 'provider_ref', name=op.f('uq_dues_collections_club_id_provider_ref')),
    sa.UniqueConstraint('invoice_id', 'attempt', name=op.f('uq_dues_collections_invoice_id_attempt'))
    )
    with op.batch_alter_table('dues_collections', schema=None) as batch_op:
        batch_op.create_index('ix_dues_collections_batch', ['batch_id'], unique=False)
        batch_op.create_index('ix_dues_collections_club_status_due', ['club_id', 'status', 'due_on'], unique=False)

    op.create_table('dues_contracts',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('membership_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payer_relation', sa.String(length=20), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('mandate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('period', sa.String(length=10), nullable=False),
    sa.Column('price', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('tax_rate', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('joining_fee', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('minimum_months', sa.Integer(), nullable=False),
    sa.Column('notice_value', sa.Integer(), nullable=False),
    sa.Column('notice_unit', sa.String(length=10), nullable=False),
    sa.Column('renewal', sa.String(length=10), nullable=False),
    sa.Column('renewal_months', sa.Integer(), nullable=False),
    sa.Column('term_end', sa.Date(), nullable=False),
    sa.Column('next_due', sa.Date(), nullable=False),
    sa.Column('next_price', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('next_price_from', sa.Date(), nullable=True),
    sa.Column('cancel_received_on', sa.Date(), nullable=True),
    sa.Column('ends_on', sa.Date(), nullable=True),
    sa.Column('cancelled_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('cancel_channel', sa.String(length=20), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cancelled_by'], ['staff_users.id'], name=op.f('fk_dues_contracts_cancelled_by_staff_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['card_id'], ['dues_cards.id'], name=op.f('fk_dues_contracts_card_id_dues_cards'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_contracts_club_id_clubs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['mandate_id'], ['dues_mandates.id'], name=op.f('fk_dues_contracts_mandate_id_dues_mandates'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_dues_contracts_member_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['membership_id'], ['memberships.id'], name=op.f('fk_dues_contracts_membership_id_memberships'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['payer_id'], ['dues_payers.id'], name=op.f('fk_dues_contracts_payer_id_dues_payers'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_contracts')),
    sa.UniqueConstraint('membership_id', name=op.f('uq_dues_contracts_membership_id'))
    )
    with op.batch_alter_table('dues_contracts', schema=None) as batch_op:
        batch_op.create_index('ix_dues_contracts_club_due', ['club_id', 'next_due'], unique=False)
        batch_op.create_index('ix_dues_contracts_member', ['member_id'], unique=False)
        batch_op.create_index('ix_dues_contracts_payer', ['payer_id'], unique=False)

    op.create_table('dues_dunning_cases',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('invoice_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('opened_on', sa.Date(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('retries', sa.Integer(), nullable=False),
    sa.Column('reminders', sa.Integer(), nullable=False),
    sa.Column('fee_charged', sa.Boolean(), nullable=False),
    sa.Column('next_step_on', sa.Date(), nullable=True),
    sa.Column('blocks_entry_from', sa.Date(), nullable=True),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('outcome', sa.String(length=12), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_dunning_cases_club_id_clubs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['invoice_id'], ['dues_invoices.id'], name=op.f('fk_dues_dunning_cases_invoice_id_dues_invoices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_dues_dunning_cases_member_id_members'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['payer_id'], ['dues_payers.id'], name=op.f('fk_dues_dunning_cases_payer_id_dues_payers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_dunning_cases')),
    sa.UniqueConstraint('invoice_id', name=op.f('uq_dues_dunning_cases_invoice_id'))
    )
    with op.batch_alter_table('dues_dunning_cases', schema=None) as batch_op:
        batch_op.create_index('ix_dues_dunning_club_open', ['club_id', 'closed_on'], unique=False)
        batch_op.create_index('ix_dues_dunning_member', ['member_id'], unique=False)

    op.create_table('dues_dunning_steps',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('case_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('action', sa.String(length=12), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('done_on', sa.Date(), nullable=False),
    sa.Column('detail', sa.String(length=200), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['dues_dunning_cases.id'], name=op.f('fk_dues_dunning_steps_case_id_dues_dunning_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_dunning_steps_club_id_clubs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_dunning_steps')),
    sa.UniqueConstraint('case_id', 'action', 'number', name=op.f('uq_dues_dunning_steps_case_id_action_number'))
    )
    op.create_table('dues_invoice_lines',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('invoice_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('charge_key', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('contract_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('sale_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=True),
    sa.Column('period_end', sa.Date(), nullable=True),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('tax_rate', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('net', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('tax', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('gross', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_invoice_lines_club_id_clubs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contract_id'], ['dues_contracts.id'], name=op.f('fk_dues_invoice_lines_contract_id_dues_contracts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['invoice_id'], ['dues_invoices.id'], name=op.f('fk_dues_invoice_lines_invoice_id_dues_invoices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_dues_invoice_lines_member_id_members'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['sale_id'], ['sales.id'], name=op.f('fk_dues_invoice_lines_sale_id_sales'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_invoice_lines')),
    sa.UniqueConstraint('club_id', 'charge_key', name=op.f('uq_dues_invoice_lines_club_id_charge_key'))
    )
    with op.batch_alter_table('dues_invoice_lines', schema=None) as batch_op:
        batch_op.create_index('ix_dues_invoice_lines_contract', ['contract_id'], unique=False)
        batch_op.create_index('ix_dues_invoice_lines_invoice', ['invoice_id'], unique=False)

    op.create_table('dues_payments',
    sa.Column('club_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('invoice_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('collection_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('occurred_on', sa.Date(), nullable=False),
    sa.Column('reference', sa.String(length=140), nullable=True),
    sa.Column('event_key', sa.String(length=140), nullable=True),
    sa.Column('desk', sa.String(length=40), nullable=True),
    sa.Column('staff_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['club_id'], ['clubs.id'], name=op.f('fk_dues_payments_club_id_clubs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['collection_id'], ['dues_collections.id'], name=op.f('fk_dues_payments_collection_id_dues_collections'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['invoice_id'], ['dues_invoices.id'], name=op.f('fk_dues_payments_invoice_id_dues_invoices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['payer_id'], ['dues_payers.id'], name=op.f('fk_dues_payments_payer_id_dues_payers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_users.id'], name=op.f('fk_dues_payments_staff_id_staff_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dues_payments')),
    sa.UniqueConstraint('club_id', 'event_key', name=op.f('uq_dues_payments_club_id_event_key'))
    )
    with op.batch_alter_table('dues_payments', schema=None) as batch_op:
        batch_op.create_index('ix_dues_payments_club_on', ['club_id', 'occurred_on'], unique=False)
        batch_op.create_index('ix_dues_payments_invoice', ['invoice_id'], unique=False)

    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('billing', sa.String(length=10), nullable=False,
                                      server_default=sa.text("'prepaid'")))
        batch_op.add_column(sa.Column('billing_period', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('minimum_months', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('notice_value', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('notice_unit', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('renewal', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('renewal_months', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('joining_fee', sa.Numeric(precision=12, scale=2), nullable=True))
        batch_op.add_column(sa.Column('tax_rate', sa.Numeric(precision=5, scale=2), nullable=True))
        batch_op.add_column(sa.Column('next_price', sa.Numeric(precision=12, scale=2), nullable=True))
        batch_op.add_column(sa.Column('next_price_from', sa.Date(), nullable=True))

    with op.batch_alter_table('sales', schema=None) as batch_op:
        batch_op.add_column(sa.Column('to_account', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))



def downgrade() -> None:
    with op.batch_alter_table('sales', schema=None) as batch_op:
        batch_op.drop_column('to_account')

    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_column('next_price_from')
        batch_op.drop_column('next_price')
        batch_op.drop_column('tax_rate')
        batch_op.drop_column('joining_fee')
        batch_op.drop_column('renewal_months')
        batch_op.drop_column('renewal')
        batch_op.drop_column('notice_unit')
        batch_op.drop_column('notice_value')
        batch_op.drop_column('minimum_months')
        batch_op.drop_column('billing_period')
        batch_op.drop_column('billing')

    with op.batch_alter_table('dues_payments', schema=None) as batch_op:
        batch_op.drop_index('ix_dues_payments_invoice')
        batch_op.drop_index('ix_dues_payments_club_on')

    op.drop_table('dues_payments')
    with op.batch_alter_table('dues_invoice_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_dues_invoice_lines_invoice')
        batch_op.drop_index('ix_dues_invoice_lines_contract')

    op.drop_table('dues_invoice_lines')
    op.drop_table('dues_dunning_steps')
    with op.batch_alter_table('dues_dunning_cases', schema=None) as batch_op:
        batch_op.drop_index('ix_dues_dunning_member')
        batch_op.drop_index('ix_dues_dunning_club_open')

    op.drop_table('dues_dunning_cases')
    with op.batch_alter_table('dues_contracts', schema=None) as batch_op:
        batch_op.drop_index('ix_dues_contracts_payer')
        batch_op.drop_index('ix_dues_contracts_member')
        batch_op.drop_index('ix_dues_contracts_club_due')

    op.drop_table('dues_contracts')
    with op.batch_alter_table('dues_collections', schema=None) as batch_op:
        batch_op.drop_index('ix_dues_collections_club_status_due')
        batch_op.drop_index('ix_dues_collections_batch')

    op.drop_table('dues_collections')
    with op.batch_alter_table('dues_notices', schema=None) as batch_op:
        batch_op.drop_index('ix_dues_notices_unsent')

    op.drop_table('dues_notices')
    with op.batch_alter_table('dues_mandates', schema=None) as batch_op:
        batch_op.drop_index('ix_dues_mandates_payer')

    op.drop_table('dues_mandates')
    with op.batch_alter_table('dues_invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_dues_invoices_payer')
        batch_op.drop_index('ix_dues_invoices_club_due')

    op.drop_table('dues_invoices')
    with op.batch_alter_table('dues_cards', schema=None) as batch_op:
        batch_op.drop_index('ix_dues_cards_payer')

    op.drop_table('dues_cards')
    with op.batch_alter_table('dues_payers', schema=None) as batch_op:
        batch_op.drop_index('ix_dues_payers_club_member')

    op.drop_table('dues_payers')
    op.drop_table('dues_settings')
    op.drop_table('dues_runs')
    op.drop_table('dues_provider_events')
    op.drop_table('dues_invoice_counters')
    op.drop_table('dues_desk_closeouts')
    with op.batch_alter_table('dues_batches', schema=None) as batch_op:
        batch_op.drop_index('ix_dues_batches_club_date')

    op.drop_table('dues_batches')
