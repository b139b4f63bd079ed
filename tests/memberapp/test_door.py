"""The "get in" page (/app/door): the signed-in member's own door code (QR and digits), renewed
each minute, and what the turnstile would say now — frozen, payment overdue — without an attempt
being recorded."""
import re
from datetime import timedelta

from sqlalchemy import select

from app.access import member_codes
from app.access.models import AccessEvent
from app.core import i18n
from app.core.db import transaction
from app.dues import dunning
from app.dues.models import DunningCase
from app.web.member_kit import MEMBER_COOKIE
from tests.builders import World

CODE = re.compile(r'data-code="(\d{16})"')


def _code_of(db, club_id: int, member: int) -> str:
    with transaction(db.sessionmaker) as s:
        return member_codes.current_code(s, club_id=club_id, member_id=member).code


def _shown(client) -> str:
    page = client.get("/app/door")
    assert page.status_code == 200, page.text
    [code] = CODE.findall(page.text)
    return code


def test_the_page_shows_the_signed_in_members_current_code_only(client, gym, world, db,
                                                                 session):
    anna = gym.member("Anna", "Berg")
    bert = gym.member("Bert", "Brandt")
    world.membership(gym.club, anna)
    bert_code = _code_of(db, gym.club.id, bert)
    assert client.get("/app/door", follow_redirects=False).headers["location"] == "/app/sign-in"
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")

    page = client.get("/app/door")
    assert page.status_code == 200
    html = page.text
    code = _shown(client)
    assert code == _code_of(db, gym.club.id, anna)  # the same minute: the member's own code
    assert member_codes.looks_like(code) and member_codes.key_of(code) != member_codes.key_of(
        bert_code)
    assert "Anna Berg" in html and "Bert" not in html and bert_code not in html
    digits = re.search(r"data-digits>(.*?)</span>\s*</figcaption>", html, re.DOTALL).group(1)
    assert re.sub(r"<[^>]+>", "", digits) == code  # the digits, for the desk to type
    assert "<svg" in html and "Member code" in html  # the QR code, inline
    assert 'data-door-state="ok"' in html and "Your membership is active" in html
    assert 'src="/static/member-door.js"' in html
    refresh = int(re.search(r'data-refresh-in="(\d+)"', html).group(1))
    assert 1 <= refresh <= 60
    assert len(page.content) + len(client.get("/static/member.css").content) \
        + len(client.get("/static/member-door.js").content) < 100_000
    # showing the code and the state records no attempt at the door
    assert session.scalar(select(AccessEvent.id).limit(1)) is None


def test_the_code_changes_when_the_minute_turns(client, gym, world, db, clock):
    anna = gym.member("Anna", "Berg")
    world.membership(gym.club, anna)
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")
    now = clock.now()
    clock.set(now.replace(second=2, microsecond=0) + timedelta(minutes=1))  # a minute's start
    first = _shown(client)
    assert _shown(client) == first  # the same minute: the same code
    clock.advance(timedelta(minutes=1))
    second = _shown(client)
    assert second != first
    assert second == _code_of(db, gym.club.id, anna)
    assert member_codes.key_of(second) == member_codes.key_of(first)  # the member stays the same


def test_a_frozen_member_and_one_whose_payment_is_overdue_see_why(client, gym, world, db):
    frozen, owing = gym.member("Fritz", "Frost"), gym.member("Olga", "Owens")
    today = gym.today
    world.membership(gym.club, frozen, frozen=(today - timedelta(days=1),
                                               today + timedelta(days=9)))
    world.membership(gym.club, owing)
    World.failed_dues(world, gym.club, owing, failed_on=today - timedelta(days=10),
                      block_entry_after_days=5, reminder_days=3)
    with transaction(db.sessionmaker) as s:
        dunning.advance_dunning(s, club_id=gym.club.id, day=today)
        assert s.scalar(select(DunningCase.blocks_entry_from)) <= today

    client.cookies.set(MEMBER_COOKIE, world.app_session(frozen), path="/app")
    html = client.get("/app/door").text
    assert 'data-door-state="membership_frozen"' in html
    until = today + timedelta(days=9)
    assert f"Your membership is frozen until {i18n.day('en', until)}." in html
    assert CODE.search(html)  # the code is still shown: the door decides

    client.cookies.set(MEMBER_COOKIE, world.app_session(owing), path="/app")
    html = client.get("/app/door", headers={"Accept-Language": "de"}).text
    assert 'data-door-state="payment_overdue"' in html
    assert "Eine Zahlung ist überfällig" in html
