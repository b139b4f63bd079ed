"""The CRM pages in headless Chromium (Playwright) on both backends: the desk's moment (a walk-in
becomes a lead, books a trial, the trial is done, a call is logged, the tasks appear) and the
owner's (a messy CSV: the dry run shows the problems, the good rows are imported)."""
import re

import pytest

from tests.web.conftest import browser_sign_in
from tests.web.test_browser import UNLABELLED_CONTROLS
from tests.web.test_crm_pages import MESSY_CSV

expect = pytest.importorskip("playwright.sync_api").expect


def test_a_walk_in_becomes_a_lead_tries_the_club_and_gets_a_call_back(page, club_world):
    browser_sign_in(page, club_world.desk.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Leads").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Leads")
    assert page.evaluate(UNLABELLED_CONTROLS) == []

    form = page.locator("#new-lead-form")
    form.get_by_label("First name").fill("Lena")
    form.get_by_label("Last name").fill("Berg")
    form.get_by_label("Phone").fill("0151 23456700")
    form.get_by_label("Source").select_option(label="Walk-in")
    form.get_by_label("Note").fill("Wants to try the evening classes")
    form.get_by_role("button", name="Record lead").click()
    expect(page.locator(".flash.ok")).to_contain_text("Lena Berg is a new lead (Walk-in)")
    expect(page.locator("[data-stage]").first).to_have_text("New")

    trial = page.locator("#trial-form")
    trial.get_by_label("Trial date").fill(club_world.today.isoformat())
    trial.get_by_role("button", name="Book the trial").click()
    expect(page.locator(".flash.ok")).to_contain_text("Moved to trial booked")
    page.get_by_role("button", name="Move to trial done").click()
    expect(page.locator(".flash.ok")).to_contain_text("Moved to trial done")
    expect(page.locator(".lead-history li")).to_have_count(3)

    page.get_by_role("link", name="Open the member card").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Lena Berg")
    expect(page.locator("[data-lead-stage]")).to_have_text("lead: trial done")
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    page.get_by_text("Log a call, conversation or note").click()
    log = page.locator("#log-form")
    log.get_by_label("What", exact=True).select_option("call")
    log.get_by_label("Call outcome").select_option(label="Call back later")
    log.get_by_label("What was said").fill("Liked the trial, wants to talk to her partner")
    log.get_by_label("Next step", exact=False).first.fill("ask about the yearly plan")
    log.get_by_label("Next step on").fill(club_world.today.isoformat())
    log.get_by_role("button", name="Log it").click()
    expect(page.locator(".flash.ok")).to_contain_text("a call-back task is due")
    expect(page.locator(".timeline")).to_contain_text("Liked the trial")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks").click()
    expect(page.locator("#main")).to_contain_text("Call back: ask about the yearly plan")
    expect(page.locator("#main")).to_contain_text("Follow up the trial of Lena Berg")


def test_the_owner_imports_a_messy_member_list_after_a_dry_run(page, club_world):
    browser_sign_in(page, club_world.owner.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Member data").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Import members")
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "old_members.csv", "mimeType": "text/csv", "buffer": MESSY_CSV}])
    page.get_by_role("button", name="Check the file (dry run)").click()
    expect(page.locator("#report-h")).to_have_text("Dry run: nothing was written")
    problems = page.locator("#problems tbody tr")
    expect(problems).to_have_count(4)
    expect(problems.nth(1)).to_contain_text("E-Mail")
    expect(problems.nth(1)).to_contain_text("lena(at)example")
    expect(page.locator('[data-count="created"]')).to_have_text("2")

    page.get_by_role("button", name=re.compile(r"Import 2 good rows, skip 4")).click()
    expect(page.locator("#report-h")).to_have_text("Imported")
    expect(page.locator('[data-count="created"]')).to_have_text("2")
    expect(page.get_by_role("link", name="Download the rejected rows (CSV)")).to_be_visible()

    page.goto("/desk")
    page.get_by_label("Find a member").press_sequentially("Jürgen", delay=30)
    expect(page.locator("#results li.result")).to_have_count(1)
    expect(page.locator("#results")).to_contain_text("Jürgen Groß")
