"""Signing in to the member app without a password: the emailed link (read from a real local
SMTP server) and the SMS code (from the SMS gateway stand-in), single use, expiring, throttled,
only to consented channels, the same answer for strangers, a choice for members of two clubs."""
from datetime import timedelta

from sqlalchemy import func, select

from app.core.ratelimit import RateLimitBucket
from app.crm.models import Interaction
from app.memberapp import signin
from app.memberapp.models import MemberSession, MemberSignIn
from tests.memberapp.conftest import (
    ask,
    code_sent,
    csrf_of,
    emails_to,
    enter_code,
    link_in,
    open_link,
    sign_in_by_email,
)

ANNA = "anna.berg@example.org"
ANNA_PHONE = "+4915112345678"


def _anna(gym, **fields):
    return gym.member("Anna", "Berg", email=ANNA, phone=ANNA_PHONE, email_consent=True,
                      sms_consent=True, **fields)


def test_a_member_signs_in_with_the_emailed_link_once(client, gym, smtp, clock):
    anna = _anna(gym)
    gym.membership(anna)
    asked = ask(client, "  Anna.Berg@Example.org ")
    assert asked.status_code == 200
    assert "sign-in link is on its way" in asked.text
    [email] = emails_to(smtp, ANNA)
    assert email["Subject"] == "Riverside Fitness: your sign-in link"
    link = link_in(email)
    assert "15 minutes" in email.get_body(("plain",)).get_content()
    with gym.db.sessionmaker() as s:  # only a digest of the link's token is kept
        stored = s.scalar(select(MemberSignIn))
        assert link.rpartition("=")[2] not in (stored.secret_hash, str(stored.member_ids))
        assert stored.member_ids == [anna]

    signed_in = open_link(client, link)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/app"
    cookie = signed_in.cookies.get("fitclub_member")
    assert cookie and "Path=/app" in signed_in.headers["set-cookie"]
    assert "HttpOnly" in signed_in.headers["set-cookie"]
    home = client.get("/app")
    assert home.status_code == 200 and "Hello, Anna!" in home.text

    again = open_link(client, link)  # the same link a second time
    assert again.status_code == 400 or again.status_code == 422
    assert "not valid or has expired" in again.text
    assert gym.count(MemberSession) == 1
    [entry] = gym.scalars(select(Interaction).where(Interaction.member_id == anna))
    assert entry.kind == "member_app" and entry.channel == "app"
    assert entry.summary.startswith("Signed in to the member app with an emailed link")


def test_a_link_expires_after_its_minutes(client, gym, smtp, clock):
    _anna(gym)
    ask(client, ANNA)
    link = link_in(emails_to(smtp, ANNA)[-1])
    clock.advance(timedelta(minutes=15, seconds=1))
    late = open_link(client, link)
    assert "not valid or has expired" in late.text
    assert "fitclub_member" not in late.cookies
    assert gym.count(MemberSession) == 0


def test_strangers_and_members_without_consent_get_the_same_answer_and_no_email(
        client, gym, smtp):
    _anna(gym)
    gym.member("Bert", "Quiet", email="bert@example.org", email_consent=False)
    answers = [ask(client, address) for address in
               ("bert@example.org", "nobody@example.org", ANNA)]
    texts = [a.text.replace(a.cookies.get("fitclub_member_form") or "", "") for a in answers]
    assert all(a.status_code == 200 for a in answers)
    assert texts[0] == texts[1] == texts[2]
    assert [to for _f, to, _m in smtp.messages] == [[ANNA]]  # only Anna, who agreed
    with gym.db.sessionmaker() as s:  # a challenge for each, the strangers' for nobody
        assert [r.member_ids for r in s.scalars(select(MemberSignIn).order_by(
            MemberSignIn.id))][:2] == [[], []]


