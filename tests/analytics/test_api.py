"""The HTTP edge: who may read the reports, the CSV export, and bad input."""
import csv
import io
from datetime import date, timedelta

import pytest

from app.clubs import service as clubs_service
from app.core.db import transaction
from tests.analytics.conftest import days

PATHS = ["/renewals", "/renewals/breakdown?by=plan", "/renewals/breakdown?by=cohort",
         "/renewals/breakdown?by=trainer", "/renewals/breakdown?by=attendance",
         "/renewals/breakdown?by=stage", "/renewals/breakdown?by=channel", "/touchpoints",
         "/retention/monthly", "/retention/cohorts", "/retention/survival",
         "/retention/before-after?date=2026-01-01", "/process", "/kpis"]


def _today(db, club) -> date:
    with transaction(db.sessionmaker) as s:
        return clubs_service.club_today(s.get(type(club), club.id))


@pytest.fixture
def club_with_data(db, hand):
    club = hand.club()
    today = _today(db, club)
    plan = hand.plan(club, name="=HYPERLINK(\"http://x\")")
    other = hand.plan(club, name="+1 Month")
    offer = hand.definition(club, "renewal_offer")
    for i in range(6):
        member = hand.member(club)
        start = today - days(90 + 10 * i)
        mid = hand.membership(club, member, plan if i % 2 else other, start, start + days(29))
        if i % 3:
            hand.membership(club, member, plan, start + days(30), start + days(59))
        hand.touchpoint(club, member, offer, mid, "sent" if i % 2 else "held_out",
                        on=start + days(20))
    return club


def test_owners_and_managers_only(client, world, club_with_data):
    club = club_with_data
    staff = {role: world.staff(club, role)
             for role in ("owner", "manager", "front_desk", "trainer")}
    for path in PATHS:
        for role, status in (("owner", 200), ("manager", 200), ("front_desk", 403),
                             ("trainer", 403)):
            r = client.get(f"/api/v1/analytics{path}", headers=staff[role].headers)
            assert r.status_code == status, (path, role, r.text)
            if status == 403:
                assert r.json()["error"] == "forbidden_role"
        assert client.get(f"/api/v1/analytics{path}").status_code == 401


def test_csv_of_every_report(client, world, club_with_data):
    owner = world.staff(club_with_data, "owner")
    for path in PATHS:
        sep = "&" if "?" in path else "?"
        r = client.get(f"/api/v1/analytics{path}{sep}format=csv", headers=owner.headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(r.text)))
        assert len(rows) >= 2 and rows[0], path  # a header and data
        for row in rows:
            for cell in row:
                assert not cell.startswith(("=", "+", "@")), (path, cell)
                if cell.startswith("-"):  # only numbers may start with a minus
                    float(cell)


def test_csv_quotes_formulas_and_keeps_numbers(client, world, club_with_data):
    owner = world.staff(club_with_data, "owner")
    r = client.get("/api/v1/analytics/renewals/breakdown?by=plan&format=csv",
                   headers=owner.headers)
    rows = list(csv.DictReader(io.StringIO(r.text)))
    labels = {row["label"] for row in rows}
    assert "'=HYPERLINK(\"http://x\")" in labels and "'+1 Month" in labels
    total = next(row for row in rows if row["key"] == "total")
    data = [row for row in rows if row["key"] != "total"]
    assert int(total["ended"]) == sum(int(row["ended"]) for row in data) == 10
    json_report = client.get("/api/v1/analytics/renewals/breakdown?by=plan",
                             headers=owner.headers).json()
    assert {row["label"] for row in json_report["items"]} == {
        "=HYPERLINK(\"http://x\")", "+1 Month"}  # JSON is untouched
    cohorts = client.get("/api/v1/analytics/retention/cohorts?format=csv", headers=owner.headers)
    header = next(csv.reader(io.StringIO(cohorts.text)))
    assert header[:3] == ["cohort", "members", "m0"]
    kpis = client.get("/api/v1/analytics/kpis?format=csv", headers=owner.headers)
    assert next(csv.reader(io.StringIO(kpis.text))) == ["section", "item", "measure", "value"]


