"""The money pages in headless Chromium, on both backends (issue 20, "Pages"): a manager sets the
creditor details and creates a recurring plan, prepares the collection file for a day with a
planned SEPA debit, downloads it and marks it submitted, imports a CSV return for that debit after
its dry run; the owner sees the money charts; the desk is refused. Without a browser: errors
answer with a flash, never a 500, and the CSV downloads answer."""
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.core.actors import Actor, Role
from app.core.db import transaction
from app.dues import invoicing, sepa
from app.dues.invoicing import LineIn
from app.dues.models import Collection, DuesPayment, DuesSettings, Payer
from app.memberships.models import Plan
from tests.web.conftest import browser_sign_in, csrf_of, sign_in
from tests.web.test_browser import UNLABELLED_CONTROLS

expect = pytest.importorskip("playwright.sync_api").expect

CREDITOR_ID = "DE98ZZZ09999999999"
CREDITOR_IBAN = "DE89370400440532013000"
PAYER_IBAN = "DE45120300001234567890"


def _planned_debit(db, club_world, due_on, amount="49.90") -> str:
    """A payer with a mandate, an invoice and its planned SEPA collection (as the billing run
    leaves them); the collection's end-to-end id."""
    manager = Actor(user_id=club_world.manager.user_id, name="Manager",
                    club_id=club_world.club_id, role=Role.manager)
    with transaction(db.sessionmaker) as s:
        payer = Payer(club_id=club_world.club_id, name="Anna Berg", email="anna@example.test")
        s.add(payer)
        s.flush()
        mandate = sepa.create_mandate(s, actor=manager, payer_id=payer.id, iban=PAYER_IBAN,
                                      account_holder="Anna Berg",
                                      signed_on=club_world.today - timedelta(days=20))
        invoice = invoicing.issue_invoice(
            s, club_id=club_world.club_id, payer_id=payer.id, issued_on=club_world.today,
            due_on=due_on, method="sepa", lines=[LineIn(
                charge_key="dues:web:1", kind="dues", description="Monthly dues",
                gross=Decimal(amount))])
        e2e = f"RF-{club_world.club_id}-{invoice.number}-1"
        s.add(Collection(club_id=club_world.club_id, invoice_id=invoice.id, payer_id=payer.id,
                         attempt=1, method="sepa", amount=Decimal(amount), due_on=due_on,
                         status="planned", mandate_id=mandate.id, end_to_end_id=e2e))
    return e2e


