"""The member app's "get in" code at the turnstile's native endpoint and at the desk: a code shown
now opens like the member's card; yesterday's, or one from three minutes ago, does not; a frozen
or overdue member's code is refused with the card's reasons; another club's door does not know
it; a lost phone's codes stop at the staff's reset."""
from datetime import datetime, timedelta

import pytest
from psycopg import pq
from sqlalchemy import event as sa_event
from sqlalchemy import select

from app.access import member_codes
from app.access.models import AccessEvent, MemberAppCode, Visit
from app.core.actors import Role
from app.core.db import transaction
from app.core.errors import Invalid
from app.dues import dunning
from app.members.models import Card
from tests.access.conftest import count_rows, local, today

EXPIRED = (False, "code_expired", "App code expired, please open it again in the app")


@pytest.fixture
def at_1805(clock):
    """The test's clock at 18:05:10 club time today (ticking on from there)."""
    clock.set(local(today(), 18, 5).replace(second=10))
    return clock


def code_of(db, member, now: datetime | None = None) -> member_codes.MemberCode:
    """What the member app shows the member (`now` default: the clock's now)."""
    with transaction(db.sessionmaker) as s:
        return member_codes.current_code(s, club_id=member.club_id, member_id=member.member_id,
                                         now=now)


def answer(response) -> tuple:
    body = response.json()
    return body["allow"], body["reason"], body["message"]


