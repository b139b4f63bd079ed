"""The pages over TestClient: the desk's actions, tasks, stock, trainers, playbook and CSV."""
import csv
import io
import re
from datetime import timedelta
from decimal import Decimal
from math import ceil

from sqlalchemy import select

from app.billing import service as billing_service
from app.core.actors import Actor, Role
from app.core.db import transaction
from app.crm import service as crm_service
from app.crm.schemas import TaskCreate
from app.inventory import service as inventory_service
from app.members.models import MemberNote
from app.retention.models import TouchpointDefinition
from tests.web.conftest import csrf_of, sign_in


def _flash(html: str) -> str:
    match = re.search(r'<div class="flash (\w+)"[^>]*>\s*(.*?)\s*</div>', html, re.DOTALL)
    return f"{match.group(1)}: {re.sub(r'<[^>]+>', '', match.group(2))}" if match else ""


def test_desk_search_partial_finds_part_of_a_name(web, club_world):
    sign_in(web, club_world.desk.email)
    answer = web.get("/desk/search", params={"q": "schm"})
    assert answer.status_code == 200
    assert "Anna Schmidt" in answer.text and "Frank Schmidt" in answer.text
    assert "Bert" not in answer.text
    assert answer.text.index("Anna Schmidt") < answer.text.index("Frank Schmidt")
    assert f'data-href="/desk/members/{club_world.members["anna"]}"' in answer.text
    assert "<html" not in answer.text  # a fragment
    assert "No member matches" in web.get("/desk/search", params={"q": "zzzz"}).text


def test_desk_without_javascript_searches_on_submit(web, club_world):
    sign_in(web, club_world.desk.email)
    page = web.get("/desk", params={"q": "BB22"})  # a card code
    assert "Bert Expired" in page.text
    assert "autofocus" in page.text
    assert "Shift</kbd>+<kbd>Enter</kbd> check in" in page.text


def test_member_card_shows_status_colours(web, club_world):
    sign_in(web, club_world.desk.email)
    members = club_world.members

    def status(member: str) -> list[str]:
        html = web.get(f"/desk/members/{members[member]}").text
        return re.findall(r'data-status="(\w+)"', html)

    assert status("anna") == ["active"]
    assert status("bert") == ["expired"]
    assert status("clara") == ["expiring"]
    assert status("dora") == ["none"]
    assert status("emil") == ["active", "debt"]
    assert "Expires in 3 days" in web.get(f"/desk/members/{members['clara']}").text
    assert "Debt €49.00" in web.get(f"/desk/members/{members['emil']}").text


def test_check_in_and_denial_reason(web, club_world):
    sign_in(web, club_world.desk.email)
    anna, bert = club_world.members["anna"], club_world.members["bert"]
    page = web.get(f"/desk/members/{anna}")
    done = web.post(f"/desk/members/{anna}/check-in", data={"csrf_token": csrf_of(page.text)})
    assert "ok: Checked in Welcome, Anna!" in _flash(done.text)
    page = web.get(f"/desk/members/{bert}")
    denied = web.post(f"/desk/members/{bert}/check-in", data={"csrf_token": csrf_of(page.text)})
    assert _flash(denied.text).startswith("error: Denied: Membership expired Membership expired on")
    events = web.get("/desk/events").text
    assert "Anna Schmidt" in events and "Membership expired" in events


def test_front_desk_cannot_override_a_denial(web, club_world):
    sign_in(web, club_world.desk.email)
    bert = club_world.members["bert"]
    page = web.get(f"/desk/members/{bert}")
    assert "Let in despite a denial" not in page.text
    answer = web.post(f"/desk/members/{bert}/check-in",
                      data={"csrf_token": csrf_of(page.text), "override_reason": "friend"})
    assert "Only a manager or owner" in _flash(answer.text)


