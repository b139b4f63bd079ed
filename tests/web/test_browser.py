"""End-to-end in headless Chromium (Playwright) against uvicorn serving the test database.

The desk flows and the dashboard run on both backends: they exercise search, the check-in
decision, selling and the analytics queries, which differ between SQLite and PostgreSQL. The
role-gate / CSRF and playbook-preview flows run on SQLite only: nothing in them depends on the
database (the same checks run on both backends without a browser in test_auth.py/test_pages.py).
"""
import re
from datetime import timedelta

import httpx
import pytest

from app.core.actors import Actor, Role
from app.core.db import transaction
from app.members import service as members_service
from app.members.schemas import MemberCreate
from app.memberships import service as memberships_service
from app.web import charts
from tests.web.conftest import browser_sign_in

expect = pytest.importorskip("playwright.sync_api").expect

UNLABELLED_CONTROLS = """() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(el => el.type !== 'hidden')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map(el => el.name || el.id)"""


def test_front_desk_searches_checks_in_and_sees_a_denial(page, club_world):
    anna = club_world.members["anna"]
    browser_sign_in(page, club_world.desk.email)
    expect(page).to_have_url(re.compile(r"/desk$"))
    search = page.get_by_label("Find a member")
    expect(search).to_be_focused()
    assert page.evaluate(UNLABELLED_CONTROLS) == []

    search.press_sequentially("schm", delay=40)  # part of a name, results as you type
    results = page.locator("#results li.result")
    expect(results).to_have_count(2)
    expect(results.nth(0)).to_contain_text("Anna Schmidt")
    expect(results.nth(0)).to_have_class(re.compile("selected"))
    search.press("ArrowDown")
    expect(results.nth(1)).to_have_class(re.compile("selected"))
    search.press("ArrowUp")
    expect(results.nth(0)).to_have_class(re.compile("selected"))
    search.press("Enter")  # opens the selected member's card
    expect(page).to_have_url(re.compile(rf"/desk/members/{anna}$"))
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "active")
    assert page.evaluate(UNLABELLED_CONTROLS) == []

    page.locator("#checkin-button").click()
    expect(page.locator(".flash.ok")).to_contain_text("Welcome, Anna!")

    page.goto("/desk")
    search = page.get_by_label("Find a member")
    search.press_sequentially("bert", delay=40)
    expect(page.locator("#results li.result")).to_have_count(1)
    search.press("Shift+Enter")  # checks the selected member in, in place
    decision = page.locator("#decision .decision")
    expect(decision).to_have_class(re.compile("denied"))
    expect(decision).to_contain_text("Denied: Membership expired")
    expect(decision).to_contain_text(re.compile(r"Membership expired on \d+ \w+"))
    events = page.locator("#events")
    expect(events).to_contain_text("Bert Expired")
    expect(events).to_contain_text("Anna Schmidt")
    expect(events.locator("tr.denied")).to_have_count(1)

    page.set_viewport_size({"width": 768, "height": 1024})  # a tablet held upright
    page.goto(f"/desk/members/{anna}")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_front_desk_sells_a_membership_and_a_cafe_item(page, club_world):
    dora = club_world.members["dora"]
    browser_sign_in(page, club_world.desk.email)
    search = page.get_by_label("Find a member")
    search.press_sequentially("dora", delay=40)
    expect(page.locator("#results li.result")).to_have_count(1)
    search.press("Enter")
    expect(page).to_have_url(re.compile(rf"/desk/members/{dora}$"))
    expect(page.locator("[data-status]")).to_have_text("No membership")

    sell = page.locator("#sell-form")
    sell.get_by_label("Plan").select_option(label="Monthly Unlimited — €49.00")
    sell.get_by_label("Payment").select_option("card")
    sell.get_by_role("button", name="Sell membership").click()
    expect(page.locator(".flash.ok")).to_contain_text("Membership sold")
    expect(page.locator(".flash.ok")).to_contain_text("€49.00 paid by card")
    expect(page.locator("[data-status]").first).to_have_attribute("data-status", "active")

    page.get_by_text("Sell café items").click()
    cafe = page.locator("#cafe-form")
    cafe.get_by_label("Product").select_option(label="Protein bar — €2.50 (10 left)")
    cafe.get_by_label("Quantity").fill("2")
    cafe.get_by_label("Payment").select_option("cash")
    cafe.get_by_role("button", name="Sell").click()
    expect(page.locator(".flash.ok")).to_contain_text("Café sale")
    expect(page.locator(".flash.ok")).to_contain_text("€5.00 paid by cash")
    page.get_by_text("Sell café items").click()
    expect(page.locator("#cafe-product")).to_contain_text("Protein bar — €2.50 (8 left)")


