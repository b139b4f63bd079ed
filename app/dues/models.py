"""Recurring dues: contracts, payers, invoices, collections (SEPA, card), payments, dunning.

The money truth of recurring billing lives here, apart from the desk's sales:
- a **contract** is the terms a recurring membership was sold with (a snapshot: later plan
  changes do not touch it), who pays (a **payer**) and how (SEPA **mandate**, stored **card**,
  or at the desk);
- the daily billing run writes **invoices** (unchangeable documents with gap-free numbers per
  club; corrections are credit notes) whose **lines** carry a `charge_key` unique per club — the
  key that makes a re-run or a killed run charge nothing twice;
- a **collection** is one try to collect an invoice (a SEPA debit in a **batch** file, or an
  off-session card charge); **dues payments** are the money ledger (in: positive; a return or
  refund: negative), each with an optional `event_key` unique per club, so a replayed webhook or
  a re-imported bank file changes nothing;
- a **dunning case** follows an unpaid invoice through the club's sequence (retry, reminder,
  fee, entry refused); **notices** are the outbox of emails this domain sends.
An invoice's open amount is its gross minus its payments; nothing stores a balance.
"""
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin, TimestampMixin
from app.core.types import BigId, Money

Rate = Numeric(5, 2)
"""A percentage such as a VAT rate (19.00) or a household discount (10.00)."""


class DuesSettings(IdMixin, TimestampMixin, Base):
    """A club's billing set-up: legal details, invoice numbers, VAT, SEPA, Stripe, dunning."""

    __tablename__ = "dues_settings"

    club_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("clubs.id", ondelete="CASCADE"), unique=True)
    legal_name: Mapped[str | None] = mapped_column(String(140))
    legal_address: Mapped[str | None] = mapped_column(Text)
    vat_registered: Mapped[bool] = mapped_column(Boolean, default=False)
    vat_id: Mapped[str | None] = mapped_column(String(30))
    default_tax_rate: Mapped[Decimal] = mapped_column(Rate, default=Decimal("0.00"))
    invoice_number_format: Mapped[str] = mapped_column(String(60), default="{year}-{seq:05d}")
    """A Python format with `{year}` and `{seq}` (the gap-free counter); the counter restarts
    each year when the format names the year."""
    creditor_id: Mapped[str | None] = mapped_column(String(35))
    creditor_name: Mapped[str | None] = mapped_column(String(70))
    creditor_iban: Mapped[str | None] = mapped_column(String(34))
    creditor_bic: Mapped[str | None] = mapped_column(String(11))
    prenotice_days: Mapped[int] = mapped_column(Integer, default=5)
    return_fee: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    """What the bank charges the club per returned debit, passed on to the payer (0: absorbed)."""
    household_discount: Mapped[Decimal] = mapped_column(Rate, default=Decimal("0.00"))
    """Percent off each further membership one payer pays for (the first pays in full)."""
    freeze_moves_billing: Mapped[bool] = mapped_column(Boolean, default=True)
    """A freeze pauses the dues (and moves the next charge) instead of billing through it."""
    card_retry_days: Mapped[int] = mapped_column(Integer, default=3)
    sepa_retry_days: Mapped[int] = mapped_column(Integer, default=7)
    max_retries: Mapped[int] = mapped_column(Integer, default=2)
    reminder_days: Mapped[int] = mapped_column(Integer, default=3)
    dunning_fee: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    dunning_fee_after_days: Mapped[int] = mapped_column(Integer, default=14)
    block_entry_after_days: Mapped[int | None] = mapped_column(Integer)
    """Days after the first failure when check-in is refused (`payment_overdue`); None: never."""
    stripe_secret_key: Mapped[str | None] = mapped_column(String(200))
    stripe_webhook_secret: Mapped[str | None] = mapped_column(String(200))


