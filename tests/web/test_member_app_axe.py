"""The member app's pages pass axe-core's accessibility rules (WCAG 2.x A and AA: labels,
contrast, names, landmarks, focusable controls) in Chromium at 390×844, signed in and signed
out. axe-core comes from PyPI inside `axe-playwright-python` (its `axe.min.js`), so no npm and
no download at test time. Accessibility does not depend on the database: SQLite only."""
from collections.abc import Iterator
from datetime import timedelta

import pytest

from app.clubs import service as clubs_service
from app.web.member_kit import MEMBER_COOKIE

Axe = pytest.importorskip("axe_playwright_python.sync_playwright").Axe

PHONE = {"width": 390, "height": 844}
SIGNED_OUT = ["/app/sign-in", "/app/cancel", "/app/join"]
SIGNED_IN = ["/app", "/app/door", "/app/classes", "/app/training", "/app/freeze", "/app/me",
             "/app/cancel"]
WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
        "resultTypes": ["violations"]}


@pytest.fixture
def phone(browser, live_server) -> Iterator:
    context = browser.new_context(base_url=live_server, viewport=PHONE, has_touch=True,
                                  is_mobile=True, locale="de-DE")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def _violations(tab, path: str) -> list[str]:
    response = tab.goto(path)
    assert response is not None and response.status == 200, (path, response and response.status)
    found = Axe().run(tab, options=WCAG).response["violations"]
    return [f"{path}: {v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(n["target"][0] for n in v["nodes"][:3]) for v in found]


def test_the_member_apps_pages_have_no_accessibility_violations(db, phone, world):
    if db.is_postgres:
        pytest.skip("accessibility does not depend on the database (checked on SQLite)")
    club = world.club(name="Riverside Fitness", app_freeze_mode="instant")
    anna = world.member(club, "Anna", "Berg", card=None, email_consent=True)
    plan = world.plan(club, freeze_days=30)
    today = clubs_service.club_today(club)
    world.membership(club, anna, plan, start=today - timedelta(days=10),
                     end=today + timedelta(days=170))
    problems = []
    for path in SIGNED_OUT:
        problems += _violations(phone, path)
    phone.context.add_cookies([{"name": MEMBER_COOKIE, "value": world.app_session(anna),
                                "domain": "127.0.0.1", "path": "/app", "httpOnly": True,
                                "sameSite": "Lax"}])
    for path in SIGNED_IN:
        problems += _violations(phone, path)
    assert problems == [], "\n".join(problems)
