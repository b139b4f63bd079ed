"""Staff management: owners (and managers, for the front desk and trainers) add colleagues, change
roles, remove people from the club and reset passwords; everyone changes their own password.

Rules (docs/staff.md):
- A new user gets a random temporary password, returned once; it must be changed at the first
  sign-in (`StaffUser.must_change_password`), before the token or page session works for
  anything else. Only the argon2 hash is stored.
- Managers may add, remove and reset the front desk and trainers only; roles change by owners.
- A club always keeps at least one owner (an owner may hand over and step down, the last one
  may not). Nobody resets their own password here: that is `change_own_password`.
- Someone who also works in another club is reset only by a caller who is an owner there too:
  a temporary password opens every club of the account.
- Removing someone deletes their role in this club; the user row stays (tasks, sales and visits
  refer to it). With no club left, all their tokens are revoked; otherwise their tokens simply
  stop working for this club (`authenticate` finds no role here).

Staff changes are logged (`fitclub.staff`) without secrets; the privacy audit log is for member
data and is not used here.
"""
import logging
import secrets

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.clubs.models import AuthToken, ClubStaff, StaffUser
from app.clubs.schemas import Role
from app.clubs.service import (
    LOCKOUT,
    MAX_FAILED_LOGINS,
    Actor,
    create_user,
    get_club,
    grant_role,
    normalise_email,
)
from app.core import clock
from app.core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from app.core.security import digest, hash_password, verify_password

log = logging.getLogger("fitclub.staff")

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 200
# no 0/O, 1/l/I: read aloud or copied from a screen without mistakes
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_GROUPS, _GROUP_LENGTH = 4, 4  # 16 characters of 31 ≈ 79 random bits
MANAGER_MAY_MANAGE = (Role.front_desk, Role.trainer)


def temporary_password() -> str:
    """A random, strong, readable one-time password, e.g. `k7mp-x3qz-9tfa-hw2e`."""
    return "-".join("".join(secrets.choice(_ALPHABET) for _ in range(_GROUP_LENGTH))
                    for _ in range(_GROUPS))


def check_password_policy(password: str, *, email: str, current_hash: str | None = None) -> None:
    """At least 10 characters, not the email address, not the current password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"The new password must be at least {MIN_PASSWORD_LENGTH} characters long",
                      code="weak_password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid(f"The new password must be at most {MAX_PASSWORD_LENGTH} characters long",
                      code="weak_password")
    if not password.strip():
        raise Invalid("The new password must not be only spaces", code="weak_password")
    lowered = password.strip().lower()
    if lowered == normalise_email(email) or lowered == normalise_email(email).split("@")[0]:
        raise Invalid("The new password must not be your email address", code="weak_password")
    if current_hash is not None and verify_password(current_hash, password):
        raise Invalid("The new password must be different from the current one",
                      code="weak_password")


# --- reading -------------------------------------------------------------------------------------

def _staff_row(user: StaffUser, role: str) -> dict:
    return {"user_id": user.id, "email": user.email, "name": user.name, "role": Role(role),
            "active": user.active, "last_login_at": user.last_login_at,
            "must_change_password": user.must_change_password}


def list_staff(session: Session, *, club_id: int, limit: int = 100, offset: int = 0) -> dict:
    """The club's staff with role, last sign-in and whether the account is active."""
    where = ClubStaff.club_id == club_id
    total = session.scalar(select(func.count()).select_from(ClubStaff).where(where))
    rows = session.execute(
        select(StaffUser, ClubStaff.role).join(ClubStaff, ClubStaff.user_id == StaffUser.id)
        .where(where).order_by(func.lower(StaffUser.name), StaffUser.id)
        .limit(limit).offset(offset)).all()
    return {"items": [_staff_row(user, role) for user, role in rows], "total": total,
            "limit": limit, "offset": offset}


