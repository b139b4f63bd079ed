"""The member app on a phone (headless Chromium at 390×844, on both backends): a member signs in
with the link emailed to a real local SMTP server, sees their membership and contract, and —
in a browser that is not signed in — cancels the contract from the footer's link, getting the
confirmation with the end date at once. One test: each browser test costs seconds."""
import re
from datetime import timedelta

import httpx
import pytest

from app.clubs import service as clubs_service
from app.core.actors import Role
from app.core.i18n import day
from app.memberships.rules import add_months
from tests.web.phone import FITS, LINK, UNLABELLED, arrived, phone, settings, smtp  # noqa: F401 (fixtures)

expect = pytest.importorskip("playwright.sync_api").expect



def test_a_member_signs_in_by_email_sees_the_membership_and_cancels_without_signing_in(
        phone, world, live_server, smtp):
    club = world.club(name="Riverside Fitness")
    manager = world.staff(club, Role.manager)
    anna = world.member(club, "Anna", "Berg", email="anna@example.org", email_consent=True)
    with httpx.Client(base_url=live_server, headers=manager.headers, timeout=30) as api:
        plan = api.post("/api/v1/plans", json={
            "name": "Flex 12", "price": "49.00", "billing": "recurring",
            "billing_period": "month", "minimum_months": 12, "notice_value": 1,
            "notice_unit": "months"}).json()
        sold = api.post("/api/v1/sales", json={"member_id": anna, "lines": [
            {"kind": "contract", "plan_id": plan["id"], "method": "desk"}]})
    assert sold.status_code == 201, sold.text
    today = clubs_service.club_today(club)
    ends = add_months(today, 12) - timedelta(days=1)

    tab = phone()
    tab.goto("/app")  # not signed in: the sign-in page
    expect(tab).to_have_url(re.compile(r"/app/sign-in$"))
    assert tab.evaluate(UNLABELLED) == []
    tab.get_by_label("Email address or mobile number").fill("anna@example.org")
    tab.get_by_role("button", name="Send me a link or code").click()
    expect(tab.get_by_role("heading", name="Check your email")).to_be_visible()
    [(_from, _to, email)] = arrived(smtp, lambda ms: [m for m in ms if "anna@example.org" in m[1]])
    link = LINK.search(email.get_body(("plain",)).get_content()).group(1)
    tab.goto(link)
    tab.get_by_role("button", name="Sign in").click()
    expect(tab).to_have_url(re.compile(r"/app$"))
    expect(tab.get_by_role("heading", name="Hello, Anna!")).to_be_visible()
    expect(tab.locator("[data-membership] [data-status]")).to_have_text("active")
    expect(tab.locator("[data-end]")).to_have_attribute("data-end", ends.isoformat())
    expect(tab.locator("[data-would-end]")).to_have_attribute("data-would-end", ends.isoformat())
    assert tab.evaluate(FITS)  # one-handed on a phone: nothing wider than the screen

    stranger = phone()  # another browser, never signed in
    stranger.goto("/app/sign-in")
    stranger.get_by_role("link", name="Cancel contract here").click()
    expect(stranger).to_have_url(re.compile(r"/app/cancel$"))
    assert stranger.evaluate(UNLABELLED) == [] and stranger.evaluate(FITS)
    stranger.get_by_label("Member number").fill(str(anna))
    stranger.get_by_label("Your email address or phone number").fill("anna@example.org")
    stranger.get_by_role("button", name="Cancel now").click()
    expect(stranger.get_by_role("heading", name="Cancellation received")).to_be_visible()
    confirmations = arrived(smtp, lambda ms: [m for _f, _to, m in ms if m["Subject"].endswith(
        f"your membership ends on {day('en', ends)}")])
    assert len(confirmations) == 1 and confirmations[0]["To"] == "anna@example.org"

    tab.reload()  # the signed-in member sees the cancellation
    expect(tab.locator("[data-ends]")).to_have_attribute("data-ends", ends.isoformat())
