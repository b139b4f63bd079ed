"""Planning and delivery rules with recording channels: triggers, stop conditions, consent,
frequency cap, quiet hours, holdout, tasks."""
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from app.core.db import transaction
from app.core.events import VisitGranted
from app.crm.models import Interaction, Task
from app.retention import playbook, stages
from app.retention.channels import Channels, Recording
from app.retention.scheduling import holdout_score
from app.retention.stages import on_visit
from tests.retention.conftest import D, ago, local


def _emails(rw) -> list:
    return rw.channels.email.messages


def test_welcome_is_planned_once_and_sent_at_nine(rw):
    club = rw.club(holdout_share=0)
    rw.only(club, "welcome")
    member = rw.member(club, "Anna")
    rw.membership(club, member, rw.plan(club), D)
    rw.run(club)
    rw.run(club)  # a second run the same day plans nothing new
    [(tp, key)] = rw.touchpoints(member)
    assert (key, tp.status, tp.cycle, tp.due_at) == ("welcome", "pending", f"t{D}", local(D, 9))

    assert rw.dispatch(local(D, 8, 59)).claimed == 0
    stats = rw.dispatch(local(D, 9))
    assert stats.outcomes["sent"] == 1
    [message] = _emails(rw)
    assert message.subject == "Welcome to Riverside Fitness, Anna!"
    assert "Hello Anna" in message.body and "/api/v1/retention/unsubscribe?token=" in message.body
    [(tp, _)] = rw.touchpoints(member)
    assert (tp.status, tp.attempts, tp.recipient) == ("sent", 1, message.to)
    assert rw.dispatch(local(D, 10)).claimed == 0  # never twice


def test_no_email_without_consent(rw, session):
    club = rw.club(holdout_share=0)
    rw.only(club, "welcome")
    member = rw.member(club, email_consent=False)
    rw.membership(club, member, rw.plan(club), D)
    rw.run(club)
    rw.dispatch(local(D, 9))
    [(tp, _)] = rw.touchpoints(member)
    assert (tp.status, tp.reason) == ("skipped", "no_consent")
    assert _emails(rw) == []
    summary = session.scalar(select(Interaction.summary).where(Interaction.member_id == member))
    assert "not sent (no consent" in summary


def test_quiet_hours_hold_messages_until_the_morning(rw):
    club = rw.club(holdout_share=0)
    rw.only(club, "welcome")
    member = rw.member(club)
    rw.membership(club, member, rw.plan(club), D)
    rw.run(club)
    stats = rw.dispatch(local(D, 22))  # the dispatcher was down all day
    assert stats.outcomes["defer:quiet_hours"] == 1 and _emails(rw) == []
    [(tp, _)] = rw.touchpoints(member)
    assert (tp.status, tp.due_at) == ("pending", local(D + timedelta(days=1), 9))
    assert rw.dispatch(local(D + timedelta(days=1), 8)).claimed == 0
    assert rw.dispatch(local(D + timedelta(days=1), 9)).outcomes["sent"] == 1


def test_frequency_cap_lets_the_higher_priority_through_and_skips_after_a_wait(rw, db):
    club = rw.club(holdout_share=0, message_cap=1, message_cap_days=7)
    rw.only(club, "welcome")
    with transaction(db.sessionmaker) as s:
        playbook.create_definition(s, club_id=club.id, data={
            "key": "tips", "name": "Training tips", "stage": "onboarding",
            "trigger": "days_after_stage_entry", "days": 0, "visits": None, "channel": "email",
            "subject_template": "Tips", "body_template": "Hi {{ member.first_name }}",
            "stop_condition": "none", "priority": 10, "holdout_share": None, "enabled": True})
    member = rw.member(club)
    rw.membership(club, member, rw.plan(club), D)
    rw.run(club)
    stats = rw.dispatch(local(D, 9))
    assert stats.outcomes["sent"] == 1 and stats.outcomes["defer:frequency_cap"] == 1
    assert [m.subject for m in _emails(rw)] == ["Welcome to Riverside Fitness, Member1!"]
    for n in (1, 2):
        stats = rw.dispatch(local(D + timedelta(days=n), 9))
        assert stats.outcomes["defer:frequency_cap"] == 1
    stats = rw.dispatch(local(D + timedelta(days=3), 9))
    assert stats.outcomes["skip:frequency_cap"] == 1
    statuses = {key: (tp.status, tp.reason) for tp, key in rw.touchpoints(member)}
    assert statuses == {"welcome": ("sent", None), "tips": ("skipped", "frequency_cap")}
    assert len(_emails(rw)) == 1


