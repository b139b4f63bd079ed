"""Joining online on a phone (headless Chromium at 390×844, on both backends): a person opens the
club's join page, picks the plan sold online, gives their details, reads the contract's terms,
signs with their typed name and "I accept", sees the confirmation — and the confirmation email
arrives at a real local SMTP server. One test: each browser test costs seconds."""
import re

import httpx
import pytest

from app.core.actors import Role
from tests.web.phone import FITS, PHONE, UNLABELLED, arrived, settings, smtp  # noqa: F401 (fixtures)

expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture
def tab(browser, live_server):
    """A phone-sized, signed-out browser on the live server; JS errors fail the test."""
    errors = []
    context = browser.new_context(base_url=live_server, viewport=PHONE, has_touch=True,
                                  is_mobile=True, locale="en-GB")
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"errors in the browser: {errors}"


def test_a_person_joins_online_signs_and_gets_the_email(tab, world, live_server, smtp):
    club = world.club(name="Riverside Fitness")
    manager = world.staff(club, Role.manager)
    with httpx.Client(base_url=live_server, headers=manager.headers, timeout=30) as api:
        plan = api.post("/api/v1/plans", json={
            "name": "Flex 12", "price": "49.00", "billing": "recurring",
            "billing_period": "month", "minimum_months": 12, "notice_value": 1,
            "notice_unit": "months", "joining_fee": "19.00"}).json()
        assert api.patch("/api/v1/club/settings",
                         json={"online_plans": [plan["id"]]}).status_code == 200

    tab.goto("/app/join")
    tab.get_by_role("link", name="Choose this plan").click()
    expect(tab.get_by_role("heading", name="Flex 12")).to_be_visible()
    assert tab.evaluate(UNLABELLED) == [] and tab.evaluate(FITS)
    expect(tab.locator("[data-terms]")).to_contain_text("Minimum term: 12 months")
    expect(tab.locator("[data-terms]")).to_contain_text("Joining fee: €19.00")
    tab.get_by_label("First name").fill("Anna")
    tab.get_by_label("Last name").fill("Berg")
    tab.get_by_label("Email address").fill("anna@example.org")
    tab.get_by_label("Date of birth").fill("1990-04-02")
    tab.get_by_label("The club may send me news by email").check()
    tab.get_by_label("Type your full name to sign").fill("Anna Berg")
    tab.get_by_label("I accept these terms").check()
    tab.get_by_role("button", name="Sign the contract").click()
    expect(tab.get_by_role("heading", name="Thank you")).to_be_visible()
    expect(tab.locator("[data-join-done]")).to_contain_text(
        "Your membership (Flex 12) is pending until the first payment at the desk")
    assert tab.evaluate(FITS)
    [(_from, _to, email)] = arrived(smtp, lambda ms: [m for m in ms
                                                      if "anna@example.org" in m[1]])
    assert re.search(r"pending until paid at the desk", email["Subject"])
    assert "Dues: €49.00 per month" in email.get_body(("plain",)).get_content()
