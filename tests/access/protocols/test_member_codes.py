"""The member app's code read by a QR-capable ZKTeco panel or Hikvision terminal, which hands it
to fitclub as a card number: the same answers as the member's card, in each device's format."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.access import member_codes
from app.access.models import AccessEvent, Visit
from app.core import clock
from app.core.db import transaction
from app.dues import dunning
from tests.access.conftest import count_rows, local, today
from tests.access.protocols.formats import hik_event, rtlog, wall
from tests.access.protocols.test_hikvision import post as hik_post
from tests.access.protocols.test_hikvision import stamp
from tests.access.protocols.test_zkteco import cdata

BERLIN = "Europe/Berlin"


@pytest.fixture
def at_1805(clock):
    clock.set(local(today(), 18, 5).replace(second=10))
    return clock


def code_of(db, member, now=None) -> str:
    with transaction(db.sessionmaker) as s:
        return member_codes.current_code(s, club_id=member.club_id, member_id=member.member_id,
                                         now=now).code


def _day(d) -> str:
    return f"{d.day} {d:%B}" + ("" if d.year == today().year else f" {d.year}")


def test_zkteco_background_verification_of_the_code_shown_now_opens_once(
        at_1805, client, world, controller, gym, db, session):
    club = world.club()
    zk = controller(club, "zkteco")
    anna = gym.member(club, first_name="Anna")
    gym.membership(club, anna)
    code = code_of(db, anna)
    asked_at = wall(clock.now(), BERLIN)
    record = rtlog(time=asked_at, index=0, cardno=code, event=0)
    r = cdata(client, zk.serial, record, AuthType="device")
    assert r.text.splitlines() == ["AUTH=SUCCEED", "TIPS=Welcome, Anna!"]
    # the panel then uploads its own log of the pass: the same entry
    assert cdata(client, zk.serial, rtlog(time=asked_at, index=501, cardno=code, event=0),
                 table="rtlog").text == "OK"
    assert count_rows(session, Visit) == 1
    event = session.scalar(select(AccessEvent))
    assert (event.card_code, event.identified_by, event.member_id) == (
        code, "app_code", anna.member_id)


def test_zkteco_refuses_yesterdays_code_and_a_frozen_members_code(
        at_1805, client, world, controller, gym, db, session):
    club = world.club()
    zk = controller(club, "zkteco")
    anna, frida = gym.member(club, first_name="Anna"), gym.member(club, first_name="Frida")
    gym.membership(club, anna)
    until = today() + timedelta(days=3)
    gym.freeze(club, gym.membership(club, frida), start=today() - timedelta(days=2), end=until)
    yesterdays = code_of(db, anna, now=clock.now() - timedelta(days=1))
    now = wall(clock.now(), BERLIN)
    r = cdata(client, zk.serial, rtlog(time=now, index=1, cardno=yesterdays), AuthType="device")
    assert r.text.splitlines() == ["AUTH=FAILED",
                                   "TIPS=App code expired, please open it again in the app"]
    r = cdata(client, zk.serial, rtlog(time=now, index=2, cardno=code_of(db, frida)),
              AuthType="device")
    assert r.text.splitlines() == ["AUTH=FAILED", f"TIPS=Frozen until {_day(until)}"]
    assert count_rows(session, Visit) == 0


def test_hikvision_remote_check_of_the_code_succeeds_and_its_log_is_the_same_pass(
        at_1805, client, world, controller, gym, db, session):
    club = world.club()
    hik = controller(club, "hikvision")
    anna = gym.member(club, first_name="Anna")
    gym.membership(club, anna)
    code = code_of(db, anna)
    asked = stamp(clock.now())
    r = hik_post(client, hik, hik_event(serial_no=41, date_time=asked, card=code, remote=True))
    assert r.json() == {"RemoteCheck": {"serialNo": 41, "checkResult": "success",
                                        "info": "Welcome, Anna!"}}
    hik_post(client, hik, hik_event(serial_no=42, date_time=asked, card=code, sub=0x01))
    assert count_rows(session, Visit) == 1 and count_rows(session, AccessEvent) == 1


def test_hikvision_refuses_the_code_of_a_member_whose_dues_are_overdue(
        at_1805, client, world, controller, gym, db):
    club = world.club()
    hik = controller(club, "hikvision")
    owing = gym.member(club, first_name="Olga")
    gym.membership(club, owing)
    gym.failed_dues(club, owing, failed_on=today() - timedelta(days=10),
                    block_entry_after_days=5, reminder_days=3)
    with transaction(db.sessionmaker) as s:
        dunning.advance_dunning(s, club_id=club.id, day=today())
    event = hik_event(serial_no=7, date_time=stamp(clock.now()), card=code_of(db, owing),
                      remote=True)
    assert hik_post(client, hik, event).json() == {"RemoteCheck": {
        "serialNo": 7, "checkResult": "failed",
        "info": "Please see the front desk about your payment"}}


def test_another_clubs_terminal_does_not_know_the_code(at_1805, client, world, controller, gym,
                                                       db):
    home, elsewhere = world.club("Home"), world.club("Elsewhere")
    anna = gym.member(home)
    gym.membership(home, anna)
    code = code_of(db, anna)
    hik = controller(elsewhere, "hikvision")
    event = hik_event(serial_no=9, date_time=stamp(clock.now()), card=code, remote=True)
    assert hik_post(client, hik, event).json() == {"RemoteCheck": {
        "serialNo": 9, "checkResult": "failed",
        "info": "Card not recognised, please see the front desk"}}
    zk = controller(elsewhere, "zkteco")
    r = cdata(client, zk.serial, rtlog(time=wall(clock.now(), BERLIN), index=3, cardno=code),
              AuthType="device")
    assert r.text.splitlines() == ["AUTH=FAILED",
                                   "TIPS=Card not recognised, please see the front desk"]
