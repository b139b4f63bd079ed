"""Races on PostgreSQL: package balances, session fates, trainer slots and class seats.

Each worker checks out its connection, waits at a barrier, then calls the service in its own
transaction, so the statements really interleave. SQLite serialises whole write transactions
(BEGIN IMMEDIATE), so these races cannot happen there and the tests are skipped.
"""

import pytest
from sqlalchemy import select

from app.core.actors import Actor, Role
from app.trainers import classes
from app.trainers import sessions as pt_sessions
from app.trainers.models import ClassBooking, ClassOccurrence, PtSession
from tests.trainers.conftest import race


def _actor(gym, staff, role: Role = Role.manager) -> Actor:
    return Actor(user_id=staff.user_id, name="staff", club_id=gym.club.id, role=role)



@pytest.fixture
def pg(db):
    if not db.is_postgres:
        pytest.skip("needs PostgreSQL row locks; SQLite serialises whole transactions")
    return db


def test_ten_concurrent_completions_with_one_session_left_spend_exactly_one(pg, gym):
    coach = gym.trainer()
    member = gym.member()
    pkg = gym.package(member, gym.pt_product(sessions=1))
    # ten sessions booked while the single session was still on the package
    sessions = [gym.booked(coach, member, gym.at(-1, 8 + i)) for i in range(10)]
    actor = _actor(gym, gym.manager)

    done, refused = race(pg, 10, lambda s, i: pt_sessions.complete_session(
        s, actor=actor, session_id=sessions[i]["id"]))

    assert len(done) == 1 and len(refused) == 9
    assert {c.code for c in refused} == {"no_package_balance"}
    assert gym.balance(pkg["id"]) == 0
    rows = gym.scalars(select(PtSession).where(PtSession.member_id == member))
    assert sorted(r.status for r in rows) == ["booked"] * 9 + ["completed"]
    assert [r.package_id for r in rows if r.status == "completed"] == [pkg["id"]]
    assert gym.packages(member)["items"][0]["sessions_used"] == 1


def test_the_same_session_completed_by_five_staff_at_once_is_completed_once(pg, gym):
    coach = gym.trainer()
    member = gym.member()
    pkg = gym.package(member)
    s_id = gym.booked(coach, member, gym.at(-1, 10))["id"]
    actor = _actor(gym, gym.desk, Role.front_desk)

    done, refused = race(pg, 5, lambda s, i: pt_sessions.complete_session(s, actor=actor,
                                                                           session_id=s_id))

    assert len(done) == 1 and {c.code for c in refused} == {"session_closed"}
    assert gym.balance(pkg["id"]) == 9


def test_two_bookings_of_one_trainer_slot_cannot_both_pass(pg, gym):
    coach = gym.trainer()
    members = [gym.member() for _ in range(6)]
    for m in members:
        gym.package(m)
    actor = _actor(gym, gym.desk, Role.front_desk)
    start = gym.at(2, 10)

    done, refused = race(pg, 6, lambda s, i: pt_sessions.book_session(
        s, actor=actor, member_id=members[i], trainer_id=coach.id, start=start))

    assert len(done) == 1 and {c.code for c in refused} == {"trainer_busy"}
    assert gym.count(PtSession) == 1


def test_one_member_booked_with_two_trainers_at_once_gets_one_session(pg, gym):
    coaches = [gym.trainer() for _ in range(3)]
    member = gym.member()
    gym.package(member)
    actor = _actor(gym, gym.desk, Role.front_desk)

    done, refused = race(pg, 3, lambda s, i: pt_sessions.book_session(
        s, actor=actor, member_id=member, trainer_id=coaches[i].id, start=gym.at(2, 9)))

    assert len(done) == 1 and {c.code for c in refused} == {"member_busy"}


def test_class_seats_hold_under_a_burst_of_bookings(pg, gym):
    coach = gym.trainer()
    occ = gym.class_at(coach, gym.at(2, 18), capacity=3)
    plan = gym.plan()["id"]
    members = [gym.member() for _ in range(8)]
    for m in members:
        gym.membership(m, plan)
    actor = _actor(gym, gym.desk, Role.front_desk)

    done, refused = race(pg, 8, lambda s, i: classes.book_class(
        s, actor=actor, occurrence_id=occ["id"], member_id=members[i]))

    assert refused == []
    assert sorted(b.status for b in done) == ["booked"] * 3 + ["waitlisted"] * 5
    assert gym.scalar(select(ClassOccurrence.booked_count)
                      .where(ClassOccurrence.id == occ["id"])) == 3
    assert gym.count(ClassBooking, ClassBooking.status == "booked") == 3
    waiting = gym.class_detail(occ["id"])["bookings"][3:]
    assert [b["waitlist_position"] for b in waiting] == [1, 2, 3, 4, 5]
