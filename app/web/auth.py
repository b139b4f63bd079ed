"""Cookie sessions, CSRF tokens, flash messages and the route class every page goes through.

Sessions
    Signing in calls `clubs_service.login` (the same password check, lockout and token table as
    the API) and marks the new `AuthToken` as kind "session". The opaque token lives in an
    HttpOnly, SameSite=Lax cookie (Secure when the request came over https or the public base URL
    is https); the database keeps only its SHA-256. A page resolves the cookie to an `Actor` with
    `clubs_service.authenticate`, exactly like `app.clubs.deps.current_actor` does for bearer
    tokens, but only for tokens of kind "session". Signing out revokes the token.

CSRF
    Every unsafe request (POST …) to a page route must carry `csrf_token` (form field) or
    `X-CSRF-Token` (header, for fetch calls) equal to HMAC-SHA256(SECRET_KEY, "csrf:" + session
    token). The login form, which has no session yet, uses a random pre-login cookie instead of
    the session token. A missing or wrong token is a 403 before the handler runs.

Errors
    `PageRoute` wraps each page handler: domain errors become an HTML error page (GET), a flash
    message and a redirect back (form POST) or a small HTML fragment (fetch); the request's
    transaction is rolled back first. Every response gets the security headers.
"""
import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from markupsafe import escape
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from app.clubs import service as clubs_service
from app.clubs.models import StaffUser
from app.core.actors import Actor, Role
from app.core.config import Settings
from app.core.deps import SessionDep
from app.core.errors import Conflict, DomainError, Forbidden, NotFound, Unauthorized
from app.core.types import MAX_ID

log = logging.getLogger("fitclub.web")

SESSION_COOKIE = "fitclub_session"
CLUB_COOKIE = "fitclub_club"  # the club chosen by staff of several clubs (checked every request)
LOGIN_COOKIE = "fitclub_login"
FLASH_COOKIE = "fitclub_flash"
SESSION_KIND = "session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
FETCH_HEADER = "X-Requested-With"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# forms posted before there is a session: sign-in, and sign-up through an invitation link
PRE_SESSION_PATHS = frozenset({"/login", "/login/invitations/{token}"})
PASSWORD_PAGE = "/me/password"
# the only pages a user on a temporary password may open (app/web/account.py)
PASSWORD_CHANGE_PATHS = frozenset({PASSWORD_PAGE, "/logout"})

CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


# --- exceptions the route class turns into pages --------------------------------------------------

class LoginRequired(Exception):
    """No valid session cookie: GET pages redirect to /login."""


class CsrfFailed(Exception):
    """An unsafe request without the right CSRF token."""


class PasswordChangeRequired(Exception):
    """Signed in with a temporary password: every page redirects to the change-password page."""


# --- settings --------------------------------------------------------------------------------------

def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def cookie_secure(request: Request) -> bool:
    """Secure cookies over https, or when the deployment says it is served over https."""
    settings = settings_of(request)
    return (request.url.scheme == "https"
            or str(settings.public_base_url).lower().startswith("https://")
            or settings.session_cookie_secure)


def session_ttl(request: Request) -> timedelta:
    return timedelta(minutes=settings_of(request).token_ttl_minutes)


# --- sessions --------------------------------------------------------------------------------------

def start_session(session: Session, *, email: str, password: str, ttl: timedelta,
                  address: str | None = None) -> tuple[str, StaffUser]:
    """Check the password through the clubs service (the same lockout and per-address throttle
    as the API) and mark the token as a cookie session."""
    return clubs_service.login(session, email=email, password=password, ttl=ttl,
                               kind=SESSION_KIND, address=address)


def end_session(session: Session, *, token: str) -> None:
    clubs_service.revoke_token(session, token=token)


def session_actor(session: Session, token: str, club_id: int | None = None) -> Actor | None:
    """The actor of a cookie session token, or None when it is unknown, expired or not a session.

    `club_id` is the club chosen with the club switcher (the `fitclub_club` cookie); one the user
    no longer works in falls back to their first club. A user who has no club gets a 403
    (Forbidden), not a redirect loop to the login page.
    """
    if not token or len(token) > 200:
        return None
    try:
        try:
            return clubs_service.authenticate(session, token=token, club_id=club_id,
                                              kind=SESSION_KIND)
        except NotFound:
            return clubs_service.authenticate(session, token=token, club_id=None,
                                              kind=SESSION_KIND)
    except Unauthorized as exc:
        if exc.status_code == 403:
            raise Forbidden(exc.message, code=exc.code) from exc
        return None


def chosen_club(request: Request) -> int | None:
    """The club picked with the club switcher (a cookie next to the session; the membership is
    checked on every request, so the cookie grants nothing by itself)."""
    value = request.cookies.get(CLUB_COOKIE, "")
    return int(value) if value.isdigit() and 0 < int(value) <= MAX_ID else None


def set_club_cookie(request: Request, response: Response, club_id: int) -> None:
    response.set_cookie(CLUB_COOKIE, str(club_id), max_age=int(session_ttl(request).total_seconds()),
                        path="/", httponly=True, samesite="lax", secure=cookie_secure(request))


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int(session_ttl(request).total_seconds()),
                        path="/", httponly=True, samesite="lax", secure=cookie_secure(request))


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=cookie_secure(request))


