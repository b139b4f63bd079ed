"""Check-in refused with `payment_overdue` while a dunning case blocks entry, on the turnstile's
hot path (no extra statement) and at the desk."""
from datetime import timedelta

import pytest
from psycopg import pq
from sqlalchemy import event as sa_event
from sqlalchemy import select

from app.core.actors import Role
from app.core.db import transaction
from app.dues import dunning
from app.dues.models import DunningCase
from tests.access.conftest import today

BLOCKING = {"block_entry_after_days": 5, "reminder_days": 3}


def _blocked(db, gym, club, member, *, days_ago: int = 10, **settings) -> int:
    """A returned debit `days_ago`, taken through the dunning run up to today: the case id."""
    invoice_id = gym.failed_dues(club, member, failed_on=today() - timedelta(days=days_ago),
                                 **(BLOCKING | settings))
    with transaction(db.sessionmaker) as s:
        dunning.advance_dunning(s, club_id=club.id, day=today())
        return s.scalar(select(DunningCase.id).where(DunningCase.invoice_id == invoice_id))


def test_the_turnstile_refuses_a_member_whose_dues_are_overdue_until_paid(
        client, world, gym, post_event, db, session):
    club = world.club()
    device = world.device(club)
    desk = world.staff(club, Role.front_desk)
    owing, other = gym.member(club), gym.member(club)
    gym.membership(club, owing)
    gym.membership(club, other)
    case_id = _blocked(db, gym, club, owing)
    case = session.get(DunningCase, case_id)
    assert case.blocks_entry_from == today() - timedelta(days=5)
    invoice_id = case.invoice_id
    session.rollback()

    r = post_event(device, owing.card, event_id="1")
    assert r.status_code == 200
    assert (r.json()["allow"], r.json()["reason"], r.json()["message"]) == (
        False, "payment_overdue", "Please see the front desk about your payment")
    assert post_event(device, other.card, event_id="2").json()["allow"] is True
    at_desk = client.post(f"/api/v1/members/{owing.member_id}/check-ins", headers=desk.headers)
    assert at_desk.json()["reason"] == "payment_overdue"
    assert at_desk.json()["payment_problem"]["blocked"] is True

    paid = client.post(f"/api/v1/invoices/{invoice_id}/payments", headers=desk.headers,
                       json={"amount": "49.00", "method": "card_terminal"})
    assert paid.status_code == 201, paid.text
    again = post_event(device, owing.card, event_id="3")
    assert (again.json()["allow"], again.json()["reason"]) == (True, "ok")


def test_only_an_open_case_whose_block_has_begun_refuses_entry(world, gym, post_event, db,
                                                              client):
    club, elsewhere = world.club(), world.club("Elsewhere")
    device = world.device(club)
    manager = world.staff(club, Role.manager)
    not_yet, written_off = gym.member(club), gym.member(club)
    for m in (not_yet, written_off):
        gym.membership(club, m)
    _blocked(db, gym, club, not_yet, days_ago=2)  # blocks from day 5
    case_id = _blocked(db, gym, club, written_off)
    assert client.post(f"/api/v1/dunning/{case_id}/write-off",
                       headers=manager.headers).status_code == 200
    # a case in another club for a member with the same id range changes nothing here
    stranger = gym.member(elsewhere)
    _blocked(db, gym, elsewhere, stranger)
    assert post_event(device, not_yet.card, event_id="a").json()["reason"] == "ok"
    assert post_event(device, written_off.card, event_id="b").json()["reason"] == "ok"


def test_an_overdue_refusal_costs_no_extra_statement_on_the_hot_path(
        client, app, world, gym, post_event, db):
    """PostgreSQL, club seen once: refused = one read + one write; a member with an open case
    that does not block yet is granted in the usual two statements."""
    if not db.is_postgres:
        pytest.skip("the one-read shortcut is PostgreSQL's")
    club = world.club()
    device = world.device(club)
    warm, owing, soon = gym.member(club), gym.member(club), gym.member(club)
    for m in (warm, owing, soon):
        gym.membership(club, m)
    _blocked(db, gym, club, owing)
    _blocked(db, gym, club, soon, days_ago=1)
    assert post_event(device, warm.card, event_id="warm").json()["allow"] is True
    seen = []

    def after(conn, cursor, statement, *_args):
        seen.append((statement.split()[0], conn.connection.dbapi_connection.info.transaction_status))

    sa_event.listen(app.state.engine, "after_cursor_execute", after)
    try:
        assert post_event(device, owing.card, event_id="x").json()["reason"] == "payment_overdue"
        refused, seen[:] = list(seen), []
        assert post_event(device, soon.card, event_id="y").json()["allow"] is True
    finally:
        sa_event.remove(app.state.engine, "after_cursor_execute", after)
    idle = pq.TransactionStatus.IDLE
    assert refused == [("SELECT", idle), ("INSERT", idle)], refused
    assert seen == [("SELECT", idle), ("WITH", idle)], seen
