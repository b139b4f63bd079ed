"""The arithmetic every part of recurring dues shares: periods, notice, money per line, settings.

- **Periods** are anchored on the contract's start: the n-th monthly period starts
  `add_months(starts_on, n)` (a contract from 31 January is due 28/29 February, then 31 March —
  never drifting to the 28th), a 4-weekly one `starts_on + 28·n` days, a yearly one
  `add_months(starts_on, 12·n)`. A period ends the day before the next one starts.
- **Notice**: a cancellation received on day R with notice N (days, weeks or months) can end
  the contract no earlier than R + N − 1 day; the contract then ends on the last day of the term
  in which that falls (never before the minimum term's end), or — for `monthly` renewal after
  the minimum term — on the last day of the period in which it falls.
- **Money** is `Decimal` to the cent. Prices are gross (what the member pays); a line's tax is
  taken out of its gross as `gross × rate / (100 + rate)`, rounded half-up to the cent, and
  net = gross − tax. Each line is rounded on its own; an invoice's totals are the sums of its
  lines (so they always add up).
"""
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.dues.models import DuesSettings
from app.memberships.rules import add_months

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
PERIODS = ("month", "4weeks", "year")
NOTICE_UNITS = ("days", "weeks", "months")
RENEWALS = ("term", "monthly")
METHODS = ("sepa", "card", "desk")


def cents(value: Decimal | int | str) -> Decimal:
    """To the cent, half-up (the one rounding rule of the dues domain)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Amounts:
    net: Decimal
    tax: Decimal
    gross: Decimal


def split_gross(gross: Decimal, tax_rate: Decimal) -> Amounts:
    """Net and tax inside a gross amount at `tax_rate` percent, rounded half-up per line."""
    gross = cents(gross)
    if not tax_rate:
        return Amounts(gross, ZERO, gross)
    tax = cents(gross * Decimal(tax_rate) / (Decimal(100) + Decimal(tax_rate)))
    return Amounts(gross - tax, tax, gross)


def period_start(starts_on: date, period: str, index: int) -> date:
    """The first day of the `index`-th period (0 is the first) of a contract from `starts_on`."""
    if period == "month":
        return add_months(starts_on, index)
    if period == "4weeks":
        return starts_on + timedelta(days=28 * index)
    if period == "year":
        return add_months(starts_on, 12 * index)
    raise ValueError(f"unknown billing period {period!r}")


def period_index(starts_on: date, period: str, day: date) -> int:
    """The index of the period that contains `day` (0 for days before the start)."""
    if day <= starts_on:
        return 0
    if period == "4weeks":
        return (day - starts_on).days // 28
    months = (day.year - starts_on.year) * 12 + day.month - starts_on.month
    index = months if period == "month" else months // 12
    while index > 0 and period_start(starts_on, period, index) > day:
        index -= 1
    while period_start(starts_on, period, index + 1) <= day:
        index += 1
    return index


def period_end(starts_on: date, period: str, index: int) -> date:
    """The last day of the `index`-th period."""
    return period_start(starts_on, period, index + 1) - timedelta(days=1)


def after_notice(received_on: date, value: int, unit: str) -> date:
    """The earliest last day a cancellation received on `received_on` can have."""
    if unit == "days":
        return received_on + timedelta(days=value - 1) if value else received_on
    if unit == "weeks":
        return received_on + timedelta(days=7 * value - 1) if value else received_on
    if unit == "months":
        return add_months(received_on, value) - timedelta(days=1) if value else received_on
    raise ValueError(f"unknown notice unit {unit!r}")


def minimum_end(starts_on: date, minimum_months: int) -> date | None:
    """The minimum term's last day (None without a minimum term)."""
    if not minimum_months:
        return None
    return add_months(starts_on, minimum_months) - timedelta(days=1)


def settings_for(session: Session, club_id: int, *, create: bool = False) -> DuesSettings:
    """The club's billing settings; the defaults (not stored) when the club has set none."""
    row = session.scalars(select(DuesSettings).where(DuesSettings.club_id == club_id)).first()
    if row is not None:
        return row
    row = DuesSettings(club_id=club_id)
    for column in DuesSettings.__table__.columns:
        if getattr(row, column.key) is None and column.default is not None \
                and not callable(column.default.arg):
            setattr(row, column.key, column.default.arg)
    if create:
        session.add(row)
        session.flush()
    return row


def next_term_end(starts_on: date, term_end: date, months: int) -> date:
    """The last day of the term after the one ending `term_end`, `months` long, anchored on the
    contract's start when the term is (a contract from 31 January renews to 30 March, not 27)."""
    start = term_end + timedelta(days=1)
    n = (start.year - starts_on.year) * 12 + start.month - starts_on.month
    if n >= 0 and add_months(starts_on, n) == start:
        return add_months(starts_on, n + months) - timedelta(days=1)
    return add_months(start, months) - timedelta(days=1)


def renews_by(day: date, term_end: date, value: int, unit: str) -> bool:
    """Has the last day to give notice for the term ending `term_end` passed on `day`?"""
    return after_notice(day, value, unit) > term_end
