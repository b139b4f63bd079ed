"""A trainer's free slots (`app.trainers.availability.free_slots`): working hours minus absences,
booked sessions and classes (and the member's own commitments), DST days, the past and the
horizon, and a slot that was just booked — read set-based, whatever the range."""
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import event

from app.core.actors import Role
from app.trainers import availability
from tests.trainers.conftest import BERLIN, Gym


def _hours(start: str, end: str) -> list[dict]:
    return [{"weekday": d, "start": start, "end": end} for d in range(1, 8)]


def slots(gym: Gym, coach, first: date, last: date | None = None, member: int | None = None,
          **kw) -> list[datetime]:
    """The free slots' starts (UTC: in Berlin, 02:30 can happen twice)."""
    with gym.db.sessionmaker() as s:
        found = availability.free_slots(s, club_id=gym.club.id, trainer_id=coach.id,
                                        date_from=first, date_to=last or first, member_id=member,
                                        **kw)
    return [slot.starts_at.astimezone(UTC) for slot in found]


def hhmm(found: list[datetime]) -> list[str]:
    """Berlin wall-clock times."""
    return [f"{at.astimezone(BERLIN):%H:%M}" for at in found]


def test_working_hours_minus_sessions_classes_and_absences(gym):
    coach = gym.trainer(hours=_hours("09:00", "14:00"))
    other = gym.trainer()
    anna, bert = gym.member(), gym.member()
    gym.package(anna)
    gym.package(bert)
    gym.booked(coach, bert, gym.at(2, 10))  # 10:00-11:00 with Bert
    cancelled = gym.booked(coach, bert, gym.at(2, 9))
    assert gym.act(cancelled["id"], "cancel", json={"by": "club"}).status_code == 200
    gym.class_at(coach, gym.at(2, 11, 30))  # the coach teaches 11:30-12:30
    # day 2: [09,10) free (the cancelled session frees it), [11,11:30) too short, [12:30,14)
    assert hhmm(slots(gym, coach, gym.day(2))) == ["09:00", "12:30"]
    assert hhmm(slots(gym, coach, gym.day(4))) == ["09:00", "10:00", "11:00", "12:00", "13:00"]

    r = gym.client.post(f"/api/v1/trainers/{coach.id}/absences", json={
        "start_date": gym.day(3).isoformat(), "end_date": gym.day(3).isoformat(),
        "kind": "sick"}, headers=gym.manager.headers)
    assert r.status_code == 201, r.text
    assert slots(gym, coach, gym.day(3)) == []  # away all day

    # for Anna also what keeps her busy: a class with another trainer on day 4, 10:00-11:00
    occ = gym.class_at(other, gym.at(4, 10))
    gym.membership(anna)
    assert gym.book_class(occ["id"], anna).status_code == 201
    assert hhmm(slots(gym, coach, gym.day(4), member=anna)) == ["09:00", "11:00", "12:00",
                                                                "13:00"]
    assert len(slots(gym, coach, gym.day(4))) == 5  # the coach alone is free at 10:00
    # a 90-minute session: cut from the start of each free stretch
    assert hhmm(slots(gym, coach, gym.day(4), member=anna, length=90)) == ["11:00", "12:30"]


def test_a_slot_just_booked_disappears_and_booking_agrees_with_the_slots(gym):
    coach = gym.trainer(hours=_hours("08:00", "12:00"))
    anna, bert = gym.member(), gym.member()
    gym.package(anna)
    gym.package(bert)
    before = slots(gym, coach, gym.day(5))
    assert hhmm(before) == ["08:00", "09:00", "10:00", "11:00"]
    gym.booked(coach, anna, before[1], staff=gym.desk)
    after = slots(gym, coach, gym.day(5))
    assert hhmm(after) == ["08:00", "10:00", "11:00"]
    # what is offered can be booked; what is not, cannot
    assert gym.book(coach, bert, after[0], staff=gym.desk).status_code == 201
    assert gym.book(coach, bert, before[1], staff=gym.desk).status_code == 409
    assert hhmm(slots(gym, coach, gym.day(5))) == ["10:00", "11:00"]


