"""The member app's page kit: the member's cookie, CSRF, the route class, rendering in the
member's language.

Sessions
    A member's session is the `fitclub_member` cookie (HttpOnly, SameSite=Lax, path /app, Secure
    as the staff's): only the member pages ever receive it, and they resolve it with
    `app.memberapp.sessions.resolve` — a different table from the staff's sessions. The staff's
    `fitclub_session` cookie means nothing here, and the member's nothing on the staff pages or
    the API.

CSRF
    As on the staff pages (`app.web.auth`): every POST carries `csrf_token` =
    HMAC-SHA256(SECRET_KEY, "csrf:member:" + the member's session token). The forms used before
    signing in (sign-in, the code, the club choice, the cancel page) use a random form cookie
    (`fitclub_member_form`, path /app) instead. A missing or wrong token is a 403 before the
    handler runs.

Language
    `app.core.i18n.choose`: the browser's Accept-Language, else the club's
    `member_language` (the signed-in member's club; before signing in, the instance's club if
    there is only one), else English. Templates get `t` (the texts), `lang`, `csrf`, `member`,
    `club`, `flash`. Errors are shown in that language by their code ("error.<code>").
"""
import hmac
import secrets
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core import i18n
from app.core.actors import MemberActor
from app.core.deps import SessionDep
from app.core.errors import DomainError
from app.memberapp import sessions as member_sessions
from app.web.auth import (
    SAFE_METHODS,
    add_security_headers,
    clear_flash,
    cookie_secure,
    csrf_token,
    local_path,
    read_flash,
    redirect,
    set_flash,
    settings_of,
)
from app.web.kit import TEMPLATES_DIR

MEMBER_COOKIE = "fitclub_member"
FORM_COOKIE = "fitclub_member_form"  # the CSRF basis of the forms before signing in
CODE_COOKIE = "fitclub_member_code"  # the browser's handle of an SMS code it asked for
CHOICE_COOKIE = "fitclub_member_choice"  # a member of several clubs choosing one
APP = "/app"
SIGN_IN = "/app/sign-in"
# forms posted without a member session (their CSRF token is bound to the form cookie)
PUBLIC_FORMS = frozenset({"/app/sign-in", "/app/sign-in/link", "/app/sign-in/code",
                          "/app/sign-in/club", "/app/cancel", "/app/join/{plan_id}"})

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


class MemberSignInRequired(Exception):
    """No valid member cookie: pages redirect to the sign-in page."""


class MemberCsrfFailed(Exception):
    """A POST without the right CSRF token."""


# --- cookies ------------------------------------------------------------------------------------

def _cookie(request: Request, response: Response, name: str, value: str, *, max_age: int,
            path: str = APP) -> None:
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True,
                        samesite="lax", secure=cookie_secure(request))


def forget_cookie(request: Request, response: Response, name: str, path: str = APP) -> None:
    response.delete_cookie(name, path=path, httponly=True, samesite="lax",
                           secure=cookie_secure(request))


def set_member_cookie(request: Request, response: Response, token: str) -> None:
    days = settings_of(request).member_session_days
    _cookie(request, response, MEMBER_COOKIE, token, max_age=days * 86400)


def set_code_cookie(request: Request, response: Response, handle: str, minutes: int) -> None:
    _cookie(request, response, CODE_COOKIE, handle, max_age=minutes * 60, path=SIGN_IN)


def set_choice_cookie(request: Request, response: Response, choice: str) -> None:
    _cookie(request, response, CHOICE_COOKIE, choice, max_age=15 * 60, path=SIGN_IN)


def form_nonce(request: Request) -> str:
    """The form cookie's value (a new one when the browser has none; `render` sets it)."""
    nonce = request.cookies.get(FORM_COOKIE) or getattr(request.state, "new_form_nonce", None)
    if not nonce:
        nonce = secrets.token_urlsafe(32)
        request.state.new_form_nonce = nonce
    return nonce


# --- the member and the language ---------------------------------------------------------------

def current_member(request: Request, session: Session) -> MemberActor | None:
    actor = member_sessions.resolve(session, token=request.cookies.get(MEMBER_COOKIE))
    request.state.member = actor
    if actor is not None:
        request.state.club = clubs_service.get_club(session, actor.club_id)
    return actor


def maybe_member(request: Request, session: SessionDep) -> MemberActor | None:
    """The signed-in member, or None (public pages that show more when signed in)."""
    request.state.db = session
    return current_member(request, session)


def member_page(request: Request, session: SessionDep) -> MemberActor:
    """The signed-in member, else MemberSignInRequired."""
    request.state.db = session
    actor = current_member(request, session)
    if actor is None:
        raise MemberSignInRequired()
    return actor


MemberPage = Annotated[MemberActor, Depends(member_page)]
MaybeMember = Annotated[MemberActor | None, Depends(maybe_member)]


def _club(request: Request) -> Club | None:
    """The member's club; before signing in, the instance's club when it has only one."""
    club = getattr(request.state, "club", None)
    if club is None and not hasattr(request.state, "only_club"):
        session = getattr(request.state, "db", None)
        clubs = list(session.scalars(select(Club).order_by(Club.id).limit(2))) \
            if session is not None else []
        request.state.only_club = clubs[0] if len(clubs) == 1 else None
    return club or getattr(request.state, "only_club", None)


def zone_for(request: Request) -> ZoneInfo:
    """The club's time zone for times shown (UTC when no club is known)."""
    club = _club(request)
    return clubs_service.club_zone(club) if club is not None else ZoneInfo("UTC")


def _instance_language(request: Request) -> str | None:
    club = _club(request)
    return clubs_service.club_settings(club).member_language if club is not None else None