def test_sell_a_membership_and_take_the_payment(web, club_world, db):
    sign_in(web, club_world.desk.email)
    dora = club_world.members["dora"]
    page = web.get(f"/desk/members/{dora}")
    key = re.search(r'name="key" value="([\w-]+)"', page.text).group(1)
    form = {"csrf_token": csrf_of(page.text), "plan_id": club_world.plans["monthly"],
            "method": "card", "key": key}
    answer = web.post(f"/desk/members/{dora}/memberships", data=form)
    assert "Membership sold" in _flash(answer.text) and "paid by card" in _flash(answer.text)
    assert 'data-status="active"' in answer.text
    again = web.post(f"/desk/members/{dora}/memberships", data=form)  # a double submit
    assert "already recorded" in _flash(again.text)
    with transaction(db.sessionmaker) as s:
        sales, total = billing_service.member_sales(s, club_id=club_world.club_id,
                                                    member_id=dora)
        assert total == 1 and sales[0].debt == 0


def test_selling_an_overlapping_membership_explains_why(web, club_world):
    sign_in(web, club_world.desk.email)
    anna = club_world.members["anna"]
    page = web.get(f"/desk/members/{anna}")
    answer = web.post(f"/desk/members/{anna}/memberships", data={
        "csrf_token": csrf_of(page.text), "plan_id": club_world.plans["monthly"],
        "method": "cash"})
    assert answer.url.path == f"/desk/members/{anna}"
    assert "overlaps" in _flash(answer.text)


def test_renew_and_freeze(web, club_world):
    sign_in(web, club_world.desk.email)
    clara = club_world.members["clara"]
    page = web.get(f"/desk/members/{clara}")
    membership_id = re.search(r'/desk/memberships/(\d+)/renew', page.text).group(1)
    answer = web.post(f"/desk/memberships/{membership_id}/renew", data={
        "csrf_token": csrf_of(page.text), "method": "later"})
    assert "Membership renewed" in _flash(answer.text) and "debt" in _flash(answer.text)
    anna = club_world.members["anna"]
    page = web.get(f"/desk/members/{anna}")
    membership_id = re.search(r'/desk/memberships/(\d+)/freeze', page.text).group(1)
    today = club_world.today
    answer = web.post(f"/desk/memberships/{membership_id}/freeze", data={
        "csrf_token": csrf_of(page.text), "start_date": (today + timedelta(days=1)).isoformat(),
        "end_date": (today + timedelta(days=7)).isoformat(), "reason": "holiday"})
    assert "Frozen 7 days" in _flash(answer.text)
    page = web.get(f"/desk/members/{anna}")
    answer = web.post(f"/desk/memberships/{membership_id}/freeze", data={
        "csrf_token": csrf_of(page.text), "start_date": (today + timedelta(days=8)).isoformat(),
        "end_date": (today + timedelta(days=20)).isoformat()})
    assert "freeze days are left" in _flash(answer.text)


def test_sell_a_cafe_item(web, club_world, db):
    sign_in(web, club_world.desk.email)
    anna, bar = club_world.members["anna"], club_world.products["bar"]
    page = web.get(f"/desk/members/{anna}")
    assert "Protein bar — €2.50 (10 left)" in page.text
    answer = web.post(f"/desk/members/{anna}/cafe", data={
        "csrf_token": csrf_of(page.text), "product_id": bar, "quantity": 2, "method": "cash"})
    assert "Café sale" in _flash(answer.text) and "€5.00 paid by cash" in _flash(answer.text)
    with transaction(db.sessionmaker) as s:
        assert inventory_service.read_product(s, club_id=club_world.club_id,
                                              product_id=bar).on_hand == 8
    page = web.get(f"/desk/members/{anna}")
    answer = web.post(f"/desk/members/{anna}/cafe", data={
        "csrf_token": csrf_of(page.text), "product_id": bar, "quantity": 50, "method": "cash"})
    assert "Not enough Protein bar" in _flash(answer.text)


def test_bad_form_values_come_back_as_a_message(web, club_world):
    sign_in(web, club_world.desk.email)
    anna = club_world.members["anna"]
    page = web.get(f"/desk/members/{anna}")
    answer = web.post(f"/desk/members/{anna}/cafe", data={
        "csrf_token": csrf_of(page.text), "product_id": "x", "quantity": 0, "method": "gold",
        "back": f"/desk/members/{anna}"})
    assert answer.url.path == f"/desk/members/{anna}"
    assert _flash(answer.text).startswith("error: Please check the input")


