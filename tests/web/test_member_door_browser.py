"""The member app's door code and freezing, on a phone (headless Chromium at 390×844, on both
backends). A member signs in with the emailed link, opens "Get in", and the code the page shows
opens the turnstile through the device API, as a QR reader hands it over; the page loads the next
minute's code by itself, and the first code, three minutes on, is refused as `code_expired`.
A member freezes their membership from the app in "instant" mode and the door page says so."""
import re
import time
from datetime import timedelta

import httpx
import pytest

from app.clubs import service as clubs_service
from app.web.member_kit import MEMBER_COOKIE
from tests.retention.servers import SmtpServer
from tests.web.phone import FITS, LINK, PHONE, UNLABELLED, settings, smtp  # noqa: F401 (fixtures)

expect = pytest.importorskip("playwright.sync_api").expect



@pytest.fixture
def phone(browser, live_server):
    """A phone-sized tab on the live server; JS errors (and refused scripts) fail the test."""
    context = browser.new_context(base_url=live_server, viewport=PHONE, has_touch=True,
                                  is_mobile=True, locale="en-GB")
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield tab
    context.close()
    assert not errors, f"errors in the browser: {errors}"


def _email_link(smtp: SmtpServer, address: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for _from, to, message in smtp.messages:
            if address in to:
                return LINK.search(message.get_body(("plain",)).get_content()).group(1)
        time.sleep(0.05)
    raise AssertionError(f"no sign-in email to {address}")


def test_the_code_on_the_door_page_opens_the_turnstile_and_expires(phone, world, live_server,
                                                                   smtp, clock):
    club = world.club(name="Riverside Fitness")
    turnstile = world.device(club)
    anna = world.member(club, "Anna", "Berg", email="anna@example.org", email_consent=True,
                        card=None)
    world.membership(club, anna)
    phone.goto("/app/sign-in")
    phone.get_by_label("Email address or mobile number").fill("anna@example.org")
    phone.get_by_role("button", name="Send me a link or code").click()
    expect(phone.get_by_role("heading", name="Check your email")).to_be_visible()
    phone.goto(_email_link(smtp, "anna@example.org"))
    phone.get_by_role("button", name="Sign in").click()
    expect(phone).to_have_url(re.compile(r"/app$"))

    # a few seconds before the minute turns: the page will load the next code by itself
    now = clock.now()
    clock.set(now.replace(second=56, microsecond=0) + timedelta(minutes=1))
    phone.get_by_role("link", name="Get in").click()
    expect(phone.get_by_role("heading", name="Get in")).to_be_visible()
    expect(phone.locator("[data-member-name]")).to_have_text("Anna Berg")
    expect(phone.locator("[data-door-state]")).to_have_attribute("data-door-state", "ok")
    qr = phone.locator("figure[data-code]")
    code = qr.get_attribute("data-code")
    assert re.fullmatch(r"98\d{14}", code)
    assert phone.locator("[data-digits]").inner_text().replace(" ", "").replace("\n", "") == code
    box = phone.locator("figure[data-code] svg").bounding_box()
    assert box and box["width"] >= 150 and phone.evaluate(FITS)

    with httpx.Client(base_url=live_server, headers=turnstile.headers, timeout=30) as device:
        granted = device.post("/api/v1/access/events", json={"card": code})
        assert granted.status_code == 200, granted.text
        assert (granted.json()["allow"], granted.json()["reason"]) == (True, "ok")
        assert granted.json()["member"]["id"] == anna

        expect(qr).not_to_have_attribute("data-code", code, timeout=15_000)  # the next minute's
        clock.advance(timedelta(minutes=3))
        stale = device.post("/api/v1/access/events", json={"card": code})
        assert stale.status_code == 200, stale.text
        assert (stale.json()["allow"], stale.json()["reason"]) == (False, "code_expired")


def test_a_member_freezes_from_the_app_at_once(phone, world):
    club = world.club(name="Riverside Fitness", app_freeze_mode="instant")
    anna = world.member(club, "Anna", "Berg", card=None)
    plan = world.plan(club, freeze_days=30)
    today = clubs_service.club_today(club)
    world.membership(club, anna, plan, start=today - timedelta(days=10),
                     end=today + timedelta(days=170))
    phone.goto("/app/sign-in")  # signed out: set the member's session as after the emailed link
    phone.context.add_cookies([{"name": MEMBER_COOKIE, "value": world.app_session(anna),
                                "domain": "127.0.0.1", "path": "/app", "httpOnly": True,
                                "sameSite": "Lax"}])
    phone.goto("/app")
    phone.get_by_role("link", name="Freeze membership").click()
    expect(phone.get_by_role("heading", name="Freeze membership")).to_be_visible()
    assert phone.evaluate(UNLABELLED) == [] and phone.evaluate(FITS)
    phone.get_by_label("First day of the freeze").fill(today.isoformat())
    phone.get_by_label("Length in days").fill("10")
    phone.get_by_role("button", name="Freeze now").click()
    expect(phone.locator("[data-flash]")).to_contain_text("Your membership is frozen from")
    expect(phone.locator("[data-request-status]")).to_have_attribute("data-request-status",
                                                                     "applied")
    expect(phone.locator("[data-days-left]")).to_have_attribute("data-days-left", "20")

    phone.get_by_role("link", name="Get in").click()
    expect(phone.locator("[data-door-state]")).to_have_attribute("data-door-state",
                                                                 "membership_frozen")
