"""Secrets in URLs never reach the server's logs.

Some credentials travel in a URL because the client cannot send a header: a trainer's calendar
feed (`schedule.ics?token=…`), a member's unsubscribe link (`?token=…`), the Hikvision listener
URL (`/api/v1/devices/hikvision/<serial>/<device key>/events`). uvicorn's access log writes every
request line, so `RedactSecrets` rewrites them before any handler sees them:

* a query parameter whose name is or ends in `token`, `key`, `secret`, `password`, `signature`
  or `sessionid` (any case: `token=`, `key=`, `feed_token=`, `SessionID=`) keeps its name and
  shows `[redacted]` as its value;
* the device-key segment of the Hikvision path and the token segment of an invitation link
  (`/invitations/<token>`, `/api/v1/invitations/<token>/accept`, `next=/invitations/<token>`)
  show `[redacted]`;
* percent-encoded text is decoded first, so `?%74oken=` or `next=%2Finvitations%2F…` cannot
  slip past.

`install()` puts the filter on uvicorn's (and gunicorn's) access and error loggers; the app
factory calls it, so `uvicorn app.asgi:app` is covered as well as `fitclub serve`, whose
`log_config()` also sets it on uvicorn's access handler.
"""
import copy
import logging
import re
from urllib.parse import unquote

REDACTED = "[redacted]"
_PARAM = re.compile(
    r"(?i)(?P<lead>[?&;])(?P<name>[^=&;\s\"#?]*?(?:token|key|secret|password|passwd|signature|"
    r"sessionid|session_id))=(?P<value>[^&;\s\"#]*)")
_PATHS = (
    re.compile(r"(?P<lead>/api/v1/devices/hikvision/[^/?\s\"]+/)(?P<value>[^/?\s\"]+)"
               r"(?P<tail>/events)"),
    # an invitation's token (numeric ids of /staff/invitations/{id} stay readable)
    re.compile(r"(?P<lead>/invitations/)(?!\d+(?:[/?\s\"]|$))(?P<value>[^/?&;\s\"#]+)(?P<tail>)"),
)
LOGGERS = ("uvicorn.access", "uvicorn.error", "gunicorn.access", "gunicorn.error")


def redact(text: str) -> str:
    """`text` with every secret-looking URL part replaced by `[redacted]`."""
    if "%" in text:
        text = unquote(text)
    if "=" in text:
        text = _PARAM.sub(lambda m: f"{m['lead']}{m['name']}={REDACTED}", text)
    for pattern in _PATHS:
        text = pattern.sub(lambda m: f"{m['lead']}{REDACTED}{m['tail']}", text)
    return text


class RedactSecrets(logging.Filter):
    """A logging filter: rewrites the record's message and string arguments (uvicorn's access
    record passes the path with its query as an argument), never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict) and record.args:
            record.args = {k: redact(v) if isinstance(v, str) else v
                           for k, v in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install(loggers=LOGGERS) -> None:
    """Put the filter on the servers' loggers once (a second call adds nothing)."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


def log_config() -> dict:
    """uvicorn's default logging configuration with the filter on its handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_secrets"] = {"()": RedactSecrets}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("redact_secrets")
    return config
