"""Staff management: owners (and managers, for the front desk and trainers) invite colleagues,
change roles, remove people from the club and reset passwords; everyone changes their own password.

Rules (docs/staff.md):
- Adding a colleague is always an invitation (a hashed one-time link, 7 days): the role is given
  only when the person accepts it signed in as the invited email's account, or creates that
  account through the link. The answer is the same whether or not the email has an account and
  says nothing about it. Roles are given by `app.clubs.service.grant_role` (the one rule).
- A reset gives a random temporary password, returned once; it must be changed at the next
  sign-in (`StaffUser.must_change_password`), before the token or page session works for
  anything else. Only the argon2 hash is stored.
- Managers may invite, remove and reset the front desk and trainers only; roles change by owners.
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
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.clubs.models import AuthToken, ClubStaff, StaffInvitation, StaffUser
from app.clubs.service import (
    MANAGER_MAY_MANAGE,
    MAX_FAILED_LOGINS,
    check_may_grant,
    create_user,
    get_club,
    grant_role,
    keep_an_owner,
    normalise_email,
    password_change_failures,
    record_failed_login,
    staff_actor,
    window_left,
)
from app.core import clock, events
from app.core.actors import Actor, Role
from app.core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from app.core.events import StaffJoined
from app.core.security import digest, hash_password, new_secret, verify_password

log = logging.getLogger("fitclub.staff")

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 200
# no 0/O, 1/l/I: read aloud or copied from a screen without mistakes
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_GROUPS, _GROUP_LENGTH = 4, 4  # 16 characters of 31 ≈ 79 random bits
INVITATION_TTL = timedelta(days=7)


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


def _revoke_tokens(session: Session, *, user_id: int, keep_token: str | None = None) -> int:
    """Revoke the user's live tokens (all of them, or all but `keep_token`)."""
    query = update(AuthToken).where(AuthToken.user_id == user_id,
                                    AuthToken.revoked_at.is_(None))
    if keep_token:
        query = query.where(AuthToken.token_hash != digest(keep_token))
    return session.execute(query.values(revoked_at=clock.now())).rowcount


# --- changes ---------------------------------------------------------------------------------------

def _invitation_row(inv: StaffInvitation) -> dict:
    return {"invitation_id": inv.id, "email": inv.email, "name": inv.name, "role": Role(inv.role),
            "created_at": inv.created_at, "expires_at": inv.expires_at}


def _pending(club_id: int, now):
    return (StaffInvitation.club_id == club_id, StaffInvitation.accepted_at.is_(None),
            StaffInvitation.cancelled_at.is_(None), StaffInvitation.expires_at > now)


def invite(session: Session, *, by: Actor | None, club_id: int, email: str, name: str,
           role: Role) -> tuple[dict, str]:
    """Invite someone (by email) to a role in the club: the role is theirs only when they accept
    it, signed in as that account, or create the account through the link. Whether the email has
    an account anywhere is neither checked nor revealed here; an earlier pending invitation of
    the same email is replaced. Returns the invitation and its token (shown once)."""
    email = normalise_email(email)
    check_may_grant(by, club_id=club_id, current=None, role=role)
    if session.scalar(select(ClubStaff.id).join(StaffUser, StaffUser.id == ClubStaff.user_id)
                      .where(ClubStaff.club_id == club_id, StaffUser.email == email)):
        raise Conflict(f"{email} already works in this club; change their role instead",
                       code="already_staff")
    now = clock.now()
    session.execute(update(StaffInvitation).where(*_pending(club_id, now),
                                                  StaffInvitation.email == email)
                    .values(cancelled_at=now))
    token = new_secret()
    invitation = StaffInvitation(club_id=club_id, email=email, name=name, role=role.value,
                                 token_hash=digest(token),
                                 invited_by=by.user_id if by else None, created_at=now,
                                 expires_at=now + INVITATION_TTL)
    session.add(invitation)
    session.flush()
    log.info("staff invited: club=%s invitation=%s role=%s by=%s", club_id, invitation.id,
             role.value, by.user_id if by else "operator")
    return _invitation_row(invitation), token


def add_staff(session: Session, *, actor: Actor, email: str, name: str,
              role: Role) -> tuple[dict, str]:
    """Add a colleague: always an invitation (docs/staff.md), the same answer whether or not the
    email already has an account; nothing is attached until they accept."""
    return invite(session, by=actor, club_id=actor.club_id, email=email, name=name, role=role)


def list_invitations(session: Session, *, club_id: int) -> list[dict]:
    """The club's pending invitations: email, name and role as the club wrote them, nothing of
    any account."""
    rows = session.scalars(select(StaffInvitation).where(*_pending(club_id, clock.now()))
                           .order_by(StaffInvitation.created_at, StaffInvitation.id))
    return [_invitation_row(inv) for inv in rows]


def _club_invitation(session: Session, *, club_id: int, invitation_id: int) -> StaffInvitation:
    inv = session.scalar(select(StaffInvitation).where(
        StaffInvitation.id == invitation_id, *_pending(club_id, clock.now())))
    if inv is None:
        raise NotFound("No such pending invitation in this club", code="invitation_not_found")
    return inv


def reissue_invitation(session: Session, *, actor: Actor,
                       invitation_id: int) -> tuple[dict, str]:
    """A new link for a pending invitation (the old one stops working), e.g. for the history
    import's invitations; the same rule as inviting applies."""
    inv = _club_invitation(session, club_id=actor.club_id, invitation_id=invitation_id)
    return invite(session, by=actor, club_id=actor.club_id, email=inv.email, name=inv.name,
                  role=Role(inv.role))


