"""Clubs, staff users, login tokens and access devices."""
import hashlib
import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, case, delete, select, update
from sqlalchemy.orm import Session

from app.clubs.models import AuthToken, Club, ClubStaff, Device, LoginFailure, StaffUser
from app.clubs.schemas import ClubSettings
from app.core import clock
from app.core.actors import Actor, DeviceActor, Role
from app.core.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from app.core.ratelimit import client_network
from app.core.security import digest, hash_password, new_secret, verify_password
from app.core.sql import dialect_insert

MAX_FAILED_LOGINS = 5
DEVICE_PROTOCOLS = ("native", "zkteco", "hikvision", "ironlogic")
LOCKOUT = timedelta(minutes=15)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid(f"Unknown timezone '{name}'", code="invalid_timezone") from exc


def create_club(session: Session, *, name: str, timezone: str = "UTC", currency: str = "EUR") -> Club:
    """Create a club with default settings."""
    _zone(timezone)
    club = Club(name=name, timezone=timezone, currency=currency, settings={})
    session.add(club)
    session.flush()
    return club


def get_club(session: Session, club_id: int) -> Club:
    club = session.get(Club, club_id)
    if club is None:
        raise NotFound("Club not found")
    return club


def club_settings(club: Club) -> ClubSettings:
    return ClubSettings.model_validate(club.settings or {})


def update_club_settings(session: Session, *, club: Club, changes: dict) -> ClubSettings:
    merged = club_settings(club).model_dump() | {k: v for k, v in changes.items() if v is not None}
    settings = ClubSettings.model_validate(merged)
    club.settings = settings.model_dump(mode="json")
    session.flush()
    return settings


def club_zone(club: Club) -> ZoneInfo:
    return _zone(club.timezone)


def club_today(club: Club, at: datetime | None = None) -> date:
    """The club's calendar day at `at` (default: now, from `app.core.clock`)."""
    return clock.today(club_zone(club), at)


def club_today_by_id(session: Session, club_id: int, at: datetime | None = None) -> date:
    """`club_today` for a club known by id (NotFound if there is none); the club row comes from
    the session's identity map when it is loaded already."""
    return club_today(get_club(session, club_id), at)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def create_user(session: Session, *, email: str, name: str, password: str) -> StaffUser:
    """Create a staff user with an argon2 password hash."""
    email = normalise_email(email)
    if len(password) < 8:
        raise Invalid("Password must be at least 8 characters", code="weak_password")
    if session.scalar(select(StaffUser.id).where(StaffUser.email == email)) is not None:
        raise Conflict(f"A staff user with email {email} already exists", code="email_taken")
    user = StaffUser(email=email, name=name, password_hash=hash_password(password), active=True,
                     failed_logins=0)
    session.add(user)
    session.flush()
    return user


MANAGER_MAY_MANAGE = (Role.front_desk, Role.trainer)


def check_may_grant(by: Actor | None, *, club_id: int, current: Role | None, role: Role) -> None:
    """Who may give `role` to someone whose role in the club is `current` (None: not yet staff).

    `by` None is the operator (CLI, demo data). Owners give any role; managers add the front desk
    and trainers only; roles change by owners; nobody acts on another club."""
    if by is None:
        return
    if by.club_id != club_id:
        raise Forbidden("You may not give roles in another club", code="forbidden_role")
    if by.role == Role.owner:
        return
    if by.role == Role.manager:
        if current is not None and current != role:
            raise Forbidden("Roles change by owners only; ask an owner", code="forbidden_role")
        if role in MANAGER_MAY_MANAGE:
            return
        raise Forbidden(f"Managers may give the front desk and trainer roles only, not "
                        f"{role.value.replace('_', ' ')}; ask an owner", code="forbidden_role")
    raise Forbidden(f"Your role ({by.role.value}) may not give roles", code="forbidden_role")


def keep_an_owner(session: Session, *, club_id: int, link: ClubStaff) -> None:
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


