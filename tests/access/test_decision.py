"""The check-in decision through the turnstile endpoint: every reason, hours, anti-passback."""
from datetime import time, timedelta

from sqlalchemy import select

from app.access.models import AccessEvent, Visit
from app.core import clock
from app.memberships.models import Membership
from tests.access.conftest import local, today


def _day(d) -> str:
    return f"{d.day} {d:%B}" if d.year == today().year else f"{d.day} {d:%B} {d.year}"


def test_a_member_with_a_valid_membership_is_let_in_and_the_visit_logged(
        client, world, gym, post_event, session):
    club = world.club()
    device = world.device(club)
    anna = gym.member(club, first_name="Anna", last_name="Schmidt")
    membership_id = gym.membership(club, anna)
    r = post_event(device, anna.card)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["allow"] is True and body["reason"] == "ok"
    assert body["message"] == "Welcome, Anna!" and "Schmidt" not in body["message"]
    assert body["member"] == {"id": anna.member_id, "name": "Anna"}
    visit = session.get(Visit, body["visit_id"])
    assert visit.member_id == anna.member_id and visit.membership_id == membership_id
    event = session.get(AccessEvent, visit.access_event_id)
    assert (event.allowed, event.reason, event.card_code, event.device_id, event.source) == (
        True, "ok", anna.card, device.device_id, "device")
    assert session.get(Membership, membership_id).visits_used == 1


def test_card_codes_are_matched_without_spaces_and_case(world, gym, post_event):
    club = world.club()
    device = world.device(club)
    ben = gym.member(club, card="04AB9F12")
    gym.membership(club, ben)
    r = post_event(device, " 04ab 9f12 ")
    assert r.json()["reason"] == "ok" and r.json()["member"]["id"] == ben.member_id


def test_unknown_card_is_denied_and_logged(world, post_event, session):
    club = world.club()
    device = world.device(club)
    r = post_event(device, "NOSUCHCARD")
    assert r.status_code == 200
    assert r.json() == {"allow": False, "reason": "unknown_card",
                        "message": "Card not recognised, please see the front desk",
                        "member": None, "visit_id": None}
    event = session.scalar(select(AccessEvent))
    assert event.allowed is False and event.reason == "unknown_card" and event.card_code == "NOSUCHCARD"
    assert session.scalar(select(Visit)) is None


def test_a_card_of_another_club_is_unknown_here(world, gym, post_event):
    a, b = world.club("A"), world.club("B")
    member_of_b = gym.member(b)
    gym.membership(b, member_of_b)
    r = post_event(world.device(a), member_of_b.card)
    assert r.json()["reason"] == "unknown_card" and r.json()["member"] is None


def test_blocked_card_is_denied(world, gym, post_event):
    club = world.club()
    lost = gym.member(club, card_status="blocked")
    gym.membership(club, lost)
    r = post_event(world.device(club), lost.card)
    assert r.json()["allow"] is False and r.json()["reason"] == "card_blocked"
    assert "blocked" in r.json()["message"]


def test_member_without_any_membership_is_denied(world, gym, post_event):
    club = world.club()
    prospect = gym.member(club)
    r = post_event(world.device(club), prospect.card)
    assert r.json()["reason"] == "no_membership" and r.json()["allow"] is False


def test_membership_that_starts_later_is_not_started(world, gym, post_event):
    club = world.club()
    m = gym.member(club)
    starts = today() + timedelta(days=3)
    gym.membership(club, m, start=starts, end=starts + timedelta(days=30))
    r = post_event(world.device(club), m.card)
    assert r.json()["reason"] == "membership_not_started"
    assert r.json()["message"] == f"Membership starts on {_day(starts)}"


def test_expired_membership_is_denied_with_its_end_date(world, gym, post_event):
    club = world.club()
    m = gym.member(club)
    ended = today() - timedelta(days=3)
    gym.membership(club, m, start=ended - timedelta(days=30), end=ended)
    r = post_event(world.device(club), m.card)
    assert r.json()["reason"] == "membership_expired"
    assert r.json()["message"] == f"Membership expired on {_day(ended)}"


def test_frozen_membership_is_denied_until_the_freeze_ends(world, gym, post_event):
    club = world.club()
    m = gym.member(club)
    membership_id = gym.membership(club, m)
    until = today() + timedelta(days=5)
    gym.freeze(club, membership_id, start=today() - timedelta(days=2), end=until)
    r = post_event(world.device(club), m.card)
    assert r.json()["reason"] == "membership_frozen"
    assert r.json()["message"] == f"Frozen until {_day(until)}"


