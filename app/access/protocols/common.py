"""What the adapters share: the device behind a serial number, device clocks, and the two ways a
device's event reaches the one decision.

* **Asked** (`decide`): the device waits for the answer (ZKTeco background verification,
  Hikvision remote check, IronLogic `check_access`). `check_in` decides and records it under a
  dedup key starting with `live:`.
* **Told** (`record`): the device already let someone through, or refused them, and reports it
  afterwards (ZKTeco ATTLOG/rtlog, Hikvision events, IronLogic event batches) — in real time or
  replayed from its buffer. What the device did is recorded, at the device's time; it is never
  re-decided as a live check-in. A report of an entry the server itself decided a moment before
  (a `live:` event from the same device for the same card or member within `LIVE_ECHO_WINDOW`)
  is the device's log of that decision and is not recorded twice.

What the device did is passed to `check_in` as `recorded_outcome`: a disagreement with the
server's rules is stored as `device_granted` / `device_refused`, with the server's view in the
message, so nobody who walked in is missing and no visit is invented.
"""
import hashlib
import hmac
import ipaddress
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.access import service as access_service
from app.access.models import AccessEvent
from app.access.protocols.models import DeviceProtocolSettings
from app.access.service import Decision, Reason
from app.clubs.models import Club, Device
from app.core import clock
from app.core.errors import DomainError, Forbidden, Invalid, NotFound, Unauthorized
from app.core.ratelimit import hit
from app.core.security import digest
from app.core.types import MAX_ID
from app.members import service as members_service

log = logging.getLogger("fitclub.access.protocols")

PROTOCOLS = ("zkteco", "hikvision", "ironlogic")
LIVE_PREFIX = "live:"
LIVE_ECHO_WINDOW = timedelta(seconds=30)
"""A device's report within this time of a decision the server made for it (same device, same
card or member) is the log of that decision, not a second passage."""
LIVE_CLOCK_TOLERANCE = timedelta(minutes=2)
"""A device time this close to the server's is used as the time of a live decision (so the
device's later log of it matches); a clock further off is ignored and the server's time used."""
SERIAL_MAX = 64
UNKNOWN_MESSAGE = "Card not recognised, please see the front desk"

@dataclass(frozen=True, slots=True)
class ProtocolDevice:
    """A registered controller as the adapters need it."""

    device_id: int
    club_id: int
    serial: str
    name: str
    direction: str
    protocol: str
    zone: ZoneInfo
    open_door_seconds: int | None = None

    def direction_for(self, reported: str | None) -> str:
        """The device's configured direction; a device set to "both" says it per event."""
        if self.direction in ("in", "out"):
            return self.direction
        return reported if reported in ("in", "out") else "in"


_devices, _clubs = Device.__table__, Club.__table__
_settings = DeviceProtocolSettings.__table__
_BY_SERIAL = (
    select(_devices.c.id, _devices.c.club_id, _devices.c.name, _devices.c.direction,
           _devices.c.protocol, _devices.c.timezone, _devices.c.active, _devices.c.key_hash,
           _clubs.c.timezone.label("club_timezone"), _settings.c.allowed_networks,
           _settings.c.open_door_seconds, _settings.c.approved_at,
           _settings.c.id.label("settings_id"))
    .select_from(_devices.join(_clubs, _clubs.c.id == _devices.c.club_id)
                 .outerjoin(_settings, _settings.c.device_id == _devices.c.id))
    .where(_devices.c.serial_number == bindparam("serial"))
)


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=1024)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text, strict=False)


def address_allowed(client_ip: str | None, networks: list[str] | None) -> bool:
    """No networks configured: any address; else the caller's address must be in one of them."""
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(client_ip or "")
    except ValueError:
        return False
    for text in networks:
        try:
            if address in _network(text):
                return True
        except ValueError:
            log.warning("ignoring malformed allowed network %r", text)
    return False


def valid_serial(serial: str | None) -> bool:
    return bool(serial) and len(serial) <= SERIAL_MAX and serial.isascii() and serial.isprintable() \
        and not any(ch.isspace() for ch in serial)


ZK_REFUSED = ("This device is not registered, not approved, or not allowed to call from this "
              "address: a manager registers and approves it (docs/turnstiles.md)")
"""The one answer (404, plain text) to every ZKTeco request that is refused: unknown, revoked,
quarantined and wrongly addressed serials are indistinguishable, so serials cannot be guessed."""
SEEN_ADDRESSES_MAX = 8

