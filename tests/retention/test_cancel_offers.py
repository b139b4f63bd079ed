"""Offers after a cancellation (issue #21): the `contract_cancelled` plays start only once the
cancellation is recorded, never before; they are measured against a held-out group; withdrawing
the cancellation stops what is still to come. Emails go through the real local SMTP server (the
member app's `smtp`/`settings` fixtures); the report's figures are checked on a small history
small enough to count by hand."""
import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.analytics.cancel_offers import cancel_offer_effectiveness
from app.core.actors import Role
from app.core.db import transaction
from app.crm.models import Task
from app.dues.models import Contract
from app.retention import channels as channels_mod
from app.retention import service
from app.retention.dispatch import dispatch_due
from app.retention.models import ScheduledTouchpoint, TouchpointDefinition
from app.web.member_kit import MEMBER_COOKIE
from app.web.router import install
from tests.memberapp import conftest as app_fixtures
from tests.memberapp.conftest import csrf_of, emails_to
from tests.web.conftest import sign_in

# the member app's fixtures: a club (`gym`) whose app sends to the local SMTP server
gym, settings, sms, smtp = (app_fixtures.gym, app_fixtures.settings, app_fixtures.sms,
                            app_fixtures.smtp)

CANCEL_PLAYS = ("cancel_freeze", "cancel_call", "cancel_cheaper")


def _at(gym, day: date, hh: int) -> datetime:
    return datetime.combine(day, time(hh), tzinfo=ZoneInfo(gym.club.timezone))


def _plays(gym, shares: dict[str, float]) -> None:
    """Only these plays run, each with its holdout share."""
    with transaction(gym.db.sessionmaker) as s:
        service.playbook.ensure_default_playbook(s, club_id=gym.club.id)
        for d in s.scalars(select(TouchpointDefinition)
                           .where(TouchpointDefinition.club_id == gym.club.id)):
            d.enabled = d.key in shares
            d.holdout_share = shares.get(d.key, d.holdout_share)


def _run(gym, day: date):
    return service.run_day(gym.db.sessionmaker, club_id=gym.club.id, as_of=day,
                           now=_at(gym, day, 5), force=True)


def _dispatch(gym, settings, day: date):
    with channels_mod.from_settings(settings) as ch:
        return dispatch_due(gym.db.sessionmaker, channels=ch, settings=settings,
                            now=_at(gym, day, 12))


def _touchpoints(gym, member: int) -> list[tuple[str, str, str | None]]:
    with gym.db.sessionmaker() as s:
        return [tuple(r) for r in s.execute(
            select(TouchpointDefinition.key, ScheduledTouchpoint.status, ScheduledTouchpoint.reason)
            .join(TouchpointDefinition, TouchpointDefinition.id == ScheduledTouchpoint.definition_id)
            .where(ScheduledTouchpoint.member_id == member).order_by(ScheduledTouchpoint.id))]


def _member_with_contract(gym, first: str, email: str):
    member = gym.member(first, "Test", email=email, email_consent=True)
    return member, gym.contract(member, gym.recurring_plan(name=f"Flex {first}")["id"])


def _cancel_at_desk(gym, contract_id: int) -> dict:
    r = gym.client.post(f"/api/v1/contracts/{contract_id}/cancel", json={},
                        headers=gym.desk.headers)
    assert r.status_code == 200, r.text
    return r.json()


def _withdraw(gym, contract_id: int) -> None:
    r = gym.client.post(f"/api/v1/contracts/{contract_id}/withdraw-cancellation",
                        headers=gym.desk.headers)
    assert r.status_code == 200, r.text