def test_cancelled_membership_is_denied(world, gym, post_event):
    club = world.club()
    m = gym.member(club)
    gym.membership(club, m, cancelled_on=today() - timedelta(days=1))
    r = post_event(world.device(club), m.card)
    assert r.json()["reason"] == "membership_cancelled"
    assert "cancelled" in r.json()["message"]


def test_a_cancellation_dated_later_still_lets_the_member_in(world, gym, post_event):
    club = world.club()
    m = gym.member(club)
    gym.membership(club, m, cancelled_on=today() + timedelta(days=3))
    assert post_event(world.device(club), m.card).json()["reason"] == "ok"


def test_visit_limit_counts_visits_and_then_denies(world, gym, post_event, session):
    club = world.club(anti_passback_minutes=0)
    device = world.device(club)
    m = gym.member(club)
    membership_id = gym.membership(club, m, visit_limit=10, visits_used=9)
    assert post_event(device, m.card).json()["reason"] == "ok"
    r = post_event(device, m.card)
    assert r.json()["allow"] is False and r.json()["reason"] == "visit_limit_reached"
    assert session.get(Membership, membership_id).visits_used == 10
    assert len(session.scalars(select(Visit)).all()) == 1


def test_debt_blocks_entry_only_where_the_club_says_so(world, gym, post_event):
    strict = world.club("Strict", block_on_debt=True)
    relaxed = world.club("Relaxed")
    owes = gym.member(strict)
    gym.membership(strict, owes)
    gym.sale(strict, owes, total="100.00", paid="60.00")
    paid_up = gym.member(strict)
    gym.membership(strict, paid_up)
    gym.sale(strict, paid_up, total="100.00", paid="100.00")
    owes_elsewhere = gym.member(relaxed)
    gym.membership(relaxed, owes_elsewhere)
    gym.sale(relaxed, owes_elsewhere, total="100.00", paid="0")

    r = post_event(world.device(strict), owes.card)
    assert r.json()["allow"] is False and r.json()["reason"] == "debt"
    assert "balance" in r.json()["message"] and "40" not in r.json()["message"]
    assert post_event(world.device(strict), paid_up.card).json()["reason"] == "ok"
    assert post_event(world.device(relaxed), owes_elsewhere.card).json()["reason"] == "ok"


def test_access_hours_are_read_in_the_club_timezone(world, gym, post_event):
    club = world.club(timezone="Europe/Berlin")
    device = world.device(club)
    off_peak = gym.plan(club, name="Off-peak", access_start=time(6, 0), access_end=time(16, 0))
    m = gym.member(club)
    gym.membership(club, m, plan=off_peak)
    yesterday = today() - timedelta(days=1)

    # 06:30 Berlin is 04:30 or 05:30 UTC: before 06:00 if the rule wrongly used UTC
    early = post_event(device, m.card, occurred_at=local(yesterday, 6, 30))
    assert early.json()["reason"] == "ok", early.json()
    # 16:30 Berlin is 14:30 or 15:30 UTC: inside the window if the rule wrongly used UTC
    late = post_event(device, m.card, occurred_at=local(yesterday, 16, 30))
    assert late.json()["reason"] == "outside_access_hours"
    assert late.json()["message"] == "Your plan allows entry until 16:00"
    dawn = post_event(device, m.card, occurred_at=local(yesterday, 5, 15))
    assert dawn.json()["reason"] == "outside_access_hours"
    assert dawn.json()["message"] == "Come back after 06:00"


def test_an_overnight_access_window_wraps_midnight(world, gym, post_event):
    club = world.club()
    device = world.device(club)
    night = gym.plan(club, name="Night owl", access_start=time(22, 0), access_end=time(6, 0))
    m = gym.member(club)
    gym.membership(club, m, plan=night)
    yesterday = today() - timedelta(days=1)
    assert post_event(device, m.card, occurred_at=local(yesterday, 23, 30)).json()["reason"] == "ok"
    assert post_event(device, m.card, occurred_at=local(yesterday, 12, 0)).json()["reason"] == (
        "outside_access_hours")


def test_anti_passback_denies_a_second_entry_within_the_window(world, gym, post_event, session):
    club = world.club(anti_passback_minutes=5)
    device = world.device(club)
    m = gym.member(club)
    membership_id = gym.membership(club, m)
    first = clock.now() - timedelta(minutes=30)
    assert post_event(device, m.card, occurred_at=first).json()["reason"] == "ok"
    again = post_event(device, m.card, occurred_at=first + timedelta(minutes=3))
    assert again.json()["allow"] is False and again.json()["reason"] == "anti_passback"
    assert again.json()["message"].startswith("Already checked in at ")
    later = post_event(device, m.card, occurred_at=first + timedelta(minutes=6))
    assert later.json()["reason"] == "ok"
    assert session.get(Membership, membership_id).visits_used == 2