def test_a_manager_sets_up_collects_and_imports_a_return(page, club_world, db):
    browser_sign_in(page, club_world.manager.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    expect(page.get_by_role("heading", name="Billing settings")).to_be_visible()
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    page.get_by_label("Legal name").fill("Riverside Fitness GmbH")
    page.get_by_label("Creditor identifier").fill("DE98 ZZZ0 9999 9999 99")
    page.get_by_label("Creditor name").fill("Riverside Fitness GmbH")
    page.get_by_label("Creditor IBAN").fill("DE89 3704 0044 0532 0130 00")
    page.get_by_label("Return fee").fill("3,50")
    page.get_by_role("button", name="Save billing settings").click()
    expect(page.locator(".flash.ok")).to_contain_text("billing settings are saved")
    expect(page.get_by_label("Creditor identifier")).to_have_value(CREDITOR_ID)
    with db.sessionmaker() as s:
        settings = s.scalars(select(DuesSettings).where(
            DuesSettings.club_id == club_world.club_id)).one()
        assert (settings.creditor_iban, settings.return_fee) == (CREDITOR_IBAN, Decimal("3.50"))

    page.get_by_role("navigation", name="Billing").get_by_role(
        "link", name="Recurring plans").click()
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    page.get_by_label("Name", exact=True).fill("Flex Monthly")
    page.get_by_label("Price per period").fill("39.90")
    page.get_by_label("Minimum term (months)").fill("12")
    page.get_by_label("Joining fee").fill("19.00")
    page.get_by_role("button", name="Create plan").click()
    expect(page.locator(".flash.ok")).to_contain_text("Flex Monthly is set up")
    expect(page.get_by_role("table")).to_contain_text("Flex Monthly")
    with db.sessionmaker() as s:
        plan = s.scalars(select(Plan).where(Plan.name == "Flex Monthly")).one()
        assert (plan.billing, plan.billing_period, plan.minimum_months, plan.joining_fee) == (
            "recurring", "month", 12, Decimal("19.00"))
    page.get_by_role("link", name="Flex Monthly").click()  # a price change with its day
    expect(page.get_by_role("heading", name="Terms of Flex Monthly")).to_be_visible()
    expect(page.get_by_label("Minimum term (months)")).to_have_value("12")
    change = club_world.today + timedelta(days=40)
    page.get_by_label("New price (optional)").fill("44.90")
    page.get_by_label("New price from").fill(change.isoformat())
    page.get_by_role("button", name="Save plan").click()
    expect(page.locator(".flash.ok")).to_contain_text("Flex Monthly is saved")
    expect(page.get_by_role("table")).to_contain_text("44.90 from")
    with db.sessionmaker() as s:
        plan = s.scalars(select(Plan).where(Plan.name == "Flex Monthly")).one()
        assert (plan.next_price, plan.next_price_from) == (Decimal("44.90"), change)

    day = club_world.today + timedelta(days=3)
    e2e = _planned_debit(db, club_world, day)
    page.goto(f"/manage/billing/collections?date={day.isoformat()}")
    expect(page.locator("#due tbody tr")).to_have_count(1)
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    expect(page.locator("#due")).to_contain_text("Anna Berg")
    expect(page.locator("#due")).to_contain_text("FRST")
    page.get_by_role("button", name="Prepare file").click()
    expect(page.locator(".flash.ok")).to_contain_text("holds 1 debit(s)")
    with page.expect_download() as download:
        page.locator("#files").get_by_role("link", name="Download XML").click()
    with open(download.value.path(), "rb") as f:
        content = f.read()
    assert content.startswith(b"<?xml")
    assert e2e.encode() in content
    page.locator("#files").get_by_role("button", name="Mark submitted").click()
    expect(page.locator(".flash.ok")).to_contain_text("marked submitted")
    expect(page.locator("#files")).to_contain_text("Submitted")

    page.get_by_role("navigation", name="Billing").get_by_role("link", name="Returns").click()
    csv = ("end_to_end_id,amount,reason_code,date\n"
           f"{e2e},49.90,AM04,{club_world.today.isoformat()}\n"
           f"NO-SUCH-DEBIT,10.00,AC04,{club_world.today.isoformat()}\n")
    page.get_by_label("Returns file").set_input_files(
        files=[{"name": "returns.csv", "mimeType": "text/csv", "buffer": csv.encode()}])
    page.get_by_role("button", name="Check the file").click()
    expect(page.get_by_role("heading", name=re.compile("Dry run of returns.csv"))).to_be_visible()
    expect(page.locator('[data-count="matched"]')).to_have_text("1")
    expect(page.locator('[data-count="unknown"]')).to_have_text("1")
    expect(page.locator('#returns tr[data-status="matched"]')).to_contain_text("Insufficient")
    with db.sessionmaker() as s:
        assert s.scalar(select(Collection.status).where(
            Collection.end_to_end_id == e2e)) == "submitted"  # nothing written
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".flash.ok")).to_contain_text("1 returned debit(s) imported")
    with db.sessionmaker() as s:
        collection = s.scalars(select(Collection).where(
            Collection.end_to_end_id == e2e)).one()
        assert (collection.status, collection.failure_code) == ("returned", "AM04")
        assert s.scalar(select(DuesPayment.amount).where(
            DuesPayment.event_key == f"return:{e2e}")) == Decimal("-49.90")