def _member_of_club(session: Session, *, club_id: int,
                    user_id: int) -> tuple[StaffUser, ClubStaff]:
    """The user and their role in this club; another club's staff are not found (404)."""
    row = session.execute(
        select(StaffUser, ClubStaff).join(ClubStaff, ClubStaff.user_id == StaffUser.id)
        .where(ClubStaff.club_id == club_id, ClubStaff.user_id == user_id)).first()
    if row is None:
        raise NotFound("No such staff member in this club", code="staff_not_found")
    return row[0], row[1]


def get_staff(session: Session, *, club_id: int, user_id: int) -> dict:
    user, link = _member_of_club(session, club_id=club_id, user_id=user_id)
    return _staff_row(user, link.role)


# --- who may do what -----------------------------------------------------------------------------

def _may_manage(actor: Actor, role: Role, doing: str) -> None:
    """Owners manage everyone; managers only the front desk and trainers."""
    if actor.role == Role.owner:
        return
    if actor.role == Role.manager and role in MANAGER_MAY_MANAGE:
        return
    if actor.role == Role.manager:
        raise Forbidden(f"Managers may {doing} the front desk and trainers only; ask an owner",
                        code="forbidden_role")
    raise Forbidden(f"Your role ({actor.role.value}) may not {doing} staff", code="forbidden_role")


def _not_yourself(actor: Actor, user_id: int, what: str) -> None:
    if actor.user_id == user_id:
        raise Conflict(what, code="own_account")


def _keep_an_owner(session: Session, *, club_id: int, link: ClubStaff) -> None:
    """Refuse to take away the club's last owner. The owners' rows are locked in id order, so two
    owners demoting each other at once are serialised and the second one is refused."""
    if link.role != Role.owner.value:
        return
    owners = session.scalars(select(ClubStaff.user_id).where(
        ClubStaff.club_id == club_id, ClubStaff.role == Role.owner.value)
        .order_by(ClubStaff.id).with_for_update()).all()
    if len(owners) <= 1:
        raise Conflict("This is the club's only owner; make someone else owner first",
                       code="last_owner")


def _revoke_tokens(session: Session, *, user_id: int, keep_token: str | None = None) -> int:
    """Revoke the user's live tokens (all of them, or all but `keep_token`)."""
    query = update(AuthToken).where(AuthToken.user_id == user_id,
                                    AuthToken.revoked_at.is_(None))
    if keep_token:
        query = query.where(AuthToken.token_hash != digest(keep_token))
    return session.execute(query.values(revoked_at=clock.now())).rowcount


# --- changes ---------------------------------------------------------------------------------------

def add_staff(session: Session, *, actor: Actor, email: str, name: str,
              role: Role) -> tuple[dict, str | None]:
    """Give someone a role in the actor's club. A new user gets a temporary password (returned
    once, to be changed at first sign-in); someone known from another club just gets the role."""
    _may_manage(actor, role, "add")
    email = normalise_email(email)
    club = get_club(session, actor.club_id)
    user = session.scalar(select(StaffUser).where(StaffUser.email == email))
    password = None
    if user is None:
        password = temporary_password()
        user = create_user(session, email=email, name=name, password=password)
        user.must_change_password = True
    elif session.scalar(select(ClubStaff.id).where(ClubStaff.club_id == club.id,
                                                   ClubStaff.user_id == user.id)):
        raise Conflict(f"{email} already works in this club; change their role instead",
                       code="already_staff")
    grant_role(session, user=user, club=club, role=role)
    log.info("staff added: club=%s user=%s role=%s by=%s new_user=%s", club.id, user.id,
             role.value, actor.user_id, password is not None)
    return _staff_row(user, role.value), password


def change_role(session: Session, *, actor: Actor, user_id: int, role: Role) -> dict:
    """Owners change a colleague's role; the club's last owner stays owner."""
    _may_manage(actor, Role.owner, "change the roles of")  # owners only
    user, link = _member_of_club(session, club_id=actor.club_id, user_id=user_id)
    if link.role != role.value:
        if role != Role.owner:
            _keep_an_owner(session, club_id=actor.club_id, link=link)
        log.info("staff role changed: club=%s user=%s %s->%s by=%s", actor.club_id, user_id,
                 link.role, role.value, actor.user_id)
        link.role = role.value
        session.flush()
    return _staff_row(user, link.role)


