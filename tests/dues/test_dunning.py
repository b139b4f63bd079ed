"""Failed payments: a returned debit opens a case that retries, reminds, charges a fee, refuses
entry, and closes when the money comes in at the desk."""
import threading
from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from app.core import clock as app_clock
from app.core.actors import Role
from app.core.db import transaction
from app.crm.models import Task
from app.dues import dunning, invoicing
from app.dues.models import (
    Collection,
    DunningCase,
    DunningStep,
    Invoice,
    InvoiceLine,
    Notice,
)
from app.retention.models import TouchpointDefinition
from tests.builders import Profile, Retention, World, local

D = Decimal
BERLIN = ZoneInfo("Europe/Berlin")
SEQUENCE = {"sepa_retry_days": 7, "card_retry_days": 3, "max_retries": 1, "reminder_days": 3,
            "dunning_fee": D("5.00"), "dunning_fee_after_days": 14,
            "block_entry_after_days": 15}


@pytest.fixture
def gym(db) -> World:
    return World(db, Profile(card="D{club:03d}{n:05d}", email="{first}{n}@example.com"))


def today() -> date:
    return app_clock.today(BERLIN)


def advance(db, club_id: int, day: date) -> dunning.DunningSummary:
    with transaction(db.sessionmaker) as s:
        return dunning.advance_dunning(s, club_id=club_id, day=day)


def steps(session, case_id: int) -> list[tuple[str, int]]:
    rows = session.execute(select(DunningStep.action, DunningStep.number)
                           .where(DunningStep.case_id == case_id)
                           .order_by(DunningStep.done_on, DunningStep.id)).all()
    session.rollback()
    return [tuple(r) for r in rows]


def case_of(session, invoice_id: int) -> DunningCase:
    session.expire_all()
    case = session.scalars(select(DunningCase).where(DunningCase.invoice_id == invoice_id)).one()
    session.expunge(case)  # read as it is now, without holding SQLite's lock
    session.rollback()
    return case


