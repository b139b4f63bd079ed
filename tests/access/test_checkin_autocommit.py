"""The turnstile's check-in on PostgreSQL's autocommit connection (#19): the folded VisitGranted
follow-ups, the visit-limited grant's own transaction, no pre-ping on busy connections, the
hand-written device answer. Written by a reviewer attacking the change; each failure found then
is now a test of the fix."""
from datetime import timedelta

import pytest
from fastapi import FastAPI, Response
from fastapi.testclient import TestClient
from psycopg import pq
from sqlalchemy import create_engine, func, select, text
from sqlalchemy import event as sa_event

from app.access import router as access_router
from app.access import service
from app.access.models import AccessEvent, Visit
from app.access.schemas import DecisionRead
from app.core import clock
from app.core import db as app_db
from app.memberships.models import Membership
from app.retention.models import MemberStage, StageChange
from tests.access.conftest import BERLIN, count_rows, today


def _pg_only(db):
    if not db.is_postgres:
        pytest.skip("PostgreSQL autocommit path")


def _terminate_own_backend_on(engine, db, prefix: str, *, after: bool = False):
    """Terminate the backend of the connection that is about to run (or just ran) a statement
    starting with `prefix`, once. Returns the remover."""
    done = []
    killer = create_engine(db.url, isolation_level="AUTOCOMMIT")

    def hook(conn, cursor, statement, *_args):
        if done or not statement.lstrip().upper().startswith(prefix):
            return
        done.append(statement)
        pid = conn.connection.dbapi_connection.info.backend_pid
        with killer.connect() as k:
            k.execute(select(func.pg_terminate_backend(pid)))

    name = "after_cursor_execute" if after else "before_cursor_execute"
    sa_event.listen(engine, name, hook)

    def remove():
        sa_event.remove(engine, name, hook)
        killer.dispose()
    return remove, done


# --- 1. a failure after the grant statement committed ------------------------------------------

def test_a_503_leaves_no_visit_behind(
        client, app, world, gym, post_event, session, db):
    """On the autocommit connection the grant commits on its own, so nothing may fail after it:
    the device's last-seen touch runs first. Its failure (here: the backend is terminated) is a
    503 that left nothing behind, and the device's retry is the member's one entry."""
    _pg_only(db)
    club = world.club(anti_passback_minutes=30)
    device = world.device(club)
    m = gym.member(club)
    gym.membership(club, m, visit_limit=10)
    service._device_seen.clear()  # touch_device runs on this event
    remove, done = _terminate_own_backend_on(app.state.engine, db, "UPDATE DEVICES")
    try:
        r = post_event(device, m.card)
    finally:
        remove()
    assert done, "touch_device did not run"
    assert r.status_code == 503
    retry = post_event(device, m.card)
    assert count_rows(session, Visit) == 1 and retry.json()["allow"] is True, (
        count_rows(session, Visit), retry.json())


def test_a_dropped_connection_before_the_decision_is_retried_for_an_event_with_its_id(
        client, app, world, gym, post_event, session, db):
    """With an event id the request runs again on a new connection: one visit, a first answer."""
    _pg_only(db)
    club = world.club(anti_passback_minutes=30)
    device = world.device(club)
    m = gym.member(club)
    gym.membership(club, m)
    service._device_seen.clear()
    remove, done = _terminate_own_backend_on(app.state.engine, db, "UPDATE DEVICES")
    try:
        r = post_event(device, m.card, event_id="e1")
    finally:
        remove()
    assert done
    assert r.status_code == 200 and r.json()["allow"] is True
    assert count_rows(session, Visit) == 1
    assert "Idempotent-Replayed" not in r.headers


@pytest.mark.parametrize("event_id", [None, "mid"])
def test_a_backend_terminated_between_read_and_grant(client, app, world, gym, post_event,
                                                     session, db, event_id):
    _pg_only(db)
    club = world.club(anti_passback_minutes=0)
    device = world.device(club)
    m = gym.member(club)
    gym.membership(club, m)
    assert post_event(device, m.card, event_id="warm").json()["allow"] is True
    remove, done = _terminate_own_backend_on(app.state.engine, db, "WITH")
    try:
        r = post_event(device, m.card, event_id=event_id)
    finally:
        remove()
    assert done
    if event_id is None:
        assert r.status_code == 503
        assert count_rows(session, Visit) == 1
    else:
        assert r.status_code == 200 and r.json()["allow"] is True
        assert count_rows(session, Visit) == 2
    # the pool is healthy afterwards, and the connection it lends is clean
    assert post_event(device, m.card).json()["allow"] is True
    with app.state.engine.connect() as conn:
        info = conn.connection.dbapi_connection.info
        assert info.transaction_status == pq.TransactionStatus.IDLE
        assert conn.connection.dbapi_connection.autocommit is False