def test_past_slots_are_hidden_and_the_horizon_ends_the_list(gym, clock):
    coach = gym.trainer(hours=_hours("09:00", "14:00"))
    tomorrow = gym.day(1)
    clock.set(datetime.combine(tomorrow, time(11, 30), tzinfo=BERLIN))  # the club's day moves on
    assert gym.today == tomorrow
    assert hhmm(slots(gym, coach, tomorrow)) == ["12:00", "13:00"]  # 11:00 has begun
    days = {at.astimezone(BERLIN).date() for at in slots(gym, coach, tomorrow - timedelta(days=3),
                                      tomorrow + timedelta(days=40))}
    assert min(days) == tomorrow
    assert max(days) == tomorrow + timedelta(days=availability.HORIZON_DAYS)
    assert len(days) == availability.HORIZON_DAYS + 1


def test_an_inactive_trainer_has_no_slots(gym):
    coach = gym.trainer(hours=_hours("09:00", "12:00"))
    assert slots(gym, coach, gym.day(2))
    r = gym.client.patch(f"/api/v1/trainers/{coach.id}", json={"active": False},
                         headers=gym.manager.headers)
    assert r.status_code == 200, r.text
    assert slots(gym, coach, gym.day(2)) == []


def test_the_reads_are_per_kind_not_per_day_or_slot(gym):
    coach = gym.trainer()
    anna = gym.member()
    gym.package(anna)
    gym.booked(coach, anna, gym.at(3, 10))
    statements = []

    def count(*_args):
        statements.append(1)

    with gym.db.sessionmaker() as s:
        engine = s.get_bind()
        event.listen(engine, "before_cursor_execute", count)
        try:
            statements.clear()
            one = availability.free_slots(s, club_id=gym.club.id, trainer_id=coach.id,
                                          member_id=anna, date_from=gym.day(1),
                                          date_to=gym.day(1))
            reads_for_one_day = len(statements)
            statements.clear()
            many = availability.free_slots(s, club_id=gym.club.id, trainer_id=coach.id,
                                           member_id=anna, date_from=gym.day(1),
                                           date_to=gym.day(14))
            reads_for_two_weeks = len(statements)
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert len(many) > 13 * len(one) > 0
    # the club, the trainer and their role, then one read per kind (hours, absences, sessions,
    # the trainer's classes, the member's classes) — the same for a day and for two weeks
    assert reads_for_two_weeks <= reads_for_one_day <= 10


# --- the days the clocks change ------------------------------------------------------------------

def _last_sunday(year: int, month: int) -> date:
    day = date(year, month, 31)
    return day - timedelta(days=day.isoweekday() % 7)


def _next_change(now: datetime, month: int) -> date:
    year = now.astimezone(BERLIN).year
    day = _last_sunday(year, month)
    return day if day > now.astimezone(BERLIN).date() + timedelta(days=1) \
        else _last_sunday(year + 1, month)


@pytest.fixture(params=[3, 10], ids=["spring", "autumn"])
def dst_gym(request, clock, client, world) -> tuple[Gym, date]:
    """A club three days before the next day its clocks change (created on that clock)."""
    change = _next_change(clock.now(), request.param)
    clock.set(datetime.combine(change - timedelta(days=3), time(12), tzinfo=BERLIN))
    club = world.club()
    return Gym(client, world, club, manager=world.staff(club, Role.manager),
               desk=world.staff(club, Role.front_desk)), change


def test_a_dst_day_has_the_real_hours(dst_gym):
    gym, change = dst_gym
    coach = gym.trainer(hours=_hours("01:00", "05:00") + _hours("09:00", "11:00"))
    found = slots(gym, coach, change)
    utc = [f"{at.astimezone(UTC):%H:%M}" for at in found]
    if change.month == 3:  # 02:00 does not exist: 01:00-05:00 is three hours
        assert hhmm(found) == ["01:00", "03:00", "04:00", "09:00", "10:00"]
        assert utc == ["00:00", "01:00", "02:00", "07:00", "08:00"]
    else:  # 02:00-03:00 happens twice: 01:00-05:00 is five hours
        assert hhmm(found) == ["01:00", "02:00", "02:00", "03:00", "04:00", "09:00", "10:00"]
        assert utc == ["23:00", "00:00", "01:00", "02:00", "03:00", "08:00", "09:00"]
    day_before = slots(gym, coach, change - timedelta(days=1))
    assert hhmm(day_before) == ["01:00", "02:00", "03:00", "04:00", "09:00", "10:00"]
    # booking takes the same view of the day: the slot after the gap is bookable
    anna = gym.member()
    gym.package(anna, start_offset=0)
    assert gym.book(coach, anna, found[1], staff=gym.desk).status_code == 201
    assert found[1] not in slots(gym, coach, change)
