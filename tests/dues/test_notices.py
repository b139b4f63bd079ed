"""The dues outbox: notices sent through app.core.mail to a real SMTP server, retried after a
transient failure, given up after a permanent one, claimed once by two dispatchers."""
import threading

import pytest
from sqlalchemy import select

from app.core.config import Settings
from app.dues import notices
from app.dues.models import Notice
from tests.retention.servers import SmtpServer, free_port


def _settings(db, port: int) -> Settings:
    return Settings(database_url=db.url, scheduler_enabled=False, _env_file=None,
                    smtp_host="127.0.0.1", smtp_port=port, smtp_timeout=5)


def _queue(db, club, n: int, to: str | None = "payer@example.org") -> None:
    with db.sessionmaker.begin() as s:
        for i in range(n):
            notices.queue(s, club_id=club.id, kind="invoice", key=f"k{i}:{to}", to=to,
                          subject=f"Invoice {i}", body=f"Your invoice {i}",
                          html=f"<p>Your invoice {i}</p>")


def _rows(db) -> list[Notice]:
    with db.sessionmaker() as s:
        return list(s.scalars(select(Notice).order_by(Notice.id)))


def test_a_notice_is_queued_once_and_sent_once_with_its_club_as_sender(world, db):
    club = world.club("Riverside Fitness")
    _queue(db, club, 1)
    _queue(db, club, 1)
    with SmtpServer() as smtp:
        with db.sessionmaker.begin() as s:
            assert notices.send_pending(s, settings=_settings(db, smtp.port)) == 1
        with db.sessionmaker.begin() as s:
            assert notices.send_pending(s, settings=_settings(db, smtp.port)) == 0
        [(_, rcpts, msg)] = smtp.messages
    assert rcpts == ["payer@example.org"] and msg["Subject"] == "Invoice 0"
    assert "Riverside Fitness" in msg["From"]
    assert msg["Message-ID"].startswith("<notice-")
    assert msg.get_body(("html",)).get_content().strip() == "<p>Your invoice 0</p>"
    [row] = _rows(db)
    assert row.sent_at is not None and row.attempts == 1 and row.error is None


def test_a_server_that_is_down_is_tried_again_later(world, db):
    club = world.club()
    _queue(db, club, 2)
    with db.sessionmaker.begin() as s:
        assert notices.send_pending(s, settings=_settings(db, free_port())) == 0
    assert [(r.sent_at, r.attempts) for r in _rows(db)] == [(None, 1), (None, 1)]
    assert all("SMTP" in r.error for r in _rows(db))
    with SmtpServer() as smtp:
        with db.sessionmaker.begin() as s:
            assert notices.send_pending(s, settings=_settings(db, smtp.port)) == 2
        assert len(smtp.messages) == 2
    assert all(r.sent_at is not None and r.attempts == 2 and r.error is None for r in _rows(db))


def test_a_notice_without_an_address_is_given_up_at_once(world, db):
    club = world.club()
    _queue(db, club, 1, to=None)
    with SmtpServer() as smtp:
        with db.sessionmaker.begin() as s:
            assert notices.send_pending(s, settings=_settings(db, smtp.port)) == 0
        assert smtp.messages == []
    [row] = _rows(db)
    assert row.attempts == notices.MAX_ATTEMPTS and row.error == "no email address"


def test_two_dispatchers_at_once_send_each_notice_once(world, db):
    if not db.is_postgres:
        pytest.skip("row locks (FOR UPDATE SKIP LOCKED) are a PostgreSQL matter")
    club = world.club()
    _queue(db, club, 6)
    with SmtpServer() as smtp:
        settings = _settings(db, smtp.port)
        barrier = threading.Barrier(2)
        counts = []

        def dispatch():
            with db.sessionmaker.begin() as s:
                barrier.wait()
                counts.append(notices.send_pending(s, settings=settings))

        threads = [threading.Thread(target=dispatch) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        subjects = sorted(m["Subject"] for _, _, m in smtp.messages)
    assert sum(counts) == 6 and subjects == sorted(f"Invoice {i}" for i in range(6))
