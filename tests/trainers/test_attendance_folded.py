"""Both folded VisitGranted follow-ups at once (PostgreSQL: in the grant statement; SQLite: the
handlers after it), the same assertions on both backends."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core import clock
from app.retention.models import MemberStage, StageChange


@pytest.mark.parametrize("recover", [1, 2])
def test_at_risk_member_with_a_booked_class(gym, db, recover):
    coach = gym.trainer()
    now = clock.now()
    soon = gym.class_at(coach, now + timedelta(minutes=20))
    member = gym.member(first_name="Lena", last_name="Vogel")
    gym.membership(member)
    card = gym.client.post(f"/api/v1/members/{member}/cards", json={"code": "LENA-0001"},
                           headers=gym.desk.headers)
    assert card.status_code == 201, card.text
    assert gym.book_class(soon["id"], member).status_code == 201
    d0 = now.date() - timedelta(days=20)
    with db.sessionmaker() as s:
        s.add(MemberStage(club_id=gym.club.id, member_id=member, stage="at_risk", since=d0,
                          cycle=f"r{d0}", reason="gone", base_stage="active", base_since=d0,
                          base_cycle="a-old", recover_visits=recover, visits_total=3,
                          updated_at=now - timedelta(days=1)))
        s.commit()
    device = gym.world.device(gym.club)
    out = gym.client.post("/api/v1/access/events",
                          json={"card": "LENA-0001", "event_id": "o", "direction": "out"},
                          headers=device.headers)
    assert out.json()["allow"] is True
    assert gym.class_detail(soon["id"])["bookings"][0]["attended_at"] is None  # "out" marks nothing
    r = gym.client.post("/api/v1/access/events", json={"card": "LENA-0001", "event_id": "e1"},
                        headers=device.headers)
    assert r.status_code == 200 and r.json()["allow"] is True, r.text
    came = gym.class_detail(soon["id"])["bookings"][0]
    assert came["attendance_source"] == "turnstile" and came["attended_at"] is not None
    with db.sessionmaker() as s:
        st = s.scalars(select(MemberStage)).one()
        history = s.scalars(select(StageChange)).all()
        if recover == 1:
            assert (st.stage, st.recover_visits, st.cycle) == ("active", 0, "a-old")
            assert [(h.from_stage, h.to_stage, h.source) for h in history] == [
                ("at_risk", "active", "visit")]
        else:
            assert (st.stage, st.recover_visits) == ("at_risk", 1) and history == []
