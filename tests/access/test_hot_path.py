"""The turnstile hot path's shortcuts: the per-process device-key cache, the club settings parsed
once, the visit's follow-ups folded into the grant, the autocommit connection without a
pre-ping. Each must change nothing a club can see."""
from datetime import timedelta

import pytest
from psycopg import pq
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, update

from app.access import service
from app.access.models import AccessEvent, Visit
from app.clubs import service as clubs_service
from app.clubs.models import Club, Device
from app.core import clock, events
from app.core.db import transaction
from app.core.events import VisitGranted
from app.members.models import Member
from tests.access.conftest import BERLIN, count_rows, today


def test_a_known_device_is_refused_on_the_next_event_once_revoked(client, world, gym, post_event,
                                                                   db, session):
    club = world.club()
    device = world.device(club)
    m = gym.member(club)
    gym.membership(club, m)
    assert post_event(device, m.card, event_id="1").json()["allow"] is True  # key now cached
    with transaction(db.sessionmaker) as s:
        clubs_service.revoke_device(s, device=s.get(Device, device.device_id))
    r = post_event(device, m.card, event_id="2")
    assert r.status_code == 401 and r.json()["error"] == "invalid_device_key"
    assert count_rows(session, AccessEvent) == 1
    assert count_rows(session, Visit) == 1


def test_a_rotated_key_replaces_the_old_one_at_once(client, world, gym, post_event, db, session):
    club = world.club()
    device = world.device(club)
    m = gym.member(club)
    gym.membership(club, m)
    assert post_event(device, m.card, event_id="1").status_code == 200
    with transaction(db.sessionmaker) as s:
        new_key = clubs_service.rotate_device_key(s, device=s.get(Device, device.device_id))
    assert post_event(device, m.card, event_id="2").status_code == 401
    rotated = type(device)(device.device_id, device.club_id, new_key)
    r = post_event(rotated, m.card, event_id="3")
    assert r.status_code == 200 and r.json()["reason"] == "anti_passback"
    events = session.scalars(select(AccessEvent.dedup_key).order_by(AccessEvent.id)).all()
    assert events == [f"dev:{device.device_id}:1", f"dev:{device.device_id}:3"]


def test_a_device_turned_into_an_exit_is_one_on_its_next_event(client, world, gym, post_event, db,
                                                               session):
    club = world.club()
    device = world.device(club)
    m = gym.member(club, first_name="Lena")
    gym.membership(club, m)
    assert post_event(device, m.card).json()["message"] == "Welcome, Lena!"
    with db.engine.begin() as conn:  # no API moves a device yet; the row is what counts
        conn.execute(update(Device).where(Device.id == device.device_id).values(direction="out"))
    r = post_event(device, m.card)
    assert r.json()["allow"] is True and r.json()["message"] == "Goodbye, Lena!"
    assert session.scalars(select(AccessEvent.direction).order_by(AccessEvent.id)).all() == [
        "in", "out"]


def test_changed_club_settings_apply_to_the_very_next_check_in(client, world, gym, post_event, db):
    club = world.club(anti_passback_minutes=0)
    device = world.device(club)
    m = gym.member(club)
    gym.membership(club, m)
    at = clock.now() - timedelta(minutes=10)
    assert post_event(device, m.card, occurred_at=at).json()["allow"] is True
    assert post_event(device, m.card, occurred_at=at + timedelta(minutes=1)).json()["allow"]

    def set_window(minutes: int) -> None:
        with transaction(db.sessionmaker) as s:
            clubs_service.update_club_settings(s, club=s.get(Club, club.id),
                                               changes={"anti_passback_minutes": minutes})

    set_window(30)
    r = post_event(device, m.card, occurred_at=at + timedelta(minutes=2))
    assert r.json()["reason"] == "anti_passback"
    set_window(0)
    assert post_event(device, m.card, occurred_at=at + timedelta(minutes=3)).json()["allow"]


@pytest.mark.parametrize("broken_first", [True, False])
def test_a_failing_listener_leaves_the_other_listeners_work_and_the_visit(
        client, world, gym, post_event, session, db, broken_first):
    calls = []

    def broken(session_, event):
        session_.execute(Visit.__table__.insert().values(club_id=-1))  # fails in the database

    def marks_member(session_, event):
        calls.append(event.member_id)
        session_.execute(update(Member).where(Member.id == event.member_id)
                         .values(last_name="Was here"))

    listeners = [broken, marks_member] if broken_first else [marks_member, broken]
    with events.replaced(VisitGranted, best_effort=listeners):
        club = world.club()
        m = gym.member(club)
        gym.membership(club, m)
        r = post_event(world.device(club), m.card)
        assert r.status_code == 200 and r.json()["allow"] is True
        assert count_rows(session, Visit) == 1
        assert session.scalar(select(Member.last_name).where(Member.id == m.member_id)) == "Was here"
    if db.backend == "postgresql":
        # the device's check-in runs on an autocommit connection: each listener's work stands
        # on its own, so nothing is undone and nothing runs twice
        assert calls == [m.member_id]
    else:
        # after a failure the others run again, each in its own savepoint; the first try was undone
        assert calls == ([m.member_id] if broken_first else [m.member_id, m.member_id])