class Payer(IdMixin, TimestampMixin, Base):
    """A person who pays for one or more memberships: the member, a parent, a partner."""

    __tablename__ = "dues_payers"
    __table_args__ = (Index("ix_dues_payers_club_member", "club_id", "member_id"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("members.id", ondelete="SET NULL"))
    """Set when the payer is a member of the club (who pays for themselves, say)."""
    name: Mapped[str] = mapped_column(String(140))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)


class Mandate(IdMixin, TimestampMixin, Base):
    """A SEPA Direct Debit mandate (CORE) a payer signed: who, which account, since when."""

    __tablename__ = "dues_mandates"
    __table_args__ = (UniqueConstraint("club_id", "reference"),
                      Index("ix_dues_mandates_payer", "payer_id"))

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    payer_id: Mapped[int] = mapped_column(BigId, ForeignKey("dues_payers.id", ondelete="CASCADE"))
    reference: Mapped[str] = mapped_column(String(35))
    account_holder: Mapped[str] = mapped_column(String(70))
    iban: Mapped[str] = mapped_column(String(34))
    bic: Mapped[str | None] = mapped_column(String(11))
    signed_on: Mapped[date] = mapped_column(Date)
    first_collected_on: Mapped[date | None] = mapped_column(Date)
    """Set when a FRST debit went into a file: later debits are RCUR."""
    last_collected_on: Mapped[date | None] = mapped_column(Date)
    """A mandate unused for 36 months expires."""
    previous_iban: Mapped[str | None] = mapped_column(String(34))
    """Set when the IBAN changed (an amendment): reported in the next debit, then cleared."""
    revoked_on: Mapped[date | None] = mapped_column(Date)


class StoredCard(IdMixin, TimestampMixin, Base):
    """A card a payer saved through the provider's hosted page, charged off-session."""

    __tablename__ = "dues_cards"
    __table_args__ = (UniqueConstraint("club_id", "setup_ref"),
                      Index("ix_dues_cards_payer", "payer_id"))

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    payer_id: Mapped[int] = mapped_column(BigId, ForeignKey("dues_payers.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(20), default="stripe")
    setup_ref: Mapped[str] = mapped_column(String(100))
    """The provider's id of the hosted set-up page (Stripe: the Checkout Session)."""
    customer_ref: Mapped[str | None] = mapped_column(String(100))
    method_ref: Mapped[str | None] = mapped_column(String(100))
    """The saved payment method (Stripe: `pm_...`); None until the payer completed the page."""
    brand: Mapped[str | None] = mapped_column(String(20))
    last4: Mapped[str | None] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer)
    exp_year: Mapped[int | None] = mapped_column(Integer)
    removed_on: Mapped[date | None] = mapped_column(Date)


class Contract(IdMixin, TimestampMixin, Base):
    """The terms a recurring membership was sold with, who pays it and how.

    `term_end` is the current term's last day (the membership's end date while it runs): the
    minimum term's end first, then each renewal's. `next_due` is the first day of the next
    period to charge; the billing run charges periods that start on or before its day (plus the
    club's pre-notification days) and moves `next_due` on.
    """

    __tablename__ = "dues_contracts"
    __table_args__ = (Index("ix_dues_contracts_club_due", "club_id", "next_due"),
                      Index("ix_dues_contracts_payer", "payer_id"),
                      Index("ix_dues_contracts_member", "member_id"))

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    membership_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("memberships.id", ondelete="CASCADE"), unique=True)
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    payer_id: Mapped[int] = mapped_column(BigId, ForeignKey("dues_payers.id", ondelete="RESTRICT"))
    payer_relation: Mapped[str] = mapped_column(String(20), default="self")
    """self, parent, guardian, partner or other."""
    method: Mapped[str] = mapped_column(String(10))
    """sepa, card or desk."""
    mandate_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("dues_mandates.id", ondelete="SET NULL"))
    card_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("dues_cards.id", ondelete="SET NULL"))
    period: Mapped[str] = mapped_column(String(10))
    """month, 4weeks or year."""
    price: Mapped[Decimal] = mapped_column(Money)
    """Gross per period, as sold (after any household discount)."""
    tax_rate: Mapped[Decimal] = mapped_column(Rate, default=Decimal("0.00"))
    joining_fee: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    starts_on: Mapped[date] = mapped_column(Date)
    minimum_months: Mapped[int] = mapped_column(Integer, default=0)
    notice_value: Mapped[int] = mapped_column(Integer, default=1)
    notice_unit: Mapped[str] = mapped_column(String(10), default="months")
    """days, weeks or months."""
    renewal: Mapped[str] = mapped_column(String(10), default="monthly")
    """After the minimum term: `term` renews for `renewal_months`, `monthly` runs month by
    month with one month's notice."""
    renewal_months: Mapped[int] = mapped_column(Integer, default=1)
    term_end: Mapped[date] = mapped_column(Date)
    next_due: Mapped[date] = mapped_column(Date)
    next_price: Mapped[Decimal | None] = mapped_column(Money)
    next_price_from: Mapped[date | None] = mapped_column(Date)
    """A price change announced with notice: periods starting on or after it cost next_price."""
    cancel_received_on: Mapped[date | None] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    """The last day, once cancelled (from the notice period and the minimum term)."""
    cancelled_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    cancel_channel: Mapped[str | None] = mapped_column(String(20))
    """desk, letter, email, online."""


