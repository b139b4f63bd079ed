"""The texts members read — the member app's pages and the emails and SMS sent to members: one
message catalogue per language (`de.json`, `en.json`, `ru.json` in
this directory; the same keys in each, `tests/memberapp/test_i18n.py` checks), and how a
language is chosen.

A text is `text(lang, "key", name=...)`: the catalogue's string with `{name}` placeholders filled
in (`str.format`). A count is `plural(lang, "key", n)`: every catalogue has `key.one`, `key.few`,
`key.many` and `key.other`; English and German use one/other, Russian one/few/many. Pages use
`Texts(lang)`, a callable the templates know as `t`. Dates, months and money are written the
language's way (`day`, `month`, `money`).

The language: the first of the browser's `Accept-Language` the app has (by weight, "de-AT"
counts as "de"), else the club's `member_language` setting, else English.
"""
import json
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

LANGUAGES = ("de", "en", "ru")
DEFAULT = "en"
HERE = Path(__file__).parent
CURRENCY_SIGNS = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF", "PLN": "zł"}


@cache
def catalogue(lang: str) -> dict[str, str]:
    """The language's catalogue (read once)."""
    return json.loads((HERE / f"{lang}.json").read_text(encoding="utf-8"))


def text(lang: str, key: str, **values) -> str:
    """The text of `key` in `lang` (English when the language lacks it), filled in."""
    found = catalogue(lang if lang in LANGUAGES else DEFAULT).get(key)
    if found is None:
        found = catalogue(DEFAULT)[key]  # a missing key is a bug: KeyError
    return found.format(**values) if values else found


def plural_form(lang: str, n: int) -> str:
    """Which form of a counted word `n` takes in `lang`."""
    if lang == "ru":
        if n % 10 == 1 and n % 100 != 11:
            return "one"
        if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
            return "few"
        return "many"
    return "one" if n == 1 else "other"


def plural(lang: str, key: str, n: int, **values) -> str:
    """"1 month", "3 months", "5 месяцев": the form of `key` for `n`, with {n} filled in."""
    return text(lang, f"{key}.{plural_form(lang, n)}", n=n, **values)


def from_accept_language(header: str | None) -> str | None:
    """The supported language the browser likes best, or None."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate((header or "")[:500].split(",")):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower().split("-")[0]
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        if lang in LANGUAGES and weight > 0:
            candidate = (-weight, position, lang)
            if best is None or candidate < best:
                best = candidate
    return best[2] if best else None


def choose(accept_language: str | None, club_language: str | None = None) -> str:
    """The language for a page or a message (see the module's docstring)."""
    return (from_accept_language(accept_language)
            or (club_language if club_language in LANGUAGES else None) or DEFAULT)


def day(lang: str, value: date | datetime | None) -> str:
    """31.03.2026 (de, ru) or 31 Mar 2026 (en)."""
    if value is None:
        return "–"
    if isinstance(value, datetime):
        value = value.date()
    if lang == "en":
        return f"{value.day} {text(lang, f'month.short.{value.month}')} {value.year}"
    return f"{value.day:02d}.{value.month:02d}.{value.year}"


def month(lang: str, year: int, number: int) -> str:
    """March 2026 / März 2026 / март 2026."""
    return f"{text(lang, f'month.{number}')} {year}"


def money(lang: str, value: Decimal | int | None, currency: str = "EUR") -> str:
    """€1,234.50 (en), 1.234,50 € (de), 1 234,50 € (ru: no-break spaces); a minus sign."""
    if value is None:
        return "–"
    amount = Decimal(value).quantize(Decimal("0.01"))
    sign = "−" if amount < 0 else ""
    symbol = CURRENCY_SIGNS.get(currency, currency)
    if lang == "en":
        return f"{sign}{symbol}{abs(amount):,.2f}"
    thousands = "." if lang == "de" else "\u00a0"
    number = f"{abs(amount):,.2f}".replace(",", "\0").replace(".", ",").replace("\0", thousands)
    return f"{sign}{number}\u00a0{symbol}"


class Texts:
    """`t("key", **values)` in one language, for templates (with `t.day`, `t.money`, …)."""

    def __init__(self, lang: str):
        self.lang = lang if lang in LANGUAGES else DEFAULT

    def __call__(self, key: str, **values) -> str:
        return text(self.lang, key, **values)

    def n(self, key: str, count: int, **values) -> str:
        return plural(self.lang, key, count, **values)

    def day(self, value) -> str:
        return day(self.lang, value)

    def time(self, value: datetime | None, zone) -> str:
        """The local day and time of an instant: "31.03.2026 18:30"."""
        if value is None:
            return "–"
        local = value.astimezone(zone)
        return f"{day(self.lang, local)} {local:%H:%M}"

    def month(self, year: int, number: int) -> str:
        return month(self.lang, year, number)

    def money(self, value, currency: str = "EUR") -> str:
        return money(self.lang, value, currency)