def test_unknown_member_is_a_404_page(web, club_world):
    sign_in(web, club_world.desk.email)
    answer = web.get("/desk/members/987654")
    assert answer.status_code == 404 and "Member not found" in answer.text
    assert web.get("/desk/members/99999999999999999999").status_code == 422


def test_notes(web, club_world, db):
    sign_in(web, club_world.desk.email)
    anna = club_world.members["anna"]
    page = web.get(f"/desk/members/{anna}")
    answer = web.post(f"/desk/members/{anna}/notes", data={
        "csrf_token": csrf_of(page.text), "text": "Prefers <b>mornings</b>"})
    assert "Note added" in _flash(answer.text)
    assert "Prefers &lt;b&gt;mornings&lt;/b&gt;" in answer.text  # escaped
    with transaction(db.sessionmaker) as s:
        assert s.scalar(select(MemberNote.staff_id)) == club_world.desk.user_id


def test_tasks_overdue_first_and_complete(web, club_world, db):
    boss = Actor(club_world.owner.user_id, "Owner", club_world.club_id, Role.owner)
    with transaction(db.sessionmaker) as s:
        old = crm_service.create_task(s, actor=boss, data=TaskCreate(
            title="Call Clara about renewing", details="Hello Clara, your membership ends soon",
            kind="renewal_offer", member_id=club_world.members["clara"],
            assignee_role="front_desk", due_date=club_world.today - timedelta(days=2)))
        crm_service.create_task(s, actor=boss, data=TaskCreate(
            title="Congratulate Anna", kind="congratulate", member_id=club_world.members["anna"],
            assignee_role="front_desk"))
        crm_service.create_task(s, actor=boss, data=TaskCreate(
            title="Trainer only", kind="trainer", assignee_role="trainer"))
    sign_in(web, club_world.desk.email)
    page = web.get("/tasks")
    text = page.text
    assert text.index("Call Clara") < text.index("Congratulate Anna")
    assert "Trainer only" not in text
    assert "Hello Clara, your membership ends soon" in text
    assert "Reached — will renew" in text
    answer = web.post(f"/tasks/{old.id}/complete", data={
        "csrf_token": csrf_of(text), "outcome": "Reached — will renew", "note": "Friday"})
    assert "Task done" in _flash(answer.text)
    assert f'id="task-{old.id}"' not in answer.text
    card = web.get(f"/desk/members/{club_world.members['clara']}").text
    assert "Call Clara about renewing: Reached — will renew: Friday" in card  # the timeline


def test_stock_page_receipt_and_write_off(web, club_world, db):
    sign_in(web, club_world.manager.email)
    bar = club_world.products["bar"]
    page = web.get("/manage/stock")
    assert page.status_code == 200 and "Protein bar" in page.text
    key = re.search(r'name="key" value="([\w-]+)"', page.text).group(1)
    form = {"csrf_token": csrf_of(page.text), "product_id": bar, "quantity": 8,
            "reason": "damaged", "key": key}
    answer = web.post("/manage/stock/write-offs", data=form)
    assert "2 on hand" in _flash(answer.text)
    assert 'class="low"' in answer.text  # now at or below the reorder level
    assert "already booked" in _flash(web.post("/manage/stock/write-offs", data=form).text)
    page = web.get("/manage/stock")
    answer = web.post("/manage/stock/receipts", data={
        "csrf_token": csrf_of(page.text), "product_id": bar, "quantity": 24,
        "unit_cost": "1.20", "supplier": "Snack Co"})
    assert "26 on hand" in _flash(answer.text)
    with transaction(db.sessionmaker) as s:
        assert inventory_service.read_product(s, club_id=club_world.club_id,
                                              product_id=bar).on_hand == 26


