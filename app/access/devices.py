"""Managing a club's turnstile controllers: the list, approving a quarantined ZKTeco device,
rotating a device key and revoking a device (API `/api/v1/devices…`, `fitclub` commands).

A ZKTeco device sends nothing but its serial number, so registering its serial is not enough:
it is quarantined (every request refused exactly like an unknown serial, see
`app.access.protocols.common.ZkRefused`) until a manager approves it for the network it calls
that the manager names (the addresses it was seen calling from while it waited are shown to choose
from; anyone can call with its serial, so none is ever approved by default).
"""
import ipaddress
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.access.protocols.models import DeviceProtocolSettings
from app.clubs import service as clubs_service
from app.clubs.models import Device
from app.core import clock
from app.core.errors import Conflict, Invalid, NotFound

NETWORKS_MAX = 32


@dataclass(frozen=True)
class DeviceView:
    """A device as a manager sees it (never its key or key hash)."""

    id: int
    name: str
    protocol: str
    serial_number: str | None
    direction: str
    timezone: str | None
    status: str
    allowed_networks: list[str]
    approved_at: datetime | None
    seen_addresses: list[str]
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    revoked_at: datetime | None


def status_of(device: Device, options: DeviceProtocolSettings | None) -> str:
    """revoked; a ZKTeco device not yet approved is pending; else active."""
    if not device.active:
        return "revoked"
    if device.protocol == "zkteco" and (options is None or options.approved_at is None):
        return "pending"
    return "active"


def _view(device: Device, options: DeviceProtocolSettings | None) -> DeviceView:
    return DeviceView(
        id=device.id, name=device.name, protocol=device.protocol,
        serial_number=device.serial_number, direction=device.direction,
        timezone=device.timezone, status=status_of(device, options),
        allowed_networks=list(options.allowed_networks or []) if options else [],
        approved_at=options.approved_at if options else None,
        seen_addresses=list(options.seen_addresses or []) if options else [],
        first_seen_at=options.first_seen_at if options else None,
        last_seen_at=(options.last_seen_at if options and options.approved_at is None
                      else device.last_seen_at),
        revoked_at=device.revoked_at)


def _device(session: Session, *, club_id: int, device_id: int) -> Device:
    device = session.scalar(select(Device).where(Device.id == device_id,
                                                 Device.club_id == club_id))
    if device is None:
        raise NotFound("Device not found", code="device_not_found")
    return device


def _options(session: Session, device: Device) -> DeviceProtocolSettings | None:
    return session.scalar(select(DeviceProtocolSettings)
                          .where(DeviceProtocolSettings.device_id == device.id))


def club_of_device(session: Session, *, device_id: int) -> int:
    """The club a device belongs to (for the command line, which acts for any club)."""
    club_id = session.scalar(select(Device.club_id).where(Device.id == device_id))
    if club_id is None:
        raise NotFound("Device not found", code="device_not_found")
    return club_id


def list_devices(session: Session, *, club_id: int) -> list[DeviceView]:
    """The club's devices, quarantined ZKTeco devices with where they were seen calling from."""
    rows = session.execute(
        select(Device, DeviceProtocolSettings)
        .outerjoin(DeviceProtocolSettings, DeviceProtocolSettings.device_id == Device.id)
        .where(Device.club_id == club_id).order_by(Device.id)).all()
    return [_view(device, options) for device, options in rows]


def get_device(session: Session, *, club_id: int, device_id: int) -> DeviceView:
    device = _device(session, club_id=club_id, device_id=device_id)
    return _view(device, _options(session, device))


def parse_networks(texts: list[str]) -> list[str]:
    """CIDR strings (or single addresses) normalised; a person-readable 422 for anything else."""
    if len(texts) > NETWORKS_MAX:
        raise Invalid(f"At most {NETWORKS_MAX} networks", code="invalid_network")
    networks = []
    for text in texts:
        try:
            networks.append(str(ipaddress.ip_network(text.strip(), strict=False)))
        except ValueError:
            raise Invalid(f"{text!r} is not a network (write 10.0.0.0/8 or 192.0.2.7)",
                          code="invalid_network") from None
    return sorted(set(networks))


def approve_device(session: Session, *, club_id: int, device_id: int,
                   allowed_networks: list[str] | None = None,
                   approved_by: int | None = None) -> DeviceView:
    """Let a quarantined ZKTeco device in from `allowed_networks`, which the manager must name
    (none: 422 listing the addresses it was seen calling from, to choose from)."""
    device = _device(session, club_id=club_id, device_id=device_id)
    if device.protocol != "zkteco":
        raise Conflict("Only ZKTeco devices need approval: the others authenticate with their "
                       "device key", code="approval_not_needed")
    if not device.active:
        raise Conflict("This device was revoked; rotate its key to re-activate it, then approve "
                       "it", code="device_revoked")
    options = _options(session, device)
    if options is None:
        options = DeviceProtocolSettings(club_id=club_id, device_id=device.id,
                                         allowed_networks=[], seen_addresses=[])
        session.add(options)
    if not allowed_networks:
        # never a default to whoever called first: anyone can call with a quarantined serial
        seen = list(options.seen_addresses or [])
        where = (f"it was seen calling from {', '.join(seen)}" if seen
                 else "it has not called yet")
        raise Invalid(f"Name the networks the device may call from in allowed_networks ({where}); "
                      "compare with the address on the device's own screen first",
                      code="networks_required", details={"seen_addresses": seen})
    networks = parse_networks(allowed_networks)
    options.allowed_networks = networks
    options.approved_at = clock.now()
    options.approved_by = approved_by
    session.flush()
    return _view(device, options)


def rotate_key(session: Session, *, club_id: int, device_id: int) -> tuple[DeviceView, str]:
    """A new device key (returned once); the old one stops working at once. A revoked device is
    active again; a ZKTeco device (which cannot send a key) stays as approved as it was."""
    device = _device(session, club_id=club_id, device_id=device_id)
    key = clubs_service.rotate_device_key(session, device=device)
    return _view(device, _options(session, device)), key


def revoke_device(session: Session, *, club_id: int, device_id: int) -> DeviceView:
    """Refuse the device from now on (its key, and a ZKTeco serial, which must be approved again
    after a key rotation re-activates it). A repeat is harmless."""
    device = _device(session, club_id=club_id, device_id=device_id)
    if device.active:
        clubs_service.revoke_device(session, device=device)
    options = _options(session, device)
    if options is not None and options.approved_at is not None:
        options.approved_at = None
        options.approved_by = None
        options.seen_addresses = []
        options.first_seen_at = options.last_seen_at = None
        session.flush()
    return _view(device, options)