def remove_staff(session: Session, *, actor: Actor, user_id: int) -> None:
    """Take someone off this club's staff; the user row stays for history. Their tokens stop
    working here at once (and are revoked when they have no other club)."""
    _user, link = _member_of_club(session, club_id=actor.club_id, user_id=user_id)
    _may_manage(actor, Role(link.role), "remove")
    _keep_an_owner(session, club_id=actor.club_id, link=link)
    session.delete(link)
    session.flush()
    other_clubs = session.scalar(select(func.count()).select_from(ClubStaff)
                                 .where(ClubStaff.user_id == user_id))
    revoked = 0 if other_clubs else _revoke_tokens(session, user_id=user_id)
    log.info("staff removed: club=%s user=%s role=%s by=%s tokens_revoked=%s", actor.club_id,
             user_id, link.role, actor.user_id, revoked)


def reset_password(session: Session, *, actor: Actor, user_id: int) -> str:
    """A new temporary password (returned once): every token revoked, lockout cleared, and the
    person must choose their own at the next sign-in."""
    user, link = _member_of_club(session, club_id=actor.club_id, user_id=user_id)
    _may_manage(actor, Role(link.role), "reset the passwords of")
    _not_yourself(actor, user_id, "Change your own password under 'My password' instead")
    elsewhere = session.scalars(select(ClubStaff.club_id).where(
        ClubStaff.user_id == user_id, ClubStaff.club_id != actor.club_id)).all()
    if elsewhere:
        owned = set(session.scalars(select(ClubStaff.club_id).where(
            ClubStaff.user_id == actor.user_id, ClubStaff.role == Role.owner.value)).all())
        if not set(elsewhere) <= owned:
            raise Forbidden("This person also works in another club: an owner of every club "
                            "they work in (or the operator, with 'fitclub set-password') must "
                            "reset the password", code="staff_in_other_club")
    password = temporary_password()
    _set_password(session, user=user, password=password, temporary=True)
    log.info("staff password reset: club=%s user=%s by=%s", actor.club_id, user_id,
             actor.user_id)
    return password


def _set_password(session: Session, *, user: StaffUser, password: str, temporary: bool,
                  keep_token: str | None = None) -> None:
    user.password_hash = hash_password(password)
    user.must_change_password = temporary
    user.failed_logins = 0
    user.locked_until = None
    _revoke_tokens(session, user_id=user.id, keep_token=keep_token)
    session.flush()


def change_own_password(session: Session, *, user_id: int, current_password: str,
                        new_password: str, keep_token: str | None) -> None:
    """Check the current password (a wrong one counts towards the login lockout), apply the
    policy, store the new hash and sign out every other session of the user."""
    user = session.get(StaffUser, user_id)
    if user is None:  # pragma: no cover - the token resolved to this user a moment ago
        raise NotFound("No such user")
    now = clock.now()
    if user.locked_until and user.locked_until > now:
        raise DomainError("Too many wrong passwords; try again in a few minutes",
                          code="login_locked", status_code=429)
    if not verify_password(user.password_hash, current_password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        session.flush()
        raise Invalid("The current password is not right", code="wrong_current_password")
    check_password_policy(new_password, email=user.email, current_hash=user.password_hash)
    _set_password(session, user=user, password=new_password, temporary=False,
                  keep_token=keep_token)
    log.info("password changed by its user: user=%s", user.id)


def set_password(session: Session, *, email: str, password: str) -> StaffUser:
    """The operator sets a user's password (CLI): the policy applies, the lockout is cleared and
    every token revoked; the user is not asked to change it."""
    user = session.scalar(select(StaffUser).where(StaffUser.email == normalise_email(email)))
    if user is None:
        raise NotFound(f"No staff user with email {normalise_email(email)}", code="staff_not_found")
    check_password_policy(password, email=user.email)
    _set_password(session, user=user, password=password, temporary=False)
    log.info("password set by the operator: user=%s", user.id)
    return user
