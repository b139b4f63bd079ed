"""Booking personal training on a phone (headless Chromium at 390×844, on both backends): a
member with a package signs in by the emailed link, opens Training, books one of their trainer's
free times and sees the sessions left to book go down and the session among the coming ones.
One test: each browser test costs seconds."""
import re

import httpx
import pytest

from app.core.actors import Role
from tests.web.phone import (  # noqa: F401 (fixtures)
    FITS,
    LINK,
    UNLABELLED,
    arrived,
    phone,
    settings,
    smtp,
)

expect = pytest.importorskip("playwright.sync_api").expect


def test_a_member_books_a_session_with_their_trainer_and_sees_the_balance_go_down(
        phone, world, live_server, smtp):
    club = world.club(name="Riverside Fitness")
    manager = world.staff(club, Role.manager)
    coach_login = world.staff(club, Role.trainer)
    anna = world.member(club, "Anna", "Berg", email="anna@example.org", email_consent=True)
    with httpx.Client(base_url=live_server, headers=manager.headers, timeout=30) as api:
        coach = api.post("/api/v1/trainers", json={"user_id": coach_login.user_id}).json()["id"]
        assert api.put(f"/api/v1/trainers/{coach}/hours", json={"intervals": [
            {"weekday": d, "start": "09:00", "end": "13:00"} for d in range(1, 8)]}
        ).status_code == 200
        product = api.post("/api/v1/pt-products", json={
            "name": "PT Ten", "sessions": 10, "price": "500.00", "validity_days": 90}).json()
        sold = api.post(f"/api/v1/members/{anna}/pt-packages", json={
            "package_product_id": product["id"], "trainer_id": coach})
    assert sold.status_code == 201, sold.text

    tab = phone()
    tab.goto("/app/sign-in")
    tab.get_by_label("Email address or mobile number").fill("anna@example.org")
    tab.get_by_role("button", name="Send me a link or code").click()
    [(_from, _to, email)] = arrived(smtp, lambda ms: [m for m in ms if "anna@example.org" in m[1]])
    tab.goto(LINK.search(email.get_body(("plain",)).get_content()).group(1))
    tab.get_by_role("button", name="Sign in").click()
    expect(tab).to_have_url(re.compile(r"/app$"))

    tab.get_by_role("link", name="Training").click()
    expect(tab).to_have_url(re.compile(r"/app/training$"))
    left = tab.locator("[data-left-to-book]")
    expect(left).to_have_text("10 sessions left to book")
    assert tab.evaluate(UNLABELLED) == [] and tab.evaluate(FITS)
    slot = tab.locator("details[open] [data-slot]").first
    when = slot.get_attribute("data-slot")
    label = slot.get_attribute("aria-label")
    assert label.startswith("Book ") and "with" in label
    slot.click()
    expect(tab.locator("[data-flash]")).to_contain_text("Booked:")
    expect(left).to_have_text("9 sessions left to book")
    expect(tab.locator("[data-session]")).to_have_count(1)
    expect(tab.locator(f'[data-slot="{when}"]')).to_have_count(0)  # no longer offered
    assert tab.evaluate(FITS)