def test_the_owner_sees_the_money_charts_and_downloads(page, club_world):
    browser_sign_in(page, club_world.owner.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Money").click()
    expect(page.get_by_role("heading", name="Money", exact=True)).to_be_visible()
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    for chart in ("chart-mrr", "chart-mrr-movement", "chart-revenue", "chart-receivables",
                  "chart-collections", "chart-churn"):
        expect(page.locator(f'svg[data-chart="{chart}"]')).to_be_visible()
    links = page.locator("a.csv")
    expect(links).to_have_count(5)
    hrefs = [links.nth(i).get_attribute("href") for i in range(5)]
    assert [h.split("?")[0] for h in hrefs] == [
        f"/owner/money/csv/{name}.csv"
        for name in ("mrr", "revenue", "receivables", "collections", "churn")]
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename.startswith("accounting-")


def test_the_desk_is_refused_the_money_pages(page, club_world):
    browser_sign_in(page, club_world.desk.email)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Billing")).to_have_count(0)
    expect(nav.get_by_role("link", name="Money")).to_have_count(0)
    for path in ("/manage/billing", "/manage/billing/collections", "/owner/money"):
        answer = page.goto(path)
        assert answer.status == 403, path
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()


# --- without a browser -----------------------------------------------------------------------------

def _post(web, path: str, data: dict, files=None):
    token = csrf_of(web.get("/manage/billing").text)
    return web.post(path, data={"csrf_token": token, **data}, files=files,
                    follow_redirects=True)


def test_mistakes_answer_with_a_flash_in_words(web, club_world):
    sign_in(web, club_world.manager.email)
    answer = _post(web, "/manage/billing", {"creditor_id": "DE00ZZZ123", "back": "/manage/billing"})
    assert answer.status_code == 200
    assert 'class="flash error"' in answer.text and "creditor identifier" in answer.text
    answer = _post(web, "/manage/billing", {"invoice_number_format": "INV-0000"})
    assert "must contain {seq}" in answer.text
    answer = _post(web, "/manage/billing", {"creditor_iban": "DE00123"})
    assert "The IBAN" in answer.text and "is not valid" in answer.text
    answer = _post(web, "/manage/billing/plans", {"name": "Bad", "price": "ten"})
    assert answer.status_code == 200 and "Price" in answer.text
    answer = _post(web, "/manage/billing/plans", {
        "name": "Bad", "price": "10", "billing_period": "month", "next_price": "12"})
    assert "New price from" in answer.text
    day = (club_world.today + timedelta(days=2)).isoformat()
    answer = _post(web, "/manage/billing/collections", {"collection_date": day})
    assert answer.status_code == 200 and "creditor identifier, creditor name" in answer.text
    answer = _post(web, "/manage/billing/returns", {},
                   files={"file": ("returns.xml", b"<not-camt/>", "application/xml")})
    assert answer.status_code == 200 and 'class="flash error"' in answer.text
    assert web.get("/manage/billing/returns/" + "x" * 30).status_code == 404
    assert web.get("/owner/money/export.csv").status_code == 422


@pytest.mark.parametrize("path", [f"/owner/money/csv/{name}.csv" for name in (
    "mrr", "revenue", "receivables", "collections", "churn")]
    + ["/owner/money/export.csv?month=2026-01", "/owner/money/export.csv?month=2026-01&format=datev"])
def test_money_downloads_are_csv_and_no_store(web, club_world, path):
    sign_in(web, club_world.owner.email)
    r = web.get(path)
    assert r.status_code == 200, (path, r.text[:300])
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["cache-control"] == "no-store"


def test_the_manager_sets_the_stripe_keys_which_are_never_shown_again(web, club_world, db):
    from app.dues import terms

    sign_in(web, club_world.manager.email)
    page = web.get("/manage/billing").text
    assert "Cards on file (Stripe)" in page and "not set" in page
    assert f"/api/v1/dues/stripe/webhook/{club_world.club_id}" in page
    _post(web, "/manage/billing", {"stripe_secret_key": "sk_test_abc123",
                                   "stripe_webhook_secret": "whsec_xyz"})
    page = web.get("/manage/billing").text
    assert "sk_test_abc123" not in page and "whsec_xyz" not in page
    assert "(set)" in page and "Remove both Stripe keys" in page
    with db.sessionmaker() as s:
        row = terms.settings_for(s, club_world.club_id)
        assert (row.stripe_secret_key, row.stripe_webhook_secret) == ("sk_test_abc123", "whsec_xyz")
    _post(web, "/manage/billing", {"legal_name": "Riverside GmbH"})  # empty key fields keep them
    with db.sessionmaker() as s:
        assert terms.settings_for(s, club_world.club_id).stripe_secret_key == "sk_test_abc123"
    _post(web, "/manage/billing", {"stripe_remove": "on"})
    with db.sessionmaker() as s:
        row = terms.settings_for(s, club_world.club_id)
        assert (row.stripe_secret_key, row.stripe_webhook_secret) == (None, None)
