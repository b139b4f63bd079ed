"""ZKTeco PUSH ("ADMS", `/iclock/…`): the attendance dialect (ATTLOG) and the access-control
"Security PUSH" dialect (rtlog, background verification), answered in text/plain as the firmware
expects — never JSON, which the device takes for a failure and re-sends.

Who a record is about: `cardno` when the device read a card (as fitclub stores the card code),
else the PIN, which is the fitclub member id (the allow-list pushes members with `Pin=<member
id>`). ATTLOG lines carry only the PIN.
"""
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl

from sqlalchemy.orm import Session

from app.access.protocols import allowlist
from app.access.protocols.common import (
    ProtocolDevice,
    Recorded,
    decide,
    device_time,
    identify,
    live_time,
    record,
    touch,
)
from app.core import clock

MAX_LINES = 20_000
SCREEN_MAX = 64

GRANTED_EVENTS = frozenset({0, 1, 2, 3, 14, 15, 16, 17, 18, 19})
"""rtlog `event` codes of a person let through (0 normal verify open, 1 during normal-open time,
2 first-person open, 3 multi-person open, 14-19 the fingerprint/card combinations of these)."""
DENIED_EVENTS = frozenset({20, 21, 22, 23, 24, 25, 26, 27, 29, 30, 39, 41, 42, 44, 45, 48})
"""rtlog `event` codes of a person refused (20 interval too short, 22 outside time zone, 23
denied, 24 anti-passback, 27 not registered, 29 expired, 39 blacklisted, 44/45 background
verification failed/timed out, ...). Other codes (door, alarm, remote open) are not check-ins."""
ATTLOG_OUT_STATUSES = frozenset({"1", "2", "5"})  # check-out, break-out, overtime-out


def text(body: bytes) -> str:
    return body.decode("utf-8", "replace")


