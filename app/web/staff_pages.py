"""Staff pages: the club's staff for owners and managers (invite, change role, remove, reset
password, pending invitations), "My password" for everyone (also the forced change after a
temporary password), the club switcher for staff of several clubs, and the invitation link's page
where the invited person accepts (signed in as that email) or creates their account.

Thin over `app.clubs.staff` (rules in docs/staff.md). A temporary password or an invitation link
is shown once, in the answer to the POST that made it, never in a redirect or a cookie. Installed
by `app.web.router.install`.
"""
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from pydantic import ValidationError

from app.clubs import service as clubs_service
from app.clubs import staff as staff_service
from app.clubs.schemas import StaffCreate
from app.clubs.staff_router import accept_url
from app.core.actors import Role
from app.core.errors import Invalid, NotFound, Unauthorized
from app.core.schemas import IdPath
from app.web.auth import (
    PRE_SESSION_PATHS,
    SESSION_COOKIE,
    SESSION_KIND,
    PageRoute,
    PageSession,
    back_to,
    csrf_for,
    new_login_nonce,
    set_club_cookie,
    settings_of,
)
from app.web.router import ManagerPage, PageActor, done, home_for, render

router = APIRouter(include_in_schema=False, route_class=PageRoute)

StaffId = IdPath("staff user id")
InvitationId = IdPath("invitation id")
InvitationToken = Annotated[str, Path(min_length=20, max_length=200)]
Password = Annotated[str, Form(min_length=1, max_length=200)]
ROLE_LABELS = {Role.owner: "Owner", Role.manager: "Manager", Role.front_desk: "Front desk",
               Role.trainer: "Trainer"}
STAFF_PAGE = "/manage/staff"


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise Invalid("Choose a role: owner, manager, front desk or trainer",
                      code="invalid_form") from None


def _staff_page(request: Request, session, actor, *, issued: dict | None = None,
                invited: dict | None = None):
    staff = staff_service.list_staff(session, club_id=actor.club_id, limit=500)["items"]
    may_add = [r for r in Role if actor.role == Role.owner or r in staff_service.MANAGER_MAY_MANAGE]
    return render(request, "staff.html", {
        "title": "Staff", "staff": staff, "roles": ROLE_LABELS, "may_add": may_add,
        "is_owner": actor.role == Role.owner, "manager_may": staff_service.MANAGER_MAY_MANAGE,
        "invitations": staff_service.list_invitations(session, club_id=actor.club_id),
        "issued": issued, "invited": invited})


@router.get(STAFF_PAGE)
def staff_page(request: Request, session: PageSession, actor: ManagerPage):
    return _staff_page(request, session, actor)


@router.post(STAFF_PAGE)
def add_staff(request: Request, session: PageSession, actor: ManagerPage,
              email: Annotated[str, Form(max_length=254)],
              name: Annotated[str, Form(max_length=200)],
              role: Annotated[str, Form(max_length=20)]):
    back_to(request, None, STAFF_PAGE)
    try:
        data = StaffCreate(email=email, name=name, role=_role(role))
    except ValidationError as exc:
        field = str(exc.errors()[0].get("loc", ("input",))[0])
        message = exc.errors()[0].get("msg", "not valid")
        raise Invalid(f"Please check the form — {field}: {message}", code="invalid_form") from None
    row, token = staff_service.add_staff(session, actor=actor, email=data.email,
                                         name=data.name, role=data.role)
    return _staff_page(request, session, actor, invited={
        **row, "url": accept_url(settings_of(request), token)})


@router.post(STAFF_PAGE + "/invitations/{invitation_id}/link")
def reissue_invitation(request: Request, session: PageSession, actor: ManagerPage,
                       invitation_id: InvitationId):
    back_to(request, None, STAFF_PAGE)
    row, token = staff_service.reissue_invitation(session, actor=actor,
                                                  invitation_id=invitation_id)
    return _staff_page(request, session, actor, invited={
        **row, "url": accept_url(settings_of(request), token)})


@router.post(STAFF_PAGE + "/invitations/{invitation_id}/cancel")
def cancel_invitation(request: Request, session: PageSession, actor: ManagerPage,
                      invitation_id: InvitationId):
    back_to(request, None, STAFF_PAGE)
    staff_service.cancel_invitation(session, actor=actor, invitation_id=invitation_id)
    return done(request, STAFF_PAGE, "The invitation is cancelled; its link no longer works.")


@router.post(STAFF_PAGE + "/{user_id}/role")
def change_role(request: Request, session: PageSession, actor: ManagerPage, user_id: StaffId,
                role: Annotated[str, Form(max_length=20)]):
    back_to(request, None, STAFF_PAGE)
    row = staff_service.change_role(session, actor=actor, user_id=user_id, role=_role(role))
    return done(request, STAFF_PAGE, f"{row['name']} is now {ROLE_LABELS[row['role']].lower()}.")


@router.post(STAFF_PAGE + "/{user_id}/remove")
def remove_staff(request: Request, session: PageSession, actor: ManagerPage, user_id: StaffId):
    back_to(request, None, STAFF_PAGE)
    row = staff_service.get_staff(session, club_id=actor.club_id, user_id=user_id)
    staff_service.remove_staff(session, actor=actor, user_id=user_id)
    return done(request, STAFF_PAGE, f"{row['name']} no longer works in this club; their "
                "tasks, sales and history stay.")


@router.post(STAFF_PAGE + "/{user_id}/reset-password")
def reset_password(request: Request, session: PageSession, actor: ManagerPage,
                   user_id: StaffId):
    back_to(request, None, STAFF_PAGE)
    row = staff_service.get_staff(session, club_id=actor.club_id, user_id=user_id)
    password = staff_service.reset_password(session, actor=actor, user_id=user_id)
    return _staff_page(request, session, actor, issued={
        "name": row["name"], "email": row["email"], "password": password, "new": False})


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