def _check_in(client, staff, member_id):
    r = client.post(f"/api/v1/members/{member_id}/check-ins", headers=staff.headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_returned_debit_runs_the_whole_sequence_and_recovers_at_the_desk(
        db, client, world, gym, session, clock):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    m = gym.member(club, first_name="Clara")
    gym.membership(club, m, start=today() - timedelta(days=40), end=today() + timedelta(days=60))
    f = today() - timedelta(days=20)
    invoice_id = gym.failed_dues(club, m, failed_on=f, **SEQUENCE)

    first = advance(db, club.id, f)
    assert first.opened == 1 and (first.retries, first.reminders) == (0, 0)
    case = case_of(session, invoice_id)
    assert (case.member_id, case.opened_on, case.amount) == (m.member_id, f, D("49.00"))
    assert advance(db, club.id, f).opened == 0  # twice a day: nothing new
    assert steps(session, case.id) == [("failed", 1)]

    assert advance(db, club.id, f + timedelta(days=3)).reminders == 1
    notice = session.scalars(select(Notice).where(Notice.key == f"reminder:{case.id}:1")).one()
    assert "owe 49.00 EUR since" in notice.body and notice.to == m.first_name.lower() + "1@example.com"
    session.rollback()

    day7 = advance(db, club.id, f + timedelta(days=7))
    assert (day7.retries, day7.reminders) == (1, 1)  # the retry, and the reminder of day 6
    retry = session.scalars(select(Collection).where(Collection.invoice_id == invoice_id,
                                                     Collection.attempt == 2)).one()
    assert (retry.status, retry.due_on, retry.method, retry.amount) == (
        "planned", f + timedelta(days=7), "sepa", D("49.00"))
    retry_id = retry.id
    session.rollback()
    assert advance(db, club.id, f + timedelta(days=7)).retries == 0  # once
    # the retry is returned too (by the SEPA returns import)
    with transaction(db.sessionmaker) as s:
        again = s.get(Collection, retry_id)
        again.status, again.failed_on = "returned", f + timedelta(days=10)

    day14 = advance(db, club.id, f + timedelta(days=14))
    assert (day14.retries, day14.reminders, day14.fees) == (0, 1, 1)  # max_retries is 1
    fee = session.scalars(select(InvoiceLine).where(
        InvoiceLine.charge_key == f"dunning_fee:{case.id}")).one()
    assert (fee.gross, fee.kind, fee.member_id) == (D("5.00"), "fee", m.member_id)
    fee_invoice_id = fee.invoice_id
    session.rollback()
    assert advance(db, club.id, f + timedelta(days=14)).fees == 0

    before_block = _check_in(client, desk, m.member_id)
    assert before_block["allow"] is True
    assert before_block["payment_problem"]["text"].startswith("owes 49.00 since")
    assert before_block["payment_problem"]["text"].endswith("3rd reminder sent")
    assert before_block["payment_problem"]["reminders"] == 3

    assert advance(db, club.id, f + timedelta(days=15)).blocked == 1
    case = case_of(session, invoice_id)
    assert case.blocks_entry_from == f + timedelta(days=15)
    assert [a for a, _n in steps(session, case.id)] == [
        "failed", "reminder", "retry", "reminder", "reminder", "fee", "block"]

    refused = _check_in(client, desk, m.member_id)
    assert (refused["allow"], refused["reason"], refused["message"]) == (
        False, "payment_overdue", "Please see the front desk about your payment")
    assert refused["payment_problem"] == {
        "owed": "49.00", "since": f.isoformat(), "reminders": 3, "blocked": True,
        "text": f"owes 49.00 since {dunning.nice_day(f, today())}, 3rd reminder sent, "
                "entry refused"}

    paid = client.post(f"/api/v1/invoices/{invoice_id}/payments", headers=desk.headers,
                       json={"amount": "49.00", "method": "cash", "desk": "front"})
    assert paid.status_code == 201, paid.text
    assert paid.json()["case_closed"] is True and paid.json()["open_after"] == "0.00"
    case = case_of(session, invoice_id)
    assert (case.outcome, case.closed_on) == ("recovered", today())
    assert steps(session, case.id)[-1] == ("recovered", 1)

    clock.advance(timedelta(minutes=10))  # past the anti-passback window
    welcome = _check_in(client, desk, m.member_id)
    assert welcome["allow"] is True and welcome["reason"] == "ok"
    assert welcome["payment_problem"] is None
    # the unpaid fee invoice is a desk invoice: its own case, which charges no fee on a fee
    later = advance(db, club.id, today())
    assert (later.closed, later.opened, later.fees) == (0, 1, 0)
    fee_case = case_of(session, fee_invoice_id)
    assert (fee_case.amount, fee_case.opened_on) == (D("5.00"), f + timedelta(days=14))


def test_a_case_closes_on_the_next_run_when_the_invoice_is_paid_another_way(db, world, gym,
                                                                           session):
    club = world.club()
    m = gym.member(club)
    f = today() - timedelta(days=8)
    invoice_id = gym.failed_dues(club, m, failed_on=f, method="card", status="failed",
                                 card_retry_days=3, max_retries=2)
    summary = advance(db, club.id, f + timedelta(days=3))
    assert (summary.opened, summary.retries) == (1, 1)
    with transaction(db.sessionmaker) as s:  # the card retry succeeded (the charger's webhook)
        invoicing.record_payment(s, club_id=club.id, invoice_id=invoice_id, amount=D("49.00"),
                                 method="card", occurred_on=f + timedelta(days=4))
    closed = advance(db, club.id, f + timedelta(days=5))
    assert closed.closed == 1 and closed.retries == 0
    case = case_of(session, invoice_id)
    assert (case.outcome, case.closed_on) == ("recovered", f + timedelta(days=5))


def test_a_returned_retry_reopens_the_case_it_had_closed(db, world, gym, session):
    """A SEPA retry counts as paid when its file goes to the bank, which closes the case as
    recovered; when the bank returns it, the case opens again and goes on where it stopped."""
    club = world.club()
    m = gym.member(club)
    f = today() - timedelta(days=20)
    invoice_id = gym.failed_dues(club, m, failed_on=f, **SEQUENCE)
    assert advance(db, club.id, f + timedelta(days=7)).retries == 1  # reminder 1 too
    with transaction(db.sessionmaker) as s:  # the retry's file was submitted: paid
        retry = s.scalars(select(Collection).where(Collection.invoice_id == invoice_id,
                                                   Collection.attempt == 2)).one()
        retry.status = "submitted"
        invoicing.record_payment(s, club_id=club.id, invoice_id=invoice_id, amount=D("49.00"),
                                 method="sepa", occurred_on=f + timedelta(days=7),
                                 collection_id=retry.id, event_key=f"sepa:{retry.id}")
        retry_id = retry.id
    assert advance(db, club.id, f + timedelta(days=8)).closed == 1
    assert case_of(session, invoice_id).outcome == "recovered"
    back = f + timedelta(days=12)
    with transaction(db.sessionmaker) as s:  # ... and the bank returned it
        retry = s.get(Collection, retry_id)
        retry.status, retry.failed_on = "returned", back
        invoicing.record_payment(s, club_id=club.id, invoice_id=invoice_id, amount=D("-49.00"),
                                 method="sepa", kind="return", occurred_on=back,
                                 collection_id=retry.id, event_key=f"return:{retry.id}")
    assert advance(db, club.id, back - timedelta(days=1)).reopened == 0  # not yet back
    with db.sessionmaker() as s:  # the demo's history runs only the days with work
        assert dunning.has_work(s, club_id=club.id, day=back)
    reopened = advance(db, club.id, back)
    assert (reopened.reopened, reopened.opened, reopened.reminders) == (1, 0, 1)
    case = case_of(session, invoice_id)
    assert (case.closed_on, case.outcome, case.amount, case.reminders) == (
        None, None, D("49.00"), 2)
    assert [a for a, _n in steps(session, case.id)] == [
        "failed", "retry", "reminder", "recovered", "reopened", "reminder"]
    assert advance(db, club.id, back).reopened == 0  # once
    assert advance(db, club.id, back + timedelta(days=3)).blocked == 1  # F + 15


def test_a_desk_invoice_gets_a_case_once_it_is_reminder_days_overdue(db, world, gym, session):
    club = world.club()
    m = gym.member(club)
    invoice_id = gym.failed_dues(club, m, failed_on=today() - timedelta(days=2), method="desk",
                                 status="failed", reminder_days=5)
    with transaction(db.sessionmaker) as s:  # a desk invoice has no collection at all
        s.execute(Collection.__table__.delete().where(Collection.invoice_id == invoice_id))
        due = s.get(Invoice, invoice_id).due_on
    assert advance(db, club.id, due + timedelta(days=4)).opened == 0
    opened = advance(db, club.id, due + timedelta(days=5))
    assert opened.opened == 1 and opened.reminders == 1
    assert case_of(session, invoice_id).opened_on == due


def test_a_failure_with_money_left_open_only_and_no_block_setting_never_blocks(db, world, gym,
                                                                               session):
    club = world.club()
    m = gym.member(club)
    f = today() - timedelta(days=60)
    invoice_id = gym.failed_dues(club, m, failed_on=f, reminder_days=3)
    advance(db, club.id, f)
    blocked = sum(advance(db, club.id, today() - timedelta(days=n)).blocked
                  for n in (2, 1, 0))  # runs missed for weeks: one reminder a day
    case = case_of(session, invoice_id)
    assert case.blocks_entry_from is None and blocked == 0
    assert case.reminders == dunning.MAX_REMINDERS and case.fee_charged is False
    assert advance(db, club.id, today()).reminders == 0


def test_write_off_is_for_managers_and_another_club_sees_no_case(db, client, world, gym,
                                                                 session):
    club, other = world.club(), world.club("Other Gym")
    m = gym.member(club)
    invoice_id = gym.failed_dues(club, m, failed_on=today() - timedelta(days=1))
    advance(db, club.id, today())
    case = case_of(session, invoice_id)
    desk, manager = world.staff(club, Role.front_desk), world.staff(club, Role.manager)
    stranger = world.staff(other, Role.owner)

    listed = client.get("/api/v1/dunning", headers=desk.headers)
    assert listed.status_code == 200
    assert [(c["id"], c["amount"], c["payer_name"]) for c in listed.json()["items"]] == [
        (case.id, "49.00", m.first_name)]
    assert client.get("/api/v1/dunning", headers=stranger.headers).json()["items"] == []
    assert client.post(f"/api/v1/dunning/{case.id}/write-off",
                       headers=desk.headers).status_code == 403
    assert client.post(f"/api/v1/dunning/{case.id}/write-off",
                       headers=stranger.headers).status_code == 404
    done = client.post(f"/api/v1/dunning/{case.id}/write-off", headers=manager.headers)
    assert done.status_code == 200 and done.json()["outcome"] == "written_off"
    twice = client.post(f"/api/v1/dunning/{case.id}/write-off", headers=manager.headers)
    assert twice.status_code == 409 and twice.json()["error"] == "dunning_case_closed"
    assert client.get("/api/v1/dunning", headers=desk.headers).json()["total"] == 0


# --- the retention engine's payment problem -------------------------------------------------

PAYMENT_PLAYS = ("payment_failed", "payment_call", "payment_still_open")


def test_a_payment_problem_plans_its_touchpoints_and_settling_it_stops_them(db, rw, session):
    d = Retention.D
    club = rw.club(holdout_share=0)
    rw.only(club, *PAYMENT_PLAYS)
    member = rw.member(club, "Paula")
    rw.membership(club, member, rw.plan(club), d - timedelta(days=100))
    invoice_id = rw.failed_dues(club, member, failed_on=d)
    advance(db, club.id, d)
    case = case_of(session, invoice_id)

    rw.run(club, d)
    rw.run(club, d)  # planned once
    [(tp, key)] = rw.touchpoints(member)
    assert (key, tp.cycle, tp.stage, tp.trigger_on, tp.due_at) == (
        "payment_failed", f"d{case.id}", None, d, local(d, 9))
    assert rw.dispatch(local(d, 9)).outcomes["sent"] == 1
    [mail] = rw.channels.email.messages
    assert mail.subject == "Paula, your payment didn't go through"
    assert "update your payment details" in mail.body

    rw.run(club, d + timedelta(days=3))
    rw.dispatch(local(d + timedelta(days=3), 9))
    call = session.scalar(select(Task).where(Task.member_id == int(member)))
    assert (call.status, call.title) == ("open", "Call Paula Test: dues payment failed")
    session.rollback()

    with transaction(db.sessionmaker) as s:  # paid at the desk
        invoicing.record_payment(s, club_id=club.id, invoice_id=invoice_id, amount=D("49.00"),
                                 method="cash", occurred_on=d + timedelta(days=5))
        assert dunning.close_paid_cases(s, club_id=club.id, day=d + timedelta(days=5)) == 1
    rw.run(club, d + timedelta(days=10))
    assert [k for _tp, k in rw.touchpoints(member)] == ["payment_failed", "payment_call"]
    call = session.scalar(select(Task).where(Task.member_id == int(member)))
    assert (call.status, call.outcome) == ("cancelled", "paid")


def test_payment_touchpoints_follow_consent_and_holdout(db, rw):
    d = Retention.D
    club = rw.club(holdout_share=0)
    rw.only(club, "payment_failed")
    quiet = rw.member(club, "Quentin", email_consent=False)
    rw.membership(club, quiet, rw.plan(club), d - timedelta(days=100))
    rw.failed_dues(club, quiet, failed_on=d - timedelta(days=2))
    advance(db, club.id, d)
    rw.run(club, d)  # within the look-back window: still planned, on the day it fell due
    [(tp, _key)] = rw.touchpoints(quiet)
    assert tp.trigger_on == d - timedelta(days=2)
    rw.dispatch(local(d, 9))
    [(tp, _key)] = rw.touchpoints(quiet)
    assert (tp.status, tp.reason) == ("skipped", "no_consent")

    held = rw.club("Held Out Gym")
    rw.only(held, "payment_failed")
    with transaction(db.sessionmaker) as s:  # every member in the control group of this play
        s.get(TouchpointDefinition, rw.definition(held, "payment_failed").id).holdout_share = 1.0
    m = rw.member(held)
    rw.membership(held, m, rw.plan(held), d - timedelta(days=100))
    rw.failed_dues(held, m, failed_on=d)
    advance(db, held.id, d)
    rw.run(held, d)
    [(tp, _key)] = rw.touchpoints(m)
    assert tp.status == "held_out"


def test_two_runs_at_once_take_each_step_once(db, world, gym, session):
    club = world.club()
    m = gym.member(club)
    f = today() - timedelta(days=20)
    invoice_id = gym.failed_dues(club, m, failed_on=f, **SEQUENCE)
    barrier, errors = threading.Barrier(2), []

    def run():
        try:
            barrier.wait()
            advance(db, club.id, f + timedelta(days=15))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    case = case_of(session, invoice_id)  # a first run 15 days late: one reminder a day
    assert (case.retries, case.reminders, case.fee_charged) == (1, 1, True)
    assert case.blocks_entry_from == f + timedelta(days=15)
    assert case.next_step_on == f + timedelta(days=16)
    assert sorted(steps(session, case.id)) == [
        ("block", 1), ("failed", 1), ("fee", 1), ("reminder", 1), ("retry", 1)]
    assert session.scalar(select(func.count()).select_from(Collection).where(
        Collection.invoice_id == invoice_id)) == 2
    assert session.scalar(select(func.count()).select_from(Notice).where(
        Notice.club_id == club.id, Notice.kind == "reminder")) == 1
