"""A hostile reviewer's findings in the member app: input a phone's form would never send but an
attacker does (dates at the calendar's ends, NUL bytes), each answered in words (4xx), never a
500, and nothing half-written."""
import re
from datetime import timedelta

from sqlalchemy import select

from app.memberapp.models import MemberFreezeRequest, MemberSignature
from app.members.models import Member
from app.trainers.models import PtSession
from app.web.member_kit import MEMBER_COOKIE
from tests.memberapp import test_freeze as fz
from tests.memberapp import test_join as jn
from tests.memberapp import test_training as tr

gym = tr.gym  # the trainers' club where a test needs a trainer
coach = tr.coach


def test_a_freeze_starting_at_the_end_of_the_calendar_is_refused_in_words(client, world,
                                                                          session):
    from tests.builders import Shop
    shop = Shop.open(client, world)
    fz._club(shop, app_freeze_mode="instant", freeze_min_days=7, freeze_notice_days=0)
    anna, membership = fz._member_with_membership(shop, world)
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")
    form = fz._form(client)
    r = client.post("/app/freeze", data=form | {"membership_id": membership,
                                                "start_date": "9999-12-31", "days": 7})
    assert r.status_code == 200 and r.url.path == "/app/freeze", (r.status_code, r.text[:300])
    assert fz._flash(r)
    assert fz._all(session, select(MemberFreezeRequest.id)) == []


def test_a_training_slot_at_the_calendar_ends_is_refused_in_words(client, gym, world, coach):
    member = gym.member("Tim", "Nord")
    gym.package(member, gym.pt_product(sessions=10, validity_days=90), trainer_id=coach.id)
    tr._signed_in(client, world, member)
    for start in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:00-01:00",
                  "9999-12-31T23:30:00+00:00"):
        r = tr._book(client, coach.id, start)
        assert r.status_code in (400, 404, 409, 422), (start, r.status_code, r.text[:300])
        assert 'role="alert" data-error>' in r.text
    assert gym.count(PtSession) == 0


def test_a_nul_byte_in_a_joining_name_is_refused_in_words(client, world):
    from tests.builders import Shop
    shop = Shop.open(client, world)
    plan = jn._online(shop)
    before = jn._counts(shop)
    for field in ("first_name", "last_name", "typed_name"):
        changes = {field: "An\x00na"}
        if field == "first_name":
            changes["typed_name"] = "An\x00na Berg"
        r = jn._join(client, plan["id"], **changes)
        assert r.status_code == 422, (field, r.status_code, r.text[:300])
        assert jn.ERROR.search(r.text), r.text[:500]
    assert jn._counts(shop) == before
