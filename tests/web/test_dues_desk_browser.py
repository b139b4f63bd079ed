"""The desk's side of recurring dues, from the member card (issue 20, pages): take a SEPA mandate,
sell a recurring contract paid by it, see the payment panel, take a payment of the invoice the
billing run issued, cancel the contract — in headless Chromium on both backends; a bad IBAN;
and, through the TestClient, another club's invoice and pages, and a card link's QR code."""
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.core.actors import Actor, Role
from app.core.config import Settings
from app.core.db import transaction
from app.dues import dunning, run
from app.dues.models import Contract, DuesPayment, DuesSettings, Mandate, Payer, StoredCard
from app.memberships import service as memberships_service
from app.memberships.rules import add_months
from app.memberships.schemas import PlanCreate
from app.web.kit import fmt_day
from tests.dues.stripe_standin import StripeStandin
from tests.web.conftest import browser_sign_in, csrf_of, sign_in

expect = pytest.importorskip("playwright.sync_api").expect

IBAN = "DE89 3704 0044 0532 0130 00"  # Commerzbank Köln
CREDITOR_ID = "DE98ZZZ09999999999"
SK = "sk_test_riverside"


def _recurring_plan(db, club_world) -> int:
    """Flex 12: 49.00 a month, 12 months minimum, 1 month's notice, 29.00 joining fee; and the
    club set up for direct debit."""
    boss = Actor(user_id=club_world.owner.user_id, name="Owner", club_id=club_world.club_id,
                 role=Role.owner)
    with transaction(db.sessionmaker) as s:
        s.add(DuesSettings(club_id=club_world.club_id, legal_name="Riverside Fitness GmbH",
                           creditor_id=CREDITOR_ID, creditor_name="Riverside Fitness GmbH",
                           stripe_secret_key=SK))
        return memberships_service.create_plan(s, actor=boss, data=PlanCreate(
            name="Flex 12", price=Decimal("49.00"), billing="recurring", billing_period="month",
            minimum_months=12, notice_value=1, notice_unit="months", renewal="monthly",
            joining_fee=Decimal("29.00"))).id


def _count(db, model) -> int:
    with db.sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_the_desk_takes_a_mandate_sells_a_contract_takes_a_payment_and_cancels(
        page, club_world, db):
    plan_id = _recurring_plan(db, club_world)
    dora, today = club_world.members["dora"], club_world.today
    browser_sign_in(page, club_world.desk.email)
    page.goto(f"/desk/members/{dora}")
    page.get_by_role("link", name="Contract and payments →").click()
    expect(page).to_have_url(re.compile(rf"/desk/members/{dora}/payments$"))
    expect(page.get_by_text("No running contract.")).to_be_visible()

    page.get_by_label("IBAN").fill(IBAN)  # the account holder defaults to the member's name
    page.get_by_role("button", name="Take mandate").click()
    expect(page.locator(".flash.ok")).to_contain_text("Mandate taken")
    expect(page.locator(".flash.ok")).to_contain_text("DE89 **** 3000")
    with db.sessionmaker() as s:
        reference = s.scalar(select(Mandate.reference))

    page.get_by_label("Recurring plan").select_option(str(plan_id))
    expect(page.get_by_label("Start")).to_have_value(today.isoformat())
    page.get_by_label("Payment method").select_option("sepa")
    page.get_by_role("button", name="Sell contract").click()
    expect(page.locator(".flash.ok")).to_contain_text("Contract sold")
    panel = page.locator("[data-panel]")
    expect(panel.locator("[data-method]")).to_have_text("SEPA direct debit")
    expect(panel.locator("[data-payer]")).to_have_text("Dora Prospect")
    expect(panel.locator("[data-mandate]")).to_contain_text(f"DE89 **** 3000 · reference {reference}")
    expect(panel.locator("[data-next-charge]")).to_have_text(f"{fmt_day(today)}: €78.00")

    form = page.get_by_role("link", name="Print mandate form")
    page.goto(form.get_attribute("href"))  # the printable form, for the payer to sign
    expect(page.get_by_text("SEPA Direct Debit Mandate / SEPA-Lastschriftmandat")).to_be_visible()
    expect(page.locator("body")).to_contain_text(reference)
    expect(page.locator("body")).to_contain_text(CREDITOR_ID)

    result = run.run_billing(db.sessionmaker, club_id=club_world.club_id, day=today)
    assert result.invoices == 1
    page.goto(f"/desk/members/{dora}/payments")
    row = page.locator("tr[data-invoice]")
    expect(row).to_have_count(1)
    expect(row.locator("[data-open]")).to_have_text("€78.00")
    amount = row.get_by_label("Amount")
    expect(amount).to_have_value("78.00")
    amount.fill("30.00")
    row.get_by_label("Paid by").select_option("cash")
    row.get_by_role("button", name="Take payment").click()
    expect(page.locator(".flash.ok")).to_contain_text("€30.00 by cash")
    expect(page.locator(".flash.ok")).to_contain_text("€48.00 is still open")
    row = page.locator("tr[data-invoice]")
    expect(row.locator("[data-open]")).to_have_text("€48.00")
    row.get_by_label("Paid by").select_option("card_terminal")
    row.get_by_role("button", name="Take payment").click()
    expect(page.locator(".flash.ok")).to_contain_text("nothing is left open")
    expect(page.locator("tr[data-invoice]")).to_have_count(0)
    expect(page.locator("[data-next-charge]")).to_contain_text("€49.00")

    ends = add_months(today, 12) - timedelta(days=1)  # within the minimum term: its end
    page.locator("summary", has_text="Cancel contract").click()
    expect(page.get_by_label("Cancellation received on")).to_have_value(today.isoformat())
    expect(page.locator("[data-contract]")).to_contain_text(f"it ends on {fmt_day(ends)}")
    page.locator("form[action$='/cancel']").get_by_role("button").click()
    expect(page.locator(".flash.ok")).to_contain_text(
        f"Contract cancelled Received on {fmt_day(today)}: the contract ends on {fmt_day(ends)}")
    expect(page.locator("[data-ends-on]")).to_have_text(f"ends on {fmt_day(ends)}")
    with db.sessionmaker() as s:
        contract = s.scalars(select(Contract)).one()
        assert (contract.ends_on, contract.method, contract.cancel_channel) == (
            ends, "sepa", "desk")
        assert sorted(p.amount for p in s.scalars(select(DuesPayment))) == [
            Decimal("30.00"), Decimal("48.00")]


