"""Registered controllers of the three protocols, and the app with the device routes."""
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from app.access.protocols.models import DeviceProtocolSettings
from app.clubs.models import Club
from app.core import clock
from app.core.db import transaction

DEVICE_ADDRESS = "192.0.2.10"
"""Where the test client calls from: the club's device network (TEST-NET-1)."""
DEVICE_NETWORK = "192.0.2.0/24"


@pytest.fixture
def app(settings):
    from app.access.protocols.router import router
    from app.main import create_app

    application = create_app(settings)
    if not any(getattr(route, "path", None) == "/iclock/cdata" for route in application.routes):
        application.include_router(router)  # until app/main.py lists app.access.protocols.router
    return application


@pytest.fixture
def client(app):
    """The test client, calling from an address on the club's device network."""
    with TestClient(app, client=(DEVICE_ADDRESS, 50000)) as c:
        yield c


def client_from(app, address: str) -> TestClient:
    """Another caller: use as `with client_from(app, "198.51.100.7") as c:`."""
    return TestClient(app, client=(address, 50000))


@dataclass
class Controller:
    device_id: int
    club_id: int
    serial: str
    key: str
    protocol: str


@pytest.fixture
def controller(db, world):
    """controller(club, "zkteco", serial, timezone=None, direction="in", **settings).

    A ZKTeco device is approved by a manager and allowed from the test client's network
    (`allowed_networks=[...]` to choose others, `approved=False` to leave it quarantined)."""
    n = 0

    def make(club: Club, protocol: str, serial: str | None = None, *, timezone: str | None = None,
             direction: str = "in", approved: bool = True, **options) -> Controller:
        nonlocal n
        n += 1
        serial = serial or f"{protocol[:3].upper()}{club.id:04d}{n:04d}"
        device = world.device(club, f"{protocol}-{n}", direction=direction, protocol=protocol,
                              serial_number=serial, timezone=timezone)
        zk = protocol == "zkteco"
        if options or zk:
            networks = options.get("allowed_networks", [DEVICE_NETWORK] if zk else [])
            with transaction(db.sessionmaker) as s:
                s.add(DeviceProtocolSettings(
                    club_id=club.id, device_id=device.device_id,
                    allowed_networks=networks if approved or not zk else [],
                    open_door_seconds=options.get("open_door_seconds"),
                    approved_at=clock.now() if zk and approved else None))
        return Controller(device.device_id, club.id, serial, device.key, protocol)

    return make