def test_holdout_members_get_a_record_and_no_message(rw, session):
    club = rw.club(holdout_share=0.5)
    rw.only(club, "welcome")
    plan = rw.plan(club)
    members = [rw.member(club) for _ in range(12)]
    for m in members:
        rw.membership(club, m, plan, D)
    rw.run(club)
    rw.dispatch(local(D, 9))
    expected_out = {m for m in members if holdout_score(m, "welcome") < 0.5}
    assert 0 < len(expected_out) < len(members)
    status = {tp.member_id: tp.status for tp, _ in rw.touchpoints()}
    assert {m for m, s in status.items() if s == "held_out"} == expected_out
    assert {m.member_id for m in _emails(rw)} == set(members) - expected_out
    held = session.scalars(select(Interaction.member_id)
                           .where(Interaction.outcome == "held_out")).all()
    assert set(held) == expected_out


def test_a_member_who_came_back_is_not_told_we_miss_you(rw, db):
    club = rw.club(holdout_share=0)
    rw.only(club, "miss_you")
    plan = rw.plan(club)
    back, away = rw.member(club), rw.member(club)
    for m in (back, away):
        rw.membership(club, m, plan, ago(150))
        rw.regular_visits(club, m, ago(150), ago(28), weekdays=(0, 3))
        rw.visits(club, m, [ago(n) for n in range(15, 28)])
    rw.run(club)
    assert {key for _, key in rw.touchpoints()} == {"miss_you"}
    rw.visits(club, back, [D], hour=8)
    with transaction(db.sessionmaker) as s:
        on_visit(s, VisitGranted(club.id, back, local(D, 8)))
    rw.dispatch(local(D, 9))
    status = {tp.member_id: (tp.status, tp.reason) for tp, _ in rw.touchpoints()}
    assert status == {back: ("cancelled", "visited"), away: ("sent", None)}
    assert [m.member_id for m in _emails(rw)] == [away]


def test_a_renewal_cancels_pending_renewal_reminders(rw):
    club = rw.club(holdout_share=0)
    plan = rw.plan(club)
    a, b = rw.member(club), rw.member(club)
    ends = D + timedelta(days=14)
    ma = rw.membership(club, a, plan, ends - timedelta(days=364), end=ends)
    mb = rw.membership(club, b, plan, ends - timedelta(days=364), end=ends)
    for m in (a, b):
        rw.regular_visits(club, m, ago(200), ago(1))
    rw.run(club)
    assert {(tp.member_id, key, tp.status) for tp, key in rw.touchpoints()} >= {
        (a, "renewal_offer", "pending"), (b, "renewal_offer", "pending")}
    # a renews at the desk before nine: the dispatcher sees it right before sending
    rw.membership(club, a, plan, ends + timedelta(days=1), sold_at=local(D, 8), renews_id=ma)
    rw.dispatch(local(D, 9))
    offers = {tp.member_id: (tp.status, tp.reason)
              for tp, key in rw.touchpoints(key="renewal_offer")}
    assert offers == {a: ("cancelled", "renewed"), b: ("sent", None)}
    # b gets the call task a week before the end, then renews: the open task is cancelled
    day = ends - timedelta(days=7)
    rw.run(club, day)
    rw.dispatch(local(day, 9))
    with transaction(rw.db.sessionmaker) as s:
        [task] = s.scalars(select(Task).where(Task.member_id == b)).all()
        assert (task.status, task.kind, task.assignee_role) == ("open", "renewal_offer",
                                                                "front_desk")
    rw.membership(club, b, plan, ends + timedelta(days=1), sold_at=local(day, 12), renews_id=mb)
    report = rw.run(club, day + timedelta(days=1))
    assert rw.stage(a).stage == "active" and rw.stage(b).stage == "active"
    with transaction(rw.db.sessionmaker) as s:
        assert s.scalar(select(Task.status).where(Task.member_id == b)) == "cancelled"
    keys = {key for tp, key in rw.touchpoints() if tp.member_id == a}
    assert "renewal_call" not in keys and "renewal_last" not in keys
    assert report.transitions == {"renewal_due->active": 1}  # b; a moved on the run before


