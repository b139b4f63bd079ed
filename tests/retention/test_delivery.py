"""Delivery through real local servers: SMTP (aiosmtpd) and an HTTP SMS gateway."""
import re
import threading
from datetime import date, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import func, select

from app.core.config import Settings
from app.core.db import transaction
from app.crm.models import Interaction
from app.members.models import Consent, Member
from app.retention import channels as channels_mod
from app.retention.dispatch import MAX_ATTEMPTS, dispatch_due, retry_delay
from app.retention.models import TouchpointAttempt
from tests.retention.conftest import D, ago, local
from tests.retention.servers import SmsGateway, SmtpServer, free_port


def _settings(db, **kw) -> Settings:
    return Settings(database_url=db.url, _env_file=None, secret_key="test-secret-key",
                    public_base_url="http://testserver", **kw)


def _new_member(rw, club, **kw):
    member = rw.member(club, "Clara", **kw)
    rw.membership(club, member, rw.plan(club), D)
    return member


def test_email_arrives_over_smtp_with_a_working_unsubscribe_link(rw, db, client):
    club = rw.club(holdout_share=0)
    rw.only(club, "welcome")
    member = _new_member(rw, club)
    rw.run(club)
    with SmtpServer() as smtp:
        settings = _settings(db, smtp_host="127.0.0.1", smtp_port=smtp.port)
        with channels_mod.from_settings(settings) as ch:
            stats = dispatch_due(db.sessionmaker, channels=ch, settings=settings,
                                 now=local(D, 9))
        assert stats.outcomes["sent"] == 1
        [(sender, rcpts, msg)] = smtp.messages
    assert rcpts == ["clara1@example.com"] and "no-reply@fitclub.local" in sender
    assert msg["Subject"] == "Welcome to Riverside Fitness, Clara!"
    assert msg["From"].startswith("Riverside Fitness")
    body = msg.get_content()
    assert "Hello Clara" in body and "Unsubscribe: http://testserver/api/v1/retention/" in body
    assert "book it in the app (http://testserver/app/training)" in body  # lands on the page
    link = msg["List-Unsubscribe"].strip("<>")
    assert link in body
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"  # RFC 8058 one-click

    token = parse_qs(urlparse(link).query)["token"][0]
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert client.get(f"/api/v1/retention/unsubscribe?token={forged}").status_code == 400
    other = token.replace(f".{member}.", f".{member + 1}.", 1)
    assert client.get(f"/api/v1/retention/unsubscribe?token={other}").status_code == 400
    # the app under test signs with its own secret: sign again with it
    from app.retention.unsubscribe import make_token
    real = make_token(client.app.state.settings.secret_key, club_id=club.id, member_id=member)
    r = client.get(f"/api/v1/retention/unsubscribe?token={real}")  # public: no login
    assert r.status_code == 200 and 'method="post"' in r.text  # a confirm button, nothing done
    with transaction(db.sessionmaker) as s:
        assert s.get(Member, member).email_consent is True
    r = client.post(f"/api/v1/retention/unsubscribe?token={real}")  # the button
    assert r.status_code == 200 and "unsubscribed" in r.text
    with transaction(db.sessionmaker) as s:
        assert s.get(Member, member).email_consent is False
        consent = s.scalar(select(Consent).where(Consent.member_id == member))
        assert (consent.channel, consent.granted, consent.source) == ("email", False,
                                                                      "unsubscribe_link")