def language(request: Request) -> str:
    if getattr(request.state, "lang", None) is None:
        request.state.lang = i18n.choose(request.headers.get("accept-language"),
                                         _instance_language(request))
    return request.state.lang


def texts(request: Request) -> i18n.Texts:
    """The member's language's texts (read once per request: call it before the request's
    transaction is given up for the services' own)."""
    zone_for(request)
    return i18n.Texts(language(request))


# --- CSRF ---------------------------------------------------------------------------------------

def csrf_basis(request: Request, route_path: str) -> str:
    if route_path in PUBLIC_FORMS:
        return request.cookies.get(FORM_COOKIE, "")
    return request.cookies.get(MEMBER_COOKIE, "")


def member_csrf(request: Request, basis: str) -> str:
    return csrf_token(settings_of(request).secret_key, f"member:{basis}") if basis else ""


async def verify_csrf(request: Request, route_path: str) -> None:
    basis = csrf_basis(request, route_path)
    sent = None
    if request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get("csrf_token")
        sent = value if isinstance(value, str) else None
    expected = member_csrf(request, basis)
    if not basis or not sent or not hmac.compare_digest(sent, expected):
        raise MemberCsrfFailed()


# --- rendering ----------------------------------------------------------------------------------

def render(request: Request, name: str, context: dict | None = None, *,
           status: int = 200) -> Response:
    t = texts(request)
    member = getattr(request.state, "member", None)
    basis = (request.cookies.get(MEMBER_COOKIE, "") if member is not None
             else form_nonce(request))
    flash = read_flash(request)
    ctx: dict[str, Any] = {
        "t": t, "lang": t.lang, "member": member, "club": getattr(request.state, "club", None),
        "csrf": member_csrf(request, basis), "public_csrf": member_csrf(request,
                                                                         form_nonce(request)),
        "flash": flash, "path": request.url.path, "title": "", "zone": zone_for(request),
    }
    ctx.update(context or {})
    response = templates.TemplateResponse(request, f"app/{name}", ctx, status_code=status)
    new_nonce = getattr(request.state, "new_form_nonce", None)
    if new_nonce:
        _cookie(request, response, FORM_COOKIE, new_nonce, max_age=24 * 3600)
    if flash:
        clear_flash(response)
    response.headers["Content-Language"] = t.lang
    return response


def done(request: Request, url: str, key: str, kind: str = "ok", **values) -> Response:
    """Redirect with a flash message in the member's language."""
    response = redirect(url)
    set_flash(request, response, texts(request)(key, **values), kind)
    return response


def error_text(request: Request, exc: DomainError) -> str:
    """The member-language sentence for a domain error (by its code)."""
    t = texts(request)
    values = {"minutes": max(int((exc.details or {}).get("retry_after", 60)) // 60, 1)} \
        if isinstance(exc.details, dict) and "retry_after" in exc.details else {}
    if isinstance(exc.details, dict) and "attempts_left" in exc.details:
        values["left"] = exc.details["attempts_left"]
    key = f"error.{exc.code}"
    if key in i18n.catalogue(i18n.DEFAULT):
        return t(key, **values)
    return t({404: "error.not_found", 429: "error.rate_limited"}.get(exc.status_code,
                                                                    "error.generic"),
             **({"minutes": 15} if exc.status_code == 429 and not values else values))


async def _error_response(request: Request, exc: Exception) -> Response:
    """Signed out: to the sign-in page. A failed form: back where it came from, with the error
    as a flash message. Otherwise an error page."""
    t = texts(request)
    if isinstance(exc, MemberSignInRequired):
        return redirect(SIGN_IN)
    if isinstance(exc, MemberCsrfFailed):
        status, message = 403, t("error.csrf")
    elif isinstance(exc, RequestValidationError):
        status, message = 422, t("error.form")
    else:
        assert isinstance(exc, DomainError)
        status, message = exc.status_code, error_text(request, exc)
    if request.method not in SAFE_METHODS and status != 403:
        base = str(request.base_url).rstrip("/")
        referrer = request.headers.get("referer", "")
        back = local_path(referrer[len(base):], APP) if referrer.startswith(base) else APP
        response = redirect(back)
        set_flash(request, response, message, "error")
        return response
    return render(request, "error.html", {"title": t("error.title"), "message": message},
                  status=status)


async def _rollback(request: Request) -> None:
    session = getattr(request.state, "db", None)
    if session is not None:
        await run_in_threadpool(session.rollback)


class MemberRoute(APIRoute):
    """A member page: CSRF for POSTs, errors as pages in the member's language, security
    headers."""

    def get_route_handler(self):
        handler = super().get_route_handler()
        route_path = self.path

        async def page_handler(request: Request) -> Response:
            try:
                if request.method not in SAFE_METHODS:
                    if route_path not in PUBLIC_FORMS and not request.cookies.get(MEMBER_COOKIE):
                        raise MemberSignInRequired()
                    await verify_csrf(request, route_path)
                response = await handler(request)
            except (MemberSignInRequired, MemberCsrfFailed, DomainError,
                    RequestValidationError) as exc:
                await _rollback(request)
                response = await _error_response(request, exc)
            except (IntegrityError, OperationalError):
                await _rollback(request)
                response = await _error_response(request, DomainError(
                    "busy", code="busy", status_code=503))
            return add_security_headers(response)

        return page_handler


def member_router() -> APIRouter:
    """The member pages' router: HTML (not in the OpenAPI document), through `MemberRoute`."""
    return APIRouter(include_in_schema=False, route_class=MemberRoute)
