"""The stored touchpoint pairs and channel sends stay exact: after every kind of change to
`scheduled_touchpoints` (insert, status, membership, definition, channel, club, delete, and the
`SET NULL` when a membership is deleted) the triggers (migration 0015_analytics_outcomes) leave
per (club, membership, definition) exactly the counts of sent, held-out and planned rows, and
per (club, membership, channel) the count of sent rows, computed afresh."""
from datetime import date

from sqlalchemy import case, delete, func, insert, select, update

from app.analytics import service
from app.analytics.models import ChannelSend, TouchpointPair
from app.core.db import transaction
from app.memberships.models import Membership
from app.retention.models import ScheduledTouchpoint
from tests.analytics.conftest import AS_OF

T, P, M = ScheduledTouchpoint.__table__, TouchpointPair.__table__, Membership.__table__
C = ChannelSend.__table__
JAN, MAR = date(2026, 1, 1), date(2026, 3, 31)


def _stored_equals_computed(db) -> int:
    with transaction(db.sessionmaker) as s:
        got = set(s.execute(select(P.c.club_id, P.c.membership_id, P.c.definition_id,
                                   P.c.sent, P.c.held, P.c.planned)).all())
        want = set(s.execute(
            select(T.c.club_id, T.c.membership_id, T.c.definition_id,
                   func.sum(case((T.c.status == "sent", 1), else_=0)),
                   func.sum(case((T.c.status == "held_out", 1), else_=0)), func.count())
            .where(T.c.membership_id.is_not(None))
            .group_by(T.c.club_id, T.c.membership_id, T.c.definition_id)).all())
        got_sends = set(s.execute(select(C.c.club_id, C.c.membership_id, C.c.channel,
                                         C.c.sent)).all())
        want_sends = set(s.execute(
            select(T.c.club_id, T.c.membership_id, T.c.channel, func.count())
            .where(T.c.membership_id.is_not(None), T.c.status == "sent")
            .group_by(T.c.club_id, T.c.membership_id, T.c.channel)).all())
    assert {tuple(int(v) for v in row) for row in got} == \
        {tuple(int(v) for v in row) for row in want}
    assert {(a, b, c, int(n)) for a, b, c, n in got_sends} == \
        {(a, b, c, int(n)) for a, b, c, n in want_sends}
    return len(got)


def test_pairs_follow_every_change(db, hand):
    club, other = hand.club(), hand.club("Other")
    plan = hand.plan(club)
    a, b = hand.member(club), hand.member(club)
    ma = hand.membership(club, a, plan, JAN, MAR)
    mb = hand.membership(club, b, plan, JAN, MAR)
    ma2 = hand.membership(club, a, plan, MAR, date(2026, 6, 30))
    x, y = hand.definition(club, "x"), hand.definition(club, "y", channel="sms")
    t1 = hand.touchpoint(club, a, x, ma, "sent", cycle="1")
    t2 = hand.touchpoint(club, a, x, ma, "held_out", cycle="2")  # the same pair: mixed
    t3 = hand.touchpoint(club, b, y, mb, "pending")
    hand.touchpoint(club, b, x, None, "sent")  # planned for no membership: no pair
    assert _stored_equals_computed(db) == 2

    with transaction(db.sessionmaker) as s:  # several rows in one statement
        s.execute(insert(T), [
            {c: v for c, v in s.execute(select(T).where(T.c.id == t3)).one()._mapping.items()
             if c != "id"} | {"cycle": f"bulk{i}", "status": status}
            for i, status in enumerate(("sent", "held_out", "skipped"))])
    assert _stored_equals_computed(db) == 2
    changes = [
        update(T).where(T.c.id == t3).values(status="sending"),  # no count changes
        update(T).where(T.c.id == t3).values(status="sent"),
        update(T).where(T.c.id == t2).values(status="sent"),
        update(T).where(T.c.id == t1).values(status="held_out"),
        update(T).where(T.c.id == t1).values(membership_id=ma2),
        update(T).where(T.c.id == t1).values(definition_id=y),
        update(T).where(T.c.id == t1).values(status="sent"),
        update(T).where(T.c.id == t1).values(channel="sms"),
        update(T).where(T.c.id == t1).values(channel="call_task", status="failed"),
        update(T).where(T.c.membership_id == mb).values(status="cancelled"),  # several rows
        update(T).where(T.c.id == t2).values(club_id=other.id),
        update(T).where(T.c.id == t2).values(club_id=club.id, membership_id=None),
        update(T).where(T.c.id == t2).values(membership_id=ma),
        delete(T).where(T.c.id == t3),
        delete(M).where(M.c.id == ma2),  # its touchpoints' membership becomes NULL
        delete(T).where(T.c.membership_id == mb),
    ]
    for change in changes:
        hand.change(change)
        _stored_equals_computed(db)
    assert _stored_equals_computed(db) == 1


def test_channel_breakdown_counts_memberships_once_per_channel(db, hand):
    """Two other channels for one membership count it once under `other`; a named channel's
    several sends count once; a touchpoint not delivered puts nobody in its channel."""
    club = hand.club()
    plan = hand.plan(club)
    x = hand.definition(club, "x")
    ends = []
    for channels in (["push", "whatsapp", "email", "email"], ["push"], ["sms"], []):
        member = hand.member(club)
        mid = hand.membership(club, member, plan, JAN, MAR)
        ends.append(mid)
        for channel in channels:
            hand.touchpoint(club, member, x, mid, "sent", channel=channel)
    hand.touchpoint(club, hand.member(club), x, ends[3], "skipped", channel="sms")
    with transaction(db.sessionmaker) as s:
        report = service.renewal_breakdown(s, club_id=club.id, by="channel", as_of=AS_OF)
    assert {r.key: r.ended for r in report.items} == {"email": 1, "sms": 1, "other": 2,
                                                      "none": 1}
    assert report.totals.ended == 4
