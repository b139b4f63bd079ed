"""Staff pages: the club's staff for owners and managers (add, change role, remove, reset
password) and "My password" for everyone, also the forced change after a temporary password.

Thin over `app.clubs.staff` (rules in docs/staff.md). A temporary password is shown once, in the
answer to the POST that made it, never in a redirect or a cookie. Installed by
`app.web.router.install`.
"""
from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError

from app.clubs import staff as staff_service
from app.clubs.schemas import Role, StaffCreate
from app.core.errors import DomainError, Invalid
from app.core.schemas import IdPath
from app.web.auth import SESSION_COOKIE, PageRoute, PageSession, back_to
from app.web.router import ManagerPage, PageActor, done, home_for, render

router = APIRouter(include_in_schema=False, route_class=PageRoute)

StaffId = IdPath("staff user id")
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


def _staff_page(request: Request, session, actor, *, issued: dict | None = None):
    staff = staff_service.list_staff(session, club_id=actor.club_id, limit=500)["items"]
    may_add = [r for r in Role if actor.role == Role.owner or r in staff_service.MANAGER_MAY_MANAGE]
    return render(request, "staff.html", {
        "title": "Staff", "staff": staff, "roles": ROLE_LABELS, "may_add": may_add,
        "is_owner": actor.role == Role.owner, "manager_may": staff_service.MANAGER_MAY_MANAGE,
        "issued": issued})


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
    row, password = staff_service.add_staff(session, actor=actor, email=data.email,
                                            name=data.name, role=data.role)
    if password is None:
        return done(request, STAFF_PAGE, f"{row['name']} ({row['email']}) already has an account "
                    f"from another club: they now work here as "
                    f"{ROLE_LABELS[row['role']].lower()} and sign in with their own password.")
    return _staff_page(request, session, actor, issued={
        "name": row["name"], "email": row["email"], "password": password, "new": True})


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
    try:
        staff_service.change_own_password(session, user_id=actor.user_id,
                                          current_password=current_password,
                                          new_password=new_password,
                                          keep_token=request.cookies.get(SESSION_COOKIE))
    except DomainError as exc:
        if exc.code == "wrong_current_password":
            session.commit()  # keep the failed count that throttles guessing
        raise
    return done(request, home_for(actor), "Your password is changed; your other sessions are signed out.")