def test_a_member_signs_in_with_an_sms_code_in_the_browser_that_asked(
        client, gym, sms, world, app):
    from fastapi.testclient import TestClient

    anna = _anna(gym)
    asked = ask(client, "0151 12345678")  # a national number, read in the club's country
    assert asked.status_code == 303 and asked.headers["location"] == "/app/sign-in/code"
    [request] = sms.requests
    assert request["body"]["to"] == ANNA_PHONE and request["auth"] == "Bearer sms-key"
    assert request["key"].startswith("member-sign-in-")
    code = code_sent(sms)
    with TestClient(app) as other:  # the code typed into another browser does nothing
        page = other.get("/app/sign-in/code", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/app/sign-in"
    wrong = enter_code(client, "000000" if code != "000000" else "111111")
    assert wrong.status_code == 422 and "Attempts left: 4" in wrong.text
    right = enter_code(client, code)
    assert right.status_code == 303 and right.headers["location"] == "/app"
    assert client.get("/app").status_code == 200
    with gym.db.sessionmaker() as s:
        assert s.scalar(select(MemberSession.channel).where(
            MemberSession.member_id == anna)) == "sms"


def test_wrong_codes_use_up_the_attempts_even_for_the_right_one_after(client, gym, sms):
    _anna(gym)
    ask(client, ANNA_PHONE)
    code = code_sent(sms)
    wrong = next(c for c in ("000000", "111111") if c != code)
    for left in (4, 3, 2, 1):
        assert f"Attempts left: {left}" in enter_code(client, wrong).text
    dead = enter_code(client, wrong)
    assert "expired or was tried too often" in dead.text
    late = enter_code(client, code)
    assert "expired or was tried too often" in late.text
    assert gym.count(MemberSession) == 0


def test_requests_are_throttled_per_address_the_same_for_strangers(client, gym, smtp, db):
    _anna(gym)
    for _ in range(signin.TO_LIMIT):
        assert ask(client, ANNA).status_code == 200
        assert ask(client, "nobody@example.org").status_code == 200
    over = [ask(client, ANNA), ask(client, "nobody@example.org")]
    assert [a.status_code for a in over] == [429, 429]
    assert "Too many attempts" in over[0].text and "Too many attempts" in over[1].text
    assert len(emails_to(smtp, ANNA)) == signin.TO_LIMIT
    with db.sessionmaker() as s:  # the counters keep digests, not the addresses
        buckets = s.scalars(select(RateLimitBucket.bucket)).all()
    assert not any("example.org" in b for b in buckets)


def test_a_member_gets_at_most_five_messages_an_hour_by_any_channel(client, gym, smtp, sms,
                                                                    clock):
    _anna(gym)
    for _ in range(3):
        assert ask(client, ANNA).status_code == 200
        assert ask(client, ANNA_PHONE).status_code == 303  # the same answer as ever
    assert len(emails_to(smtp, ANNA)) + len(sms.requests) == signin.MEMBER_LIMIT
    clock.advance(signin.MEMBER_WINDOW)
    assert ask(client, ANNA_PHONE).status_code == 303
    assert len(sms.requests) == 3


def test_requests_are_throttled_per_client_network(app, gym):
    from fastapi.testclient import TestClient

    with TestClient(app, client=("198.51.100.9", 40000)) as stranger, \
            TestClient(app, client=("203.0.113.5", 40000)) as member:
        for n in range(signin.IP_LIMIT):
            assert ask(stranger, f"guess{n}@example.org").status_code == 200
        assert ask(stranger, "guess-more@example.org").status_code == 429
        assert ask(member, ANNA).status_code == 200  # another network is not held up


def test_a_member_of_two_clubs_chooses_the_club_after_the_link(client, gym, smtp, world):
    anna = _anna(gym)
    other_club = world.club("Harbour Gym")
    other = gym.member("Anna", "Berg", club=other_club, email=ANNA, email_consent=True)
    chooser = sign_in_by_email(client, smtp, ANNA)
    assert chooser.status_code == 303 and chooser.headers["location"] == "/app/sign-in/club"
    assert "fitclub_member" not in chooser.cookies
    page = client.get("/app/sign-in/club")
    assert "Riverside Fitness" in page.text and "Harbour Gym" in page.text
    
    token = csrf_of(page.text)
    stranger = gym.member("Carl", "Else", email="carl@example.org")
    refused = client.post("/app/sign-in/club", data={"member_id": stranger,
                                                     "csrf_token": token},
                          follow_redirects=False)
    assert refused.status_code == 303 and "fitclub_member" not in refused.cookies
    chosen = client.post("/app/sign-in/club", data={"member_id": other, "csrf_token": token},
                         follow_redirects=False)
    assert chosen.status_code == 303 and chosen.headers["location"] == "/app"
    assert "Harbour Gym" in client.get("/app").text
    with gym.db.sessionmaker() as s:
        assert s.scalars(select(MemberSession.member_id)).all() == [other]
    again = client.post("/app/sign-in/club", data={"member_id": anna, "csrf_token": token},
                        follow_redirects=False)  # the choice was used
    assert gym.count(MemberSession) == 1 and again.status_code == 303


def test_the_pages_and_messages_speak_the_members_language(client, gym, smtp, world):
    _anna(gym)
    page = client.get("/app/sign-in", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.8"})
    assert 'lang="de"' in page.text and "E-Mail-Adresse oder Handynummer" in page.text
    assert "Verträge hier kündigen" in page.text
    assert ask(client, ANNA, lang="ru,en;q=0.5").status_code == 200
    email = emails_to(smtp, ANNA)[-1]
    assert email["Subject"] == "Riverside Fitness: ссылка для входа"
    with gym.db.sessionmaker() as s:  # no Accept-Language: the club's own language
        from app.clubs import service as clubs_service
        from app.clubs.models import Club

        clubs_service.update_club_settings(s, club=s.get(Club, gym.club.id),
                                           changes={"member_language": "de"})
        s.commit()
    assert 'lang="de"' in client.get("/app/sign-in").text
    assert 'lang="en"' in client.get("/app/sign-in",
                                     headers={"Accept-Language": "fr,en;q=0.3"}).text


def test_expired_challenges_are_deleted_later(client, gym, smtp, clock):
    _anna(gym)
    ask(client, ANNA)
    clock.advance(signin.KEEP_EXPIRED + timedelta(hours=1))
    ask(client, "someone@example.org")
    with gym.db.sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(MemberSignIn)) == 1


def test_the_links_token_never_reaches_the_access_log():
    from app.core.logredact import redact

    line = '"GET /app/sign-in/link?token=s3cr3t-T0ken HTTP/1.1" 200'
    assert "s3cr3t" not in redact(line) and "token=[redacted]" in redact(line)