ZK_SERIAL_LIMIT = 240
ZK_ADDRESS_LIMIT = 600
ZK_WINDOW = timedelta(minutes=1)


class ZkRefused(NotFound):
    """A ZKTeco request refused for any reason (the reason is logged, never answered)."""

    code = "unknown_device"

    def __init__(self) -> None:
        super().__init__(ZK_REFUSED, code=self.code)


def _bucket(kind: str, value: str | None) -> str:
    # addresses are personal data and serials credentials: only digests are kept
    return f"{kind}:" + hashlib.sha256((value or "-").encode()).hexdigest()[:40]


def _serial_served(session: Session, *, serial: str | None, client_ip: str | None) -> bool:
    """Whether this request would reach the device's work: a registered, active, approved ZKTeco
    serial called from one of its allowed networks."""
    if not valid_serial(serial):
        return False
    row = session.execute(_BY_SERIAL, {"serial": serial}).first()
    return (row is not None and row.protocol == "zkteco" and row.active
            and row.approved_at is not None and bool(row.allowed_networks)
            and address_allowed(client_ip, row.allowed_networks))


def throttle(session: Session, *, serial: str | None, client_ip: str | None,
             now: datetime | None = None) -> int | None:
    """Count a ZKTeco request (in `rate_limit_buckets`, so the limit holds across workers): the
    seconds to wait when over a limit, else None. Every request counts per address; only a request
    that would be served (approved serial, caller inside its allowed networks) also counts per
    serial, so nobody outside the device's networks can use up or probe a serial's allowance —
    unknown, quarantined and wrongly addressed serials are counted (and refused) alike. The router
    counts in its own short transaction (committed whatever the request does next, and the bucket
    rows are not locked while the request works)."""
    now = now or clock.now()
    by_address, address_left = hit(session, bucket=_bucket("zk-ip", client_ip),
                                   window=ZK_WINDOW, now=now)
    if by_address > ZK_ADDRESS_LIMIT:
        return address_left
    if not _serial_served(session, serial=serial, client_ip=client_ip):
        return None
    by_serial, serial_left = hit(session, bucket=_bucket("zk-sn", serial), window=ZK_WINDOW,
                                 now=now)
    if by_serial > ZK_SERIAL_LIMIT:
        return serial_left
    return None


def _note_quarantined_call(session: Session, *, settings_id: int | None, device_id: int,
                           club_id: int, client_ip: str | None) -> None:
    """Remember where a device waiting for approval called from (for the manager to confirm)."""
    now = clock.now()
    options = (session.get(DeviceProtocolSettings, settings_id) if settings_id is not None
               else None)
    if options is None:
        options = DeviceProtocolSettings(club_id=club_id, device_id=device_id,
                                         allowed_networks=[], seen_addresses=[])
        session.add(options)
    seen = list(options.seen_addresses or [])
    address = _address_text(client_ip)
    if address and (not seen or seen[-1] != address):
        # the most recent distinct addresses, newest last: a flood of other addresses cannot keep
        # the real device's address out (the manager picks the networks, nothing is approved by
        # default)
        options.seen_addresses = [*[a for a in seen if a != address], address][-SEEN_ADDRESSES_MAX:]
    options.first_seen_at = options.first_seen_at or now
    options.last_seen_at = now
    session.flush()


def _address_text(client_ip: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(client_ip or ""))
    except ValueError:
        return None


def _resolve_zkteco(session: Session, row, *, client_ip: str | None) -> None:
    """ZKTeco sends nothing but its serial number: it is answered only when registered, active,
    approved by a manager and calling from an allowed network (none configured: refused)."""
    if row is None or row.protocol != "zkteco":
        log.debug("zkteco call refused: unknown serial from %s", client_ip)
        raise ZkRefused()
    if not row.active:
        log.warning("zkteco call refused: device %s is revoked (from %s)", row.id, client_ip)
        raise ZkRefused()
    if row.approved_at is None:
        log.warning("zkteco call refused: device %s waits for a manager's approval (from %s)",
                    row.id, client_ip)
        _note_quarantined_call(session, settings_id=row.settings_id, device_id=row.id,
                               club_id=row.club_id, client_ip=client_ip)
        raise ZkRefused()
    if not row.allowed_networks or not address_allowed(client_ip, row.allowed_networks):
        log.warning("zkteco call refused: device %s may not call from %s", row.id, client_ip)
        raise ZkRefused()


