"""Request bodies are refused over a per-route limit before anything reads them (pure ASGI).

Without this, FastAPI reads a JSON body whole, and Starlette spools a multipart body to /tmp,
before any dependency (the bearer token, the device key) runs: a 200 MB body to
`POST /api/v1/members` without a token grew the process by 200 MB before its 401.

* A `Content-Length` over the route's limit is answered **413** at once: the application is not
  called, not a byte of the body is read.
* A body without `Content-Length` (chunked) is counted while it streams; the read that crosses
  the limit raises `BodyTooLarge` instead of returning the chunk, so at most the limit (plus one
  chunk) is ever held or spooled, and the answer is 413.

Limits (`LIMITS`, first match wins; `DEFAULT_LIMIT` elsewhere) are the documented ones: JSON and
form posts 1 MB; the member CSV import and the SEPA returns file 20 MB each (API and page); the history import 1 GB together;
the device protocols what their adapters accept. An upload route's limit is its file limit plus
`FORM_ALLOWANCE` for the other form fields and the multipart framing, so a file just over its
limit still reaches the route's own check and its specific message (`file_too_large`).

A limit above the default is for signed-in callers only (`Limit.credential`): before the body is
read, the bearer token (API) or the page session cookie (pages) is looked up (`token_user`, in a
worker thread, with the app's session factory). Without a live one the default 1 MB applies, so
a caller with no or a made-up credential gets 413 after at most 1 MB (or the route's own 401/403
for a small body), never a 1 GB body spooled to disk first.
"""
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import cookie_parser

from app.core.db import transaction
from app.core.errors import DomainError, Unauthorized
from app.core.handlers import envelope

MiB = 1 << 20
DEFAULT_LIMIT = 1 * MiB
FORM_ALLOWANCE = 1 * MiB

MEMBER_IMPORT_FILE = 20 * MiB  # docs/import.md: "file (≤ 20 MB)"; app.imports.router.MAX_UPLOAD
SEPA_RETURNS_FILE = 20 * MiB  # docs/billing.md: a bank's returns file (camt.054 / CSV)
HISTORY_IMPORT_FILES = 1 << 30  # docs/import.md: "At most 1 GB together"
ZKTECO_BODY = 2 * MiB  # app.access.protocols.router.ZK_BODY_MAX
HIKVISION_BODY = 8 * MiB  # an event with its pictures; HIK_BODY_MAX
IRONLOGIC_BODY = 1 * MiB  # IL_BODY_MAX

BEARER = "bearer"  # `Authorization: Bearer <token>` of kind "bearer" (app.core.deps)
SESSION = "session"  # the `fitclub_session` cookie of kind "session" (app.web.auth)
SESSION_COOKIE = "fitclub_session"  # app.web.auth.SESSION_COOKIE
MAX_TOKEN = 200  # longer is no token of ours (app.web.auth.session_actor)
UNSIGNED_HINT = "larger uploads need a valid sign-in"

log = logging.getLogger("fitclub.bodylimit")


@dataclass(frozen=True)
class Limit:
    method: str
    path: re.Pattern
    limit: int
    hint: str
    # BEARER or SESSION: the limit holds only for a live credential of that kind, otherwise the
    # default; None (the devices, whose keys their routes check) keeps it for every caller
    credential: str | None = None


def _rule(method: str, path: str, limit: int, hint: str, credential: str | None = None) -> Limit:
    return Limit(method, re.compile(path), limit, hint, credential)


LIMITS: tuple[Limit, ...] = (
    _rule("POST", r"/api/v1/imports/members", MEMBER_IMPORT_FILE + FORM_ALLOWANCE,
          "a member file of at most 20 MB; split it or use the command line "
          "(fitclub import members)", BEARER),
    _rule("POST", r"/manage/import", MEMBER_IMPORT_FILE + FORM_ALLOWANCE,
          "a member file of at most 20 MB; split it or use the command line "
          "(fitclub import members)", SESSION),
    _rule("POST", r"/api/v1/sepa/returns", SEPA_RETURNS_FILE + FORM_ALLOWANCE,
          "a returns file of at most 20 MB; split it by booking date", BEARER),
    _rule("POST", r"/manage/billing/returns", SEPA_RETURNS_FILE + FORM_ALLOWANCE,
          "a returns file of at most 20 MB; split it by booking date", SESSION),
    _rule("POST", r"/api/v1/imports/history", HISTORY_IMPORT_FILES + FORM_ALLOWANCE,
          "history files of at most 1 GB together; use the command line "
          "(fitclub import history)", BEARER),
    _rule("POST", r"/iclock/(cdata|devicecmd)", ZKTECO_BODY, "at most 2 MB per post"),
    _rule("POST", r"/api/v1/devices/hikvision/[^/]+/[^/]+/events", HIKVISION_BODY,
          "at most 8 MB per event"),
    _rule("POST", r"/api/v1/devices/ironlogic", IRONLOGIC_BODY, "at most 1 MB per post"),
)


def limit_for(method: str, path: str, limits=LIMITS, default: int = DEFAULT_LIMIT) -> Limit:
    """The rule for a request: the first of `limits` matching method and whole path, else the
    default (1 MB)."""
    for rule in limits:
        if rule.method == method and rule.path.fullmatch(path):
            return rule
    return Limit(method, re.compile(".*"), default,
                 "JSON and form posts; files go to the import uploads")


