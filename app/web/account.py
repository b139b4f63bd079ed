"""Pages of one's own account, for every staff member: sign in and out, the start page by role,
"My password" (also the forced change after a temporary password), the club switcher for staff
of several clubs, and the invitation link's page where the invited person accepts (signed in as
that email) or creates their account.

Thin over `app.clubs.service` and `app.clubs.staff` (rules in docs/staff.md). How sessions, CSRF
and the login nonce work is described in `app.web.auth`.
"""
import secrets
from typing import Annotated

from fastapi import Form, Path, Query, Request
from fastapi.responses import Response

from app.clubs import service as clubs_service
from app.clubs import staff as staff_service
from app.core.actors import DESK, MANAGERS, Actor
from app.core.errors import Invalid, NotFound, Unauthorized
from app.web.auth import (
    PRE_SESSION_PATHS,
    SESSION_COOKIE,
    SESSION_KIND,
    PageSession,
    back_to,
    clear_login_nonce,
    clear_session_cookie,
    cookie_secure,
    csrf_for,
    end_session,
    local_path,
    new_login_nonce,
    redirect,
    session_actor,
    session_ttl,
    set_club_cookie,
    set_flash,
    set_session_cookie,
    start_session,
)
from app.web.kit import ROLE_LABELS, Back, PageActor, done, page_router, render

router = page_router()

InvitationToken = Annotated[str, Path(min_length=20, max_length=200)]
Password = Annotated[str, Form(min_length=1, max_length=200)]


def home_for(actor: Actor) -> str:
    if actor.role in MANAGERS:
        return "/owner"
    if actor.role in DESK:
        return "/desk"
    return "/tasks"


# --- sign in and out -------------------------------------------------------------------------------

def _login_form(request: Request, *, next_url: str, email: str = "", error: str | None = None,
                status: int = 200) -> Response:
    nonce = secrets.token_urlsafe(32)
    response = render(request, "login.html",
                      {"next": next_url, "email": email, "error": error, "title": "Sign in"},
                      status=status, csrf=csrf_for(request, nonce))
    response.set_cookie("fitclub_login", nonce, max_age=3600, path="/login", httponly=True,
                        samesite="lax", secure=cookie_secure(request))
    return response


@router.get("/login")
def login_page(request: Request, session: PageSession,
               next: Annotated[str | None, Query(max_length=2000)] = None):
    actor = session_actor(session, request.cookies.get(SESSION_COOKIE, ""))
    if actor is not None:
        return redirect(local_path(next, home_for(actor)))
    return _login_form(request, next_url=local_path(next, ""))


@router.post("/login")
def login(request: Request, session: PageSession,
          email: Annotated[str, Form(max_length=254)],
          password: Annotated[str, Form(max_length=200)],
          next: Back = None):
    try:
        token, _user = start_session(session, email=email, password=password,
                                     ttl=session_ttl(request),
                                     address=request.client.host if request.client else None)
    except Unauthorized as exc:  # the failure is already counted in its own transaction
        return _login_form(request, next_url=local_path(next, ""), email=email,
                           error=exc.message, status=exc.status_code)
    target = local_path(next, "")
    if target.startswith("/invitations/"):  # accepting one: possibly someone with no club yet
        response = redirect(target)
    else:
        actor = session_actor(session, token)
        response = redirect(local_path(next, home_for(actor)))
    set_session_cookie(request, response, token)
    clear_login_nonce(request, response)
    return response


@router.post("/logout")
def logout(request: Request, session: PageSession, actor: PageActor):
    end_session(session, token=request.cookies.get(SESSION_COOKIE, ""))
    response = redirect("/login")
    clear_session_cookie(request, response)
    set_flash(request, response, "You are signed out.", "info")
    return response


@router.get("/")
def home(actor: PageActor):
    return redirect(home_for(actor))


# --- everyone: my password -----------------------------------------------------------------------

def _password_page(request: Request, actor, *, status: int = 200):
    forced = actor.must_change_password
    return render(request, "staff_password.html", {
        "title": "Choose your password" if forced else "My password", "forced": forced,
        "min_length": staff_service.MIN_PASSWORD_LENGTH,
        # on a temporary password the other pages are closed: no menu to them
        **({"nav": []} if forced else {})}, status=status)