def grant_role(session: Session, *, by: Actor | None, user: StaffUser, club: Club,
               role: Role) -> ClubStaff:
    """THE way a role is given or changed (staff API and pages, invitations, the history import,
    the CLI): `check_may_grant` decides, and the club keeps an owner."""
    link = session.scalar(select(ClubStaff).where(ClubStaff.user_id == user.id,
                                                  ClubStaff.club_id == club.id))
    current = Role(link.role) if link is not None else None
    check_may_grant(by, club_id=club.id, current=current, role=role)
    if link is None:
        link = ClubStaff(user_id=user.id, club_id=club.id, role=role.value)
        session.add(link)
    elif link.role != role.value:
        if role != Role.owner:
            keep_an_owner(session, club_id=club.id, link=link)
        link.role = role.value
    session.flush()
    return link


def staff_actor(session: Session, *, club_id: int, user_id: int | None) -> Actor | None:
    """The actor a stored user id stands for in a club (an inviter, an import's starter), or
    None when they no longer work there."""
    if user_id is None:
        return None
    row = session.execute(select(StaffUser.name, ClubStaff.role)
                          .join(ClubStaff, ClubStaff.user_id == StaffUser.id)
                          .where(ClubStaff.club_id == club_id,
                                 ClubStaff.user_id == user_id)).first()
    if row is None:
        return None
    return Actor(user_id=user_id, name=row.name, club_id=club_id, role=Role(row.role))


# --- signing in: one password check, one failure counter ------------------------------------------

ADDRESS_LIMIT = 20  # failed sign-ins per client address and window, then 429 for that address
ADDRESS_WINDOW = timedelta(minutes=15)
ACCOUNT_LIMIT = 30  # failed sign-ins per account and window from all addresses, then no checks
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
BAD_CREDENTIALS = "Wrong email or password"


def address_key(address: str | None) -> str:
    """A digest of the client address's network (personal data is not kept in clear)."""
    return hashlib.sha256(f"login:{client_network(address)}".encode()).hexdigest()


def account_key(user_id: int) -> str:
    """The key of an account's failures from every address (same table as the addresses)."""
    return hashlib.sha256(f"login-account:{user_id}".encode()).hexdigest()


def password_change_key(user_id: int) -> str:
    """The key of an account's wrong current passwords when changing its own password."""
    return hashlib.sha256(f"password-change:{user_id}".encode()).hexdigest()