def new_login_nonce(request: Request, response: Response, nonce: str | None = None) -> str:
    """A random pre-login cookie: the basis of the login form's CSRF token."""
    nonce = nonce or secrets.token_urlsafe(32)
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, path="/login", httponly=True,
                        samesite="lax", secure=cookie_secure(request))
    return nonce


def clear_login_nonce(request: Request, response: Response) -> None:
    response.delete_cookie(LOGIN_COOKIE, path="/login", httponly=True, samesite="lax",
                           secure=cookie_secure(request))


# --- the request's session and the actor ----------------------------------------------------------

def page_session(request: Request, session: SessionDep) -> Session:
    """The request's session (`SessionDep`), remembered so errors turned into pages roll it back."""
    request.state.db = session
    return session


PageSession = Annotated[Session, Depends(page_session)]


def page_actor(request: Request, session: SessionDep) -> Actor:
    """The signed-in staff member (cookie session), else LoginRequired."""
    request.state.db = session  # the route class rolls it back when it turns an error into a page
    actor = session_actor(session, request.cookies.get(SESSION_COOKIE, ""), chosen_club(request))
    if actor is None:
        raise LoginRequired()
    if actor.must_change_password and request.url.path not in PASSWORD_CHANGE_PATHS:
        raise PasswordChangeRequired()
    request.state.actor = actor
    request.state.club = clubs_service.get_club(session, actor.club_id)
    request.state.clubs = clubs_service.user_club_names(session, user_id=actor.user_id)
    return actor


def require_page(*roles: Role) -> Callable[..., Actor]:
    allowed = frozenset(roles)

    def dependency(actor: Annotated[Actor, Depends(page_actor)]) -> Actor:
        if actor.role not in allowed:
            raise Forbidden(f"Your role ({actor.role.value.replace('_', ' ')}) may not open this "
                            "page", code="forbidden_role")
        return actor

    return dependency


# --- CSRF ----------------------------------------------------------------------------------------

def csrf_token(secret: str, basis: str) -> str:
    """HMAC-SHA256 of the session token (or the pre-login nonce) with the secret key."""
    return hmac.new(secret.encode(), f"csrf:{basis}".encode(), hashlib.sha256).hexdigest()


def csrf_basis(request: Request, path: str | None = None) -> str:
    if (path or request.url.path) in PRE_SESSION_PATHS:
        return request.cookies.get(LOGIN_COOKIE, "")
    return request.cookies.get(SESSION_COOKIE, "")


def csrf_for(request: Request, basis: str | None = None) -> str:
    basis = csrf_basis(request) if basis is None else basis
    return csrf_token(settings_of(request).secret_key, basis) if basis else ""


async def verify_csrf(request: Request, route_path: str) -> None:
    basis = csrf_basis(request, route_path)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    expected = csrf_token(settings_of(request).secret_key, basis) if basis else ""
    if not basis or not sent or not hmac.compare_digest(sent, expected):
        raise CsrfFailed()


# --- flash messages (a short-lived signed cookie, set on redirects) -------------------------------

def _sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), f"flash:{payload}".encode(), hashlib.sha256).hexdigest()[:32]


def set_flash(request: Request, response: Response, text: str, kind: str = "info",
              title: str | None = None) -> None:
    data = json.dumps({"kind": kind, "text": text[:500], "title": (title or "")[:100]},
                      separators=(",", ":"))
    payload = base64.urlsafe_b64encode(data.encode()).decode()
    value = f"{payload}.{_sign(settings_of(request).secret_key, payload)}"
    response.set_cookie(FLASH_COOKIE, value, max_age=60, path="/", httponly=True,
                        samesite="lax", secure=cookie_secure(request))


def read_flash(request: Request) -> dict | None:
    value = request.cookies.get(FLASH_COOKIE)
    if not value or "." not in value:
        return None
    payload, signature = value.rsplit(".", 1)
    if not hmac.compare_digest(signature, _sign(settings_of(request).secret_key, payload)):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        return None
    kind = data.get("kind") if data.get("kind") in ("info", "ok", "error", "warn") else "info"
    return {"kind": kind, "text": data["text"], "title": str(data.get("title") or "")}


def clear_flash(response: Response) -> None:
    response.delete_cookie(FLASH_COOKIE, path="/")


# --- redirects -----------------------------------------------------------------------------------

def local_path(value: str | None, default: str = "/") -> str:
    """A same-site path to go back to (never another host, never a scheme)."""
    if not value or not isinstance(value, str) or len(value) > 2000:
        return default
    parts = urlsplit(value)
    if (parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//")
            or "\\" in value or any(ord(c) < 32 for c in value)):
        return default
    return value


def back_to(request: Request, back: str | None, default: str) -> str:
    """Where an action goes afterwards (and on an error): its `back` field or `default`."""
    url = local_path(back, default)
    request.state.back = url
    return url


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def is_fetch(request: Request) -> bool:
    return request.headers.get(FETCH_HEADER, "").lower() == "fetch"