class InvoiceCounter(IdMixin, Base):
    """The next invoice number per club and series (the year, when the format names it)."""

    __tablename__ = "dues_invoice_counters"
    __table_args__ = (UniqueConstraint("club_id", "series"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    series: Mapped[str] = mapped_column(String(20))
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class Invoice(IdMixin, Base):
    """An unchangeable invoice or credit note: numbered, with the payer and seller as issued."""

    __tablename__ = "dues_invoices"
    __table_args__ = (UniqueConstraint("club_id", "number"),
                      Index("ix_dues_invoices_club_due", "club_id", "due_on"),
                      Index("ix_dues_invoices_payer", "payer_id"))

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    payer_id: Mapped[int] = mapped_column(BigId, ForeignKey("dues_payers.id", ondelete="RESTRICT"))
    number: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(12), default="invoice")
    """invoice or credit_note."""
    corrects_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("dues_invoices.id", ondelete="RESTRICT"))
    issued_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(String(10))
    """How it is to be collected: sepa, card or desk."""
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    net: Mapped[Decimal] = mapped_column(Money)
    tax: Mapped[Decimal] = mapped_column(Money)
    gross: Mapped[Decimal] = mapped_column(Money)
    payer_snapshot: Mapped[dict] = mapped_column(JSON, default=dict)
    seller_snapshot: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]


class InvoiceLine(IdMixin, Base):
    """One charge on an invoice; `charge_key` (unique per club) names what it charges."""

    __tablename__ = "dues_invoice_lines"
    __table_args__ = (UniqueConstraint("club_id", "charge_key"),
                      Index("ix_dues_invoice_lines_invoice", "invoice_id"),
                      Index("ix_dues_invoice_lines_contract", "contract_id"))

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    invoice_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("dues_invoices.id", ondelete="CASCADE"))
    charge_key: Mapped[str] = mapped_column(String(80))
    """dues:<contract>:<period start>, join:<contract>, sale:<sale>, fee:<...>, credit:<...>."""
    kind: Mapped[str] = mapped_column(String(12))
    """dues, joining_fee, cafe, pt, fee, return_fee, credit."""
    contract_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("dues_contracts.id", ondelete="SET NULL"))
    member_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("members.id", ondelete="SET NULL"))
    sale_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("sales.id", ondelete="SET NULL"))
    description: Mapped[str] = mapped_column(String(200))
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price: Mapped[Decimal] = mapped_column(Money)
    tax_rate: Mapped[Decimal] = mapped_column(Rate, default=Decimal("0.00"))
    net: Mapped[Decimal] = mapped_column(Money)
    tax: Mapped[Decimal] = mapped_column(Money)
    gross: Mapped[Decimal] = mapped_column(Money)