def test_the_one_time_part_is_rfc_6238_totp_with_sha256():
    """RFC 6238, appendix B (SHA-256, 30-second steps, 8 digits): the construction is standard."""
    secret = b"12345678901234567890123456789012"
    vectors = {59: "46119246", 1111111109: "68084774", 1111111111: "67062674",
               1234567890: "91819424", 2000000000: "90698825", 20000000000: "77737706"}
    for unix, expected in vectors.items():
        assert member_codes.one_time(secret, unix // 30, digits=8) == expected


def test_a_code_is_16_digits_with_the_prefix_and_the_members_key_and_changes_each_minute(
        at_1805, world, gym, db, session):
    club = world.club()
    anna = gym.member(club)
    first = code_of(db, anna)
    assert len(first.code) == 16 and first.code.isdigit() and first.code.startswith("98")
    assert member_codes.looks_like(first.code)
    minute = at_1805.now().replace(second=0, microsecond=0)
    assert first.valid_until == minute + timedelta(minutes=1)
    assert code_of(db, anna) == first  # the same minute, the same code; the secret made once
    later = code_of(db, anna, now=first.valid_until)
    assert later.code != first.code and later.code[:10] == first.code[:10]  # the key stays
    row = session.scalar(select(MemberAppCode).where(MemberAppCode.member_id == anna.member_id))
    assert first.code[2:10] == row.key and len(row.secret) == 64
    assert not member_codes.looks_like(anna.card) and not member_codes.looks_like(
        first.code[:15])


def test_the_member_at_the_turnstile_at_18_05_with_the_code_shown_now_is_let_in(
        at_1805, client, world, gym, db, post_event, session):
    club = world.club()
    device = world.device(club)
    anna = gym.member(club, first_name="Anna")
    ben = gym.member(club, first_name="Ben")
    membership_id = gym.membership(club, anna)
    gym.membership(club, ben)
    shown = code_of(db, anna)
    r = post_event(device, shown.code, event_id="qr-1")
    assert r.status_code == 200
    assert r.json() == {"allow": True, "reason": "ok", "message": "Welcome, Anna!",
                        "member": {"id": anna.member_id, "name": "Anna"},
                        "visit_id": r.json()["visit_id"]}
    visit = session.get(Visit, r.json()["visit_id"])
    assert (visit.member_id, visit.membership_id) == (anna.member_id, membership_id)
    assert local(today(), 18, 5) <= visit.occurred_at < local(today(), 18, 6)
    event = session.get(AccessEvent, visit.access_event_id)
    assert (event.card_code, event.identified_by, event.member_id) == (
        shown.code, "app_code", anna.member_id)
    session.rollback()  # (SQLite: a read holds the write lock)
    # a plain card the same minute: said as a card
    r = post_event(device, ben.card, event_id="card-1")
    assert answer(r) == (True, "ok", "Welcome, Ben!")
    assert session.scalar(select(AccessEvent.identified_by)
                          .where(AccessEvent.card_code == ben.card)) == "card"


def test_yesterdays_code_and_one_from_three_minutes_ago_are_refused_as_expired(
        at_1805, client, world, gym, db, post_event, session):
    club = world.club()
    device = world.device(club)
    anna = gym.member(club, first_name="Anna")
    gym.membership(club, anna)
    now = at_1805.now()
    at_1805.set(now - timedelta(days=1))
    yesterdays = code_of(db, anna).code  # a screenshot from yesterday, 18:05
    at_1805.set(now)
    r = post_event(device, yesterdays, event_id="y")
    assert answer(r) == EXPIRED
    assert r.json()["member"] == {"id": anna.member_id, "name": "Anna"}  # the key names her
    three_ago = code_of(db, anna, now=now - timedelta(minutes=3)).code
    two_ago = code_of(db, anna, now=now - timedelta(minutes=2)).code
    assert answer(post_event(device, three_ago, event_id="3")) == EXPIRED
    assert answer(post_event(device, two_ago, event_id="2")) == EXPIRED
    refused = session.scalars(select(AccessEvent).order_by(AccessEvent.id)).all()
    assert [(e.reason, e.card_code, e.identified_by) for e in refused] == [
        ("code_expired", yesterdays, "app_code"), ("code_expired", three_ago, "app_code"),
        ("code_expired", two_ago, "app_code")]
    session.rollback()
    assert count_rows(session, Visit) == 0
    # shown a minute ago, just before the minute turned: still good (clock skew)
    one_ago = code_of(db, anna, now=now - timedelta(minutes=1)).code
    assert answer(post_event(device, one_ago, event_id="1")) == (True, "ok", "Welcome, Anna!")


def test_a_turnstile_clock_a_little_behind_the_servers_accepts_the_code_shown_now(
        at_1805, client, world, gym, db, post_event):
    club = world.club()
    device = world.device(club)
    anna = gym.member(club, first_name="Anna")
    gym.membership(club, anna)
    shown = code_of(db, anna)
    device_time = shown.valid_until - timedelta(minutes=1, seconds=20)  # the minute before
    r = post_event(device, shown.code, event_id="1", occurred_at=device_time)
    assert answer(r) == (True, "ok", "Welcome, Anna!")


def test_a_frozen_members_code_is_refused_like_the_card(at_1805, client, world, gym, db,
                                                        post_event):
    club = world.club()
    device = world.device(club)
    frida = gym.member(club, first_name="Frida")
    until = today() + timedelta(days=4)
    gym.freeze(club, gym.membership(club, frida), start=today() - timedelta(days=1), end=until)
    by_code = answer(post_event(device, code_of(db, frida).code, event_id="code"))
    by_card = answer(post_event(device, frida.card, event_id="card"))
    assert by_code == by_card == (False, "membership_frozen",
                                  f"Frozen until {until.day} {until:%B}"
                                  + ("" if until.year == today().year else f" {until.year}"))


def test_a_code_of_a_member_whose_dues_are_overdue_is_refused_until_paid(
        at_1805, client, world, gym, db, post_event):
    club = world.club()
    device = world.device(club)
    desk = world.staff(club, Role.front_desk)
    owing = gym.member(club, first_name="Olga")
    gym.membership(club, owing)
    invoice_id = gym.failed_dues(club, owing, failed_on=today() - timedelta(days=10),
                                 block_entry_after_days=5, reminder_days=3)
    with transaction(db.sessionmaker) as s:
        dunning.advance_dunning(s, club_id=club.id, day=today())
    r = post_event(device, code_of(db, owing).code, event_id="1")
    assert answer(r) == (False, "payment_overdue", "Please see the front desk about your payment")
    paid = client.post(f"/api/v1/invoices/{invoice_id}/payments", headers=desk.headers,
                       json={"amount": "49.00", "method": "card_terminal"})
    assert paid.status_code == 201, paid.text
    assert answer(post_event(device, code_of(db, owing).code, event_id="2"))[:2] == (True, "ok")


def test_no_membership_and_an_erased_member_are_refused(at_1805, client, world, gym, db,
                                                        post_event):
    club = world.club()
    device = world.device(club)
    manager = world.staff(club, Role.manager)
    nobody = gym.member(club, first_name="Nora")
    assert answer(post_event(device, code_of(db, nobody).code, event_id="1"))[:2] == (
        False, "no_membership")
    gone = gym.member(club)
    gym.membership(club, gone)
    code = code_of(db, gone).code
    erased = client.post(f"/api/v1/members/{gone.member_id}/erase", headers=manager.headers,
                         json={"reason": "asked by email", "confirm": True})
    assert erased.status_code == 200, erased.text
    assert answer(post_event(device, code, event_id="2"))[:2] == (False, "unknown_card")


def test_another_clubs_turnstile_does_not_know_the_code(at_1805, client, world, gym, db,
                                                        post_event, session):
    home, elsewhere = world.club("Home"), world.club("Elsewhere")
    anna = gym.member(home)
    gym.membership(home, anna)
    code = code_of(db, anna).code
    r = post_event(world.device(elsewhere), code, event_id="1")
    assert r.json() == {"allow": False, "reason": "unknown_card",
                        "message": "Card not recognised, please see the front desk",
                        "member": None, "visit_id": None}
    event = session.scalar(select(AccessEvent))
    assert (event.club_id, event.member_id, event.identified_by) == (elsewhere.id, None, "card")


def test_a_code_sent_twice_by_the_turnstile_is_one_entry_and_a_second_pass_is_anti_passback(
        at_1805, client, world, gym, db, post_event, session):
    club = world.club()
    device = world.device(club)
    anna = gym.member(club, first_name="Anna")
    gym.membership(club, anna)
    code = code_of(db, anna).code
    first = post_event(device, code, event_id="77")
    again = post_event(device, code, event_id="77")  # the device did not get the answer
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert answer(post_event(device, code, event_id="78"))[:2] == (False, "anti_passback")
    assert count_rows(session, Visit) == 1


def test_a_reset_refuses_the_lost_phones_codes_and_the_new_code_opens(
        at_1805, client, world, gym, db, post_event, session):
    club, elsewhere = world.club(), world.club("Elsewhere")
    device = world.device(club)
    desk, trainer = world.staff(club, Role.front_desk), world.staff(club, Role.trainer)
    anna = gym.member(club, first_name="Anna")
    gym.membership(club, anna)
    on_the_lost_phone = code_of(db, anna).code
    path = f"/api/v1/members/{anna.member_id}/app-code/reset"
    assert client.post(path, headers=trainer.headers).status_code == 403
    other_desk = world.staff(elsewhere, Role.front_desk)
    assert client.post(path, headers=other_desk.headers).status_code == 404
    r = client.post(path, headers=desk.headers)
    assert r.status_code == 200, r.text
    assert r.json()["member_id"] == anna.member_id
    row = session.scalar(select(MemberAppCode).where(MemberAppCode.member_id == anna.member_id))
    assert row.reset_by == desk.user_id and row.reset_at is not None
    session.rollback()
    assert answer(post_event(device, on_the_lost_phone, event_id="lost")) == EXPIRED
    new = code_of(db, anna).code
    assert new != on_the_lost_phone and new[:10] == on_the_lost_phone[:10]
    assert answer(post_event(device, new, event_id="new")) == (True, "ok", "Welcome, Anna!")
    # a member who never opened the app: the reset makes a secret, their first code works
    ben = gym.member(club, first_name="Ben")
    gym.membership(club, ben)
    assert client.post(f"/api/v1/members/{ben.member_id}/app-code/reset",
                       headers=desk.headers).status_code == 200
    assert answer(post_event(device, code_of(db, ben).code, event_id="ben"))[:2] == (True, "ok")
    assert client.post(f"/api/v1/members/{10**9}/app-code/reset",
                       headers=desk.headers).status_code == 404


def test_the_desk_scanner_field_finds_the_member_by_code_and_checks_them_in(
        at_1805, client, world, gym, db):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    anna = gym.member(club, first_name="Anna")
    gym.membership(club, anna)
    code = code_of(db, anna).code
    stale = code_of(db, anna, now=at_1805.now() - timedelta(minutes=5)).code
    with transaction(db.sessionmaker) as s:
        assert member_codes.member_for_code(s, club_id=club.id, code=code) == anna.member_id
        assert member_codes.member_for_code(s, club_id=club.id, code=anna.card) is None
        with pytest.raises(Invalid) as expired:
            member_codes.member_for_code(s, club_id=club.id, code=stale)
        assert expired.value.code == "code_expired"
    # the desk checks the member it found in, as after a scanned card
    r = client.post(f"/api/v1/members/{anna.member_id}/check-ins", headers=desk.headers)
    assert r.status_code == 200 and r.json()["reason"] == "ok"


def test_no_card_can_be_issued_in_the_member_code_form_but_an_older_one_still_opens(
        at_1805, client, world, gym, db, post_event, session):
    club = world.club()
    device = world.device(club)
    desk = world.staff(club, Role.front_desk)
    carl = gym.member(club, first_name="Carl", card=None)
    gym.membership(club, carl)
    r = client.post(f"/api/v1/members/{carl.member_id}/cards", headers=desk.headers,
                    json={"code": "9800000000123456"})
    assert r.status_code == 422 and "member app codes" in r.text
    assert client.post(f"/api/v1/members/{carl.member_id}/cards", headers=desk.headers,
                       json={"code": "980000000012345"}).status_code == 201  # 15 digits: a card
    # a card in the form from before the rule (imported long ago) is still a card
    dora = gym.member(club, first_name="Dora", card="9811112222333344")
    gym.membership(club, dora)
    assert answer(post_event(device, dora.card, event_id="1")) == (True, "ok", "Welcome, Dora!")
    assert session.scalar(select(AccessEvent.identified_by)) == "card"
    assert session.scalar(select(Card.code).where(Card.member_id == dora.member_id)) == dora.card


def test_the_qr_code_is_an_svg_of_the_digits():
    code = "9812345678123456"
    svg = member_codes.qr_svg(code)
    assert svg.startswith(b"<svg") and b"<title>Member code</title>" in svg
    import segno

    qr = segno.make(code, error="m", micro=False)
    assert qr.mode == "numeric" and qr.version == 1  # small: quick to read from a screen
    with pytest.raises(Invalid):
        member_codes.qr_svg("C00100001")


def test_the_privacy_export_leaves_the_secret_out_and_erasure_deletes_it(
        at_1805, client, world, gym, db, session):
    club = world.club()
    manager = world.staff(club, Role.manager)
    anna = gym.member(club)
    code_of(db, anna)
    secret = session.scalar(select(MemberAppCode.secret))
    session.rollback()
    export = client.get(f"/api/v1/members/{anna.member_id}/privacy-export",
                        headers=manager.headers)
    assert export.status_code == 200
    assert "member_app_codes" not in export.json()["tables"] and secret not in export.text
    r = client.post(f"/api/v1/members/{anna.member_id}/erase", headers=manager.headers,
                    json={"reason": "asked by email", "confirm": True})
    assert r.status_code == 200, r.text
    assert count_rows(session, MemberAppCode) == 0


def test_on_postgresql_a_code_costs_one_read_more_and_a_card_nothing_more(
        at_1805, client, app, world, gym, db, post_event):
    """PostgreSQL, club seen: a card is still two statements; a code reads its key, then the
    membership, then writes (three)."""
    if not db.is_postgres:
        pytest.skip("the one-read shortcut is PostgreSQL's")
    club = world.club()
    device = world.device(club)
    members = [gym.member(club) for _ in range(3)]
    for m in members:
        gym.membership(club, m)
    assert post_event(device, members[0].card, event_id="warm").json()["allow"] is True
    code = code_of(db, members[2]).code
    seen = []

    def after(conn, cursor, statement, *_args):
        seen.append((statement.split()[0],
                     conn.connection.dbapi_connection.info.transaction_status))

    sa_event.listen(app.state.engine, "after_cursor_execute", after)
    try:
        assert post_event(device, members[1].card, event_id="card").json()["allow"] is True
        card_statements = list(seen)
        seen.clear()
        assert post_event(device, code, event_id="code").json()["allow"] is True
    finally:
        sa_event.remove(app.state.engine, "after_cursor_execute", after)
    idle = pq.TransactionStatus.IDLE
    assert card_statements == [("SELECT", idle), ("WITH", idle)]
    assert seen == [("SELECT", idle), ("SELECT", idle), ("WITH", idle)]