def cancel_invitation(session: Session, *, actor: Actor, invitation_id: int) -> None:
    inv = _club_invitation(session, club_id=actor.club_id, invitation_id=invitation_id)
    check_may_grant(actor, club_id=actor.club_id, current=None, role=Role(inv.role))
    inv.cancelled_at = clock.now()
    session.flush()


def invitation_by_token(session: Session, *, token: str) -> StaffInvitation:
    """The pending invitation of a link; unknown, used, cancelled and expired links alike 404."""
    inv = None
    if token and len(token) <= 200:
        inv = session.scalar(select(StaffInvitation).where(
            StaffInvitation.token_hash == digest(token), StaffInvitation.accepted_at.is_(None),
            StaffInvitation.cancelled_at.is_(None), StaffInvitation.expires_at > clock.now()))
    if inv is None:
        raise NotFound("This invitation is unknown, used, cancelled or expired; ask the club for "
                       "a new one", code="invitation_not_found")
    return inv


def describe_invitation(session: Session, *, token: str) -> dict:
    """What the link holder may see: the club's name, the role, the invited email."""
    inv = invitation_by_token(session, token=token)
    club = get_club(session, inv.club_id)
    return {"club_id": club.id, "club_name": club.name, "email": inv.email,
            "role": Role(inv.role), "expires_at": inv.expires_at}


def _grant_invited(session: Session, inv: StaffInvitation, user: StaffUser) -> dict:
    """Give the invited role through the one rule, as the inviter (who must still be allowed)."""
    inviter = staff_actor(session, club_id=inv.club_id, user_id=inv.invited_by)
    if inv.invited_by is not None and inviter is None:
        raise Forbidden("The person who invited you no longer works in this club; ask the club "
                        "for a new invitation", code="invitation_void")
    if session.scalar(select(ClubStaff.id).where(ClubStaff.club_id == inv.club_id,
                                                 ClubStaff.user_id == user.id)):
        raise Conflict("You already work in this club", code="already_staff")
    club = get_club(session, inv.club_id)
    grant_role(session, by=inviter, user=user, club=club, role=Role(inv.role))
    events.publish(session, StaffJoined(club.id, user.id, inv.role))  # a trainer gets a profile
    inv.accepted_at, inv.accepted_by = clock.now(), user.id
    session.flush()
    log.info("invitation accepted: club=%s invitation=%s user=%s role=%s", club.id, inv.id,
             user.id, inv.role)
    return {"club_id": club.id, "club_name": club.name, "role": Role(inv.role)}


def accept_invitation(session: Session, *, token: str, user_id: int) -> dict:
    """The signed-in account accepts an invitation made out to its own email; for anyone else
    the link answers 404, like an unknown one."""
    inv = invitation_by_token(session, token=token)
    user = session.get(StaffUser, user_id)
    if user is None or not user.active or user.email != inv.email:
        raise NotFound("This invitation is for another account: sign in as the invited email",
                       code="invitation_not_found")
    return _grant_invited(session, inv, user)


def register_by_invitation(session: Session, *, token: str, name: str | None,
                           password: str) -> dict:
    """Someone without an account creates it through the link, choosing their password (the
    policy applies), and gets the invited role. An email that already has an account must sign
    in and accept instead (409)."""
    inv = invitation_by_token(session, token=token)
    if session.scalar(select(StaffUser.id).where(StaffUser.email == inv.email)):
        raise Conflict("This email already has an account: sign in with it and accept the "
                       "invitation", code="account_exists")
    check_password_policy(password, email=inv.email)
    user = create_user(session, email=inv.email, name=(name or inv.name), password=password)
    return _grant_invited(session, inv, user)


def change_role(session: Session, *, actor: Actor, user_id: int, role: Role) -> dict:
    """Owners change a colleague's role (`grant_role`: the club's last owner stays owner)."""
    user, link = _member_of_club(session, club_id=actor.club_id, user_id=user_id)
    previous = link.role
    link = grant_role(session, by=actor, user=user, club=get_club(session, actor.club_id),
                      role=role)
    if previous != link.role:
        log.info("staff role changed: club=%s user=%s %s->%s by=%s", actor.club_id, user_id,
                 previous, role.value, actor.user_id)
    return _staff_row(user, link.role)


def remove_staff(session: Session, *, actor: Actor, user_id: int) -> None:
    """Take someone off this club's staff; the user row stays for history. Their tokens stop
    working here at once (and are revoked when they have no other club)."""
    _user, link = _member_of_club(session, club_id=actor.club_id, user_id=user_id)
    _may_manage(actor, Role(link.role), "remove")
    keep_an_owner(session, club_id=actor.club_id, link=link)
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
                        new_password: str, keep_token: str | None,
                        address: str | None = None) -> None:
    """Check the current password (a wrong one counts towards the login lockout), apply the
    policy, store the new hash and sign out every other session of the user.

    The user is already signed in, so other addresses' failed sign-ins do not block the change;
    its own wrong current passwords are counted per account and window, `MAX_FAILED_LOGINS` of
    them answer 429 until the window passes."""
    user = session.get(StaffUser, user_id)
    if user is None:  # pragma: no cover - the token resolved to this user a moment ago
        raise NotFound("No such user")
    now = clock.now()
    if password_change_failures(session, user_id=user.id, now=now) >= MAX_FAILED_LOGINS:
        raise DomainError(f"Too many wrong passwords; try again in {window_left(now)} minutes",
                          code="login_locked", status_code=429)
    if not verify_password(user.password_hash, current_password):
        record_failed_login(session, user_id=user.id, address=address, password_change=True)
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


def accept_url(settings, token: str) -> str:
    """The link an invited person opens to accept (shown once to the inviter)."""
    return f"{str(settings.public_base_url).rstrip('/')}/invitations/{token}"