def resolve_device(session: Session, *, protocol: str, serial: str | None,
                   client_ip: str | None, key: str | None = None,
                   key_required: bool = False) -> ProtocolDevice:
    """The active device of this protocol with this serial number, called from an allowed address
    (and, where the protocol can carry it, with the device's key); else a domain error. ZKTeco:
    also approved, and every refusal is the same `ZkRefused`."""
    row = session.execute(_BY_SERIAL, {"serial": serial}).first() if valid_serial(serial) else None
    if protocol == "zkteco":
        _resolve_zkteco(session, row, client_ip=client_ip)
    if row is None or row.protocol != protocol:
        raise NotFound(f"Unknown {protocol} device: register it with `fitclub add-device NAME "
                       f"--club ID --protocol {protocol} --serial SERIAL`", code="unknown_device")
    if not row.active:
        raise Unauthorized("This device was revoked", code="device_revoked")
    if not address_allowed(client_ip, row.allowed_networks):
        raise Forbidden(f"This device may not call from {client_ip}", code="device_network_refused")
    if key_required:
        if not key:
            raise Unauthorized("This device must send its key", code="not_authenticated")
        if not hmac.compare_digest(digest(key), row.key_hash):
            raise Unauthorized("Wrong device key", code="invalid_device_key")
    return ProtocolDevice(device_id=row.id, club_id=row.club_id, serial=serial, name=row.name,
                          direction=row.direction, protocol=row.protocol,
                          zone=_zone(row.timezone or row.club_timezone),
                          open_door_seconds=row.open_door_seconds)


def touch(session: Session, device: ProtocolDevice, now: datetime | None = None) -> None:
    """Note that the device is alive (at most once a minute per device and process)."""
    access_service.touch_device(session, device_id=device.device_id, now=now or clock.now())


# --- clocks ------------------------------------------------------------------------------------

def device_time(text: str | None, zone: ZoneInfo) -> datetime | None:
    """A device's timestamp as an aware instant: an offset it gives is used, a wall-clock time
    without one ("2026-05-16 18:05:00") is read in the device's timezone. None if unreadable."""
    if not text or len(text) > 40:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if value.utcoffset() is None:
        value = value.replace(tzinfo=zone)
    return value


def live_time(reported: datetime | None, now: datetime) -> datetime:
    """The time of a live decision: the device's own time if its clock is about right."""
    if reported is None or abs(reported - now) > LIVE_CLOCK_TOLERANCE:
        return now
    return reported


def local_now(device: ProtocolDevice, now: datetime | None = None) -> str:
    """The device's wall-clock time now, "YYYY-MM-DD HH:MM:SS"."""
    return (now or clock.now()).astimezone(device.zone).strftime("%Y-%m-%d %H:%M:%S")


# --- who the device saw ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Who:
    """A card code as stored in fitclub, or a member id (a device's PIN / employee number)."""

    card: str | None = None
    member_id: int | None = None

    @property
    def ref(self) -> str:
        return f"c{self.card}" if self.card is not None else f"m{self.member_id}"


def identify(card: str | int | None = None, pin: str | int | None = None) -> Who | None:
    """The card if the device read one ("0" and empty mean none), else the PIN as a member id."""
    card = "" if card is None else str(card).strip()
    if card and card.strip("0"):
        try:
            return Who(card=members_service.normalise_card_code(card, field="card"))
        except Invalid:
            log.warning("unreadable card code from a device: %r", card[:80])
            return None
    pin = "" if pin is None else str(pin).strip()
    if pin.isascii() and pin.isdigit() and 0 < int(pin) <= MAX_ID:
        return Who(member_id=int(pin))
    return None


# --- asked: the server decides -----------------------------------------------------------------

def decide(session: Session, device: ProtocolDevice, who: Who | None, *, at: datetime,
           direction: str, key: str) -> Decision:
    """A live question: `check_in` decides; a repeat of the same question (same `key`) gets the
    first answer. An unreadable card or an unknown PIN is refused without a record."""
    touch(session, device)
    if who is None:
        return Decision(False, Reason.unknown_card.value, UNKNOWN_MESSAGE)
    try:
        return access_service.check_in(
            session, club_id=device.club_id, occurred_at=at, card_code=who.card,
            member_id=who.member_id, device_id=device.device_id,
            dedup_key=f"{LIVE_PREFIX}{key}"[:200], source="device", direction=direction)
    except NotFound:  # a PIN that is no member of this club
        return Decision(False, Reason.unknown_card.value, UNKNOWN_MESSAGE)


