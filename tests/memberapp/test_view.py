"""The member's own view (/app): memberships with end date, visits and freeze days left, the
contract's terms and notice, what they owe and their invoices, PT packages, upcoming classes and
visits by month — their own only, read-only, light enough for a slow phone."""
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.dues import run
from app.memberapp import view
from app.memberships.rules import add_months
from app.web.member_kit import MEMBER_COOKIE
from tests.builders import local

BERLIN = ZoneInfo("Europe/Berlin")


def _classes(gym, member: int, starts: datetime) -> None:
    """A trainer's class at `starts`, generated and booked for the member (through the API)."""
    coach = gym.trainer()
    api, manager = gym.client, gym.manager.headers
    kind = api.post("/api/v1/class-types", headers=manager, json={
        "name": "Morning Yoga", "capacity": 8, "duration_minutes": 60}).json()["id"]
    wall = starts.astimezone(BERLIN)
    assert api.post("/api/v1/classes/timetable", headers=manager, json={
        "class_type_id": kind, "weekday": wall.isoweekday(), "start_time": wall.strftime("%H:%M"),
        "trainer_id": coach.id, "room": "Studio 1"}).status_code == 201
    day = wall.date().isoformat()
    api.post("/api/v1/classes/generate", params={"from": day, "to": day}, headers=manager)
    [occ] = api.get("/api/v1/classes", params={"from": day, "to": day}, headers=manager).json()
    booked = api.post(f"/api/v1/classes/{occ['id']}/bookings", json={"member_id": member},
                      headers=gym.desk.headers)
    assert booked.status_code == 201, booked.text


def test_the_member_sees_contract_payments_packages_classes_and_visits(client, gym, world, db):
    anna = gym.member("Anna", "Berg", email="anna@example.org", email_consent=True)
    today = gym.today
    plan = gym.recurring_plan(joining_fee="29.00", freeze_days=30)
    contract = gym.contract(anna, plan["id"])
    run.run_billing(db.sessionmaker, club_id=gym.club.id, day=today)  # invoices 49 + 29
    world.sale(gym.club, anna, total="12.50", paid="2.50")  # a café tab: owes 10.00
    gym.package(anna, gym.pt_product(sessions=10), start_offset=-1,
                payments=[{"method": "card", "amount": "500.00"}])
    tomorrow = datetime.combine(today + timedelta(days=1), time(9, 0), tzinfo=BERLIN)
    _classes(gym, anna, tomorrow)
    world.visits(gym.club, anna, [today, today - timedelta(days=1), add_months(today, -2)])
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")

    page = client.get("/app")
    assert page.status_code == 200
    html = page.text
    assert contract["starts_on"] == today.isoformat()
    minimum_end = add_months(today, 12) - timedelta(days=1)
    assert f'data-end="{minimum_end.isoformat()}"' in html  # the membership runs the minimum term
    assert "Freeze days left" in html and "30 days" in html
    assert "€49.00 per month" in html and "Minimum term" in html
    assert "1 month" in html  # the notice period
    assert f'data-would-end="{minimum_end.isoformat()}"' in html
    assert "To pay: €88.00" in html  # 78.00 invoiced + 10.00 at the desk
    assert html.count("data-invoice=") == 1 and "€78.00" in html
    assert ": 10 of 10 sessions left" in html
    assert "Morning Yoga" in html and "09:00" in html
    this_month = f'data-month="{today:%Y-%m}"'
    assert this_month in html
    row = html[html.index(this_month):]
    assert row[row.index('class="num">') + len('class="num">'):].startswith(
        "2" if (today - timedelta(days=1)).month == today.month else "1")
    assert len(page.content) < 100_000  # a slow phone's page: HTML and CSS well under 100 KB
    assert len(page.content) + len(client.get("/static/member.css").content) < 100_000


def test_visits_by_month_count_in_the_clubs_months(gym, world, db):
    anna = gym.member("Anna", "Berg")
    today = gym.today
    first = today.replace(day=1)
    world.visits(gym.club, anna, [local(first, 0, 30),  # 00:30 in Berlin: this month
                                  local(first, 0, 30) - timedelta(hours=1),  # last month
                                  local(add_months(first, -12), 12)])  # too old to show
    with db.sessionmaker() as s:
        from app.clubs.models import Club

        months = view.visits_by_month(s, club=s.get(Club, gym.club.id), member_id=anna,
                                      today=today)
    assert len(months) == 12
    assert months[0] == (today.year, today.month, 1)
    last = add_months(first, -1)
    assert months[1] == (last.year, last.month, 1)
    assert sum(n for _y, _m, n in months) == 2


def test_a_member_sees_only_their_own_data(client, gym, world):
    anna = gym.member("Anna", "Berg")
    bert = gym.member("Bert", "Other")
    gym.membership(bert)
    world.sale(gym.club, bert, total="99.00", paid="0")
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")
    html = client.get("/app").text
    assert "Hello, Anna!" in html and "Bert" not in html
    assert "No membership yet." in html and "Nothing to pay" in html