def test_json_shape_and_period(client, world, club_with_data, db):
    owner = world.staff(club_with_data, "owner")
    today = _today(db, club_with_data)
    r = client.get("/api/v1/analytics/renewals", headers=owner.headers).json()
    assert r["as_of"] == today.isoformat() and r["date_to"] == today.isoformat()
    assert r["date_from"] == date(today.year - (today.month < 12), (today.month % 12) + 1,
                                  1).isoformat()
    assert r["totals"]["ended"] == 10 and r["grace_days"] == 30
    later = (today + timedelta(days=40)).isoformat()
    r = client.get(f"/api/v1/analytics/renewals?to={later}", headers=owner.headers).json()
    assert r["date_to"] == today.isoformat()  # never after today


BAD = [
    ("/renewals?from=2026-03-01&to=2026-02-01", 422, "invalid_period"),
    ("/renewals?from=2019-01-01&to=2026-02-01", 422, "period_too_long"),
    ("/renewals?from=1999-12-31", 422, "validation_error"),
    ("/renewals?from=2026-02-30", 422, "validation_error"),
    ("/renewals?plan_id=0", 422, "validation_error"),
    ("/renewals?plan_id=99999999999999999999", 422, "validation_error"),
    ("/renewals?plan_id=987654", 404, "plan_not_found"),
    ("/renewals/breakdown?by=shoe_size", 422, "validation_error"),
    ("/renewals/breakdown", 422, "validation_error"),
    ("/renewals?format=xlsx", 422, "validation_error"),
    ("/retention/before-after", 422, "validation_error"),
    ("/retention/before-after?date=2100-01-01", 422, "invalid_period"),
    ("/retention/before-after?date=2026-01-01&from=2026-02-01", 422, "invalid_period"),
    ("/kpis?to=2026-01-01%00", 422, "validation_error"),
]


def test_bad_input(client, world, club_with_data):
    owner = world.staff(club_with_data, "owner")
    for query, status, code in BAD:
        r = client.get(f"/api/v1/analytics{query}", headers=owner.headers)
        assert (r.status_code, r.json().get("error")) == (status, code), (query, r.text)


def test_another_clubs_plan_is_not_found(client, world, hand, club_with_data):
    other = hand.club(name="Elsewhere")
    theirs = hand.plan(other)
    owner = world.staff(club_with_data, "owner")
    r = client.get(f"/api/v1/analytics/renewals?plan_id={theirs}", headers=owner.headers)
    assert r.status_code == 404


def test_reports_are_per_club(client, world, hand, club_with_data):
    other = hand.club(name="Elsewhere")
    owner = world.staff(other, "owner")
    r = client.get("/api/v1/analytics/renewals", headers=owner.headers).json()
    assert r["totals"]["ended"] == 0
    tp = client.get("/api/v1/analytics/touchpoints", headers=owner.headers).json()
    assert tp["items"] == []


def test_every_endpoint_is_documented(client):
    spec = client.get("/openapi.json").json()
    for path in PATHS:
        route = "/api/v1/analytics" + path.split("?")[0]
        description = spec["paths"][route]["get"].get("description", "")
        assert len(description) > 200, route


def test_before_after_csv_has_the_interval_its_verdict_reads(client, world, club_with_data,
                                                               db):
    """The verdict reads the always-valid interval (issue 24): the CSV's difference row carries
    it beside the raw one, as the JSON does."""
    owner = world.staff(club_with_data, "owner")
    on = (_today(db, club_with_data) - days(75)).isoformat()
    path = f"/api/v1/analytics/retention/before-after?date={on}"
    report = client.get(path, headers=owner.headers).json()
    rows = list(csv.DictReader(io.StringIO(
        client.get(path + "&format=csv", headers=owner.headers).text)))
    diff = rows[-1]
    assert diff["key"] == "after - before" and diff["verdict"] == report["verdict"]
    assert {k: diff[k] for k in ("adjusted_low", "adjusted_high")} == {
        k: "" if report[k] is None else str(report[k]) for k in ("adjusted_low", "adjusted_high")}
