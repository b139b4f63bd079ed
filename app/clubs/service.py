"""Clubs, staff users, login tokens and access devices."""
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from app.clubs.models import AuthToken, Club, ClubStaff, Device, StaffUser
from app.clubs.schemas import ClubSettings, Role
from app.core import clock
from app.core.errors import Conflict, Invalid, NotFound, Unauthorized
from app.core.security import digest, hash_password, new_secret, verify_password

MAX_FAILED_LOGINS = 5
DEVICE_PROTOCOLS = ("native", "zkteco", "hikvision", "ironlogic")
LOCKOUT = timedelta(minutes=15)


@dataclass(frozen=True)
class Actor:
    """Who is calling: a staff user acting in one club with one role."""

    user_id: int
    name: str
    club_id: int
    role: Role
    must_change_password: bool = False  # signed in with a temporary password


@dataclass(frozen=True)
class DeviceActor:
    device_id: int
    club_id: int
    name: str
    direction: str
    protocol: str
    timezone: str | None


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
    return clock.today(club_zone(club), at)


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


def grant_role(session: Session, *, user: StaffUser, club: Club, role: Role) -> ClubStaff:
    link = session.scalar(select(ClubStaff).where(ClubStaff.user_id == user.id,
                                                  ClubStaff.club_id == club.id))
    if link is None:
        link = ClubStaff(user_id=user.id, club_id=club.id, role=role.value)
        session.add(link)
    else:
        link.role = role.value
    session.flush()
    return link


def login(session: Session, *, email: str, password: str, ttl: timedelta,
          kind: str = "bearer") -> tuple[str, StaffUser]:
    """Check a password and issue a token (API "bearer" or page "session"); repeated failures
    lock the account for a while."""
    user = session.scalar(select(StaffUser).where(StaffUser.email == normalise_email(email)))
    now = clock.now()
    bad = Unauthorized("Wrong email or password", code="invalid_credentials")
    if user is None or not user.active:
        verify_password(_DUMMY_HASH, password)
        raise bad
    if user.locked_until and user.locked_until > now:
        raise Unauthorized("Too many failed logins; try again in a few minutes",
                           code="login_locked", status_code=429)
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        session.flush()
        raise bad
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


def authenticate(session: Session, *, token: str, club_id: int | None,
                 kind: str = "bearer") -> Actor:
    """Resolve a token of `kind` to an actor in one club (the only one, or the one asked for).

    API bearer tokens and page session cookies are separate kinds: neither works as the other."""
    now = clock.now()
    row = session.execute(
        select(StaffUser.id, StaffUser.name, StaffUser.must_change_password)
        .join(AuthToken, AuthToken.user_id == StaffUser.id)
        .where(AuthToken.token_hash == digest(token), AuthToken.kind == kind,
               AuthToken.revoked_at.is_(None),
               AuthToken.expires_at > now, StaffUser.active.is_(True))
    ).first()
    if row is None:
        raise Unauthorized("Not signed in, or the session has expired", code="not_authenticated")
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
