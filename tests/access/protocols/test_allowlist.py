"""The ZKTeco allow-list: what a sale, a freeze, a cancellation or a card change queues, how the
device collects it (`getrequest`) and confirms it (`devicecmd`)."""
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from app.access.protocols import allowlist
from app.access.protocols.models import DeviceCommand
from app.clubs import service as clubs_service
from app.clubs.schemas import ClubSettings
from app.core import clock
from app.core.actors import Role
from app.core.db import transaction

MONTHLY = {"name": "Monthly", "duration_months": 1, "price": "49.00", "freeze_days": 14}


@pytest.fixture
def desk(client, world, controller, db):
    """A club with two ZKTeco devices and a Hikvision one, staff, a plan, and helpers."""
    club = world.club()
    manager, clerk = world.staff(club, Role.manager), world.staff(club, Role.front_desk)
    r = client.post("/api/v1/plans", json=MONTHLY, headers=manager.headers)
    assert r.status_code == 201, r.text
    zk1, zk2 = controller(club, "zkteco"), controller(club, "zkteco")
    controller(club, "hikvision")

    def commands(device, *statuses: str) -> list[DeviceCommand]:
        with db.sessionmaker() as s:
            stmt = select(DeviceCommand).where(DeviceCommand.device_id == device.device_id)
            if statuses:
                stmt = stmt.where(DeviceCommand.status.in_(statuses))
            return list(s.scalars(stmt.order_by(DeviceCommand.id)))

    today = clubs_service.club_today(club)
    return SimpleNamespace(club=club, manager=manager, clerk=clerk, plan=r.json()["id"], zk1=zk1,
                           zk2=zk2, commands=commands, today=today,
                           member=lambda first_name, card: world.member(club, first_name, card=card))


def sell(client, desk, member_id: int, **body) -> dict:
    r = client.post(f"/api/v1/members/{member_id}/memberships",
                    json={"plan_id": desk.plan} | body, headers=desk.clerk.headers)
    assert r.status_code == 201, r.text
    return r.json()


def user_line(member_id: int, card: str, name: str, start: date, end: date) -> str:
    return (f"DATA UPDATE user CardNo={card}\tPin={member_id}\tName={name}"
            f"\tStartTime={start:%Y%m%d}\tEndTime={end:%Y%m%d}")


def test_a_sale_queues_the_member_with_validity_dates_for_each_zkteco_device(client, desk):
    anna = desk.member("Anna", "13622345")
    sold = sell(client, desk, anna)
    end = date.fromisoformat(sold["end_date"])
    expected = user_line(anna, "13622345", "Anna Berg", desk.today, end)
    for device in (desk.zk1, desk.zk2):
        assert [(c.command, c.status, c.pin) for c in desk.commands(device)] == [
            (expected, "queued", str(anna))]


def test_the_device_collects_commands_and_its_confirmation_clears_them(client, desk):
    anna, ben = desk.member("Anna", "13622345"), desk.member("Ben", "13622346")
    sell(client, desk, anna)
    sell(client, desk, ben)
    queued = desk.commands(desk.zk1)
    r = client.get("/iclock/getrequest", params={"SN": desk.zk1.serial})
    assert r.status_code == 200 and r.text.splitlines() == [
        f"C:{c.id}:{c.command}" for c in queued]
    assert {c.status for c in desk.commands(desk.zk1)} == {"sent"}
    r = client.get("/iclock/getrequest", params={"SN": desk.zk1.serial})
    assert r.text == "OK"  # delivered once, not again on the next poll
    results = (f"ID={queued[0].id}&Return=0&CMD=DATA\n"
               f"ID={queued[1].id}&Return=-1002&CMD=DATA\n")
    r = client.post("/iclock/devicecmd", params={"SN": desk.zk1.serial}, content=results.encode())
    assert r.status_code == 200 and r.text == "OK"
    done = desk.commands(desk.zk1)
    assert [(c.status, c.return_code) for c in done] == [("confirmed", 0), ("failed", -1002)]
    assert desk.commands(desk.zk1, "queued", "sent") == []
    assert len(desk.commands(desk.zk2, "queued")) == 2  # the other device has not polled yet
    r = client.post("/iclock/devicecmd", params={"SN": desk.zk2.serial}, content=results.encode())
    assert r.text == "OK" and len(desk.commands(desk.zk2, "queued")) == 2  # not its commands