def test_call_and_trainer_tasks_land_in_the_crm(rw, session):
    club = rw.club(holdout_share=0)
    rw.only(club, "intro_session", "no_first_visit")
    member = rw.member(club, "Ben")
    rw.membership(club, member, rw.plan(club), ago(7))
    rw.run(club, ago(5))
    rw.dispatch(local(ago(5), 9))
    rw.run(club)
    rw.dispatch(local(D, 9))
    statuses = {key: tp.status for tp, key in rw.touchpoints(member)}
    assert statuses == {"intro_session": "sent", "no_first_visit": "sent"}
    tasks = session.scalars(select(Task).order_by(Task.id)).all()
    assert [(t.kind, t.assignee_role, t.due_date) for t in tasks] == [
        ("trainer", "trainer", ago(5)), ("call", "front_desk", D)]
    assert tasks[1].title == "Call Ben Test: no first visit yet"
    assert all(t.touchpoint_id for t in tasks)


def test_milestones_birthdays_and_slow_starters(rw):
    club = rw.club(holdout_share=0)
    rw.only(club, "visit_10", "birthday", "low_visits_sms", "low_visits_call")
    plan = rw.plan(club)
    tenth = rw.member(club)
    rw.membership(club, tenth, plan, ago(60))
    rw.run(club, ago(30))
    rw.visits(club, tenth, [ago(n) for n in range(1, 11)])
    birthday = rw.member(club, birth_date=date(1990, D.month, D.day))
    rw.membership(club, birthday, plan, ago(100))
    slow, busy = rw.member(club), rw.member(club)
    for m in (slow, busy):
        rw.membership(club, m, plan, ago(14))
    rw.visits(club, slow, [ago(10), ago(3)])
    rw.visits(club, busy, [ago(n) for n in (13, 11, 9, 6, 2)])

    rw.run(club)
    rw.run(club, D + timedelta(days=1))
    planned = sorted((tp.member_id, key, tp.cycle) for tp, key in rw.touchpoints())
    assert planned == sorted([(tenth, "visit_10", "v"), (birthday, "birthday", f"b{D.year}"),
                              (slow, "low_visits_sms", f"t{ago(14)}"),
                              (slow, "low_visits_call", f"t{ago(14)}")])


def test_disabled_definitions_are_not_planned_and_pending_ones_are_cancelled(rw, db):
    club = rw.club(holdout_share=0)
    rw.only(club, "welcome")
    a = rw.member(club)
    plan = rw.plan(club)
    rw.membership(club, a, plan, D)
    rw.run(club)
    welcome = rw.definition(club, "welcome")
    with transaction(db.sessionmaker) as s:
        playbook.set_enabled(s, club_id=club.id, definition_id=welcome.id, enabled=False)
    b = rw.member(club)
    rw.membership(club, b, plan, D)
    rw.run(club)
    rw.dispatch(local(D, 9))
    assert [(tp.member_id, tp.status, tp.reason) for tp, _ in rw.touchpoints()] == [
        (a, "cancelled", "disabled")]


def test_sms_is_skipped_when_no_gateway_is_configured(rw):
    club = rw.club(holdout_share=0)
    rw.only(club, "birthday")
    member = rw.member(club, birth_date=date(1985, D.month, D.day))
    rw.membership(club, member, rw.plan(club), ago(100))
    rw.run(club)
    rw.dispatch(local(D, 9), channels=Channels(email=Recording(), sms=None))
    [(tp, _)] = rw.touchpoints(member)
    assert (tp.status, tp.reason) == ("skipped", "channel_not_configured")


@pytest.mark.parametrize("in_bulk", [False, True], ids=["counted-by-index", "counted-in-one-pass"])
def test_first_run_counts_the_visits_of_members_new_to_the_engine(rw, monkeypatch, in_bulk):
    if in_bulk:  # the first run of a big club: one GROUP BY instead of a count per member
        monkeypatch.setattr(stages, "FRESH_IN_BULK", 0)
    club = rw.club(holdout_share=0)
    rw.only(club, "visit_10")
    plan = rw.plan(club)
    tenth, eleventh, few, none = (rw.member(club) for _ in range(4))
    for m in (tenth, eleventh, few, none):
        rw.membership(club, m, plan, ago(60))
    rw.visits(club, tenth, [ago(n) for n in range(3, 13)])  # the 10th visit 3 days ago
    rw.visits(club, eleventh, [ago(n) for n in range(20, 31)])  # 10th visit long before
    rw.visits(club, few, [ago(40), ago(2)])

    rw.run(club)

    assert {m: rw.stage(m).visits_total for m in (tenth, eleventh, few, none)} == {
        tenth: 10, eleventh: 11, few: 2, none: 0}
    assert [(tp.member_id, key) for tp, key in rw.touchpoints()] == [(tenth, "visit_10")]
    rw.visits(club, few, [D])  # at 18:00: after the first run (05:00), counted by the next
    rw.run(club, D + timedelta(days=1))
    assert rw.stage(few).visits_total == 3