def test_trainers_week(web, club_world, db):
    from app.trainers import service as trainers_service
    from app.trainers.schemas import HoursSet, TrainerCreate

    boss = Actor(club_world.owner.user_id, "Owner", club_world.club_id, Role.owner)
    with transaction(db.sessionmaker) as s:
        trainer = trainers_service.create_trainer(s, actor=boss, data=TrainerCreate(
            user_id=club_world.trainer.user_id, specialities=["strength"]))
        trainers_service.set_hours(s, actor=boss, trainer_id=trainer.id, data=HoursSet(
            intervals=[{"weekday": 1, "start": "09:00", "end": "13:00"},
                       {"weekday": 3, "start": "15:00", "end": "21:00"}]))
    sign_in(web, club_world.manager.email)
    page = web.get("/manage/trainers")
    assert page.status_code == 200
    assert "09:00–13:00" in page.text and "strength" in page.text
    assert web.get("/manage/trainers", params={"week": "2026-01-07"}).status_code == 200


def test_playbook_edit_preview_and_toggle(web, club_world, db):
    sign_in(web, club_world.owner.email)
    page = web.get("/owner/playbook")
    assert page.status_code == 200 and "Welcome" in page.text
    with transaction(db.sessionmaker) as s:
        welcome = s.scalar(select(TouchpointDefinition).where(
            TouchpointDefinition.club_id == club_world.club_id,
            TouchpointDefinition.key == "welcome"))
    edit = web.get(f"/owner/playbook/{welcome.id}")
    token = csrf_of(edit.text)
    preview = web.post(f"/owner/playbook/{welcome.id}/preview", headers={
        "X-CSRF-Token": token, "X-Requested-With": "fetch"}, data={
        "member_id": club_world.members["anna"], "subject_template": "Hi {{ member.first_name }}",
        "body_template": "<b>{{ member.name }}</b> at {{ club.name }}"})
    assert preview.status_code == 200
    assert "Hi Anna" in preview.text
    assert "&lt;b&gt;Anna Schmidt&lt;/b&gt; at Riverside Fitness" in preview.text
    broken = web.post(f"/owner/playbook/{welcome.id}/preview", headers={
        "X-CSRF-Token": token, "X-Requested-With": "fetch"}, data={
        "member_id": club_world.members["anna"], "subject_template": "Hi",
        "body_template": "{{ member.nope }}"})
    assert broken.status_code == 422 and "nope" in broken.text
    with transaction(db.sessionmaker) as s:  # the draft was never saved
        assert s.get(TouchpointDefinition, welcome.id).body_template == welcome.body_template
    saved = web.post(f"/owner/playbook/{welcome.id}", data={
        "csrf_token": token, "name": "Welcome!", "subject_template": "Welcome {{ member.first_name }}",
        "body_template": "Hello {{ member.first_name }}", "holdout_pct": "20", "enabled": "on"})
    assert "Welcome! saved" in _flash(saved.text)
    with transaction(db.sessionmaker) as s:
        row = s.get(TouchpointDefinition, welcome.id)
        assert (row.name, row.holdout_share, row.enabled) == ("Welcome!", 0.2, True)
    toggled = web.post(f"/owner/playbook/{welcome.id}/toggle", data={
        "csrf_token": token, "enabled": "off"})
    assert "Welcome! disabled" in _flash(toggled.text)


def test_dashboard_renders_for_managers(web, club_world):
    sign_in(web, club_world.manager.email)
    page = web.get("/owner")
    assert page.status_code == 200
    for chart in ("chart-renewals", "chart-retention", "chart-base", "chart-cohorts",
                  "chart-touchpoints", "chart-trainers"):
        assert f'data-chart="{chart}"' in page.text
    assert "<details><summary>Numbers</summary>" in page.text
    assert 'id="co-h">Offers after a cancellation: did members stay?' in page.text
    by_plan = web.get("/owner", params={"by": "attendance"})
    assert by_plan.status_code == 200 and "Renewals by attendance band" in by_plan.text
    by_dues = web.get("/owner", params={"by": "dues"})
    assert by_dues.status_code == 200 and "Renewals by how it ended (unpaid dues)" in by_dues.text
    assert web.get("/owner", params={"by": "nonsense"}).status_code == 422