def test_a_newer_change_supersedes_a_queued_command_and_a_cancellation_deletes(client, desk):
    anna = desk.member("Anna", "13622345")
    sold = sell(client, desk, anna)
    end = date.fromisoformat(sold["end_date"])
    r = client.post(f"/api/v1/memberships/{sold['id']}/freezes", headers=desk.clerk.headers,
                    json={"start_date": desk.today.isoformat(),
                          "end_date": (desk.today + timedelta(days=6)).isoformat()})
    assert r.status_code == 201, r.text
    # frozen today: the device lets her in from the day after the freeze, to the moved end
    (only,) = desk.commands(desk.zk1)
    assert only.command == user_line(anna, "13622345", "Anna Berg",
                                     desk.today + timedelta(days=7), end + timedelta(days=7))
    client.get("/iclock/getrequest", params={"SN": desk.zk1.serial})  # delivered: now "sent"
    r = client.post(f"/api/v1/memberships/{sold['id']}/cancel", headers=desk.manager.headers,
                    json={"reason": next(iter(ClubSettings().cancellation_reasons))})
    assert r.status_code == 200, r.text
    assert [(c.command, c.status) for c in desk.commands(desk.zk1)] == [
        (only.command, "sent"), (f"DATA DELETE user Pin={anna}", "queued")]


def test_a_prospect_without_a_card_or_membership_is_never_sent(client, desk):
    nocard = desk.member("Nora", None)
    sell(client, desk, nocard)  # a membership but no card: nothing the device could match
    assert desk.commands(desk.zk1) == []
    assert client.get("/iclock/getrequest", params={"SN": desk.zk1.serial}).text == "OK"


def test_commands_a_device_never_confirmed_are_sent_again_unless_replaced(client, desk, db):
    anna = desk.member("Anna", "13622345")
    sell(client, desk, anna)
    with transaction(db.sessionmaker) as s:
        first = allowlist.deliver(s, device_id=desk.zk1.device_id)
        assert len(first) == 1
        assert allowlist.deliver(s, device_id=desk.zk1.device_id) == []
        later = clock.now() + allowlist.RESEND_AFTER + timedelta(seconds=1)
        assert allowlist.deliver(s, device_id=desk.zk1.device_id, now=later) == first
    with transaction(db.sessionmaker) as s:  # a newer command replaces the unconfirmed one
        s.add(DeviceCommand(club_id=desk.club.id, device_id=desk.zk1.device_id, pin=str(anna),
                            command=f"DATA DELETE user Pin={anna}", status="queued",
                            created_at=clock.now(), attempts=0))
    with transaction(db.sessionmaker) as s:
        later = clock.now() + 2 * allowlist.RESEND_AFTER
        assert [cmd for _, cmd in allowlist.deliver(s, device_id=desk.zk1.device_id,
                                                    now=later)] == [f"DATA DELETE user Pin={anna}"]


def ms(start: date, end: date, cancelled_on: date | None = None, id_: int = 1):
    return SimpleNamespace(id=id_, start_date=start, end_date=end, cancelled_on=cancelled_on)


def fr(start: date, end: date):
    return SimpleNamespace(start_date=start, end_date=end)


def test_the_validity_range_follows_renewals_cancellations_and_freezes():
    d = date(2026, 5, 10)
    day = timedelta(days=1)
    assert allowlist.validity([], [], d) is None
    assert allowlist.validity([ms(d - 30 * day, d - day)], [], d) is None  # expired
    # a renewal starting the day after the current one ends extends the range; a gap ends it
    chain = [ms(d - 10 * day, d + 5 * day), ms(d + 6 * day, d + 35 * day),
             ms(d + 60 * day, d + 90 * day)]
    assert allowlist.validity(chain, [], d) == (d, d + 35 * day)
    # a membership that starts later: the device waits for it
    assert allowlist.validity([ms(d + 3 * day, d + 33 * day)], [], d) == (d + 3 * day,
                                                                          d + 33 * day)
    # cancelled from a day on: valid until the day before
    assert allowlist.validity([ms(d - 5 * day, d + 20 * day, cancelled_on=d + 2 * day)], [],
                              d) == (d, d + day)
    assert allowlist.validity([ms(d - 5 * day, d + 20 * day, cancelled_on=d)], [], d) is None
    # frozen today: from the day after the freeze; a later freeze is not on the device
    assert allowlist.validity([ms(d - 5 * day, d + 20 * day)], [fr(d - day, d + 3 * day)],
                              d) == (d + 4 * day, d + 20 * day)
    assert allowlist.validity([ms(d - 5 * day, d + 20 * day)], [fr(d + 5 * day, d + 8 * day)],
                              d) == (d, d + 20 * day)


