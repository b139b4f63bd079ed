"""Events a controller decided on its own are stored as what happened at the door."""
from datetime import timedelta

import pytest

from app.access import service
from app.access.models import AccessEvent, Visit
from app.core import clock
from app.core.db import transaction
from app.core.errors import Invalid
from app.memberships.models import Membership
from tests.access.conftest import count_rows, today


def _record(db, club, who, granted, key):
    with transaction(db.sessionmaker) as s:
        return service.check_in(s, club_id=club.id, card_code=who.card, source="replay",
                                occurred_at=clock.now() - timedelta(hours=2), dedup_key=key,
                                recorded_outcome=granted)


def test_a_device_that_let_in_an_expired_member_gets_the_visit_recorded(db, world, gym, session):
    club = world.club()
    ben = gym.member(club, first_name="Ben")
    gym.membership(club, ben, start=today() - timedelta(days=40), end=today() - timedelta(days=5))
    decision = _record(db, club, ben, True, "zk:SN1:1")
    assert decision.allow is True and decision.reason == "device_granted"
    assert "expired" in decision.message
    assert count_rows(session, Visit, Visit.member_id == ben.member_id) == 1


def test_a_device_that_refused_a_valid_member_gets_a_denial_and_no_visit(db, world, gym, session):
    club = world.club()
    cleo = gym.member(club, first_name="Cleo")
    membership_id = gym.membership(club, cleo)
    decision = _record(db, club, cleo, False, "zk:SN1:2")
    assert (decision.allow, decision.reason) == (False, "device_refused")
    assert count_rows(session, Visit, Visit.member_id == cleo.member_id) == 0
    event = session.get(AccessEvent, decision.access_event_id)
    assert (event.allowed, event.reason) == (False, "device_refused")
    assert session.get(Membership, membership_id).visits_used == 0


def test_an_agreeing_device_outcome_is_an_ordinary_visit(db, world, gym, session):
    club = world.club()
    dora = gym.member(club, first_name="Dora")
    membership_id = gym.membership(club, dora, visit_limit=10)
    decision = _record(db, club, dora, True, "zk:SN1:3")
    assert (decision.allow, decision.reason) == (True, "ok")
    assert session.get(Membership, membership_id).visits_used == 1


def test_the_front_desk_cannot_claim_a_recorded_outcome(db, world, gym):
    club = world.club()
    eva = gym.member(club)
    with pytest.raises(Invalid), transaction(db.sessionmaker) as s:
        service.check_in(s, club_id=club.id, card_code=eva.card, source="desk",
                         occurred_at=clock.now(), recorded_outcome=True)