async def back_url(request: Request) -> str:
    """Where a failed form POST returns to: its `back` field, else the same-origin referrer."""
    back = None
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        try:
            value = (await request.form()).get("back")
            back = value if isinstance(value, str) else None
        except Exception:  # noqa: BLE001 - a broken body: fall back to the referrer
            back = None
    if not back:
        back = getattr(request.state, "back", None)
    if not back:
        referrer = urlsplit(request.headers.get("referer", ""))
        if referrer.netloc == request.url.netloc and referrer.path:
            back = referrer.path + (f"?{referrer.query}" if referrer.query else "")
    return local_path(back, "/")


# --- security headers ------------------------------------------------------------------------------

def add_security_headers(response: Response, *, no_store: bool = True) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if no_store:
        response.headers.setdefault("Cache-Control", "no-store")
    return response


class WebStatic(StaticFiles):
    """Static files with the same security headers (and a short cache)."""

    def file_response(self, *args, **kwargs) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.setdefault("Cache-Control", "public, max-age=300")
        return add_security_headers(response, no_store=False)


# --- the page route class ------------------------------------------------------------------------

ErrorPage = Callable[[Request, int, str, str], Response]
_error_page: list[ErrorPage] = []


def set_error_page(render: ErrorPage) -> None:
    """The router registers how to render an HTML error page (status, title, message)."""
    _error_page[:] = [render]


def _validation_summary(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:4]:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "form")]
        parts.append(f"{'.'.join(loc) or 'input'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the input is not valid"


async def _rollback(request: Request) -> None:
    session = getattr(request.state, "db", None)
    if session is not None:
        try:
            await run_in_threadpool(session.rollback)
        except Exception:
            log.exception("rollback failed after an error on %s", request.url.path)


def _fragment(text: str, status: int, kind: str = "error") -> HTMLResponse:
    return HTMLResponse(f'<p class="flash {kind}" role="alert">{escape(text)}</p>',
                        status_code=status)


class PageRoute(APIRoute):
    """A page route: CSRF check for unsafe methods, HTML errors, security headers."""

    def get_route_handler(self):
        handler = super().get_route_handler()
        route_path = self.path

        async def page_handler(request: Request) -> Response:
            try:
                if request.method not in SAFE_METHODS:
                    if (route_path not in PRE_SESSION_PATHS
                            and not request.cookies.get(SESSION_COOKIE)):
                        raise LoginRequired()
                    await verify_csrf(request, route_path)
                response = await handler(request)
            except (LoginRequired, CsrfFailed, PasswordChangeRequired, DomainError,
                    RequestValidationError) as exc:
                await _rollback(request)
                await request.close()  # an upload refused before the handler ran: its files
                response = await _error_response(request, exc)
            except IntegrityError:
                log.warning("integrity error on page %s", request.url.path)
                await _rollback(request)
                response = await _error_response(request, Conflict(
                    "This change conflicts with data saved meanwhile; reload and try again",
                    code="conflict"))
            except OperationalError:
                log.error("database unavailable or busy on page %s", request.url.path)
                await _rollback(request)
                response = await _error_response(request, DomainError(
                    "The database is busy; please try again in a moment", code="unavailable",
                    status_code=503))
            return add_security_headers(response)

        return page_handler


async def _error_response(request: Request, exc: Exception) -> Response:
    render = _error_page[0] if _error_page else None
    unsafe = request.method not in SAFE_METHODS
    fetch = is_fetch(request)

    def page(status: int, title: str, message: str) -> Response:
        if fetch or render is None:
            return _fragment(message, status)
        return render(request, status, title, message)

    if isinstance(exc, LoginRequired):
        if fetch:
            return _fragment("You are signed out: reload the page and sign in.", 401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if unsafe:
            target = await back_url(request)
        return redirect(f"/login?next={quote(target, safe='')}")
    if isinstance(exc, PasswordChangeRequired):
        if fetch:
            return _fragment("Choose your own password first: reload the page.", 403)
        return redirect(PASSWORD_PAGE)
    if isinstance(exc, CsrfFailed):
        return page(403, "Form expired",
                    "This form could not be verified (missing or expired security token). "
                    "Reload the page and try again.")
    if isinstance(exc, RequestValidationError):
        message = f"Please check the input — {_validation_summary(exc)}"
        if unsafe and not fetch:
            response = redirect(await back_url(request))
            set_flash(request, response, message, "error")
            return response
        return page(422, "Please check the input", message)
    assert isinstance(exc, DomainError)
    if exc.code == "forbidden_role" or not unsafe:
        titles = {403: "Not allowed", 404: "Not found", 409: "Conflict", 422: "Please check"}
        return page(exc.status_code, titles.get(exc.status_code, "Something went wrong"),
                    exc.message)
    if fetch:
        return _fragment(exc.message, exc.status_code)
    response = redirect(await back_url(request))
    set_flash(request, response, exc.message, "error")
    return response


def role_in(actor: Actor | None, roles: Iterable[Role]) -> bool:
    return actor is not None and actor.role in set(roles)