def _window(now: datetime) -> datetime:
    return _EPOCH + ((now - _EPOCH) // ADDRESS_WINDOW) * ADDRESS_WINDOW


def window_left(now: datetime) -> int:
    """Whole minutes until the current window passes."""
    return math.ceil((_window(now) + ADDRESS_WINDOW - now).total_seconds() / 60)


def _failures(session: Session, *, key: str, now: datetime) -> int:
    return session.scalar(select(LoginFailure.failures).where(
        LoginFailure.address == key, LoginFailure.window_start == _window(now))) or 0


def address_failures(session: Session, *, address: str | None, now: datetime) -> int:
    """Failed sign-ins from this address (its /64 for IPv6) in the current window."""
    return _failures(session, key=address_key(address), now=now)


def account_failures(session: Session, *, user_id: int, now: datetime) -> int:
    """Failed sign-ins for this account from every address in the current window."""
    return _failures(session, key=account_key(user_id), now=now)


def password_change_failures(session: Session, *, user_id: int, now: datetime) -> int:
    """Wrong current passwords given by this account's own sessions in the current window."""
    return _failures(session, key=password_change_key(user_id), now=now)


def record_failed_login(session: Session, *, user_id: int | None, address: str | None,
                        password_change: bool = False) -> None:
    """Count one failed password, in its own short transaction (committed whatever the request
    does next): the address's window and the account's window (all addresses) with one upsert
    each, the user's counter with ONE guarded UPDATE (the 5th failure in a row locks the account
    for `LOCKOUT`); `password_change` also counts it in the account's password-change window.
    Parallel guesses are all counted.

    The caller's transaction, which only read, is ended first (on SQLite it holds the write lock)."""
    now = clock.now()
    session.rollback()
    table = LoginFailure.__table__
    start = _window(now)
    keys = [address_key(address)]
    if user_id is not None:
        keys.append(account_key(user_id))
        if password_change:
            keys.append(password_change_key(user_id))
    with Session(bind=session.get_bind()) as own, own.begin():
        insert = dialect_insert(own, table)
        for key in keys:
            stmt = insert.values(address=key, window_start=start, failures=1)
            stmt = stmt.on_conflict_do_update(index_elements=["address", "window_start"],
                                              set_={"failures": table.c.failures + 1})
            own.execute(stmt)
        own.execute(delete(table).where(table.c.window_start < start))  # expire old windows
        if user_id is not None:
            counted = StaffUser.failed_logins + 1
            own.execute(update(StaffUser).where(StaffUser.id == user_id).values(
                failed_logins=case((counted >= MAX_FAILED_LOGINS, 0), else_=counted),
                locked_until=case((counted >= MAX_FAILED_LOGINS, now + LOCKOUT),
                                  else_=StaffUser.locked_until)))


def address_throttled(session: Session, *, address: str | None, now: datetime) -> int:
    """How many failures this address has in the window; raises 429 over `ADDRESS_LIMIT`."""
    failures = address_failures(session, address=address, now=now)
    if failures >= ADDRESS_LIMIT:
        raise Unauthorized(f"Too many failed sign-ins from this address; try again in "
                           f"{window_left(now)} minutes", code="login_throttled", status_code=429)
    return failures


def is_locked(user: StaffUser, *, now: datetime, failures_here: int,
              failures_everywhere: int) -> bool:
    """A locked account refuses addresses that have guessed wrong in this window; an address with
    no failures (the real user elsewhere) may still try, so a stranger cannot lock anyone out.
    Past `ACCOUNT_LIMIT` failures in the window from all addresses, every address is refused
    until the window passes (guessing spread over many addresses stays bounded)."""
    if failures_everywhere >= ACCOUNT_LIMIT:
        return True
    return bool(user.locked_until and user.locked_until > now and failures_here > 0)


def login(session: Session, *, email: str, password: str, ttl: timedelta,
          kind: str = "bearer", address: str | None = None) -> tuple[str, StaffUser]:
    """Check a password and issue a token (API "bearer" or page "session").

    Unknown emails, switched-off and locked accounts answer exactly like a wrong password (401,
    same message, one argon2 verification each); failures are counted per account, per account
    and window, and per client address (`record_failed_login`), an address with too many answers
    429. An account over `ACCOUNT_LIMIT` has its password not checked at all (a dummy hash is)."""
    now = clock.now()
    failures_here = address_throttled(session, address=address, now=now)
    user = session.scalar(select(StaffUser).where(StaffUser.email == normalise_email(email)))
    usable = user is not None and user.active
    everywhere = account_failures(session, user_id=user.id, now=now) if usable else 0
    checked = usable and everywhere < ACCOUNT_LIMIT  # over the cap: only the dummy hash
    right = verify_password(user.password_hash if checked else _DUMMY_HASH, password)
    if not usable or not right or is_locked(user, now=now, failures_here=failures_here,
                                            failures_everywhere=everywhere):
        record_failed_login(session, user_id=user.id if usable else None, address=address)
        raise Unauthorized(BAD_CREDENTIALS, code="invalid_credentials")
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    token = new_secret()
    session.add(AuthToken(user_id=user.id, token_hash=digest(token), kind=kind, created_at=now,
                          expires_at=now + ttl))
    session.flush()
    return token, user


_DUMMY_HASH = hash_password("timing-equaliser")


def revoke_token(session: Session, *, token: str) -> None:
    session.execute(update(AuthToken).where(AuthToken.token_hash == digest(token))
                    .values(revoked_at=clock.now()))


def token_user(session: Session, *, token: str, kind: str = "bearer"):
    """The live token's user (id, name, email, must_change_password), whatever clubs they have;
    401 when the token is unknown, expired, revoked or of another kind."""
    row = session.execute(
        select(StaffUser.id, StaffUser.name, StaffUser.email, StaffUser.must_change_password)
        .join(AuthToken, AuthToken.user_id == StaffUser.id)
        .where(AuthToken.token_hash == digest(token), AuthToken.kind == kind,
               AuthToken.revoked_at.is_(None),
               AuthToken.expires_at > clock.now(), StaffUser.active.is_(True))
    ).first()
    if row is None:
        raise Unauthorized("Not signed in, or the session has expired", code="not_authenticated")
    return row


def authenticate(session: Session, *, token: str, club_id: int | None,
                 kind: str = "bearer") -> Actor:
    """Resolve a token of `kind` to an actor in one club (the only one, or the one asked for).

    API bearer tokens and page session cookies are separate kinds: neither works as the other."""
    row = token_user(session, token=token, kind=kind)
    links = session.execute(
        select(ClubStaff.club_id, ClubStaff.role).where(ClubStaff.user_id == row.id)
        .order_by(ClubStaff.club_id)
    ).all()
    if not links:
        raise Unauthorized("This user has no club", code="no_club", status_code=403)
    if club_id is None:
        chosen = links[0]
    else:
        chosen = next((link for link in links if link.club_id == club_id), None)
        if chosen is None:
            raise NotFound("Club not found")
    return Actor(user_id=row.id, name=row.name, club_id=chosen.club_id, role=Role(chosen.role),
                 must_change_password=bool(row.must_change_password))


def user_clubs(session: Session, *, user_id: int) -> list[ClubStaff]:
    return list(session.scalars(select(ClubStaff).where(ClubStaff.user_id == user_id)
                                .order_by(ClubStaff.club_id)))


def user_club_names(session: Session, *, user_id: int) -> list[dict]:
    """The clubs a user works in, with names and roles (for the pages' club switcher)."""
    rows = session.execute(select(Club.id, Club.name, ClubStaff.role)
                           .join(ClubStaff, ClubStaff.club_id == Club.id)
                           .where(ClubStaff.user_id == user_id).order_by(Club.id)).all()
    return [{"club_id": r.id, "name": r.name, "role": Role(r.role)} for r in rows]


def add_device(session: Session, *, club: Club, name: str, direction: str = "in",
               protocol: str = "native", serial_number: str | None = None,
               timezone: str | None = None) -> tuple[Device, str]:
    """Register a device; the key is returned once and only its hash is stored."""
    if direction not in ("in", "out", "both"):
        raise Invalid("direction must be in, out or both", code="invalid_direction")
    if protocol not in DEVICE_PROTOCOLS:
        raise Invalid(f"protocol must be one of {', '.join(DEVICE_PROTOCOLS)}",
                      code="invalid_protocol")
    if timezone:
        _zone(timezone)
    if session.scalar(select(Device.id).where(Device.club_id == club.id, Device.name == name)):
        raise Conflict(f"A device named {name!r} already exists in this club", code="device_exists")
    key = new_secret()
    device = Device(club_id=club.id, name=name, key_hash=digest(key), direction=direction,
                    protocol=protocol, serial_number=serial_number, timezone=timezone, active=True)
    session.add(device)
    session.flush()
    return device, key


def rotate_device_key(session: Session, *, device: Device) -> str:
    key = new_secret()
    device.key_hash = digest(key)
    device.revoked_at = None
    device.active = True
    session.flush()
    return key


def revoke_device(session: Session, *, device: Device) -> None:
    device.active = False
    device.revoked_at = clock.now()
    session.flush()


_devices = Device.__table__
_DEVICE_BY_KEY = (
    select(_devices.c.id, _devices.c.club_id, _devices.c.name, _devices.c.direction,
           _devices.c.protocol, _devices.c.timezone)
    .where(_devices.c.key_hash == bindparam("key_hash"), _devices.c.active.is_(True))
)


def authenticate_device(session: Session, *, key: str) -> DeviceActor:
    """The active device with this key (one Core read: devices call many times a minute)."""
    row = session.connection().execute(_DEVICE_BY_KEY, {"key_hash": digest(key)}).first()
    if row is None:
        raise Unauthorized("Unknown or revoked device key", code="invalid_device_key")
    return DeviceActor(device_id=row.id, club_id=row.club_id, name=row.name,
                       direction=row.direction, protocol=row.protocol, timezone=row.timezone)
