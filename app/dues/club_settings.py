"""A club's dues settings as managers read and change them: the secrets never leave.

The Stripe keys are write-only (a read says only whether each is set); the SEPA creditor
identifier is checked as the bank checks it (two letters, two check digits, three characters of
business code, then up to 28 letters or digits: `DE98ZZZ09999999999`; the check digits by ISO
7064 MOD 97-10), the creditor's IBAN and BIC too (and that they belong together); an invoice
number format must name `{seq}` and may name `{year}`.
"""
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import Invalid
from app.dues import sepa, terms
from app.dues.models import DuesSettings

CREDITOR_ID = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{3}[A-Z0-9]{1,28}$")
WIDE_FIELD = re.compile(r"\{[^}]*\d{3,}[^}]*\}")
"""A replacement field with a width of 100 or more (it could ask for a gigabyte of padding)."""
SECRETS = ("stripe_secret_key", "stripe_webhook_secret")


@dataclass
class SettingsView:
    row: DuesSettings

    def __getattr__(self, name):
        if name.startswith("_") or name == "row" or name in SECRETS:
            raise AttributeError(name)
        return getattr(self.row, name)

    @property
    def stripe_secret_key_set(self) -> bool:
        return bool(self.row.stripe_secret_key)

    @property
    def stripe_webhook_secret_set(self) -> bool:
        return bool(self.row.stripe_webhook_secret)


def _check_format(fmt: str) -> None:
    if "{seq" not in fmt:
        raise Invalid("The invoice number format must contain {seq} (the running number), e.g. "
                      "{year}-{seq:05d}", code="invoice_format_invalid",
                      details={"field": "invoice_number_format"})
    if WIDE_FIELD.search(fmt):
        raise Invalid("Invoice numbers of this format are too long (at most 40 characters)",
                      code="invoice_format_invalid", details={"field": "invoice_number_format"})
    try:
        sample = fmt.format(year=2026, seq=1)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        raise Invalid(f"The invoice number format cannot be used ({exc}); name only {{year}} "
                      "and {seq}", code="invoice_format_invalid",
                      details={"field": "invoice_number_format"}) from exc
    if len(sample) > 40:
        raise Invalid("Invoice numbers of this format are too long (at most 40 characters)",
                      code="invoice_format_invalid", details={"field": "invoice_number_format"})


def _check_creditor(session: Session, club_id: int, changes: dict) -> None:
    """The creditor identifier, IBAN and BIC as the bank reads them (compacted in `changes`):
    a wrong one would only show when every collection file is refused."""
    creditor = changes.get("creditor_id")
    if creditor and not CREDITOR_ID.match(creditor):
        raise Invalid(f"{creditor!r} does not look like a SEPA creditor identifier (e.g. "
                      "DE98ZZZ09999999999)", code="creditor_id_invalid",
                      details={"field": "creditor_id"})
    if creditor:
        changes["creditor_id"] = sepa.check_creditor_id(creditor)
    if changes.get("creditor_iban"):
        changes["creditor_iban"] = sepa.normalise_iban(changes["creditor_iban"]).compact
    if changes.get("creditor_bic"):
        changes["creditor_bic"] = sepa.check_bic(changes["creditor_bic"]).compact
    if changes.get("creditor_iban") or changes.get("creditor_bic"):  # the pair
        stored = terms.settings_for(session, club_id)
        iban = changes.get("creditor_iban", stored.creditor_iban)
        bic = changes.get("creditor_bic", stored.creditor_bic)
        if iban and bic:
            sepa.resolve_bic(sepa.normalise_iban(iban), bic)


def _settings_row(session: Session, club_id: int) -> DuesSettings:
    """The club's stored settings row, locked; made from the defaults when there is none (two
    managers saving the first settings at once: the second one reads the first one's row)."""
    query = (select(DuesSettings).where(DuesSettings.club_id == club_id)
             .with_for_update().execution_options(populate_existing=True))
    row = session.scalars(query).first()
    if row is not None:
        return row
    try:
        with session.begin_nested():
            return terms.settings_for(session, club_id, create=True)
    except IntegrityError:
        return session.scalars(query).one()


def read_settings(session: Session, *, club_id: int) -> SettingsView:
    """The club's dues settings (the defaults when none were saved)."""
    return SettingsView(terms.settings_for(session, club_id))


def update_settings(session: Session, *, club_id: int, changes: dict) -> SettingsView:
    """Change some settings; an empty Stripe key clears it."""
    if changes.get("invoice_number_format") is not None:
        _check_format(changes["invoice_number_format"])
    _check_creditor(session, club_id, changes)
    for name in ("invoice_number_format", "vat_registered", "default_tax_rate",
                 "prenotice_days", "return_fee", "household_discount", "freeze_moves_billing",
                 "card_retry_days", "sepa_retry_days", "max_retries", "reminder_days",
                 "dunning_fee", "dunning_fee_after_days"):
        if name in changes and changes[name] is None:
            raise Invalid(f"{name} cannot be empty", code="setting_required",
                          details={"field": name})
    row = _settings_row(session, club_id)
    for name, value in changes.items():
        if name in SECRETS and value == "":
            value = None
        setattr(row, name, value)
    session.flush()
    return SettingsView(row)