def timezone_value(device: ProtocolDevice, now: datetime | None = None) -> str:
    """The device's UTC offset now: whole hours (-12…12 are read as hours), else minutes."""
    minutes = int((now or clock.now()).astimezone(device.zone).utcoffset().total_seconds() // 60)
    return str(minutes // 60) if minutes % 60 == 0 else str(minutes)


def handshake(device: ProtocolDevice, now: datetime | None = None) -> str:
    """`GET /iclock/cdata?SN=…&options=all`: the options the device runs with."""
    return "\n".join([
        f"GET OPTION FROM: {device.serial}",
        "ATTLOGStamp=None",
        "OPERLOGStamp=9999",
        "ErrorDelay=30",
        "Delay=10",
        "TransTimes=00:00;14:05",
        "TransInterval=1",
        "TransFlag=TransData AttLog OpLog",
        "Realtime=1",
        f"TimeZone={timezone_value(device, now)}",
        "Encrypt=None",
    ]) + "\n"


def _lines(body: str) -> list[str]:
    return [line for line in body.splitlines()[:MAX_LINES] if line.strip()]


def key_values(line: str) -> dict[str, str]:
    """One rtlog-style record: tab-separated `key=value` pairs, keys read case-insensitively."""
    fields = {}
    for part in line.split("\t"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    return fields


def _int(value: str | None, default: int | None = None) -> int | None:
    value = (value or "").strip()
    if value.isascii() and value.lstrip("-").isdigit() and len(value) < 12:
        return int(value)
    return default


def _compact(time_text: str) -> str:
    return "".join(ch for ch in time_text if ch.isdigit())


# --- uploads -----------------------------------------------------------------------------------

@dataclass
class Upload:
    answer: str
    results: list[Recorded]


def upload_attlog(session: Session, device: ProtocolDevice, body: str) -> Upload:
    """`table=ATTLOG`: `PIN\\tYYYY-MM-DD HH:MM:SS\\tstatus\\tverify\\t…` per line, each a
    verified punch (an entry the device let through)."""
    results = []
    lines = _lines(body)
    for line in lines:
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) < 2:
            results.append(Recorded.ignored)
            continue
        pin, when = fields[0], fields[1]
        status = fields[2] if len(fields) > 2 else "0"
        direction = device.direction_for("out" if status in ATTLOG_OUT_STATUSES else "in")
        results.append(record(
            session, device, identify(pin=pin), at=device_time(when, device.zone),
            direction=direction, key=f"zkatt:{device.serial}:{pin}:{_compact(when)}",
            granted=True))
    touch(session, device)
    return Upload(f"OK: {len(lines)}", results)


def upload_rtlog(session: Session, device: ProtocolDevice, body: str) -> Upload:
    """`table=rtlog`: one real-time access record per line (`time=…\\tpin=…\\tcardno=…\\t
    event=…\\tinoutstatus=…\\tindex=…`); the device already opened or refused."""
    results = []
    for line in _lines(body):
        fields = key_values(line)
        event = _int(fields.get("event"))
        if event in GRANTED_EVENTS:
            granted = True
        elif event in DENIED_EVENTS:
            granted = False
        else:
            results.append(Recorded.ignored)
            continue
        who = identify(card=fields.get("cardno"), pin=fields.get("pin"))
        when = fields.get("time", "")
        index = fields.get("index")
        key = (f"zk:{device.serial}:{index}:{_compact(when)}" if index else
               f"zkrt:{device.serial}:{who.ref if who else '-'}:{_compact(when)}:{event}")
        direction = device.direction_for("out" if fields.get("inoutstatus") == "1" else "in")
        results.append(record(session, device, who, at=device_time(when, device.zone),
                              direction=direction, key=key, granted=granted))
    touch(session, device)
    return Upload("OK", results)


def upload_table(tablename: str | None, count: str | None, body: str) -> str:
    """`table=tabledata&tablename=user&count=3` must be answered `user=3` or it is re-sent."""
    name = tablename if tablename and tablename.isascii() and tablename.isalnum() else None
    if name is None:
        return "OK"
    n = _int(count)
    return f"{name}={n if n is not None and n >= 0 else len(_lines(body))}"


def upload(session: Session, device: ProtocolDevice, *, table: str | None,
           tablename: str | None, count: str | None, body: bytes) -> str:
    """`POST /iclock/cdata?SN=…&table=…`: the answer the device expects for this table."""
    kind = (table or "").lower()
    if kind == "attlog":
        return upload_attlog(session, device, text(body)).answer
    if kind == "rtlog":
        return upload_rtlog(session, device, text(body)).answer
    touch(session, device)
    if kind == "tabledata":
        return upload_table(tablename, count, text(body))
    return "OK"  # OPERLOG, ATTPHOTO, rtstate, options, …: accepted, not used


# --- background verification ---------------------------------------------------------------------

def screen(message: str) -> str:
    """Text for the device's screen: one line, printable, short."""
    line = " ".join(message.split())
    return "".join(ch for ch in line if ch.isprintable())[:SCREEN_MAX]


def verify(session: Session, device: ProtocolDevice, body: bytes,
           now: datetime | None = None) -> str:
    """`POST /iclock/cdata?SN=…&AuthType=device` with one rtlog-style record: may this person
    pass? `AUTH=SUCCEED` / `AUTH=FAILED`, then `TIPS=` (the decision's message) for the screen;
    with `open_door_seconds` set for the device, a granted answer also carries
    `CONTROL DEVICE 01<door>01<seconds>` for panels that do not open on their own."""
    now = now or clock.now()
    lines = _lines(text(body))
    fields = key_values(lines[0]) if lines else {}
    who = identify(card=fields.get("cardno"), pin=fields.get("pin"))
    when = fields.get("time", "")
    at = live_time(device_time(when, device.zone), now)
    direction = device.direction_for("out" if fields.get("inoutstatus") == "1" else "in")
    asked = _compact(when) or now.strftime("%Y%m%d%H%M%S%f")
    decision = decide(session, device, who, at=at, direction=direction,
                      key=f"zk:{device.serial}:{who.ref if who else '-'}:{asked}")
    answer = ["AUTH=SUCCEED" if decision.allow else "AUTH=FAILED"]
    if decision.allow and device.open_door_seconds:
        door = _int(fields.get("eventaddr"), 1)
        door = door if door is not None and 1 <= door <= 99 else 1
        seconds = max(1, min(device.open_door_seconds, 99))
        answer.append(f"CONTROL DEVICE 01{door:02d}01{seconds:02d}")
    answer.append(f"TIPS={screen(decision.message)}")
    return "\n".join(answer) + "\n"


# --- commands ----------------------------------------------------------------------------------

def poll(session: Session, device: ProtocolDevice, now: datetime | None = None) -> str:
    """`GET /iclock/getrequest?SN=…`: `OK`, or one `C:<id>:<command>` line per command."""
    touch(session, device, now)
    commands = allowlist.deliver(session, device_id=device.device_id, now=now)
    if not commands:
        return "OK"
    return "\n".join(f"C:{command_id}:{command}" for command_id, command in commands) + "\n"


def parse_results(body: str) -> list[tuple[int, int]]:
    """`ID=…&Return=…&CMD=…` per line (form-encoded) → (command id, return code)."""
    results = []
    for line in _lines(body):
        fields = {k.lower(): v for k, v in parse_qsl(line.strip(), keep_blank_values=True)}
        command_id, code = _int(fields.get("id")), _int(fields.get("return"))
        if command_id is not None and code is not None:
            results.append((command_id, code))
    return results


def results(session: Session, device: ProtocolDevice, body: bytes,
            now: datetime | None = None) -> str:
    """`POST /iclock/devicecmd?SN=…`: the device's results of earlier commands; answered `OK`."""
    touch(session, device, now)
    allowlist.confirm(session, device_id=device.device_id, results=parse_results(text(body)),
                      now=now)
    return "OK"