def test_an_online_cancellation_gets_the_offer_after_it_is_recorded_and_withdrawing_stops_the_rest(
        client, gym, smtp, settings):
    _plays(gym, {k: 0.0 for k in CANCEL_PLAYS})
    anna, sold = _member_with_contract(gym, "Anna", "anna@example.org")
    t = gym.today
    page = client.get("/app/cancel")
    answer = client.post("/app/cancel", data={
        "kind": "ordinary", "reason": "", "member_number": str(anna),
        "contact": "anna@example.org", "csrf_token": csrf_of(page.text)})
    assert answer.status_code == 200 and "Cancellation received" in answer.text
    assert "freeze" not in page.text.lower()  # no offer stands before the cancellation
    assert "pause" not in page.text.lower() and "Changed your mind?" not in page.text
    note = re.search(r"<p data-changed-mind>(.*?)</p>", answer.text).group(1)
    assert note.startswith("Changed your mind? Until your contract ends, the club can withdraw")
    assert "/app/freeze" not in note  # not signed in: the same answer whatever matched
    [confirmation] = emails_to(smtp, "anna@example.org")  # only the confirmation, at once
    assert "freeze" not in confirmation.get_content().lower()
    with gym.db.sessionmaker() as s:
        assert s.get(Contract, sold["id"]).cancel_channel == "online"

    _run(gym, t)  # the day of the cancellation: nothing yet
    assert _touchpoints(gym, anna) == []
    _run(gym, t + timedelta(days=1))
    _run(gym, t + timedelta(days=1))  # planned once
    assert _touchpoints(gym, anna) == [("cancel_freeze", "pending", None)]
    assert _dispatch(gym, settings, t + timedelta(days=1)).outcomes["sent"] == 1
    offer = emails_to(smtp, "anna@example.org")[-1]
    assert offer["Subject"] == "Sorry to see you go, Anna - freeze instead?"
    body = offer.get_content()
    assert "your cancellation is recorded" in body and "http://testserver/app/freeze" in body

    _run(gym, t + timedelta(days=3))
    _dispatch(gym, settings, t + timedelta(days=3))
    with gym.db.sessionmaker() as s:
        call = s.scalar(select(Task).where(Task.member_id == anna))
        assert (call.status, call.title) == ("open", "Call Anna Test: contract cancelled")

    _run(gym, t + timedelta(days=7))  # the cheaper-plan email is planned ...
    assert _touchpoints(gym, anna)[-1] == ("cancel_cheaper", "pending", None)
    _withdraw(gym, sold["id"])  # ... and Anna stays before it goes out
    _dispatch(gym, settings, t + timedelta(days=7))
    assert _touchpoints(gym, anna) == [("cancel_freeze", "sent", None),
                                       ("cancel_call", "sent", "task_created"),
                                       ("cancel_cheaper", "cancelled", "withdrawn")]
    assert len(emails_to(smtp, "anna@example.org")) == 2
    _run(gym, t + timedelta(days=8))  # the desk's call closes too
    with gym.db.sessionmaker() as s:
        call = s.scalar(select(Task).where(Task.member_id == anna))
        assert (call.status, call.outcome) == ("cancelled", "withdrawn")


def test_a_held_out_member_who_cancelled_at_the_desk_gets_nothing_but_counts(
        client, gym, smtp, settings, clock):
    _plays(gym, {"cancel_freeze": 1.0})
    bert, sold = _member_with_contract(gym, "Bert", "bert@example.org")
    t = gym.today
    cancelled = _cancel_at_desk(gym, sold["id"])
    assert cancelled["cancel_channel"] == "desk"
    _run(gym, t + timedelta(days=1))
    assert _dispatch(gym, settings, t + timedelta(days=1)).outcomes.get("sent", 0) == 0
    assert _touchpoints(gym, bert) == [("cancel_freeze", "held_out", "holdout")]
    assert emails_to(smtp, "bert@example.org") == []  # (the desk's confirmation is queued)

    clock.set(_at(gym, t + timedelta(days=2), 12))  # the owner looks two days later,
    gym.manager = gym.world.staff(gym.club, Role.manager)  # signed in then (a token lasts 12 h)
    gym.desk = gym.world.staff(gym.club, Role.front_desk)
    url = (f"/api/v1/analytics/touchpoints/cancel-offers?from={t.isoformat()}"
           f"&to={(t + timedelta(days=2)).isoformat()}")
    report = client.get(url, headers=gym.manager.headers)
    assert report.status_code == 200, report.text
    rows = {r["key"]: r for r in report.json()["items"]}
    assert set(rows) == set(CANCEL_PLAYS)
    assert (rows["cancel_freeze"]["held_out"], rows["cancel_freeze"]["undecided"]) == (0, 1)
    _withdraw(gym, sold["id"])  # he stays: decided
    row = {r["key"]: r for r in client.get(url, headers=gym.manager.headers).json()["items"]}[
        "cancel_freeze"]
    assert (row["held_out"], row["held_out_stayed"], row["held_out_rate"], row["undecided"]) == (
        1, 1, 1.0, 0)
    assert (row["contacted"], row["contacted_rate"]) == (0, None)

    install(client.app)  # the owner's dashboard shows the same figures
    sign_in(client, gym.manager.email)
    page = client.get("/owner", params={"from": t.isoformat(),
                                        "to": (t + timedelta(days=2)).isoformat()})
    assert page.status_code == 200
    shown = re.search(r'<tr data-cancel-offer="cancel_freeze">(.*?)</tr>', page.text).group(1)
    cells = re.findall(r"<td>(.*?)</td>", shown)
    assert cells[:7] == ["0", "0", "–", "1", "1", "100.0%", "–"], cells