def test_csv_downloads_under_the_cookie_session(web, club_world):
    sign_in(web, club_world.owner.email)
    for name in ("renewals", "renewals-breakdown", "retention-monthly", "cohorts",
                 "touchpoints", "cancel-offers", "kpis", "trainers", "cafe-stock", "cafe-sales",
                 "low-stock"):
        answer = web.get(f"/owner/csv/{name}.csv")
        assert answer.status_code == 200, name
        assert answer.headers["content-type"].startswith("text/csv")
        assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(web.get("/owner/csv/cafe-stock.csv").text)))
    assert rows[0]["sku"] == "BAR-1" and Decimal(rows[0]["value"]) == Decimal("11.00")
    assert web.get("/owner/csv/secrets.csv").status_code == 404


def test_the_dashboard_csv_is_the_analytics_api_s(web, club_world):
    """One writer (app.analytics.csvexport): the same period gives the same file either way."""
    sign_in(web, club_world.owner.email)
    period = {"from": (club_world.today - timedelta(days=120)).isoformat(),
              "to": club_world.today.isoformat()}
    for page, api in (("renewals", "renewals"), ("renewals-breakdown", "renewals/breakdown"),
                      ("retention-monthly", "retention/monthly"), ("cohorts", "retention/cohorts"),
                      ("touchpoints", "touchpoints"), ("kpis", "kpis")):
        mine = web.get(f"/owner/csv/{page}.csv", params={**period, "by": "plan"})
        theirs = web.get(f"/api/v1/analytics/{api}", headers=club_world.owner.headers,
                         params={**period, "by": "plan", "format": "csv"})
        assert mine.status_code == theirs.status_code == 200, (page, theirs.text)
        assert mine.text == theirs.text, page
        assert mine.headers["content-disposition"] == theirs.headers["content-disposition"]


def test_power_text_for_an_owner():
    """'needs about N more; at this pace about M months' in plain words: no '0 months', no
    '1 months', years beyond two years, thousands separated."""
    from app.web.owner import power_text

    assert power_text(None, None) == "" and power_text(0, 0.0) == "enough members"
    assert power_text(340, 4.2) == "needs about 340 more; at this pace about 5 months"
    assert power_text(3, 0.0) == "needs about 3 more; at this pace under a month"
    assert power_text(12, 0.4) == "needs about 12 more; at this pace under a month"
    assert power_text(40, 1.0) == "needs about 40 more; at this pace about 1 month"
    assert power_text(29865, 1442.2) == "needs about 29,865 more; at this pace about 120 years"
    assert power_text(340, None) == "needs about 340 more"


def test_the_touchpoint_numbers_show_the_corrected_interval_and_power(web, db):
    """The dashboard's touchpoint table: the raw and the corrected interval, the verdict read
    from the corrected one, and the intention-to-treat power line, as the API reports them."""
    from app.clubs.models import Club
    from app.clubs.service import club_today
    from tests.analytics.conftest import Hand

    hand = Hand(db)
    club = hand.club()
    with transaction(db.sessionmaker) as s:
        today = club_today(s.get(Club, club.id))
    plan = hand.plan(club)
    offer = hand.definition(club, "renewal_offer")
    hand.offer_results(club, plan, offer, today - timedelta(days=60))
    owner = hand.staff(club, "owner")
    sign_in(web, owner.email)
    page = web.get("/owner")
    assert page.status_code == 200
    # the weekly-looks guarantee needs accumulating data; the default period slides
    assert "week after week only while “From” stays on the same day" in page.text
    row = re.search(r'<tr><th scope="row">Renewal_Offer</th>(.*?)</tr>', page.text).group(1)
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", row)]
    period = {"from": re.search(r'name="from" value="([\d-]+)"', page.text).group(1)}
    api = web.get("/api/v1/analytics/touchpoints", headers=owner.headers, params=period).json()
    item = {r["key"]: r for r in api["items"]}["renewal_offer"]
    assert item["verdict"] == "lifts renewals" and item["adjusted_low"] > 0
    assert cells[0] == "40" and cells[2] == "40"
    assert "(+" in cells[4] and cells[5].startswith("+") and cells[6] == "lifts renewals"
    more, months = item["itt_more_needed"], item["itt_months_needed"]
    assert more > 0 and months > 0
    assert cells[8] == f"needs about {more:,} more; at this pace about " + (
        f"{round(months / 12)} years" if months > 24 else f"{ceil(months)} months")
