"""IronLogic Z5R-Web (and other "Web-JSON" controllers): the controller posts
`{"type": "Z5RWEB", "sn": <serial>, "messages": [...]}` every `interval` seconds and reads the
answer `{"date": <its local time>, "interval": 10, "messages": [...]}` (the `date` also sets its
clock). Operations handled:

* `power_on` → `set_active` with `active: 1, online: 1` (online: ask `check_access` per card);
* `ping` → nothing to add (the envelope is the answer);
* `check_access` (`card`, `reader`) → `{"id", "operation": "check_access", "granted": 1|0}`;
* `events` → each event (`event` code, `card`, `time` in device local time, `flag`) recorded as
  what the controller did; acknowledged with `events_success` = the number received, since an
  unacknowledged batch is sent again;
* answers to commands (`{"id", "success": 1}`) → nothing.

Web-JSON events carry no id of their own (the message `id` is a counter that restarts), so an
event is deduplicated on (serial, card, time, event code).
"""
import base64
import binascii
from datetime import datetime

from sqlalchemy.orm import Session

from app.access.protocols.common import (
    ProtocolDevice,
    decide,
    device_time,
    identify,
    local_now,
    record,
    touch,
)
from app.core import clock

INTERVAL = 10
MAX_MESSAGES = 200
MAX_EVENTS = 2_000
GRANTED_EVENTS = frozenset({4, 5})  # key in database, door opened (entrance / exit)
DENIED_EVENTS = frozenset({2, 3, 6, 7, 10, 11})  # key unknown, access denied, door locked
# even codes happen on the entrance reader, odd ones on the exit reader; the rest (buttons, door
# sensors, power, passage sensors 16/17 after an opening) are not check-ins


def basic_password(authorization: str | None) -> str | None:
    """The password of an HTTP Basic `Authorization` header (the device key), else None."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _login, sep, password = decoded.partition(":")
    return password if sep else None


def serial_of(payload: dict) -> str | None:
    sn = payload.get("sn")
    if isinstance(sn, bool) or not isinstance(sn, (int, str)):
        return None
    return str(sn).strip() or None


def _direction(device: ProtocolDevice, exit_side: bool) -> str:
    return device.direction_for("out" if exit_side else "in")


def _card(value) -> str | None:
    """Web-JSON sends the card as 12 hex digits, e.g. "00B5009EC1A8"."""
    return value if isinstance(value, str) else None


def check_access(session: Session, device: ProtocolDevice, message: dict,
                 now: datetime) -> dict:
    who = identify(card=_card(message.get("card")))
    reader = message.get("reader")
    direction = _direction(device, reader == 2)
    minute = now.astimezone(device.zone).strftime("%Y%m%d%H%M")
    decision = decide(session, device, who, at=now, direction=direction,
                      key=f"il:{device.serial}:{message.get('id')}:{who.ref if who else '-'}:"
                          f"{minute}")
    return {"id": message.get("id"), "operation": "check_access",
            "granted": 1 if decision.allow else 0}


def events(session: Session, device: ProtocolDevice, message: dict, now: datetime) -> dict:
    batch = message.get("events")
    batch = batch[:MAX_EVENTS] if isinstance(batch, list) else []
    for event in batch:
        if not isinstance(event, dict):
            continue
        code = event.get("event")
        if isinstance(code, str) and code.isdigit():
            code = int(code)
        if code not in GRANTED_EVENTS and code not in DENIED_EVENTS:
            continue
        who = identify(card=_card(event.get("card")))
        when = event.get("time") if isinstance(event.get("time"), str) else ""
        stamp = "".join(ch for ch in when if ch.isdigit())
        record(session, device, who, at=device_time(when, device.zone),
               direction=_direction(device, code % 2 == 1), granted=code in GRANTED_EVENTS,
               key=f"il:{device.serial}:{who.ref if who else '-'}:{stamp}:{code}", now=now)
    return {"id": message.get("id"), "operation": "events", "events_success": len(batch)}


def handle(session: Session, device: ProtocolDevice, payload: dict,
           now: datetime | None = None) -> dict:
    """The answer envelope to one post of the controller."""
    now = now or clock.now()
    touch(session, device, now)
    answers = []
    messages = payload.get("messages")
    for message in (messages[:MAX_MESSAGES] if isinstance(messages, list) else []):
        if not isinstance(message, dict):
            continue
        operation = message.get("operation")
        if operation == "power_on":
            answers.append({"id": message.get("id"), "operation": "set_active", "active": 1,
                            "online": 1})
        elif operation == "check_access":
            answers.append(check_access(session, device, message, now))
        elif operation == "events":
            answers.append(events(session, device, message, now))
    return {"date": local_now(device, now), "interval": INTERVAL, "messages": answers}