@router.get("/me/password")
def password_page(request: Request, actor: PageActor):
    return _password_page(request, actor)


@router.post("/me/password")
def change_password(request: Request, session: PageSession, actor: PageActor,
                    current_password: Password, new_password: Password,
                    repeat_password: Password):
    back_to(request, None, "/me/password")
    if new_password != repeat_password:
        raise Invalid("The two new passwords are not the same", code="passwords_differ")
    staff_service.change_own_password(session, user_id=actor.user_id,
                                      current_password=current_password,
                                      new_password=new_password,
                                      keep_token=request.cookies.get(SESSION_COOKIE),
                                      address=request.client.host if request.client else None)
    return done(request, home_for(actor), "Your password is changed; your other sessions are signed out.")


# --- staff of several clubs: the club switcher ------------------------------------------------------

@router.post("/club/switch")
def switch_club(request: Request, session: PageSession, actor: PageActor,
                club_id: Annotated[int, Form(ge=1, le=2**63 - 1)]):
    """Work in another of one's clubs: checked against one's roles, remembered in a cookie."""
    chosen = clubs_service.authenticate(session, token=request.cookies.get(SESSION_COOKIE, ""),
                                        club_id=club_id, kind=SESSION_KIND)
    club = clubs_service.get_club(session, chosen.club_id)
    response = done(request, home_for(chosen), f"You now work in {club.name}.")
    set_club_cookie(request, response, chosen.club_id)
    return response


# --- the invited person: the invitation link ------------------------------------------------------

INVITATION_PAGE = "/invitations/{token}"
REGISTER_PATH = "/login/invitations/{token}"  # before a session: the login form's CSRF nonce
assert REGISTER_PATH in PRE_SESSION_PATHS


def _signed_in_user(session, request: Request):
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token or len(token) > 200:
        return None
    try:
        return clubs_service.token_user(session, token=token, kind=SESSION_KIND)
    except Unauthorized:
        return None


@router.get(INVITATION_PAGE)
def invitation_page(request: Request, session: PageSession, token: InvitationToken):
    """The link's page: accept (signed in as the invited email), sign in first, or create the
    account when the email has none."""
    info = staff_service.describe_invitation(session, token=token)
    user = _signed_in_user(session, request)
    nonce = None if user else secrets.token_urlsafe(32)
    response = render(request, "invitation.html", {
        "title": "Invitation", "nav": [], "invitation": info, "token": token, "user": user,
        "roles": ROLE_LABELS, "min_length": staff_service.MIN_PASSWORD_LENGTH,
        "register_action": REGISTER_PATH.format(token=token),
        # the sign-up form posts before there is a session: its CSRF token is the nonce's
        "register_csrf": csrf_for(request, nonce) if nonce else "",
        "next": INVITATION_PAGE.format(token=token)})
    if nonce:
        new_login_nonce(request, response, nonce)
    return response


@router.post(INVITATION_PAGE + "/accept")
def accept_invitation(request: Request, session: PageSession, token: InvitationToken):
    """Accept, signed in with one's own session as the invited email."""
    back_to(request, None, INVITATION_PAGE.format(token=token))
    user = _signed_in_user(session, request)
    if user is None:
        raise NotFound("Sign in as the invited person to accept", code="invitation_not_found")
    result = staff_service.accept_invitation(session, token=token, user_id=user.id)
    response = done(request, "/", f"You now work in {result['club_name']} as "
                    f"{ROLE_LABELS[result['role']].lower()}.")
    set_club_cookie(request, response, result["club_id"])
    return response


@router.post(REGISTER_PATH)
def register_by_invitation(request: Request, session: PageSession, token: InvitationToken,
                           password: Password, repeat_password: Password,
                           name: Annotated[str | None, Form(max_length=200)] = None):
    """Create the invited email's account with one's own password, then sign in."""
    back_to(request, None, INVITATION_PAGE.format(token=token))
    if password != repeat_password:
        raise Invalid("The two passwords are not the same", code="passwords_differ")
    result = staff_service.register_by_invitation(session, token=token, name=name or None,
                                                  password=password)
    response = done(request, "/login", f"Your account is ready and you work in "
                    f"{result['club_name']}: sign in with your new password.")
    set_club_cookie(request, response, result["club_id"])
    return response
