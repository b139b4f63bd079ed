"""Who is calling: staff roles, the role sets rules are written in, and the actors a request
or a job acts as. Below every domain, so services, routers and the audit log share one notion
of "who" without importing the clubs domain that authenticates them."""
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    owner = "owner"
    manager = "manager"
    front_desk = "front_desk"
    trainer = "trainer"


MANAGERS = (Role.owner, Role.manager)
DESK = (Role.owner, Role.manager, Role.front_desk)
STAFF = (Role.owner, Role.manager, Role.front_desk, Role.trainer)


@dataclass(frozen=True)
class Actor:
    """A staff user acting in one club with one role."""

    user_id: int
    name: str
    club_id: int
    role: Role
    must_change_password: bool = False  # signed in with a temporary password


@dataclass(frozen=True)
class DeviceActor:
    """An access-control device (turnstile, door controller) of one club."""

    device_id: int
    club_id: int
    name: str
    direction: str
    protocol: str
    timezone: str | None


@dataclass(frozen=True)
class MemberActor:
    """A member signed in to the member app (one device session), acting on their own data only.
    Never an `Actor`: no staff endpoint accepts it."""

    session_id: int
    member_id: int
    club_id: int
    name: str
