"""Fixtures for the pages: a small club built through the services, a TestClient with the pages
installed, a live uvicorn server in a thread and headless Debian Chromium driven by Playwright.

The browser is never downloaded: Playwright launches /usr/bin/chromium.
"""
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core.actors import Actor, Role
from app.core.db import transaction
from app.inventory import service as inventory_service
from app.inventory.schemas import ProductCreate
from app.memberships import service as memberships_service
from app.memberships.schemas import PlanCreate
from tests.builders import PASSWORD, Staff
from tests.core.live import serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]*)"')


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


@dataclass
class ClubWorld:
    """A club with staff of every role, two plans, members in every state and a café."""

    club_id: int
    today: date
    owner: Staff
    manager: Staff
    desk: Staff
    trainer: Staff
    plans: dict[str, int] = field(default_factory=dict)
    members: dict[str, int] = field(default_factory=dict)
    products: dict[str, int] = field(default_factory=dict)


def _actor(staff: Staff, role: Role, name: str = "Test") -> Actor:
    return Actor(user_id=staff.user_id, name=name, club_id=staff.club_id, role=role)


@pytest.fixture
def club_world(world, db) -> ClubWorld:
    """Members: Anna Schmidt (active), Bert Expired (expired), Clara Soon (expires in 3 days),
    Dora Prospect (never bought), Emil Debtor (active, owes money), Frank Schmidt (prospect).
    Café: a protein bar, 10 in stock."""
    club = world.club(name="Riverside Fitness")
    owner = world.staff(club, Role.owner)
    manager = world.staff(club, Role.manager)
    desk = world.staff(club, Role.front_desk)
    trainer = world.staff(club, Role.trainer)
    boss = _actor(owner, Role.owner)
    with transaction(db.sessionmaker) as s:
        today = clubs_service.club_today(s.get(Club, club.id))
        plans = {
            "monthly": memberships_service.create_plan(s, actor=boss, data=PlanCreate(
                name="Monthly Unlimited", duration_days=30, price=Decimal("49.00"),
                freeze_days=14)).id,
            "ten": memberships_service.create_plan(s, actor=boss, data=PlanCreate(
                name="10 Visits", duration_days=90, price=Decimal("80.00"), visit_limit=10)).id,
        }
    members = {
        "anna": world.enrol(club, "Anna", "Schmidt", phone="+49 151 1234 5678",
                            email="anna@example.com", card="AA11"),
        "bert": world.enrol(club, "Bert", "Expired", card="BB22"),
        "clara": world.enrol(club, "Clara", "Soon"),
        "dora": world.enrol(club, "Dora", "Prospect", email="dora@example.com"),
        "emil": world.enrol(club, "Emil", "Debtor"),
        "frank": world.enrol(club, "Frank", "Schmidt"),
    }
    with transaction(db.sessionmaker) as s:

        def sell(member: str, start: date, paid: bool = True):
            sold = memberships_service.sell_membership(s, actor=boss,
                                                       member_id=members[member],
                                                       plan_id=plans["monthly"],
                                                       start_date=start)
            if paid:
                from app.billing import service as billing_service

                billing_service.add_payment(s, actor=boss, sale_id=sold.sale.id, method="card",
                                            amount=sold.sale.total)
            return sold

        sell("anna", today - timedelta(days=5))
        sell("bert", today - timedelta(days=60))
        sell("clara", today - timedelta(days=27))
        sell("emil", today - timedelta(days=3), paid=False)
        bar = inventory_service.create_product(s, actor=boss, data=ProductCreate(
            sku="BAR-1", name="Protein bar", category="snacks", sale_price=Decimal("2.50"),
            reorder_level=3))
        inventory_service.receive_stock(s, actor=boss, product_id=bar.id, quantity=10,
                                        unit_cost=Decimal("1.10"))
        products = {"bar": bar.id}
    return ClubWorld(club.id, today, owner, manager, desk, trainer, plans, members, products)


# --- the app with its pages ---------------------------------------------------------------------

@pytest.fixture
def web_app(app):
    """The app from `create_app` with the pages installed (a no-op once create_app does it)."""
    from app.web.router import install

    install(app)
    return app


@pytest.fixture
def web(web_app) -> Iterator[TestClient]:
    with TestClient(web_app) as client:
        yield client


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    answer = client.post("/login", data={"email": email, "password": password,
                                         "csrf_token": csrf_of(page.text)},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text


# --- a live server and a browser -------------------------------------------------------------------

@pytest.fixture
def live_server(web_app) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, in a background thread."""
    with serve(web_app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    import os

    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's Chromium is not installed (make browser)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser tab (tablet-sized) on the live server; JS errors fail the test."""
    context = browser.new_context(base_url=live_server, viewport={"width": 1180, "height": 820})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text)
           if msg.type == "error" and "Failed to load resource" not in msg.text else None)
    yield tab
    context.close()
    assert not errors, f"errors in the browser: {errors}"


def browser_sign_in(tab, email: str, password: str = PASSWORD) -> None:
    tab.goto("/login")
    tab.get_by_label("Email").fill(email)
    tab.get_by_label("Password").fill(password)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_load_state()
