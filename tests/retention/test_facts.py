"""The member facts the daily run keeps (`retention_member_facts`, app/retention/facts.py):
after memberships and freezes change between runs, and days pass, the stored facts equal a
rebuild from scratch, and every member's stage equals the one computed straight from their
memberships (`refresh_member`)."""
from datetime import timedelta

from sqlalchemy import delete, select, update

from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core.db import transaction
from app.memberships.models import Freeze, Membership
from app.retention import facts, service
from app.retention.models import MemberFacts, MemberStage, RetentionState
from tests.retention.conftest import D, ago, local

FACTS = ("member_id", "started", "tenure_start", "top_end", "top_id", "top_plan_id",
         "key_start", "latest_start_days", "freeze_id", "freeze_start", "freeze_end")


def _stored(s, club_id):
    t = MemberFacts.__table__
    return sorted(tuple(r) for r in s.execute(
        select(*[t.c[c] for c in FACTS]).where(t.c.club_id == club_id, t.c.started.is_not(None)
                                                | t.c.freeze_id.is_not(None)
                                                | t.c.top_end.is_not(None))))


def _check(rw, club, day):
    """The stored facts equal a rebuild; each member's stage equals refresh_member's."""
    with transaction(rw.db.sessionmaker) as s:
        kept = _stored(s, club.id)
        stages = dict(s.execute(select(MemberStage.member_id, MemberStage.stage)
                                .where(MemberStage.club_id == club.id)).all())
    session = rw.db.sessionmaker()
    try:
        row = session.get(Club, club.id)
        session.execute(update(RetentionState).where(RetentionState.club_id == club.id)
                        .values(facts_key=None))
        assert facts.refresh(session, club_id=club.id, as_of=day,
                             settings=clubs_service.club_settings(row),
                             zone=clubs_service.club_zone(row)) is True
        assert _stored(session, club.id) == kept
        for member_id, stage in stages.items():
            assert service.refresh_member(session, club_id=club.id, member_id=member_id,
                                          now=local(day, 5)) == stage, member_id
    finally:
        session.rollback()
        session.close()


def test_facts_follow_membership_changes_and_days(rw):
    club = rw.club()
    annual, monthly = rw.plan(club), rw.plan(club, months=1)
    running = rw.member(club)
    m_running = rw.membership(club, running, annual, ago(200))
    rw.regular_visits(club, running, ago(100), ago(1))
    later = rw.member(club)  # sold on D-1 for a start on D+1: known from its sale
    rw.membership(club, later, monthly, D + timedelta(days=1), sold_at=local(ago(1), 12))
    freezing = rw.member(club)
    m_freezing = rw.membership(club, freezing, annual, ago(60))
    ending = rw.member(club)  # a monthly plan ending during the days run
    m_ending = rw.membership(club, ending, monthly, ago(29))
    lapsing = rw.member(club)
    rw.membership(club, lapsing, monthly, ago(90), end=ago(32))
    back = rw.member(club)  # lost, comes back on D-1 (a new tenure)
    rw.membership(club, back, monthly, ago(300), end=ago(200))
    rw.member(club)  # a prospect

    for day in (ago(4), ago(3)):
        rw.run(club, day)
        _check(rw, club, day)

    with transaction(rw.db.sessionmaker) as s:  # changes between runs: the triggers mark them
        s.execute(update(Membership).where(Membership.id == m_running)
                  .values(cancelled_on=ago(1)))
        s.add(Freeze(club_id=club.id, membership_id=m_freezing, start_date=ago(2),
                     end_date=D, reason="travel", created_at=local(ago(3), 8)))
        end = s.get(Membership, m_freezing).end_date
        s.execute(update(Membership).where(Membership.id == m_freezing)
                  .values(end_date=end + timedelta(days=3)))
        s.execute(update(Membership).where(Membership.id == m_ending).values(plan_id=annual))
    rw.membership(club, back, annual, ago(1))
    for day in (ago(2), ago(1), D):
        rw.run(club, day)
        _check(rw, club, day)

    with transaction(rw.db.sessionmaker) as s:  # a deleted freeze and membership
        s.execute(delete(Freeze).where(Freeze.membership_id == m_freezing))
        s.execute(delete(Membership).where(Membership.id == m_ending))
    for day in (D, D + timedelta(days=1), D + timedelta(days=40)):
        rw.run(club, day)
        _check(rw, club, day)
    rw.run(club, ago(10))  # a run for an earlier day recomputes what it needs
    _check(rw, club, ago(10))
