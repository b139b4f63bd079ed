"""The member app's message catalogues: every key in every language with the same placeholders,
every key the templates and services use exists, and the language and number rules."""
import re
import string
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from app.access.preview import STATES as DOOR_STATES
from app.core import i18n
from app.memberapp import cancel, freeze
from app.members.schemas import PreferredChannel
from app.memberships.rules import Status

APP = Path(i18n.__file__).resolve().parents[2]
KEY_USES = re.compile(r"""\bt(?:\.n)?\(\s*["']([a-z0-9_.]+)["']|\btext\([^,]+,\s*["']([a-z0-9_.]+)["']"""
                      r"""|\btexts\(request\)\(\s*["']([a-z0-9_.]+)["']|done\([^"']*["']([a-z0-9_.]+)["']""")


def _fields(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name}


def test_every_key_is_in_every_language_with_the_same_placeholders():
    english = i18n.catalogue("en")
    for lang in i18n.LANGUAGES:
        catalogue = i18n.catalogue(lang)
        assert set(catalogue) == set(english), (lang, set(catalogue) ^ set(english))
        for key, text in catalogue.items():
            assert text.strip(), (lang, key)
            assert _fields(text) == _fields(english[key]), (lang, key)


def test_every_key_used_in_the_templates_and_the_code_exists():
    sources = [*(APP / "web" / "templates" / "app").glob("*.html"),
               APP / "web" / "member.py", APP / "web" / "member_kit.py",
               APP / "web" / "member_join.py",
               *(APP / "memberapp").glob("*.py"), APP / "dues" / "contracts.py"]
    used = {k for path in sources for match in KEY_USES.findall(path.read_text())
            for k in match if k}
    plain = {k for k in used if "." in k and not k.endswith(".")}
    known = set(i18n.catalogue("en"))
    plurals = {k.rsplit(".", 1)[0] for k in known if k.endswith(".other")}
    missing = sorted(k for k in plain if k not in known and k not in plurals)
    assert len(plain) > 80 and missing == []
    # keys built from a value ("status." ~ m.status): every value the data can hold
    families = {"status": [s.value for s in Status], "channel": ["any", *PreferredChannel],
                "period": ["month", "4weeks", "year"], "cancel": list(cancel.KINDS),
                "pt.status": ["active", "pending", "used_up", "expired"],
                "door.state": list(DOOR_STATES), "freeze.status": list(freeze.STATUSES),
                "freeze.intro": ["instant", "approval"], "freeze.submit": ["instant", "approval"]}
    assert {k[:-1] for k in used if k.endswith(".")} == set(families) | {"unit"}
    assert {f"{f}.{v}" for f, values in families.items() for v in values} <= known
    assert {f"unit.{u}" for u in ("days", "weeks", "months")} <= plurals
    errors = set(re.findall(r'code="([a-z_]+)"', (APP / "memberapp" / "signin.py").read_text()
                            + (APP / "memberapp" / "cancel.py").read_text()
                            + (APP / "memberapp" / "account.py").read_text()
                            + (APP / "memberapp" / "freeze.py").read_text()
                            + (APP / "memberapp" / "join.py").read_text()
                            + (APP / "web" / "member_join.py").read_text()))
    # what freezing from the app may run into in `memberships.service.freeze_membership`
    errors |= {"freeze_not_allowed", "freeze_in_past", "freeze_outside_membership",
               "overlapping_freeze", "freeze_allowance_exceeded", "membership_cancelled"}
    errors |= {"overlapping_membership"}  # a renewal's start, `memberships.service`
    errors -= {"freeze_request_decided", "freeze_request_not_found", "invalid_status"}  # the desk's
    assert errors and {f"error.{c}" for c in errors} <= known


@pytest.mark.parametrize(("header", "club", "chosen"), [
    ("de-DE,de;q=0.9,en;q=0.8", None, "de"),
    ("fr-FR,fr;q=0.9,ru;q=0.5,en;q=0.4", "de", "ru"),
    ("en;q=0.2,de;q=0.8", None, "de"),
    ("fr,it", "ru", "ru"),
    ("", "de", "de"),
    (None, None, "en"),
    ("de;q=0,xx", None, "en"),
    ("*", "ru", "ru"),
])
def test_the_language_is_the_browsers_else_the_clubs_else_english(header, club, chosen):
    assert i18n.choose(header, club) == chosen


def test_counted_words_dates_and_money_are_written_the_languages_way():
    assert [i18n.plural("en", "unit.months", n) for n in (1, 3)] == ["1 month", "3 months"]
    assert [i18n.plural("de", "unit.days", n) for n in (1, 14)] == ["1 Tag", "14 Tage"]
    assert [i18n.plural("ru", "unit.days", n) for n in (1, 3, 5, 11, 21, 22, 112)] == [
        "1 день", "3 дня", "5 дней", "11 дней", "21 день", "22 дня", "112 дней"]
    day = date(2026, 3, 31)
    assert [i18n.day(lang, day) for lang in ("en", "de", "ru")] == [
        "31 Mar 2026", "31.03.2026", "31.03.2026"]
    assert i18n.month("de", 2026, 3) == "März 2026" and i18n.month("ru", 2026, 3) == "март 2026"
    amount = Decimal("1234.5")
    assert [i18n.money(lang, amount) for lang in ("en", "de", "ru")] == [
        "€1,234.50", "1.234,50\u00a0€", "1\u00a0234,50\u00a0€"]
    assert i18n.money("en", Decimal(-3)) == "−€3.00"
