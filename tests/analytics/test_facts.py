"""The stored membership facts stay exact: after every kind of change to `memberships` (insert,
dates, cancellation, member, plan, club, delete) the triggers mark the member and the next
report recomputes its facts; check-ins (`visits_used`) mark nothing; a new grace window
recomputes everything."""
from dataclasses import replace
from datetime import date
from functools import partial

from sqlalchemy import delete, select, update

from app.analytics import common, retention
from app.analytics.common import scope
from app.analytics.models import FactDirty
from app.core import sql
from app.core.db import transaction
from app.memberships.models import Membership
from tests.analytics.conftest import AS_OF

M = Membership.__table__
JAN = date(2026, 1, 1)


def _marked(db, club_id: int) -> set[int]:
    """The club's members whose facts are stale."""
    with db.sessionmaker() as s:
        return set(s.execute(select(FactDirty.member_id)
                             .where(FactDirty.club_id == club_id)).scalars())


def _rows(result) -> set[tuple]:
    """As text: SQLite returns an untyped window result (`lead`) as its stored text."""
    return {tuple(None if v is None else str(v) for v in row) for row in result}


def _stored_equals_computed(db, club_id: int, grace: int | None = None) -> int:
    """Facts as a report reads them == the sequence computed afresh; returns their count."""
    with transaction(db.sessionmaker) as s:
        sc = scope(s, club_id=club_id, as_of=AS_OF)
        if grace is not None:
            sc = replace(sc, grace=grace)
        stored = retention.facts(s, sc)
        g = retention.sequenced(sc, retention.memberships(sc), firsts=True)
        cols = ("id", *retention.FACT_COLUMNS)
        got = _rows(s.execute(select(*(stored.c[c] for c in cols))))
        want = _rows(s.execute(select(*(g.c[c] for c in cols))))
        # the renewal outcome stored with them (migration 0015) == computed afresh
        got_outcomes = _rows(s.execute(select(stored.c.id, stored.c.renewed,
                                              stored.c.grace_end)))
        want_outcomes = _rows(s.execute(select(g.c.id, common.renewed(sc, g),
                                               sql.add_days(g.c.last_day, sc.grace))))
    assert got == want
    assert got_outcomes == want_outcomes
    assert _marked(db, club_id) == set()
    return len(got)


def test_facts_follow_every_change_and_ignore_check_ins(db, hand):
    club, other = hand.club(), hand.club("Other")
    plan, plan2 = hand.plan(club), hand.plan(club)
    member = partial(hand.member, club)
    a, b = member(), member()
    first = hand.membership(club, a, plan, JAN, date(2026, 1, 31))
    second = hand.membership(club, a, plan, date(2026, 2, 20), date(2026, 3, 19))
    hand.membership(club, b, plan, date(2026, 2, 1), date(2026, 4, 30))
    assert _marked(db, club.id) == {a, b}
    assert _stored_equals_computed(db, club.id) == 3

    hand.change(update(M).where(M.c.id == second).values(visits_used=3))  # a check-in
    assert _marked(db, club.id) == set()
    changes = [
        update(M).where(M.c.id == first).values(end_date=date(2026, 1, 10)),  # a gap > grace
        update(M).where(M.c.id == second).values(start_date=date(2026, 1, 15)),
        update(M).where(M.c.id == second).values(cancelled_on=date(2026, 3, 1)),
        update(M).where(M.c.id == first).values(cancelled_on=JAN),  # void
        update(M).where(M.c.id == first).values(cancelled_on=None, member_id=b),
        update(M).where(M.c.id == second).values(plan_id=plan2),
        delete(M).where(M.c.id == second),
    ]
    for change in changes:
        hand.change(change)
        assert _marked(db, club.id)
        _stored_equals_computed(db, club.id)
    hand.membership(club, a, plan, date(2026, 4, 1), date(2026, 4, 30))
    assert _marked(db, club.id) == {a}
    assert _stored_equals_computed(db, club.id) == 3

    hand.change(update(M).where(M.c.id == first).values(club_id=other.id))  # moved: both marked
    assert _marked(db, club.id) == {b} and _marked(db, other.id) == {b}
    assert _stored_equals_computed(db, club.id) == 2
    assert _stored_equals_computed(db, other.id) == 1


def test_grace_is_part_of_the_key(db, hand):
    club = hand.club()
    plan = hand.plan(club)
    a = hand.member(club)
    hand.membership(club, a, plan, JAN, date(2026, 1, 31))
    hand.membership(club, a, plan, date(2026, 2, 20), date(2026, 3, 19))  # 19 days later
    _stored_equals_computed(db, club.id)
    _stored_equals_computed(db, club.id, grace=7)  # a new spell under 7 days of grace
    _stored_equals_computed(db, club.id)