# --- 2. the visit-limit re-decision on the autocommit connection -------------------------------

def _steal_last_visit_before_grant(engine, db, membership_id):
    """Before the grant statement, another 'check-in' (a separate connection) takes the last
    visit: the grant's guarded count then matches nothing and the attempt is re-decided."""
    other = create_engine(db.url, isolation_level="AUTOCOMMIT")
    done = []

    def hook(conn, cursor, statement, *_args):
        if done or not statement.lstrip().upper().startswith("WITH"):
            return
        done.append(1)
        with other.connect() as o:
            o.execute(text("UPDATE memberships SET visits_used = visit_limit WHERE id = :i"),
                      {"i": membership_id})

    sa_event.listen(engine, "before_cursor_execute", hook)

    def remove():
        sa_event.remove(engine, "before_cursor_execute", hook)
        other.dispose()
    return remove, done


def test_the_paired_transaction_is_committed_by_check_in_itself(
        db, world, gym, session):
    """check_in opens BEGIN for a visit-limited grant and closes it on every path: after the
    re-decision as refused the connection is idle again before the caller commits anything."""
    _pg_only(db)
    club = world.club(anti_passback_minutes=0)
    device = world.device(club)
    m = gym.member(club)
    membership_id = gym.membership(club, m, visit_limit=10, visits_used=9)
    remove, done = _steal_last_visit_before_grant(db.engine, db, membership_id)
    try:
        s = db.sessionmaker()
        try:
            conn = s.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            d = service.check_in(s, club_id=club.id, occurred_at=clock.now(),
                                 card_code=m.card, device_id=device.device_id,
                                 dedup_key="dev:x:1")
            status = conn.connection.dbapi_connection.info.transaction_status
            s.commit()
        finally:
            s.close()
    finally:
        remove()
    assert done and d.allow is False and d.reason == "visit_limit_reached"
    stored = session.scalars(select(AccessEvent)).one()
    assert stored.allowed is False  # committed together, by the session
    assert status == pq.TransactionStatus.IDLE, status


def test_the_paired_transaction_does_not_leak_into_the_pool(client, app, world, gym,
                                                            post_event, session, db):
    """Through the endpoint: the race lost, the event re-decided as refused, and the pooled
    connection comes back idle and out of autocommit."""
    _pg_only(db)
    club = world.club(anti_passback_minutes=0)
    device = world.device(club)
    m = gym.member(club)
    membership_id = gym.membership(club, m, visit_limit=10, visits_used=9)
    assert post_event(device, gym.member(club).card, event_id="warm").status_code == 200
    remove, done = _steal_last_visit_before_grant(app.state.engine, db, membership_id)
    try:
        r = post_event(device, m.card, event_id="lost")
    finally:
        remove()
    assert done and r.json() == {"allow": False, "reason": "visit_limit_reached",
                                 "message": "No visits left on this membership",
                                 "member": {"id": m.member_id, "name": r.json()["member"]["name"]},
                                 "visit_id": None}
    assert session.scalars(select(AccessEvent.allowed).where(
        AccessEvent.dedup_key.like("%:lost"))).one() is False
    assert count_rows(session, Visit) == 0
    with app.state.engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        assert dbapi.info.transaction_status == pq.TransactionStatus.IDLE
        assert dbapi.autocommit is False
    # replay of the lost event, sequentially: the same refusal
    again = post_event(device, m.card, event_id="lost")
    assert again.json()["allow"] is False and again.headers["Idempotent-Replayed"] == "true"


# --- 3. the hand-written JSON ---------------------------------------------------------------------

_NAMES = ["Anna", "Jürgen", "Zoë 😀", "名前", 'quote"back\\slash', "tab\tnl\n", "\x00\x1f\x7f",
          "\u2028\u2029", "", None]


