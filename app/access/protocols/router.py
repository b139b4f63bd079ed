"""Every device-protocol route, each a thin translation to one adapter call (docs/turnstiles.md).

ZKTeco devices speak text/plain on fixed `/iclock/…` paths and are named by `?SN=`; errors are
plain text too (an unknown serial is not answered 200, so the firmware keeps re-handshaking).
Hikvision and IronLogic speak JSON.
"""
import json
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import JSONResponse, PlainTextResponse

from app.access.protocols import hikvision, ironlogic, zkteco
from app.access.protocols.common import ProtocolDevice, resolve_device, throttle
from app.core.db import transaction
from app.core.deps import SessionDep
from app.core.errors import DomainError, Unauthorized

router = APIRouter(tags=["device protocols"])

ZK_BODY_MAX = 2 * 1024 * 1024
HIK_BODY_MAX = 8 * 1024 * 1024  # an event with its pictures
IL_BODY_MAX = 1024 * 1024


def _body(limit: int) -> Callable[[Request], Awaitable[bytes]]:
    async def read(request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, f"The body is larger than {limit} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"The body is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    return read


ZkBody = Annotated[bytes, Depends(_body(ZK_BODY_MAX))]
HikBody = Annotated[bytes, Depends(_body(HIK_BODY_MAX))]
IlBody = Annotated[bytes, Depends(_body(IL_BODY_MAX))]


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


# --- ZKTeco PUSH -------------------------------------------------------------------------------

def _query(request: Request, name: str) -> str | None:
    """A query parameter by name, any case (firmware differ: `SN`, `sn`; `table`, `Table`)."""
    wanted = name.lower()
    for key, value in request.query_params.multi_items():
        if key.lower() == wanted:
            return value
    return None


ZK_ERRORS = {status: {"description": "refused (unknown or not allowed device, bad upload): the "
                              "reason as plain text, which firmware shows in its log",
                      "content": {"text/plain": {"schema": {"type": "string"}}}}
             for status in (400, 403, 404, 409, 422)}


ZK_ERRORS[404]["description"] = (
    "refused: the same answer for an unknown, revoked, quarantined (not yet approved) serial and "
    "for a call from outside the device's allowed networks")
ZK_ERRORS[429] = {"description": "too many requests for this serial number or from this "
                                 "address; retry after Retry-After seconds",
                  "content": {"text/plain": {"schema": {"type": "string"}}}}


def _zk(request: Request, session, work: Callable[[ProtocolDevice], str]) -> PlainTextResponse:
    serial, client = _query(request, "SN"), _client(request)
    with transaction(request.app.state.sessionmaker) as counting:  # kept whatever follows
        wait = throttle(counting, serial=serial, client_ip=client)
    if wait is not None:
        return PlainTextResponse(f"Too many requests; try again in {wait} seconds",
                                 status_code=429, headers={"Retry-After": str(wait)})
    try:
        device = resolve_device(session, protocol="zkteco", serial=serial, client_ip=client)
        return PlainTextResponse(work(device))
    except DomainError as exc:
        return PlainTextResponse(exc.message, status_code=exc.status_code)


@router.get("/iclock/cdata", response_class=PlainTextResponse, responses=ZK_ERRORS,
            summary="ZKTeco handshake: the options the device runs with")
def zk_handshake(request: Request, session: SessionDep) -> PlainTextResponse:
    return _zk(request, session, zkteco.handshake)


@router.post("/iclock/cdata", response_class=PlainTextResponse, responses=ZK_ERRORS,
             summary="ZKTeco uploads (ATTLOG, rtlog, tables) and background verification")
def zk_cdata(request: Request, session: SessionDep, body: ZkBody) -> PlainTextResponse:
    if (_query(request, "AuthType") or "").lower() == "device":
        return _zk(request, session, lambda device: zkteco.verify(session, device, body))
    return _zk(request, session, lambda device: zkteco.upload(
        session, device, table=_query(request, "table"),
        tablename=_query(request, "tablename"), count=_query(request, "count"), body=body))


@router.get("/iclock/getrequest", response_class=PlainTextResponse, responses=ZK_ERRORS,
            summary="ZKTeco command poll: OK or C:<id>:<command> lines")
def zk_getrequest(request: Request, session: SessionDep) -> PlainTextResponse:
    return _zk(request, session, lambda device: zkteco.poll(session, device))


@router.post("/iclock/devicecmd", response_class=PlainTextResponse, responses=ZK_ERRORS,
             summary="ZKTeco command results (ID=…&Return=…&CMD=…)")
def zk_devicecmd(request: Request, session: SessionDep, body: ZkBody) -> PlainTextResponse:
    return _zk(request, session, lambda device: zkteco.results(session, device, body))


@router.get("/iclock/ping", response_class=PlainTextResponse, responses=ZK_ERRORS, summary="ZKTeco keep-alive")
def zk_ping(request: Request, session: SessionDep) -> PlainTextResponse:
    return _zk(request, session, lambda device: "OK")


# --- Hikvision ISAPI ---------------------------------------------------------------------------

@router.post("/api/v1/devices/hikvision/{serial}/{key}/events",
             summary="Hikvision event listener (httpHosts URL); remote checks answered inline")
def hikvision_event(request: Request, session: SessionDep, body: HikBody,
                    serial: Annotated[str, Path(max_length=64)],
                    key: Annotated[str, Path(max_length=100)]) -> JSONResponse:
    device = resolve_device(session, protocol="hikvision", serial=serial,
                            client_ip=_client(request), key=key, key_required=True)
    try:
        event = hikvision.parse(request.headers.get("content-type"), body)
    except hikvision.Unreadable as exc:
        return JSONResponse({"error": "unreadable_event", "details": None,
                             "message": f"{exc}; set the httpHosts parameterFormatType to JSON"},
                            status_code=400)
    return JSONResponse(hikvision.handle(session, device, event))


# --- IronLogic Web-JSON ------------------------------------------------------------------------

@router.post("/api/v1/devices/ironlogic",
             summary="IronLogic Z5R-Web Web-JSON: the controller's periodic post")
def ironlogic_post(request: Request, session: SessionDep, body: IlBody) -> JSONResponse:
    try:
        payload = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return JSONResponse({"error": "invalid_body", "details": None,
                             "message": "Expected {\"type\", \"sn\", \"messages\"}"},
                            status_code=400)
    try:
        device = resolve_device(session, protocol="ironlogic",
                                serial=ironlogic.serial_of(payload), client_ip=_client(request),
                                key=ironlogic.basic_password(request.headers.get("authorization")),
                                key_required=True)
    except Unauthorized as exc:
        return JSONResponse({"error": exc.code, "message": exc.message, "details": None},
                            status_code=401, headers={"WWW-Authenticate": 'Basic realm="fitclub"'})
    return JSONResponse(ironlogic.handle(session, device, payload))