def test_a_bad_iban_is_refused_with_the_reason_and_nothing_is_written(page, club_world, db):
    emil = club_world.members["emil"]
    browser_sign_in(page, club_world.desk.email)
    page.goto(f"/desk/members/{emil}/payments")
    page.get_by_label("IBAN").fill("DE00 3704 0044 0532 0130 00")
    page.get_by_role("button", name="Take mandate").click()
    flash = page.locator(".flash.error")
    expect(flash).to_contain_text("The IBAN 'DE00 3704 0044 0532 0130 00' is not valid")
    expect(flash).to_contain_text(re.compile("checksum", re.IGNORECASE))
    expect(page).to_have_url(re.compile(rf"/desk/members/{emil}/payments$"))
    assert (_count(db, Mandate), _count(db, Payer)) == (0, 0)


def test_another_clubs_invoice_cannot_be_paid_nor_its_pages_opened(web, club_world, world, db):
    anna = club_world.members["anna"]
    invoice_id = world.failed_dues(club_world.club_id, anna,
                                   failed_on=club_world.today - timedelta(days=1))
    other = world.club(name="Other Gym")
    intruder = world.staff(other, Role.front_desk)
    before = _count(db, DuesPayment)
    sign_in(web, intruder.email)
    token = csrf_of(web.get("/desk").text)
    answer = web.post(f"/desk/invoices/{invoice_id}/payments",
                      data={"csrf_token": token, "amount": "49.00", "method": "cash"})
    assert "Invoice not found" in answer.text
    assert _count(db, DuesPayment) == before
    assert web.get(f"/desk/members/{anna}/payments").status_code == 404
    with db.sessionmaker() as s:
        payer_id = s.scalar(select(Payer.id))
    answer = web.post(f"/desk/members/{anna}/mandates",
                      data={"csrf_token": token, "account_holder": "X", "iban": IBAN,
                            "payer_id": str(payer_id)})
    assert "not found" in answer.text and _count(db, Mandate) == 0


def test_the_panel_shows_the_payment_problem_and_the_open_invoice(web, club_world, world, db):
    anna, today = club_world.members["anna"], club_world.today
    failed = today - timedelta(days=7)
    world.failed_dues(club_world.club_id, anna, failed_on=failed, reminder_days=3)
    for day in range(7, -1, -1):  # the daily runs since the failure (one reminder a day at most)
        with transaction(db.sessionmaker) as s:
            dunning.advance_dunning(s, club_id=club_world.club_id, day=today - timedelta(days=day))
    sign_in(web, club_world.desk.email)
    html = web.get(f"/desk/members/{anna}/payments").text
    assert f"Owes 49.00 since {dunning.nice_day(failed, today)}, 2nd reminder sent" in html
    assert re.search(r'data-open>€49\.00<', html)
    assert 'value="49.00"' in html  # the payment form offers what is open


# --- a card link, against the local stand-in of Stripe's API ---------------------------------------

@pytest.fixture
def standin():
    with StripeStandin(SK) as server:
        yield server


@pytest.fixture
def settings(db, standin, tmp_path_factory) -> Settings:
    return Settings(database_url=db.url, scheduler_enabled=False, _env_file=None,
                    data_dir=tmp_path_factory.getbasetemp() / "data",
                    stripe_api_base=standin.url, stripe_network_retries=0, stripe_timeout=5)


def test_the_desk_sends_a_card_link_and_shows_its_qr_code(web, club_world, db):
    _recurring_plan(db, club_world)
    anna = club_world.members["anna"]
    sign_in(web, club_world.desk.email)
    token = csrf_of(web.get(f"/desk/members/{anna}/payments").text)
    answer = web.post(f"/desk/members/{anna}/cards", data={"csrf_token": token},
                      follow_redirects=False)
    assert answer.status_code == 303, answer.text
    with db.sessionmaker() as s:
        card = s.scalars(select(StoredCard)).one()
    assert answer.headers["location"] == f"/desk/cards/{card.id}?member={anna}"
    shown = web.get(answer.headers["location"])
    assert shown.status_code == 200
    assert "Card link" in shown.text and 'data-card-status="pending"' in shown.text
    assert 'src="data:image/svg+xml;base64,' in shown.text
    link = re.search(r"data-card-link[^>]*>([^<]+)<", shown.text).group(1)
    assert link.startswith("https://checkout.stripe.com/c/pay/")
    with db.sessionmaker() as s:
        assert link.endswith(s.scalars(select(StoredCard)).one().setup_ref)