def _history(db, club_world) -> None:
    """Memberships that ended over the last months, some renewed (contiguous), some not."""
    boss = Actor(club_world.owner.user_id, "Owner", club_world.club_id, Role.owner)
    today = club_world.today
    with transaction(db.sessionmaker) as s:
        for i in range(9):
            member = members_service.create_member(
                s, club_id=club_world.club_id,
                data=MemberCreate(first_name=f"History{i}", last_name="Member")).id
            first = memberships_service.sell_membership(
                s, actor=boss, member_id=member, plan_id=club_world.plans["monthly"],
                start_date=today - timedelta(days=260 - 22 * i))
            if i % 3:
                memberships_service.sell_membership(
                    s, actor=boss, member_id=member, plan_id=club_world.plans["monthly"],
                    start_date=first.end_date + timedelta(days=1))


def test_owner_dashboard_renewal_chart_shows_the_api_numbers(page, club_world, db, live_server):
    _history(db, club_world)
    api = httpx.get(f"{live_server}/api/v1/analytics/renewals",
                    headers=club_world.owner.headers, timeout=30).json()
    assert len(api["items"]) >= 4  # enough months to compare

    browser_sign_in(page, club_world.owner.email)
    expect(page).to_have_url(re.compile(r"/owner$"))
    chart = page.locator('svg[data-chart="chart-renewals"]')
    expect(chart).to_be_visible()
    assert chart.get_attribute("role") == "img"
    expect(chart.locator("title").first).to_have_text("Renewal rate by month")
    bars = chart.locator("g.bar")
    shown = bars.evaluate_all("""gs => gs.map(g => ({
        key: g.dataset.key, value: g.dataset.value,
        label: g.querySelector('text.data-label').textContent}))""")
    assert [b["key"] for b in shown] == [i["key"] for i in api["items"]]
    for bar, item in zip(shown, api["items"], strict=True):
        rate = item["renewal_rate"]
        assert (float(bar["value"]) if bar["value"] else None) == rate
        assert bar["label"] == charts.pct(rate)

    panel = page.locator("section").filter(has=chart)
    panel.get_by_text("Numbers").click()
    rows = panel.locator("table tbody tr")
    expect(rows).to_have_count(len(api["items"]))
    for index, item in enumerate(api["items"]):
        cells = rows.nth(index).locator("th, td").all_inner_texts()
        assert cells == [item["label"], str(item["ended"]), str(item["renewed"]),
                         str(item["lost"]), str(item["in_grace"]),
                         charts.pct(item["renewal_rate"], 1)]
    expect(page.locator('[data-kpi="renewal_rate"]')).to_have_text(
        charts.pct(api["totals"]["renewal_rate"], 1))

    mine = page.request.get(panel.get_by_role("link", name="CSV").get_attribute("href"))
    assert mine.ok and mine.headers["content-type"].startswith("text/csv")
    theirs = httpx.get(f"{live_server}/api/v1/analytics/renewals?format=csv",
                       headers=club_world.owner.headers, timeout=30)
    assert mine.text() == theirs.text


def test_front_desk_is_refused_the_owner_pages_and_a_forged_post(page, club_world, db):
    if db.is_postgres:
        pytest.skip("role gates and CSRF do not touch the database in any backend-specific way")
    anna = club_world.members["anna"]
    browser_sign_in(page, club_world.desk.email)
    expect(page.get_by_role("navigation", name="Main")).not_to_contain_text("Dashboard")
    for path in ("/owner", "/owner/playbook", "/manage/stock"):
        response = page.goto(path)
        assert response.status == 403
        expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    page.goto(f"/desk/members/{anna}")
    status = page.evaluate("""async (url) => (await fetch(url, {method: 'POST',
        headers: {'Content-Type': 'application/x-www-form-urlencoded'},
        body: 'text=forged'})).status""", f"/desk/members/{anna}/notes")
    assert status == 403
    page.reload()
    expect(page.locator(".notes")).to_have_count(0)
    page.get_by_label("Add a note").fill("Real note")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator(".notes")).to_contain_text("Real note")


def test_playbook_live_preview(page, club_world, db):
    if db.is_postgres:
        pytest.skip("the preview is one savepoint; test_pages.py covers it on both backends")
    browser_sign_in(page, club_world.owner.email)
    page.goto("/owner/playbook")
    page.get_by_role("link", name="Welcome", exact=True).click()
    preview = page.locator("#preview")
    expect(preview).to_contain_text("Welcome to Riverside Fitness")
    page.get_by_label("For member").select_option(label="Anna Schmidt")
    body = page.get_by_label("Text")
    body.fill("Hi {{ member.first_name }}, see you at {{ club.name }}!")
    expect(preview).to_contain_text("Hi Anna, see you at Riverside Fitness!")
    body.fill("Hi {{ member.nickname }}")
    expect(preview.locator(".flash.error")).to_contain_text("nickname")
