"""Hikvision ISAPI event listener (face terminals DS-K1T…, controllers DS-K26…).

The device posts to the HTTP host configured with `PUT /ISAPI/Event/notification/httpHosts`
(JSON format): `multipart/form-data` with a part `AccessControllerEvent` (or `event_log`) holding
the JSON, maybe a `Picture` part (ignored), or bare JSON. The body names the device only by its
ipAddress/macAddress (sometimes deviceID), so the serial number — and the device key — are in
the configured URL. `eventType: heartBeat` keeps the device marked alive; an
`AccessControllerEvent` with `remoteCheck: true` is a question answered in the same response;
any other is a record of what the device did (`currentEvent: false`: replayed from its buffer).

Who: `cardNo` when a card was read, else `employeeNoString`, which is the fitclub member id.
"""
import json
from datetime import datetime
from email.parser import BytesParser
from email.policy import HTTP

from sqlalchemy.orm import Session

from app.access.protocols.common import (
    ProtocolDevice,
    decide,
    device_time,
    identify,
    live_time,
    record,
    touch,
)
from app.core import clock

EVENT_PARTS = ("AccessControllerEvent", "event_log")
GRANTED_SUB_EVENTS = frozenset({0x01, 0x02, 0x26, 0x4B})
"""subEventType (majorEventType 5) of a person let through: 0x01 card, 0x02 card and password,
0x26 fingerprint, 0x4b face (confirm on the device model in use)."""
DENIED_SUB_EVENTS = frozenset({0x06, 0x07, 0x08, 0x09, 0x0A, 0x27, 0x4C})
"""… of a person refused: 0x06 no permission, 0x07 invalid period, 0x08 card expired, 0x09 card
not found, 0x0a anti-passback, 0x27 fingerprint mismatch, 0x4c face mismatch."""
OUT_STATUSES = frozenset({"checkout", "breakout", "overtimeout"})
OK = {"statusCode": 1, "statusString": "OK", "subStatusCode": "ok"}


class Unreadable(ValueError):
    """The body is neither JSON nor multipart with a JSON event part (XML firmware, garbage)."""


def _json(data: bytes) -> dict:
    try:
        value = json.loads(data.decode("utf-8", "replace"))
    except ValueError as exc:
        raise Unreadable("the event is not JSON") from exc
    if not isinstance(value, dict):
        raise Unreadable("the event is not a JSON object")
    return value


def parse(content_type: str | None, body: bytes) -> dict:
    """The event JSON from a multipart body (the JSON part; pictures skipped) or bare JSON."""
    content_type = content_type or ""
    if not content_type.lower().startswith("multipart/"):
        return _json(body)
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise Unreadable("a multipart body without parts")
    fallback = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        kind = part.get_content_type()
        if kind.startswith("image/"):
            continue
        payload = part.get_payload(decode=True) or b""
        if name in EVENT_PARTS:
            return _json(payload)
        if fallback is None and (kind == "application/json" or payload.lstrip()[:1] == b"{"):
            fallback = payload
    if fallback is None:
        raise Unreadable("no JSON event part in the multipart body")
    return _json(fallback)


def _int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def handle(session: Session, device: ProtocolDevice, event: dict,
           now: datetime | None = None) -> dict:
    """The JSON answer to one posted event (a remote check's verdict, else a plain OK)."""
    now = now or clock.now()
    kind = str(event.get("eventType", ""))
    touch(session, device, now)
    if kind != "AccessControllerEvent" or not isinstance(event.get(kind), dict):
        return OK  # heartBeat and other event types: alive, nothing to record
    ace = event[kind]
    who = identify(card=ace.get("cardNo"), pin=ace.get("employeeNoString") or ace.get("employeeNo"))
    when = str(event.get("dateTime") or "")
    at = device_time(when, device.zone)
    serial_no = _int(ace.get("serialNo"))
    reported = "out" if str(ace.get("attendanceStatus", "")).lower() in OUT_STATUSES else "in"
    direction = device.direction_for(reported)
    stamp = "".join(ch for ch in when if ch.isdigit())[:14]
    key = (f"hik:{device.serial}:{serial_no}:{stamp}" if serial_no is not None else
           f"hik:{device.serial}:{who.ref if who else '-'}:{stamp}:{ace.get('subEventType')}")
    if ace.get("remoteCheck") is True or event.get("remoteCheck") is True:
        decision = decide(session, device, who, at=live_time(at, now), direction=direction,
                          key=key)
        return {"RemoteCheck": {"serialNo": serial_no if serial_no is not None else 0,
                                "checkResult": "success" if decision.allow else "failed",
                                "info": decision.message}}
    sub = _int(ace.get("subEventType"))
    if _int(ace.get("majorEventType")) == 5 and sub in GRANTED_SUB_EVENTS | DENIED_SUB_EVENTS:
        record(session, device, who, at=at, direction=direction, key=key,
               granted=sub in GRANTED_SUB_EVENTS, replay=ace.get("currentEvent") is False,
               now=now)
    return OK

