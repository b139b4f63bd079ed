"""Who is calling: the dependencies that turn a bearer token or a device key into an actor,
and the role guards routers declare (`StaffActor`, `DeskActor`, `ManagerActor`, `OwnerActor`)."""
import logging
from collections.abc import Callable
from contextlib import contextmanager
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.clubs import service as clubs_service
from app.core.actors import DESK, MANAGERS, STAFF, Actor, DeviceActor, Role
from app.core.db import transaction
from app.core.deps import SessionDep
from app.core.errors import Forbidden, Invalid, Unauthorized
from app.core.types import MAX_ID

log = logging.getLogger("fitclub.devices")
T = TypeVar("T")

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
_device_key = APIKeyHeader(name="X-Device-Key", auto_error=False)


def signed_in_actor(
    session: SessionDep,
    token: Annotated[str | None, Depends(_bearer)],
    x_club_id: Annotated[str | None, Header(description="Club to act in, for staff of several clubs")] = None,
) -> Actor:
    """The caller of a valid bearer token, even one who still has to change a temporary password
    (only `POST /me/password` and logout accept that; everything else uses `current_actor`)."""
    if not token:
        raise Unauthorized("Sign in first: send 'Authorization: Bearer <token>'",
                           code="not_authenticated")
    club_id = None
    if x_club_id is not None:
        if not x_club_id.isdigit() or not 0 < int(x_club_id) <= MAX_ID:
            raise Invalid("X-Club-Id must be a club id", code="invalid_club_id")
        club_id = int(x_club_id)
    return clubs_service.authenticate(session, token=token, club_id=club_id)


SignedInActor = Annotated[Actor, Depends(signed_in_actor)]


def current_actor(actor: SignedInActor) -> Actor:
    if actor.must_change_password:
        raise Forbidden("Choose your own password first (POST /api/v1/me/password): "
                        "this one was temporary", code="password_change_required")
    return actor


def require(*roles: Role) -> Callable[..., Actor]:
    allowed = frozenset(roles)

    def dependency(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        if actor.role not in allowed:
            raise Forbidden(f"Your role ({actor.role.value}) may not do this", code="forbidden_role")
        return actor

    return dependency


StaffActor = Annotated[Actor, Depends(require(*STAFF))]
DeskActor = Annotated[Actor, Depends(require(*DESK))]
ManagerActor = Annotated[Actor, Depends(require(*MANAGERS))]
OwnerActor = Annotated[Actor, Depends(require(Role.owner))]


def current_device(session: SessionDep,
                   key: Annotated[str | None, Depends(_device_key)]) -> DeviceActor:
    if not key:
        raise Unauthorized("Devices must send their key in X-Device-Key", code="not_authenticated")
    return clubs_service.authenticate_device(session, key=key)


DeviceDep = Annotated[DeviceActor, Depends(current_device)]
DeviceKey = Annotated[str | None, Depends(_device_key)]


def device_unit_of_work(request: Request, key: str | None,
                        authenticate: Callable[..., DeviceActor] | None = None, *,
                        autocommit: bool = False):
    """The turnstile hot path's transaction and device, opened in one worker-thread hop.

    Same rules as `SessionDep` + `DeviceDep` (one transaction, committed before the answer,
    rolled back on error); used where a device calls many times a minute, because each sync
    dependency costs a thread hop of its own. `authenticate(session, key=)` finds the device
    (default `authenticate_device`; the check-in passes its cached lookup and checks the key
    again in its own first query).

    `autocommit` (PostgreSQL only; SQLite keeps its transaction) runs each statement in its own
    transaction: no BEGIN, COMMIT or savepoint round trips. Only for work whose every write is
    one atomic statement, or which opens a transaction itself where two must go together — the
    check-in (`app.access.service.check_in`) is written that way."""
    @contextmanager
    def unit():
        if not key:
            raise Unauthorized("Devices must send their key in X-Device-Key",
                               code="not_authenticated")
        with transaction(request.app.state.sessionmaker) as session:
            if autocommit and session.get_bind().dialect.name == "postgresql":
                session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            yield session, (authenticate or clubs_service.authenticate_device)(session, key=key)

    return unit()


def device_work(request: Request, key: str | None, work: Callable[[Session, DeviceActor], T], *,
                authenticate: Callable[..., DeviceActor] | None = None, autocommit: bool = False,
                repeatable: bool = False) -> T:
    """`work(session, device)` in a `device_unit_of_work`.

    The pool pings only connections that sat idle (`app.core.db.IDLE_PING_AFTER`), so a busy
    connection the database dropped fails at its first use. `repeatable` work (a device event
    carrying its own id: a repeat answers the first decision) then runs once more on a fresh
    connection, and the device never sees the drop; other work gets the 503 to retry."""
    try:
        with device_unit_of_work(request, key, authenticate, autocommit=autocommit) as unit:
            return work(*unit)
    except DBAPIError as error:
        if not (repeatable and error.connection_invalidated):
            raise
        log.warning("database connection lost; running the device's request again")
    with device_unit_of_work(request, key, authenticate, autocommit=autocommit) as unit:
        return work(*unit)
