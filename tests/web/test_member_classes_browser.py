"""Class booking in the member app on a phone (headless Chromium at 390×844, on both backends):
one member books the last place, a second joins the waiting list, the first cancels — and the
second has the place: on their page, and by email through a real local SMTP server. One test:
each browser test costs seconds."""
import re

import httpx
import pytest

from app.core.actors import Role
from tests.trainers.conftest import Gym
from tests.web.phone import FITS, arrived, phone, settings, smtp  # noqa: F401 (fixtures)

expect = pytest.importorskip("playwright.sync_api").expect


def test_the_last_place_goes_to_the_waiting_member_when_the_first_cancels(
        phone, world, live_server, smtp):
    club = world.club(name="Riverside Fitness")
    with httpx.Client(base_url=live_server, timeout=30) as api:
        gym = Gym(api, world, club, manager=world.staff(club, Role.manager),
                  desk=world.staff(club, Role.front_desk))
        coach = gym.trainer()
        occ = gym.class_at(coach, gym.at(1, 18), capacity=1)
        plan = gym.plan()["id"]
        anna = gym.member("Anna", "Berg", email="anna@example.org", email_consent=True)
        ben = gym.member("Ben", "Stone", email="ben@example.org", email_consent=True)
        for member in (anna, ben):
            gym.membership(member, plan)
    row = f'[data-class="{occ["id"]}"]'

    first = phone(anna)
    first.goto("/app")
    first.get_by_role("link", name="Classes").click()
    expect(first).to_have_url(re.compile(r"/app/classes$"))
    expect(first.locator(row)).to_contain_text("1 of 1 places left")
    first.locator(row).get_by_role("button", name="Book").click()
    expect(first.locator("[data-flash]")).to_have_text("Booked. See you there!")
    expect(first.locator(row)).to_contain_text("You are booked")
    expect(first.locator(row)).to_contain_text("Full")
    assert first.evaluate(FITS)

    second = phone(ben)
    second.goto("/app/classes")
    second.locator(row).get_by_role("button", name="Join the waiting list").click()
    expect(second.locator("[data-flash]")).to_contain_text("you are number 1 on the waiting list")
    expect(second.locator(row)).to_contain_text("You are on the waiting list: number 1")

    first.locator(row).get_by_role("button", name="Cancel booking").click()
    expect(first.locator("[data-flash]")).to_have_text("Cancelled.")
    expect(first.locator(row)).to_contain_text("Full")  # Ben has the place now
    expect(first.locator(row).get_by_role("button", name="Join the waiting list")).to_be_visible()

    told = arrived(smtp, lambda ms: [m for _f, to, m in ms if "ben@example.org" in to])
    assert len(told) == 1 and "you have a place in" in told[0]["Subject"]
    second.goto("/app")
    expect(second.locator("[data-promoted]")).to_have_text("place from the waiting list")
    second.goto("/app/classes")
    expect(second.locator(row)).to_contain_text("You are booked")
    assert not any("anna@example.org" in to for _f, to, _m in smtp.messages)