def test_the_report_counts_stayed_and_left_exactly(gym, smtp, settings):
    """Five cancellations on day t, the day-1 email: A and B held out, C, D and E contacted.
    A withdraws, C withdraws, D buys a new membership starting 10 days after the end, B and E
    leave. Day t+1: held out 1 decided (A stayed), contacted 2 decided (C, D), B and E open.
    30+ days after the end: held out 1 of 2 stayed, contacted 2 of 3."""
    _plays(gym, {"cancel_freeze": 1.0})
    t = gym.today
    people = {n: _member_with_contract(gym, n, f"{n.lower()}@example.org")
              for n in ("A", "B", "C", "D", "E")}
    for n in ("A", "B"):
        _cancel_at_desk(gym, people[n][1]["id"])
    _run(gym, t + timedelta(days=1))
    _plays(gym, {"cancel_freeze": 0.0})
    ends = {n: date.fromisoformat(_cancel_at_desk(gym, people[n][1]["id"])["ends_on"])
            for n in ("C", "D", "E")}
    _run(gym, t + timedelta(days=1))
    assert _dispatch(gym, settings, t + timedelta(days=1)).outcomes["sent"] == 3
    _withdraw(gym, people["A"][1]["id"])
    _withdraw(gym, people["C"][1]["id"])
    back = ends["D"] + timedelta(days=10)
    gym.membership(people["D"][0], start_offset=(back - t).days)

    def row(as_of: date) -> dict:
        with gym.db.sessionmaker() as s:
            report = cancel_offer_effectiveness(s, club_id=gym.club.id, as_of=as_of,
                                                date_from=t, date_to=t + timedelta(days=1))
        [freeze] = [r for r in report.items if r.key == "cancel_freeze"]
        return freeze.model_dump()

    early = row(t + timedelta(days=1))
    assert {k: early[k] for k in ("held_out", "held_out_stayed", "contacted", "contacted_stayed",
                                  "assigned", "assigned_stayed", "undecided", "mixed")} == {
        "held_out": 1, "held_out_stayed": 1, "contacted": 2, "contacted_stayed": 2,
        "assigned": 2, "assigned_stayed": 2, "undecided": 2, "mixed": 0}
    late = row(ends["E"] + timedelta(days=31))
    assert {k: late[k] for k in ("held_out", "held_out_stayed", "held_out_rate", "contacted",
                                 "contacted_stayed", "contacted_rate", "difference", "assigned",
                                 "assigned_stayed", "undecided", "verdict")} == {
        "held_out": 2, "held_out_stayed": 1, "held_out_rate": 0.5, "contacted": 3,
        "contacted_stayed": 2, "contacted_rate": 0.6667, "difference": 0.1667, "assigned": 3,
        "assigned_stayed": 2, "undecided": 0, "verdict": "too few members to tell"}
    on_the_day = row(ends["E"] + timedelta(days=30))  # the 30 days are not over yet
    assert (on_the_day["held_out"], on_the_day["contacted"], on_the_day["undecided"]) == (1, 2, 2)


def test_a_signed_in_member_sees_the_note_only_on_the_receipt(client, gym, smtp, world):
    anna, sold = _member_with_contract(gym, "Anna", "anna@example.org")
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")
    page = client.get("/app/cancel", headers={"Accept-Language": "de"})
    assert page.status_code == 200 and "pausieren" not in page.text.lower()
    receipt = client.post("/app/cancel/contract", headers={"Accept-Language": "de"}, data={
        "contract_id": sold["id"], "kind": "ordinary", "csrf_token": csrf_of(page.text)})
    assert receipt.status_code == 200
    with gym.db.sessionmaker() as s:
        assert s.get(Contract, sold["id"]).ends_on is not None  # recorded first
    note = re.search(r"<p data-changed-mind>(.*?)</p>", receipt.text).group(1)
    assert note.startswith("Doch anders entschieden?")
    assert '<a href="/app/freeze">Wie lange könnte ich pausieren?</a>' in note


def test_the_cancel_plays_reach_a_club_whose_playbook_predates_them(gym):
    """A club with the playbook of an earlier version (no cancel plays; one default edited and
    switched off) gets the three new plays the next time its playbook is read; what it changed
    stays as it left it."""
    with transaction(gym.db.sessionmaker) as s:
        assert service.playbook.ensure_default_playbook(s, club_id=gym.club.id) == len(
            service.playbook.DEFAULT_PLAYBOOK)
        for d in s.scalars(select(TouchpointDefinition)
                           .where(TouchpointDefinition.club_id == gym.club.id)):
            if d.key in CANCEL_PLAYS:
                s.delete(d)  # as before this version
            elif d.key == "welcome":
                d.name, d.enabled = "Our own welcome", False
    with transaction(gym.db.sessionmaker) as s:
        assert service.playbook.ensure_default_playbook(s, club_id=gym.club.id) == 3
        assert service.playbook.ensure_default_playbook(s, club_id=gym.club.id) == 0
        rows = {d.key: d for d in service.playbook.list_definitions(s, club_id=gym.club.id)}
        assert {k: (rows[k].trigger, rows[k].days, rows[k].stop_condition, rows[k].enabled)
                for k in CANCEL_PLAYS} == {
            "cancel_freeze": ("contract_cancelled", 1, "cancellation_withdrawn", True),
            "cancel_call": ("contract_cancelled", 3, "cancellation_withdrawn", True),
            "cancel_cheaper": ("contract_cancelled", 7, "cancellation_withdrawn", True)}
        assert (rows["welcome"].name, rows["welcome"].enabled) == ("Our own welcome", False)