# --- told: the device decided ------------------------------------------------------------------

class Recorded(StrEnum):
    recorded = "recorded"          # stored (a visit if granted and in)
    duplicate = "duplicate"        # this record was stored before (same dedup key)
    decided_live = "decided_live"  # the device's log of a decision the server made just before
    ignored = "ignored"            # no card or member in it, or no readable time
    refused = "refused"            # check_in refused it (unknown PIN, time out of range, ...)


_events = AccessEvent.__table__
_live_base = select(_events.c.id).where(
    _events.c.club_id == bindparam("club_id"),
    _events.c.occurred_at >= bindparam("lo"), _events.c.occurred_at <= bindparam("hi"),
    _events.c.device_id == bindparam("device_id"), _events.c.dedup_key.like(LIVE_PREFIX + "%"),
).limit(1)
_LIVE_BY_CARD = _live_base.where(_events.c.card_code == bindparam("card"))
_LIVE_BY_MEMBER = _live_base.where(_events.c.member_id == bindparam("member_id"))


def _decided_live(session: Session, device: ProtocolDevice, who: Who, at: datetime) -> bool:
    params = {"club_id": device.club_id, "device_id": device.device_id,
              "lo": at - LIVE_ECHO_WINDOW, "hi": at + LIVE_ECHO_WINDOW}
    if who.card is not None:
        statement, params["card"] = _LIVE_BY_CARD, who.card
    else:
        statement, params["member_id"] = _LIVE_BY_MEMBER, who.member_id
    return session.execute(statement, params).first() is not None


def record(session: Session, device: ProtocolDevice, who: Who | None, *, at: datetime | None,
           direction: str, key: str, granted: bool, replay: bool = False,
           now: datetime | None = None) -> Recorded:
    """Record what the device did (`granted` or not) at the device's time `at`, once per `key`.

    `replay`: the device says it is re-sending (else an event older than the access service's
    REPLAY_AFTER counts as a replay). Never raises for one bad record: the batch goes on.
    """
    if who is None or at is None:
        return Recorded.ignored
    now = now or clock.now()
    if _decided_live(session, device, who, at):
        return Recorded.decided_live
    source = "replay" if replay or now - at > access_service.REPLAY_AFTER else "device"
    args = {"club_id": device.club_id, "occurred_at": at, "card_code": who.card,
            "member_id": who.member_id, "device_id": device.device_id,
            "dedup_key": key[:200], "source": source, "direction": direction}
    try:
        with session.begin_nested():
            decision = access_service.check_in(session, **args, recorded_outcome=granted)
    except DomainError as exc:
        log.warning("device %s (%s): record %s refused: %s", device.device_id, device.serial,
                    key, exc.message)
        return Recorded.refused
    return Recorded.duplicate if decision.replayed else Recorded.recorded


# --- per-device options ------------------------------------------------------------------------

def configure_device(session: Session, *, device_id: int, allowed_networks: list[str] | None = None,
                     open_door_seconds: int | None = None,
                     clear_networks: bool = False) -> DeviceProtocolSettings:
    """Set a device's source-network allow-list and/or its ZKTeco door-opening time."""
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound("Device not found", code="device_not_found")
    networks = []
    for text in allowed_networks or []:
        try:
            networks.append(str(ipaddress.ip_network(text.strip(), strict=False)))
        except ValueError:
            raise Invalid(f"{text!r} is not a network (write 10.0.0.0/8 or 192.0.2.7)",
                          code="invalid_network") from None
    if open_door_seconds is not None and not 0 <= open_door_seconds <= 99:
        raise Invalid("open_door_seconds is 1 to 99 (0: do not send CONTROL DEVICE)",
                      code="invalid_open_door_seconds")
    options = session.scalar(select(DeviceProtocolSettings)
                             .where(DeviceProtocolSettings.device_id == device_id))
    if options is None:
        options = DeviceProtocolSettings(club_id=device.club_id, device_id=device_id,
                                         allowed_networks=[])
        session.add(options)
    if clear_networks:
        options.allowed_networks = []
    if networks:
        options.allowed_networks = sorted(set(options.allowed_networks or []) | set(networks))
    if open_door_seconds is not None:
        options.open_door_seconds = open_door_seconds or None
    session.flush()
    return options
