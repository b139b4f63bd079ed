"""Tokens and keys in URLs never reach the server's access log (issue 16: feed tokens and
Hikvision keys appeared in uvicorn's access log)."""
import logging
import re

import httpx

from app.core.actors import Role
from app.core.logredact import REDACTED, RedactSecrets, log_config, redact
from tests.core.live import serve


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def test_secret_query_parameters_and_path_keys_are_redacted():
    assert redact("/api/v1/trainers/7/schedule.ics?token=s3cr3t") == \
        f"/api/v1/trainers/7/schedule.ics?token={REDACTED}"
    assert redact("/api/v1/devices/hikvision/DS-K1T/abcKEY/events") == \
        f"/api/v1/devices/hikvision/DS-K1T/{REDACTED}/events"
    assert redact("/iclock/cdata?SN=CKJ1&Key=x1&SessionID=42&table=ATTLOG") == \
        f"/iclock/cdata?SN=CKJ1&Key={REDACTED}&SessionID={REDACTED}&table=ATTLOG"
    assert redact("/x?feed_token=a&api_key=b&page=2") == \
        f"/x?feed_token={REDACTED}&api_key={REDACTED}&page=2"
    assert redact("/api/v1/members?q=anna&limit=5") == "/api/v1/members?q=anna&limit=5"


def test_invitation_tokens_and_encoded_names_are_redacted():
    """The review found invitation links (which can create an account) in the access log, and a
    percent-encoded parameter name passing the filter."""
    for path in ("/invitations/Tok3n_-x", "/api/v1/invitations/Tok3n_-x/accept",
                 "/api/v1/invitations/Tok3n_-x/register", "/login/invitations/Tok3n_-x",
                 "/login?next=%2Finvitations%2FTok3n_-x", "/feed?%74oken=Tok3n_-x"):
        assert "Tok3n_-x" not in redact(f"GET {path} HTTP/1.1"), path
        assert REDACTED in redact(path)
    assert redact("/api/v1/staff/invitations/12/link") == "/api/v1/staff/invitations/12/link"


def test_the_filter_rewrites_uvicorns_access_record():
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/api/v1/x?token=abc", "1.1", 200), None)
    assert RedactSecrets().filter(record) is True
    assert record.getMessage() == f'127.0.0.1:5000 - "GET /api/v1/x?token={REDACTED} HTTP/1.1" 200'


def test_a_served_app_logs_no_feed_token_unsubscribe_token_or_device_key(db, world, app):
    """A real uvicorn with its access log on, configured as `fitclub serve` configures it."""
    club = world.club()
    manager = world.staff(club, Role.manager)
    trainer = world.staff(club, Role.trainer)
    lines = _Lines()
    access = logging.getLogger("uvicorn.access")
    with serve(app, access_log=True, log_level="info", log_config=log_config()) as port:
        access.addHandler(lines)
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base) as http:
                coach = http.post("/api/v1/trainers", headers=manager.headers,
                                  json={"user_id": trainer.user_id}).json()["id"]
                url = http.post(f"/api/v1/trainers/{coach}/feed-token",
                                headers=manager.headers).json()["url"]
                feed_token = re.search(r"token=([^&]+)", url).group(1)
                feed = http.get(f"/api/v1/trainers/{coach}/schedule.ics",
                                params={"token": feed_token})
                assert feed.status_code == 200  # redaction is the log's only
                http.get("/api/v1/retention/unsubscribe", params={"token": "1.2.unsubSECRET"})
                http.post("/api/v1/devices/hikvision/DS-K1T/hikKEY123/events", content=b"{}")
                http.get("/iclock/getrequest", params={"SN": "CKJ1", "key": "zkKEY456"})
        finally:
            access.removeHandler(lines)
    text = "\n".join(lines.lines)
    assert "schedule.ics?token=" + REDACTED in text, text
    for secret in (feed_token, "unsubSECRET", "hikKEY123", "zkKEY456"):
        assert secret not in text, secret
    assert f"/api/v1/devices/hikvision/DS-K1T/{REDACTED}/events" in text
    assert len(lines.lines) >= 6
