"""The desk freezes a membership from the member card, sees planned and running freezes, and ends
one early — in headless Chromium (issue 18, item 6; the frozen badge's wording, item 5)."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core import clock
from app.core.db import transaction
from app.memberships.models import Freeze, Membership
from app.web.kit import fmt_day
from tests.web.conftest import browser_sign_in, csrf_of, sign_in

expect = pytest.importorskip("playwright.sync_api").expect


def test_a_planned_freeze_is_shown_and_cancelled_and_a_running_one_ended_today(
        page, club_world, db):
    anna, today = club_world.members["anna"], club_world.today
    browser_sign_in(page, club_world.desk.email)
    page.goto(f"/desk/members/{anna}")
    expect(page.get_by_text("Freeze days left", exact=True)).to_be_visible()

    page.get_by_text("Freeze", exact=True).click()  # the form opens on what is allowed
    start, end = page.get_by_label("From"), page.get_by_label("To (last frozen day)")
    expect(start).to_have_value(today.isoformat())
    expect(end).to_have_value((today + timedelta(days=13)).isoformat())
    tomorrow = today + timedelta(days=1)
    start.fill(tomorrow.isoformat())
    end.fill((tomorrow + timedelta(days=2)).isoformat())
    page.get_by_role("button", name="Freeze membership").click()
    expect(page.locator(".flash.ok")).to_contain_text("Frozen 3 days")

    freezes = page.get_by_role("list", name="Freezes")
    expect(freezes).to_contain_text(f"Freeze planned {fmt_day(tomorrow)}")
    expect(page.locator("dd", has_text="of 14")).to_have_text("11 of 14")
    freezes.get_by_role("button", name="Cancel this freeze").click()
    expect(page.locator(".flash.ok")).to_contain_text("The freeze is cancelled; 3 freeze days")
    expect(page.get_by_role("list", name="Freezes")).to_have_count(0)
    expect(page.locator("dd", has_text="of 14")).to_have_text("14 of 14")

    page.get_by_text("Freeze", exact=True).click()  # from today: frozen now
    page.get_by_label("To (last frozen day)").fill((today + timedelta(days=4)).isoformat())
    page.get_by_role("button", name="Freeze membership").click()
    badge = page.locator("[data-status]").first
    expect(badge).to_have_attribute("data-status", "frozen")
    expect(badge).to_contain_text(f"Frozen until {fmt_day(today + timedelta(days=4))}")
    page.get_by_role("list", name="Freezes").get_by_role(
        "button", name="End freeze today").click()
    expect(page.locator(".flash.ok")).to_contain_text("Freeze ended")
    expect(page.locator("[data-status]").first).to_have_attribute("data-status", "active")
    with transaction(db.sessionmaker) as s:
        assert s.query(Freeze).count() == 0  # it started today: ending it today undoes it


def test_another_clubs_freeze_cannot_be_ended_from_the_desk(web, club_world, world, db):
    other = world.club(name="Other Gym")
    intruder = world.staff(other, "front_desk")
    with transaction(db.sessionmaker) as s:
        membership_id = s.scalar(select(Membership.id).where(
            Membership.member_id == club_world.members["anna"]))
        freeze = Freeze(club_id=club_world.club_id, membership_id=membership_id,
                        start_date=club_world.today + timedelta(days=2),
                        end_date=club_world.today + timedelta(days=3), created_at=clock.now())
        s.add(freeze)
        s.flush()
        freeze_id = freeze.id
    sign_in(web, intruder.email)
    token = csrf_of(web.get("/desk").text)
    answer = web.post(f"/desk/freezes/{freeze_id}/end", data={"csrf_token": token})
    assert "Freeze not found" in answer.text
    with transaction(db.sessionmaker) as s:
        assert s.get(Freeze, freeze_id) is not None