class CollectionBatch(IdMixin, Base):
    """A pain.008 collection file for one collection date; its XML is kept, byte for byte."""

    __tablename__ = "dues_batches"
    __table_args__ = (UniqueConstraint("club_id", "message_id"),
                      Index("ix_dues_batches_club_date", "club_id", "collection_date"))

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    collection_date: Mapped[date] = mapped_column(Date)
    message_id: Mapped[str] = mapped_column(String(35))
    count: Mapped[int] = mapped_column(Integer)
    total: Mapped[Decimal] = mapped_column(Money)
    xml: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    submitted_at: Mapped[datetime | None]
    submitted_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))


class Collection(IdMixin, TimestampMixin, Base):
    """One try to collect an invoice: a SEPA debit or an off-session card charge."""

    __tablename__ = "dues_collections"
    __table_args__ = (UniqueConstraint("invoice_id", "attempt"),
                      UniqueConstraint("club_id", "end_to_end_id"),
                      UniqueConstraint("club_id", "provider_ref"),
                      Index("ix_dues_collections_club_status_due", "club_id", "status", "due_on"),
                      Index("ix_dues_collections_batch", "batch_id"))

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    invoice_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("dues_invoices.id", ondelete="CASCADE"))
    payer_id: Mapped[int] = mapped_column(BigId, ForeignKey("dues_payers.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    method: Mapped[str] = mapped_column(String(10))
    """sepa or card."""
    amount: Mapped[Decimal] = mapped_column(Money)
    due_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default="planned")
    """planned → (sepa) in_file → submitted → paid | returned; (card) pending → paid | failed;
    cancelled when the invoice was settled another way first."""
    mandate_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("dues_mandates.id", ondelete="SET NULL"))
    sequence: Mapped[str | None] = mapped_column(String(4))
    """FRST or RCUR (SEPA)."""
    end_to_end_id: Mapped[str | None] = mapped_column(String(35))
    batch_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("dues_batches.id", ondelete="SET NULL"))
    card_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("dues_cards.id", ondelete="SET NULL"))
    provider_ref: Mapped[str | None] = mapped_column(String(100))
    """The provider's id of the charge (Stripe: the PaymentIntent)."""
    prenotified_on: Mapped[date | None] = mapped_column(Date)
    failed_on: Mapped[date | None] = mapped_column(Date)
    failure_code: Mapped[str | None] = mapped_column(String(30))
    """An ISO 20022 reason (AC04, AM04, MD06, MS02, ...) or the provider's decline code."""
    failure_reason: Mapped[str | None] = mapped_column(String(200))


class DuesPayment(IdMixin, Base):
    """Money for an invoice: in (positive) or back out (a return or refund, negative)."""

    __tablename__ = "dues_payments"
    __table_args__ = (UniqueConstraint("club_id", "event_key"),
                      Index("ix_dues_payments_invoice", "invoice_id"),
                      Index("ix_dues_payments_club_on", "club_id", "occurred_on"))

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    invoice_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("dues_invoices.id", ondelete="CASCADE"))
    payer_id: Mapped[int] = mapped_column(BigId, ForeignKey("dues_payers.id", ondelete="CASCADE"))
    collection_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("dues_collections.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(10), default="payment")
    """payment, return, refund or credit (a credit note settling the invoice)."""
    method: Mapped[str] = mapped_column(String(20))
    """sepa, card, cash, card_terminal, transfer or credit_note."""
    amount: Mapped[Decimal] = mapped_column(Money)
    occurred_on: Mapped[date] = mapped_column(Date)
    reference: Mapped[str | None] = mapped_column(String(140))
    event_key: Mapped[str | None] = mapped_column(String(140))
    """What delivered this money (a webhook event id, a bank entry reference): a second
    delivery of the same event writes nothing."""
    desk: Mapped[str | None] = mapped_column(String(40))
    staff_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]