def test_the_link_in_the_email_works_as_sent(rw, db, settings):
    """The app and the dispatcher share SECRET_KEY and PUBLIC_BASE_URL: the link just works."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    club = rw.club(holdout_share=0)
    rw.only(club, "welcome")
    member = _new_member(rw, club)
    rw.run(club)
    with SmtpServer() as smtp:
        s = _settings(db, smtp_host="127.0.0.1", smtp_port=smtp.port)
        with channels_mod.from_settings(s) as ch:
            dispatch_due(db.sessionmaker, channels=ch, settings=s, now=local(D, 9))
        [(_, _, msg)] = smtp.messages
    link = msg["List-Unsubscribe"].strip("<>")
    with TestClient(create_app(s)) as c:
        assert c.post(link.removeprefix("http://testserver")).status_code == 200
    with transaction(db.sessionmaker) as sess:
        assert sess.get(Member, member).email_consent is False


def test_opening_the_link_changes_nothing_the_button_and_one_click_do(rw, db, settings):
    """Mail scanners open every link: a GET shows a confirm page and withdraws nothing (issue
    16); the page's button and a mail client's RFC 8058 one-click POST both withdraw consent."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    club = rw.club(holdout_share=0)
    rw.only(club, "welcome")
    scanned, clicked = _new_member(rw, club), _new_member(rw, club)
    rw.run(club)
    with SmtpServer() as smtp:
        s = _settings(db, smtp_host="127.0.0.1", smtp_port=smtp.port)
        with channels_mod.from_settings(s) as ch:
            dispatch_due(db.sessionmaker, channels=ch, settings=s, now=local(D, 9))
        links = {int(parse_qs(urlparse(m["List-Unsubscribe"].strip("<>")).query)["token"][0]
                     .split(".")[1]): m["List-Unsubscribe"].strip("<>")
                 for _, _, m in smtp.messages}
        assert all(m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
                   for _, _, m in smtp.messages)
    with TestClient(create_app(s)) as c:
        for member in (scanned, clicked):
            page = c.get(links[member].removeprefix("http://testserver"))
            assert page.status_code == 200 and "<button" in page.text
            action = re.search(r'action="([^"]+)"', page.text).group(1).replace("&amp;", "&")
            assert action == links[member].removeprefix("http://testserver")
        with transaction(db.sessionmaker) as sess:
            assert sess.get(Member, scanned).email_consent is True
            assert sess.get(Member, clicked).email_consent is True
            assert sess.scalar(select(func.count()).select_from(Consent)) == 0
        # the button on the page
        assert c.post(action).status_code == 200
        # a mail client's one-click: POST with the RFC 8058 body
        one_click = c.post(links[scanned].removeprefix("http://testserver"),
                           data={"List-Unsubscribe": "One-Click"})
        assert one_click.status_code == 200 and "unsubscribed" in one_click.text
    with transaction(db.sessionmaker) as sess:
        assert sess.get(Member, scanned).email_consent is False
        assert sess.get(Member, clicked).email_consent is False


def test_sms_goes_to_the_gateway_with_the_token(rw, db):
    club = rw.club(holdout_share=0)
    rw.only(club, "birthday")
    member = rw.member(club, "Dora", birth_date=date(1990, D.month, D.day))
    rw.membership(club, member, rw.plan(club), ago(100))
    rw.run(club)
    with SmsGateway() as gw:
        settings = _settings(db, sms_gateway_url=gw.url, sms_gateway_token="tok-123")
        with channels_mod.from_settings(settings) as ch:
            stats = dispatch_due(db.sessionmaker, channels=ch, settings=settings,
                                 now=local(D, 9))
    assert stats.outcomes["sent"] == 1
    [req] = gw.requests
    assert req["auth"] == "Bearer tok-123" and req["path"] == "/send"
    assert req["body"]["to"].startswith("+49151")
    assert req["body"]["text"] == "Happy birthday, Dora! Your friends at Riverside Fitness"
    assert req["key"].startswith("touchpoint-")


