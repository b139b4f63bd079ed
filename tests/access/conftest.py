"""Access tests: `gym` builds members (each with a card), plans, memberships, freezes and sales
as rows (tests/builders.py), committed for real (the check-in runs in another session).
"""
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from app.core import clock
from tests.builders import Profile, World

BERLIN = ZoneInfo("Europe/Berlin")
ACCESS = Profile(last_name="Muster", card="C{club:03d}{n:05d}")
"""Every member has a card unless told `card=None`."""


def today(zone: ZoneInfo = BERLIN) -> date:
    return clock.today(zone)


def local(day: date, hh: int, mm: int = 0, zone: ZoneInfo = BERLIN) -> datetime:
    """An aware instant for a wall-clock time in the club's zone."""
    return datetime.combine(day, time(hh, mm), tzinfo=zone)


def iso(at: datetime) -> str:
    return at.isoformat()


def count_rows(session, model, *where) -> int:
    """Count rows, then end the read: on SQLite every transaction holds the write lock."""
    from sqlalchemy import func, select

    n = session.scalar(select(func.count()).select_from(model).where(*where))
    session.rollback()
    return n


@pytest.fixture
def gym(db) -> World:
    return World(db, ACCESS)


@pytest.fixture
def post_event(client):
    """Post a turnstile event: post_event(device, card, event_id=..., occurred_at=..., direction=...)."""

    def post(device, card: str, **fields):
        body = {"card": card} | {k: (iso(v) if isinstance(v, datetime) else v)
                                 for k, v in fields.items() if v is not None}
        return client.post("/api/v1/access/events", json=body, headers=device.headers)

    return post
