"""Request bodies built the way the devices build them (layouts from the vendors' documents and
captures published by integrators); only the times, cards and ids are filled in per test."""
import json
from datetime import datetime
from zoneinfo import ZoneInfo


def wall(at: datetime, zone: str) -> str:
    """A device's wall-clock timestamp: local time, no offset."""
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


# --- ZKTeco PUSH -------------------------------------------------------------------------------

def attlog(*records: tuple) -> str:
    """ATTLOG upload: `PIN \\t time \\t status \\t verify \\t workcode \\t reserved \\t reserved`,
    e.g. `11\\t2025-08-27 10:57:49\\t0\\t25\\t0\\t0\\t0` (status 0 check-in, 1 check-out;
    verify 1 fingerprint, 4 card, 15 face, 25 palm)."""
    return "".join(f"{pin}\t{when}\t{status}\t{verify}\t0\t0\t0\n"
                   for pin, when, status, verify in records)


def rtlog(*, time: str, index: int, pin: str = "0", cardno: str = "0", event: int = 0,
          inoutstatus: int = 0, verifytype: int = 4, door: int = 1) -> str:
    """One Security PUSH real-time access record (fields as firmware 3.x sends them)."""
    return "\t".join([
        f"time={time}", f"pin={pin}", f"cardno={cardno}", f"eventaddr={door}",
        f"event={event}", f"inoutstatus={inoutstatus}", f"verifytype={verifytype}",
        f"index={index}", "sitecode=0", "linkid=0", "maskflag=255", "temperature=255",
        "convtemperature=0"])


def rtlog_batch(*lines: str) -> str:
    return "\r\n".join(lines) + "\r\n"


# --- Hikvision ISAPI ---------------------------------------------------------------------------

BOUNDARY = "MIME_boundary"
JPEG = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        b"\r\n--MIME_boun\r\n" + bytes(range(256)) + b"\xff\xd9")  # binary, boundary-like bytes


def hik_event(*, serial_no: int, date_time: str, card: str = "", employee: str = "",
              sub: int = 0x01, current: bool = True, remote: bool = False,
              attendance: str = "undefined") -> dict:
    """An `AccessControllerEvent` as DS-K1T face terminals post it."""
    ace = {
        "deviceName": "Entrance", "majorEventType": 5, "subEventType": sub,
        "name": "", "cardNo": card, "cardType": 1, "employeeNoString": employee,
        "cardReaderNo": 1, "doorNo": 1, "verifyNo": 0, "serialNo": serial_no,
        "userType": "normal", "currentVerifyMode": "cardOrFace", "currentEvent": current,
        "frontSerialNo": serial_no - 1, "attendanceStatus": attendance, "label": "",
        "statusValue": 0, "mask": "no", "picturesNumber": 1, "purePwdVerifyEnable": True,
    }
    if remote:
        ace["remoteCheck"] = True
    return {"ipAddress": "192.168.1.64", "portNo": 80, "protocol": "HTTP",
            "macAddress": "24:0f:9b:11:22:33", "channelID": 1, "dateTime": date_time,
            "activePostCount": 1, "eventType": "AccessControllerEvent", "eventState": "active",
            "eventDescription": "Access Controller Event", "AccessControllerEvent": ace}


def heartbeat(date_time: str) -> dict:
    return {"ipAddress": "192.168.1.64", "portNo": 80, "protocol": "HTTP",
            "macAddress": "24:0f:9b:11:22:33", "channelID": 1, "dateTime": date_time,
            "activePostCount": 1, "eventType": "heartBeat", "eventState": "active",
            "eventDescription": "heartBeat"}


def hik_multipart(event: dict, *, picture: bool = True) -> tuple[str, bytes]:
    """The event as the device posts it: multipart/form-data, JSON part first, then a JPEG."""
    data = json.dumps(event, indent=1).encode()
    parts = [(b"--" + BOUNDARY.encode() + b"\r\n"
              b'Content-Disposition: form-data; name="AccessControllerEvent"\r\n'
              b"Content-Type: application/json\r\n"
              b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n")]
    if picture:
        parts.append(b"--" + BOUNDARY.encode() + b"\r\n"
                     b'Content-Disposition: form-data; name="Picture"; filename="Picture.jpg"\r\n'
                     b"Content-Type: image/jpeg\r\n"
                     b"Content-Length: " + str(len(JPEG)).encode() + b"\r\n"
                     b"Content-ID: pictureImage\r\n\r\n" + JPEG + b"\r\n")
    body = b"".join(parts) + b"--" + BOUNDARY.encode() + b"--\r\n"
    return f"multipart/form-data; boundary={BOUNDARY}", body


# --- IronLogic Web-JSON ------------------------------------------------------------------------

def z5r(sn: int, *messages: dict) -> dict:
    return {"type": "Z5RWEB", "sn": sn, "messages": list(messages)}


def power_on(message_id: int) -> dict:
    return {"id": message_id, "operation": "power_on", "fw": "3.23", "conn_fw": "2.0.35",
            "active": 0, "mode": 0, "controller_ip": "192.168.0.34"}


def ping(message_id: int) -> dict:
    return {"id": message_id, "operation": "ping", "active": 1, "mode": 0}


def check_access(message_id: int, card: str, reader: int = 1) -> dict:
    return {"id": message_id, "operation": "check_access", "card": card, "reader": reader}


def events(message_id: int, *items: tuple[int, str, str]) -> dict:
    """(event code, card, device local time) per event; flag 0."""
    return {"id": message_id, "operation": "events",
            "events": [{"event": code, "card": card, "time": when, "flag": 0}
                       for code, card, when in items]}