class ProviderEvent(IdMixin, Base):
    """A webhook event received from a payment provider, kept once by its id."""

    __tablename__ = "dues_provider_events"
    __table_args__ = (UniqueConstraint("club_id", "provider", "event_id"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(60))
    created: Mapped[int | None] = mapped_column(Integer)
    """The provider's own creation time of the event (Unix seconds): out-of-order deliveries
    are ordered by it."""
    received_at: Mapped[datetime]


class DunningCase(IdMixin, TimestampMixin, Base):
    """An unpaid invoice followed through the club's sequence until it is paid or written off."""

    __tablename__ = "dues_dunning_cases"
    __table_args__ = (UniqueConstraint("invoice_id"),
                      Index("ix_dues_dunning_club_open", "club_id", "closed_on"),
                      Index("ix_dues_dunning_member", "member_id"))

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    invoice_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("dues_invoices.id", ondelete="CASCADE"))
    payer_id: Mapped[int] = mapped_column(BigId, ForeignKey("dues_payers.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("members.id", ondelete="SET NULL"))
    opened_on: Mapped[date] = mapped_column(Date)
    """The day of the first failure."""
    amount: Mapped[Decimal] = mapped_column(Money)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    reminders: Mapped[int] = mapped_column(Integer, default=0)
    fee_charged: Mapped[bool] = mapped_column(Boolean, default=False)
    next_step_on: Mapped[date | None] = mapped_column(Date)
    blocks_entry_from: Mapped[date | None] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    outcome: Mapped[str | None] = mapped_column(String(12))
    """recovered, written_off or cancelled."""


class DunningStep(IdMixin, Base):
    """What the dunning sequence did, for the member card and timeline."""

    __tablename__ = "dues_dunning_steps"
    __table_args__ = (UniqueConstraint("case_id", "action", "number"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    case_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("dues_dunning_cases.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(12))
    """failed, retry, reminder, fee, block, recovered, written_off."""
    number: Mapped[int] = mapped_column(Integer, default=1)
    done_on: Mapped[date] = mapped_column(Date)
    detail: Mapped[str | None] = mapped_column(String(200))


class DeskCloseout(IdMixin, Base):
    """A desk's day closed: opening float, takings by method, counted cash, difference."""

    __tablename__ = "dues_desk_closeouts"
    __table_args__ = (UniqueConstraint("club_id", "desk", "business_day"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    desk: Mapped[str] = mapped_column(String(40))
    business_day: Mapped[date] = mapped_column(Date)
    opening_float: Mapped[Decimal] = mapped_column(Money)
    takings: Mapped[dict] = mapped_column(JSON, default=dict)
    """Per method, as strings of Decimal: {"cash": "120.00", "card_terminal": "80.00"}."""
    expected_cash: Mapped[Decimal] = mapped_column(Money)
    counted_cash: Mapped[Decimal] = mapped_column(Money)
    difference: Mapped[Decimal] = mapped_column(Money)
    closed_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    closed_at: Mapped[datetime]


class BillingRun(IdMixin, Base):
    """The daily billing run of one club and day; `finished_at` is None while it runs (or after
    it was killed: the next run carries on, and the charge keys make it charge nothing twice)."""

    __tablename__ = "dues_runs"
    __table_args__ = (UniqueConstraint("club_id", "day"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    invoices: Mapped[int] = mapped_column(Integer, default=0)
    lines: Mapped[int] = mapped_column(Integer, default=0)


class Notice(IdMixin, Base):
    """An email this domain sends (invoice, pre-notification, cancellation, reminder, card
    link): written in the transaction that decides it, sent by the dispatcher, once per key."""

    __tablename__ = "dues_notices"
    __table_args__ = (UniqueConstraint("club_id", "key"),
                      Index("ix_dues_notices_unsent", "sent_at", "attempts"))

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    payer_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("dues_payers.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("members.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(120))
    to: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(300))
