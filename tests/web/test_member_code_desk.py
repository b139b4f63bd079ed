"""The desk's scanner field takes a member's app code as it takes a card: the member is found and
checked in; an expired code says so instead of "no member matches"."""
from datetime import timedelta

from app.access import member_codes
from app.access import service as access_service
from app.core import clock
from app.core.db import transaction
from tests.web.conftest import csrf_of, sign_in


def _code(db, club_world, member: str, now=None) -> str:
    with transaction(db.sessionmaker) as s:
        return member_codes.current_code(s, club_id=club_world.club_id,
                                         member_id=club_world.members[member], now=now).code


def test_a_scanned_app_code_finds_the_member_and_the_desk_checks_them_in(web, club_world, db):
    anna = club_world.members["anna"]
    code = _code(db, club_world, "anna")
    sign_in(web, club_world.desk.email)
    found = web.get("/desk/search", params={"q": code})
    assert found.status_code == 200
    assert "Anna Schmidt" in found.text and "Bert" not in found.text
    assert f'action="/desk/members/{anna}/check-in"' in found.text
    page = web.get("/desk", params={"q": code})  # without JavaScript: the search form
    assert "Anna Schmidt" in page.text
    done = web.post(f"/desk/members/{anna}/check-in",
                    data={"csrf_token": csrf_of(page.text)}, headers={"X-Requested-With": "fetch"})
    assert done.status_code == 200 and "Welcome, Anna!" in done.text
    assert "Anna Schmidt" in web.get("/desk/events").text


def test_todays_check_ins_mark_an_entry_by_app_code(web, club_world, db):
    code = _code(db, club_world, "anna")
    with transaction(db.sessionmaker) as s:
        decision = access_service.check_in(s, club_id=club_world.club_id,
                                           occurred_at=clock.now(), card_code=code)
    assert decision.allow is True
    sign_in(web, club_world.desk.email)
    events = web.get("/desk/events").text
    assert "Anna Schmidt</a> <span class=\"muted\">(app)</span>" in events


def test_an_expired_app_code_at_the_desk_says_so(web, club_world, db):
    stale = _code(db, club_world, "anna", now=clock.now() - timedelta(minutes=10))
    sign_in(web, club_world.desk.email)
    answer = web.get("/desk/search", params={"q": stale})
    assert "App code expired, please open it again in the app" in answer.text
    assert "Anna Schmidt" not in answer.text and "No member matches" not in answer.text