def test_the_device_answer_is_byte_for_byte_the_response_model():
    model_app = FastAPI()
    decisions = []
    for name in _NAMES:
        for replayed in (False, True):
            decisions.append(service.Decision(True, "ok", f"Welcome, {name}!", 7, name, 9, 3,
                                              replayed))
    decisions += [service.Decision(False, "unknown_card", "Card not recognised", None, None,
                                   None, 5), service.Decision(False, "unknown_card", "x", None,
                                                              None, None, 5, True)]

    @model_app.get("/{i}", response_model=DecisionRead)
    def old(i: int, response: Response) -> dict:
        return access_router._answer(decisions[i], response)

    @model_app.get("/new/{i}")
    def new(i: int) -> Response:
        return access_router._device_answer(decisions[i])

    c = TestClient(model_app)
    for i, d in enumerate(decisions):
        a, b = c.get(f"/{i}"), c.get(f"/new/{i}")
        assert a.content == b.content, (d, a.content, b.content)
        assert {k: v for k, v in a.headers.items()} == {k: v for k, v in b.headers.items()}, d


# --- 4. folded follow-ups vs the handlers (same assertions on both backends) ---------------------

@pytest.mark.parametrize("stage,recover,base", [
    ("at_risk", 1, "active"), ("at_risk", 1, None), ("at_risk", 2, "active"),
    ("active", 0, None)])
def test_at_risk_recovery_through_the_turnstile(client, world, gym, post_event, session, db,
                                                stage, recover, base):
    club = world.club(anti_passback_minutes=0)
    device = world.device(club)
    m = gym.member(club)
    gym.membership(club, m)
    d0 = today(BERLIN) - timedelta(days=20)
    session.add(MemberStage(club_id=club.id, member_id=m.member_id, stage=stage, since=d0,
                            cycle=f"r{d0}", reason="no visit for 14 days", base_stage=base,
                            base_since=d0 - timedelta(days=100) if base else None,
                            base_cycle="a-old" if base else None, recover_visits=recover,
                            visits_total=3, updated_at=clock.now() - timedelta(days=1)))
    session.commit()
    at = clock.now()
    r = post_event(device, m.card, event_id="v1", occurred_at=at)
    assert r.json()["allow"] is True
    s = session.scalars(select(MemberStage)).one()
    history = session.scalars(select(StageChange)).all()
    day = at.astimezone(BERLIN).date()
    got = (s.stage, s.since, s.cycle, s.reason, s.recover_visits, s.risk_cleared_on,
           [(h.from_stage, h.to_stage, h.on_date, h.reason, h.source) for h in history])
    if stage != "at_risk":
        want = ("active", d0, f"r{d0}", "no visit for 14 days", 0, None, [])
    elif recover == 2:
        want = ("at_risk", d0, f"r{d0}", "no visit for 14 days", 1, None, [])
    else:
        to = base or "active"
        since = d0 - timedelta(days=100) if base else day
        cycle = "a-old" if base else f"a{day.isoformat()}"
        want = (to, since, cycle, "visiting again", 0, day,
                [("at_risk", to, since, "visiting again", "visit")])
    assert got == want
    session.rollback()
    # a replay changes nothing
    assert post_event(device, m.card, event_id="v1").headers["Idempotent-Replayed"] == "true"
    assert session.scalars(select(MemberStage.recover_visits)).one() == want[4]
    assert len(session.scalars(select(StageChange)).all()) == len(want[6])


# --- 5. no pre-ping: the first non-device request after the database dropped the connection ---

def test_a_staff_request_on_a_connection_dropped_while_idle_is_not_a_503(
        client, app, world, gym, session, db, monkeypatch):
    """A connection idle for IDLE_PING_AFTER (here 0 s) is pinged when lent and replaced if the
    database dropped it (restart, failover, a proxy's idle timeout): no 503 for staff."""
    _pg_only(db)
    monkeypatch.setattr(app_db, "IDLE_PING_AFTER", 0.0)
    club = world.club()
    staff = world.staff(club)
    assert client.get("/api/v1/access/events", headers=staff.headers).status_code == 200
    with app.state.engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    session.execute(select(func.pg_terminate_backend(pid)))
    session.rollback()
    first = client.get("/api/v1/access/events", headers=staff.headers)
    second = client.get("/api/v1/access/events", headers=staff.headers)
    assert second.status_code == 200
    assert first.status_code == 200, (first.status_code, first.text)


# --- 6. a best-effort handler's ORM work on the autocommit connection ---------------------------