def test_names_on_the_device_cannot_break_the_command_line():
    assert allowlist.screen_name("Anna\tMaria", "Berg\nC:99:CLEAR DATA") == \
        "Anna Maria Berg C:99:CLE"
    assert "\t" not in allowlist.screen_name("\x07Ann\x00a", "B\u200bo") and \
        len(allowlist.screen_name("A" * 40, "B")) == 24


def test_a_broken_allow_list_never_costs_the_sale(client, desk, monkeypatch, caplog):
    def broken(*_args, **_kwargs):
        raise RuntimeError("device queue unavailable")

    monkeypatch.setattr(allowlist, "_sync", broken)
    anna = desk.member("Anna", "13622345")
    sold = sell(client, desk, anna)
    assert sold["member_id"] == anna and sold["status"] == "active"
    assert desk.commands(desk.zk1) == []
    assert "MembershipSold(" in caplog.text and "the change stands" in caplog.text


def test_card_changes_at_the_desk_follow_to_the_device(client, desk):
    anna = desk.member("Anna", None)
    sold = sell(client, desk, anna)  # no card yet: nothing to send
    assert desk.commands(desk.zk1) == []
    end = date.fromisoformat(sold["end_date"])
    r = client.post(f"/api/v1/members/{anna}/cards", json={"code": "13622345"},
                    headers=desk.clerk.headers)
    assert r.status_code == 201, r.text
    assert [c.command for c in desk.commands(desk.zk1)] == [
        user_line(anna, "13622345", "Anna Berg", desk.today, end)]
    client.get("/iclock/getrequest", params={"SN": desk.zk1.serial})
    r = client.post(f"/api/v1/cards/{r.json()['id']}/replace", json={"new_code": "13622399"},
                    headers=desk.clerk.headers)
    assert r.status_code == 201, r.text
    assert desk.commands(desk.zk1, "queued")[0].command == user_line(
        anna, "13622399", "Anna Berg", desk.today, end)  # the lost card's number is replaced
    r = client.post(f"/api/v1/cards/{r.json()['id']}/block", json={"reason": "lost"},
                    headers=desk.clerk.headers)
    assert r.status_code == 200, r.text
    assert [c.command for c in desk.commands(desk.zk1, "queued")] == [
        f"DATA DELETE user Pin={anna}"]  # superseded the queued update: one command waits


def test_an_erased_member_is_deleted_from_the_devices_and_their_old_rows_go(client, desk):
    """The review's regression: the deletion must be queued before the commands that carry the
    name are dropped (whether a device ever got the PIN is read from those commands)."""
    anna = desk.member("Anna", "13622345")
    sell(client, desk, anna)
    queued = desk.commands(desk.zk1)
    client.get("/iclock/getrequest", params={"SN": desk.zk1.serial})
    r = client.post("/iclock/devicecmd", params={"SN": desk.zk1.serial},
                    content=f"ID={queued[0].id}&Return=0&CMD=DATA\n".encode())
    assert r.status_code == 200 and desk.commands(desk.zk1, "confirmed")  # the device has Anna
    r = client.post(f"/api/v1/members/{anna}/erase", headers=desk.manager.headers,
                    json={"reason": "asked by email", "confirm": True})
    assert r.status_code == 200, r.text
    for device in (desk.zk1, desk.zk2):
        assert [(c.command, c.status) for c in desk.commands(device)] == [
            (allowlist.delete_command(str(anna)), "queued")]