def presented_token(scope, credential: str) -> str | None:
    """The bearer token or the session cookie the request carries, if any."""
    for key, value in scope.get("headers", ()):
        key = key.lower()
        if credential == BEARER and key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
        if credential == SESSION and key == b"cookie":
            token = cookie_parser(value.decode("latin-1")).get(SESSION_COOKIE)
            if token:
                return token
    return None


TokenCheck = Callable[..., object]
"""`check(session, token=, kind=)` raises `Unauthorized` unless the token is a live credential
of that kind (the clubs domain's `token_user`, passed in by the app factory)."""


def _live_token(factory, check: TokenCheck, token: str, kind: str) -> bool:
    try:
        with transaction(factory) as session:
            check(session, token=token, kind=kind)
        return True
    except Unauthorized:
        return False


async def signed_in(scope, credential: str, factory, check: TokenCheck | None) -> bool:
    """Whether the request carries a live credential of `credential`'s kind (looked up in a
    worker thread). Any failure of the lookup counts as no credential: the default limit."""
    token = presented_token(scope, credential)
    if not token or len(token) > MAX_TOKEN or factory is None or check is None:
        return False
    try:
        return await run_in_threadpool(_live_token, factory, check, token, credential)
    except Exception:  # the database is down: the small limit, and the route answers
        log.warning("body limit: could not check the credential", exc_info=True)
        return False


def _size(n: int) -> str:
    return f"{n / MiB:.0f} MB" if n >= MiB else f"{n >> 10} KB" if n >= 1024 else f"{n} bytes"


class BodyTooLarge(DomainError, HTTPException):
    """Raised by the limited `receive` when the body crosses the limit.

    A `DomainError` (so pages render their error page and the API its envelope, status 413) and
    a Starlette `HTTPException` (so FastAPI's body reading passes it on instead of turning it
    into a 400 "error parsing the body")."""

    def __init__(self, rule: Limit):
        message = (f"The request body is larger than {_size(rule.limit)}, the most this address "
                   f"accepts ({rule.hint})")
        DomainError.__init__(self, message, code="body_too_large", status_code=413,
                             details={"limit_bytes": rule.limit})
        self.detail = message
        self.headers = {"Connection": "close"}


def too_large_response(rule: Limit):
    exc = BodyTooLarge(rule)
    return envelope(413, exc.code, exc.message, exc.details, headers=exc.headers)


class BodyLimit:
    """The ASGI middleware: 413 by `Content-Length` before the app runs, or while streaming."""

    def __init__(self, app, limits=LIMITS, default: int = DEFAULT_LIMIT,
                 token_check: TokenCheck | None = None):
        self.app = app
        self.limits = limits
        self.default = default
        self.token_check = token_check

    def _factory(self, scope):
        """The app's session factory: from the application Starlette puts in the scope, or from
        the wrapped app itself (a `BodyLimit` put around the app, as the tests do)."""
        for app in (scope.get("app"), self.app):
            factory = getattr(getattr(app, "state", None), "sessionmaker", None)
            if factory is not None:
                return factory
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = limit_for(scope["method"], scope["path"], self.limits, self.default)
        declared = next((v for k, v in scope.get("headers", ()) if k.lower() == b"content-length"),
                        None)
        if declared is not None and not declared.strip().isdigit():
            await envelope(400, "bad_content_length", "Content-Length must be a number",
                           headers={"Connection": "close"})(scope, receive, send)
            return
        if (rule.credential and rule.limit > self.default
                and (declared is None or int(declared) > self.default)
                and not await signed_in(scope, rule.credential, self._factory(scope),
                                     self.token_check)):
            rule = Limit(rule.method, rule.path, self.default, UNSIGNED_HINT)
        if declared is not None and int(declared) > rule.limit:
            await too_large_response(rule)(scope, receive, send)
            return

        received = 0
        exceeded = False
        started = False
        replaced = False

        async def limited_receive():
            nonlocal received, exceeded
            if exceeded:
                raise BodyTooLarge(rule)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > rule.limit:
                    exceeded = True
                    raise BodyTooLarge(rule)
            return message

        async def guarded_send(message):
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                if exceeded and message["status"] != 413:
                    # something caught the refusal and answered otherwise (a 400 "cannot parse
                    # the body"): the answer is the 413
                    replaced = True
                    started = True
                    await too_large_response(rule)(scope, receive, send)
                    return
                started = True
            elif replaced:
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if started:
                raise
            await too_large_response(rule)(scope, receive, send)
            return
        if exceeded and not started:
            await too_large_response(rule)(scope, receive, send)


def install(app: FastAPI, limits=LIMITS, default: int = DEFAULT_LIMIT, *,
            token_check: TokenCheck | None = None) -> None:
    """Add the body-limit middleware once (a second call is a no-op). Without `token_check`
    no caller gets a limit above the default."""
    if getattr(app.state, "body_limit", False):
        return
    app.add_middleware(BodyLimit, limits=limits, default=default, token_check=token_check)
    app.state.body_limit = True