@pytest.mark.parametrize("failure", ["http_500", "gateway_down"])
def test_a_failing_gateway_is_retried_with_backoff_then_marked_failed(rw, db, failure):
    club = rw.club(holdout_share=0)
    rw.only(club, "birthday")
    member = rw.member(club, "Emil", birth_date=date(1990, D.month, D.day))
    rw.membership(club, member, rw.plan(club), ago(100))
    rw.run(club)
    gw = SmsGateway(status=500)
    url = gw.url if failure == "http_500" else f"http://127.0.0.1:{free_port()}/send"
    settings = _settings(db, sms_gateway_url=url, sms_gateway_token="t", sms_timeout=2)
    now = local(D, 9)
    outcomes = []
    with gw, channels_mod.from_settings(settings) as ch:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            # just before the backoff is over nothing is due
            assert dispatch_due(db.sessionmaker, channels=ch, settings=settings,
                                now=now - timedelta(seconds=1)).claimed == 0 or attempt == 1
            stats = dispatch_due(db.sessionmaker, channels=ch, settings=settings, now=now)
            outcomes.append(dict(stats.outcomes))
            [(tp, _)] = rw.touchpoints(member)
            now = now + retry_delay(attempt)
        # after the last attempt nothing is due any more, ever
        assert dispatch_due(db.sessionmaker, channels=ch, settings=settings,
                            now=now + timedelta(days=2)).claimed == 0
    assert outcomes == [{"retry": 1}] * (MAX_ATTEMPTS - 1) + [{"failed": 1}]
    assert (tp.status, tp.attempts, tp.reason) == ("failed", MAX_ATTEMPTS, "delivery_failed")
    assert tp.last_error
    if failure == "http_500":
        assert len(gw.requests) == MAX_ATTEMPTS
    with transaction(db.sessionmaker) as s:
        attempts = s.scalars(select(TouchpointAttempt.ok).where(
            TouchpointAttempt.touchpoint_id == tp.id)).all()
        assert attempts == [False] * MAX_ATTEMPTS
        summary = s.scalar(select(Interaction.summary).where(Interaction.member_id == member))
        assert "failed after 5 attempt(s)" in summary


def test_a_recovered_gateway_delivers_on_the_retry(rw, db):
    club = rw.club(holdout_share=0)
    rw.only(club, "birthday")
    member = rw.member(club, birth_date=date(1990, D.month, D.day))
    rw.membership(club, member, rw.plan(club), ago(100))
    rw.run(club)
    with SmsGateway(status=503) as gw:
        settings = _settings(db, sms_gateway_url=gw.url)
        with channels_mod.from_settings(settings) as ch:
            assert dispatch_due(db.sessionmaker, channels=ch, settings=settings,
                                now=local(D, 9)).outcomes["retry"] == 1
            gw.status = 202
            assert dispatch_due(db.sessionmaker, channels=ch, settings=settings,
                                now=local(D, 9) + retry_delay(1)).outcomes["sent"] == 1
    assert len(gw.requests) == 2
    [(tp, _)] = rw.touchpoints(member)
    assert (tp.status, tp.attempts) == ("sent", 2)


def test_two_dispatchers_at_once_send_each_touchpoint_exactly_once(rw, db):
    if not db.is_postgres:
        pytest.skip("row locks (FOR UPDATE SKIP LOCKED) are a PostgreSQL matter")
    club = rw.club(holdout_share=0)
    rw.only(club, "welcome")
    plan = rw.plan(club)
    n = 60
    for _ in range(n):
        rw.membership(club, rw.member(club), plan, D)
    rw.run(club)
    with SmtpServer() as smtp:
        settings = _settings(db, smtp_host="127.0.0.1", smtp_port=smtp.port)
        results, errors = [], []
        start = threading.Barrier(2)

        def worker():
            try:
                with channels_mod.from_settings(settings) as ch:
                    start.wait()
                    results.append(dispatch_due(db.sessionmaker, channels=ch, settings=settings,
                                                now=local(D, 9), batch=5))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        messages = smtp.messages
    ids = [m["Message-ID"] for _, _, m in messages]
    assert len(ids) == n and len(set(ids)) == n
    assert sum(r.outcomes["sent"] for r in results) == n
    assert all(r.claimed > 0 for r in results), [(r.claimed, dict(r.outcomes)) for r in results]
    with transaction(db.sessionmaker) as s:
        assert s.scalar(select(func.count()).select_from(TouchpointAttempt)) == n