def test_a_best_effort_orm_handler_that_fails_at_flush_does_not_fail_the_entry(
        client, world, gym, post_event, session, db):
    """On the autocommit connection a best-effort handler's pending ORM work is flushed inside
    its own try: its failure is logged, not turned into the request's error after the grant."""
    from app.core import events
    from app.core.events import VisitGranted
    from app.retention.models import StageChange as SC

    def orm_handler(session_, event):
        session_.add(SC(club_id=event.club_id, member_id=-1, from_stage="x", to_stage="y",
                        on_date=event.occurred_at.date(), at=event.occurred_at, reason="r",
                        source="visit"))  # violates the member foreign key at flush

    with events.replaced(VisitGranted, best_effort=[orm_handler]):
        club = world.club()
        m = gym.member(club)
        gym.membership(club, m)
        r = post_event(world.device(club), m.card)
    visits = count_rows(session, Visit)
    assert r.status_code == 200 and r.json()["allow"] is True, (r.status_code, r.text, visits)
    assert visits == 1


# --- 7. the same new event id posted concurrently, on the autocommit path ------------------------

@pytest.mark.parametrize("visit_limit", [None, 10, 1])
def test_the_same_new_event_id_at_once_records_one_entry(client, world, gym, session, db,
                                                         visit_limit):
    from concurrent.futures import ThreadPoolExecutor

    club = world.club(anti_passback_minutes=0)
    device = world.device(club)
    m = gym.member(club)
    gym.membership(club, m, visit_limit=visit_limit)
    body = {"card": m.card, "event_id": "same"}

    def post(_i):
        r = client.post("/api/v1/access/events", json=body, headers=device.headers)
        return r.status_code, r.json(), r.headers.get("Idempotent-Replayed")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(16)))
    assert {a[0] for a in answers} == {200}, answers
    assert len({str(a[1]) for a in answers}) == 1, answers
    assert sum(a[2] is None for a in answers) == 1, answers  # one first answer, the rest replays
    assert answers[0][1]["allow"] is True
    assert count_rows(session, Visit) == 1 and count_rows(session, AccessEvent) == 1
    used = session.scalars(select(Membership.visits_used)).one()
    assert used == 1  # counted once (unlimited memberships count too)


# --- 8. a required VisitGranted handler on the autocommit path ----------------------------------

def test_a_required_handler_is_refused_before_anything_is_written(
        client, world, gym, post_event, session, db):
    """A required VisitGranted handler cannot be part of an autocommit entry: refused before
    anything is written (a 500, no visit), never after the grant committed."""
    from app.core import events
    from app.core.events import VisitGranted

    def required(session_, event):
        pass

    with events.replaced(VisitGranted, required=[required]):
        club = world.club()
        m = gym.member(club)
        gym.membership(club, m)
        r = TestClient(client.app, raise_server_exceptions=False).post(
            "/api/v1/access/events", json={"card": m.card}, headers=world.device(club).headers)
    visits = count_rows(session, Visit)
    assert r.status_code == 200 or visits == 0, (r.status_code, visits)


# --- 9. an error in the folded follow-ups now refuses the entry ------------------------------------

def test_a_locked_stage_row_does_not_keep_the_member_out(
        client, app, world, gym, post_event, session, db):
    """With a lock_timeout and the member's stage row locked (a long retention run), the folded
    grant fails; the entry is then granted without the folds and the recovery runs as a
    best-effort follow-up (logged when it fails too): the member gets in."""
    _pg_only(db)
    club = world.club(anti_passback_minutes=0)
    device = world.device(club)
    m = gym.member(club)
    gym.membership(club, m)
    d0 = today(BERLIN) - timedelta(days=20)
    session.add(MemberStage(club_id=club.id, member_id=m.member_id, stage="at_risk", since=d0,
                            cycle=f"r{d0}", reason="gone", recover_visits=1, visits_total=3,
                            updated_at=clock.now() - timedelta(days=1)))
    session.commit()

    def short_lock_timeout(dbapi_conn, _record):
        with dbapi_conn.cursor() as cur:
            cur.execute("SET lock_timeout = '300ms'")
        dbapi_conn.commit()

    sa_event.listen(app.state.engine, "connect", short_lock_timeout)
    app.state.engine.dispose()
    locker = create_engine(db.url)
    try:
        with locker.connect() as lk:
            lk.execute(text("SELECT 1 FROM member_stages WHERE member_id = :m FOR UPDATE"),
                       {"m": m.member_id})
            r = post_event(device, m.card, event_id="locked")
            lk.rollback()
    finally:
        locker.dispose()
        sa_event.remove(app.state.engine, "connect", short_lock_timeout)
    assert r.status_code == 200 and r.json()["allow"] is True, (r.status_code, r.text)
    assert count_rows(session, Visit) == 1