def test_leaving_is_logged_and_allowed_but_is_not_an_entry(world, gym, post_event, session):
    club = world.club(anti_passback_minutes=5)
    device = world.device(club)
    m = gym.member(club)
    gym.membership(club, m)
    start = clock.now() - timedelta(minutes=20)
    out = post_event(device, m.card, occurred_at=start, direction="out")
    assert out.json()["allow"] is True and out.json()["visit_id"] is None
    assert out.json()["message"] == f"Goodbye, {m.first_name}!"
    entry = post_event(device, m.card, occurred_at=start + timedelta(minutes=1))
    assert entry.json()["reason"] == "ok"
    events = session.scalars(select(AccessEvent).order_by(AccessEvent.occurred_at)).all()
    assert [(e.direction, e.allowed) for e in events] == [("out", True), ("in", True)]
    assert len(session.scalars(select(Visit)).all()) == 1


def test_an_exit_device_defaults_to_out(world, gym, post_event, session):
    club = world.club()
    exit_gate = world.device(club, direction="out")
    m = gym.member(club)
    r = post_event(exit_gate, m.card)
    assert r.json()["allow"] is True and r.json()["visit_id"] is None
    assert session.scalar(select(AccessEvent.direction)) == "out"


def test_the_valid_membership_counts_over_older_and_newer_ones(world, gym, post_event):
    club = world.club()
    m = gym.member(club)
    gym.membership(club, m, start=today() - timedelta(days=60), end=today() - timedelta(days=31))
    gym.membership(club, m, start=today() + timedelta(days=20), end=today() + timedelta(days=50))
    gym.membership(club, m, start=today() - timedelta(days=30), end=today() + timedelta(days=19))
    assert post_event(world.device(club), m.card).json()["reason"] == "ok"


def test_a_used_up_visit_pass_gives_way_to_another_valid_membership(world, gym, post_event, session):
    club = world.club()
    m = gym.member(club)
    used_up = gym.membership(club, m, visit_limit=5, visits_used=5, end=today() + timedelta(days=2))
    unlimited = gym.membership(club, m)
    r = post_event(world.device(club), m.card)
    assert r.json()["reason"] == "ok"
    assert session.get(Visit, r.json()["visit_id"]).membership_id == unlimited
    assert session.get(Membership, used_up).visits_used == 5


def test_without_a_valid_membership_the_nearest_one_explains_the_denial(world, gym, post_event):
    club = world.club()
    device = world.device(club)
    frozen_and_pending = gym.member(club)
    current = gym.membership(club, frozen_and_pending)
    gym.freeze(club, current, start=today(), end=today() + timedelta(days=7))
    gym.membership(club, frozen_and_pending, start=today() + timedelta(days=21),
                   end=today() + timedelta(days=50))
    assert post_event(device, frozen_and_pending.card).json()["reason"] == "membership_frozen"

    renewal_pending = gym.member(club)
    gym.membership(club, renewal_pending, start=today() - timedelta(days=40), end=today() - timedelta(days=1))
    gym.membership(club, renewal_pending, start=today() + timedelta(days=1), end=today() + timedelta(days=30))
    assert post_event(device, renewal_pending.card).json()["reason"] == "membership_not_started"

    lapsed = gym.member(club)
    gym.membership(club, lapsed, start=today() - timedelta(days=400), end=today() - timedelta(days=300))
    last = today() - timedelta(days=10)
    gym.membership(club, lapsed, start=today() - timedelta(days=40), end=last)
    assert post_event(device, lapsed.card).json()["message"] == f"Membership expired on {_day(last)}"


def test_a_late_replay_is_decided_at_the_time_it_happened(world, gym, post_event, session):
    club = world.club()
    device = world.device(club)
    m = gym.member(club)
    yesterday = today() - timedelta(days=1)
    membership_id = gym.membership(club, m, start=today() - timedelta(days=30), end=yesterday)
    at = local(yesterday, 18, 5)

    replay = post_event(device, m.card, event_id="offline-77", occurred_at=at)
    assert replay.json()["allow"] is True and replay.json()["reason"] == "ok"
    visit = session.get(Visit, replay.json()["visit_id"])
    assert visit.occurred_at == at and visit.membership_id == membership_id
    event = session.get(AccessEvent, visit.access_event_id)
    assert event.occurred_at == at and event.received_at > at + timedelta(minutes=2)
    assert event.source == "replay"
    session.rollback()  # end the read (on SQLite every transaction holds the write lock)

    live = post_event(device, m.card)
    assert live.json()["reason"] == "membership_expired"