def test_a_club_seen_before_gets_the_same_answers_as_a_club_seen_first(world, gym, post_event):
    """On PostgreSQL the second check-in at a club reads card and membership in one statement;
    every refusal must read exactly as on the first (two-statement) read."""
    club = world.club(block_on_debt=True)
    device = world.device(club)
    day = today()
    later = clock.now().astimezone(BERLIN) + timedelta(hours=2)  # a window that is not open now
    plan_later = gym.plan(club, name="Later", access_start=later.time().replace(microsecond=0),
                          access_end=(later + timedelta(hours=1)).time().replace(microsecond=0))

    def signed_up(**membership):
        m = gym.member(club)
        gym.membership(club, m, **membership)
        return m

    owes = signed_up()
    gym.sale(club, owes, total="10.00", paid="0")
    frozen = gym.member(club)
    gym.freeze(club, gym.membership(club, frozen), start=day - timedelta(days=1),
               end=day + timedelta(days=3))
    cards = {
        "debt": owes.card,
        "membership_frozen": frozen.card,
        "membership_expired": signed_up(start=day - timedelta(days=40),
                                        end=day - timedelta(days=9)).card,
        "membership_not_started": signed_up(start=day + timedelta(days=9),
                                            end=day + timedelta(days=40)).card,
        "membership_cancelled": signed_up(cancelled_on=day - timedelta(days=1)).card,
        "visit_limit_reached": signed_up(visit_limit=4, visits_used=4).card,
        "outside_access_hours": signed_up(plan=plan_later).card,
        "no_membership": gym.member(club).card,
        "card_blocked": gym.member(club, card_status="blocked").card,
        "unknown_card": "NOSUCHCARD",
    }
    for reason, card in cards.items():
        service._clubs_seen.clear()
        first = post_event(device, card).json()
        again = post_event(device, card).json()
        assert first["reason"] == reason, (reason, first)
        assert again == first


def test_a_granted_entry_is_one_read_and_one_write_outside_any_transaction(
        client, app, world, gym, post_event, db):
    """PostgreSQL: the club seen once, a granted entry costs two statements (card + membership;
    event + count + visit + the folded follow-ups) and no BEGIN, COMMIT or savepoint."""
    if not db.is_postgres:
        pytest.skip("SQLite takes the same decision in five statements in one transaction")
    club = world.club()
    device = world.device(club)
    first, second = gym.member(club), gym.member(club)
    gym.membership(club, first)
    gym.membership(club, second)
    assert post_event(device, first.card, event_id="warm").json()["allow"] is True
    seen = []

    def after(conn, cursor, statement, *_args):
        seen.append((statement.split()[0], conn.connection.dbapi_connection.info.transaction_status))

    sa_event.listen(app.state.engine, "after_cursor_execute", after)
    try:
        assert post_event(device, second.card, event_id="measured").json()["allow"] is True
    finally:
        sa_event.remove(app.state.engine, "after_cursor_execute", after)
    idle = pq.TransactionStatus.IDLE
    assert seen == [("SELECT", idle), ("WITH", idle)], seen


def test_the_grant_statement_stays_small_enough_for_the_drivers_query_cache():
    """psycopg converts a query's placeholders once and caches it only below 4,096 characters;
    above that every check-in pays the conversion again."""
    from sqlalchemy.dialects import postgresql

    folds = tuple(fold for _handler, fold in events.folded(VisitGranted))
    assert len(folds) == 2  # the stage recovery and the class attendance are folded in
    sql = str(service._grant_with(folds).compile(dialect=postgresql.psycopg.dialect()))
    assert len(sql) < 4096, len(sql)


def test_a_connection_the_database_dropped_costs_the_turnstile_nothing(
        client, app, world, gym, post_event, session, db):
    """No pre-ping: the event that finds its pooled connection dead runs again on a new one when
    it carries its own id; without one the device gets a 503 to retry."""
    if not db.is_postgres:
        pytest.skip("an embedded SQLite database has no connection to lose")
    club = world.club(anti_passback_minutes=0)
    device = world.device(club)
    m = gym.member(club)
    gym.membership(club, m)
    assert post_event(device, m.card, event_id="before").json()["allow"] is True

    def drop_the_apps_connection() -> None:
        with app.state.engine.connect() as conn:  # the pool's one connection
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        session.execute(select(func.pg_terminate_backend(pid)))

    drop_the_apps_connection()
    r = post_event(device, m.card, event_id="after")
    assert r.status_code == 200 and r.json()["allow"] is True
    drop_the_apps_connection()
    r = post_event(device, m.card)
    assert r.status_code == 503 and r.json()["error"] == "unavailable"
    assert post_event(device, m.card).json()["allow"] is True  # the pool has recovered
    assert count_rows(session, Visit) == 3
