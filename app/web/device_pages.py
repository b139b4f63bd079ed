"""Turnstiles page for owners and managers: the club's devices, approving a quarantined ZKTeco
device, rotating a device key (shown once, in the answer to the POST) and revoking a device.

Thin over `app.access.devices` (rules in docs/turnstiles.md). Installed by
`app.web.router.install`.
"""
from typing import Annotated

from fastapi import APIRouter, Form, Request

from app.access import devices
from app.core.schemas import IdPath
from app.web.auth import PageRoute, PageSession, back_to
from app.web.router import ManagerPage, done, render

router = APIRouter(include_in_schema=False, route_class=PageRoute)

DeviceId = IdPath("device id")
DEVICES_PAGE = "/manage/devices"


def _page(request: Request, session, actor, *, issued: dict | None = None):
    return render(request, "devices.html", {
        "title": "Turnstiles", "devices": devices.list_devices(session, club_id=actor.club_id),
        "issued": issued})


@router.get(DEVICES_PAGE)
def devices_page(request: Request, session: PageSession, actor: ManagerPage):
    return _page(request, session, actor)


@router.post(DEVICES_PAGE + "/{device_id}/approve")
def approve(request: Request, session: PageSession, actor: ManagerPage, device_id: DeviceId,
            networks: Annotated[str, Form(max_length=2000)] = "",
            seen: Annotated[list[str] | None, Form()] = None):
    """The networks typed in plus the seen addresses ticked; none: 422 (never a default)."""
    back_to(request, None, DEVICES_PAGE)
    wanted = [n for n in networks.replace(",", " ").split() if n]
    wanted += [a for a in (seen or [])[:devices.NETWORKS_MAX] if a.strip()]
    device = devices.approve_device(session, club_id=actor.club_id, device_id=device_id,
                                    allowed_networks=wanted or None, approved_by=actor.user_id)
    return done(request, DEVICES_PAGE, f"{device.name} is approved; it may call from "
                f"{', '.join(device.allowed_networks)}.")


@router.post(DEVICES_PAGE + "/{device_id}/rotate-key")
def rotate(request: Request, session: PageSession, actor: ManagerPage, device_id: DeviceId):
    back_to(request, None, DEVICES_PAGE)
    device, key = devices.rotate_key(session, club_id=actor.club_id, device_id=device_id)
    return _page(request, session, actor, issued={"name": device.name, "key": key,
                                                  "protocol": device.protocol})


@router.post(DEVICES_PAGE + "/{device_id}/revoke")
def revoke(request: Request, session: PageSession, actor: ManagerPage, device_id: DeviceId):
    back_to(request, None, DEVICES_PAGE)
    device = devices.revoke_device(session, club_id=actor.club_id, device_id=device_id)
    return done(request, DEVICES_PAGE, f"{device.name} is revoked: it is refused from now on.")
