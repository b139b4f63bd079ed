"""Privacy tests: a club with owner, manager and desk, and a builder that gives one person a row
in (nearly) every table through the real API and the retention engine.

`scan(db, needles)` is the generic check behind erasure: it walks every table of the schema and
every string or JSON column, so tables other packages add are scanned too.
"""
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

import pytest
from sqlalchemy import String, func, select
from sqlalchemy.types import JSON

from app.clubs import service as clubs_service
from app.core import clock
from app.core.actors import Role
from app.core.db import transaction
from app.privacy import graph
from app.registry import metadata
from app.retention import service as retention_service
from app.retention.channels import Channels, Recording
from app.retention.dispatch import dispatch_due, message_window_opens
from app.retention.models import ScheduledTouchpoint
from tests.builders import ClubApi

API = "/api/v1"


class Club(ClubApi):
    """A club with owner, manager and desk (tests/builders.py `ClubApi`), calling the API."""

    plan_body: ClassVar[dict] = {"name": "Monthly", "duration_months": 1, "price": "50.00", "freeze_days": 14}
    member_body: ClassVar[dict] = {"different_person": True}  # near-duplicates on purpose: no warning

    def call(self, method: str, path: str, staff=None, **kwargs):
        staff = staff or self.desk
        return self.client.request(method, API + path, headers=staff.headers, **kwargs)

    def ok(self, method: str, path: str, staff=None, status: int | None = None, **kwargs):
        r = self.call(method, path, staff=staff, **kwargs)
        assert r.status_code == (status or r.status_code) and r.status_code < 300, r.text
        return r.json()

    def sell(self, member_id: int, plan_id: int, **body) -> dict:
        """A membership paid in cash, by the desk (by the manager when it has a start date)."""
        return self.membership(member_id, plan_id, start_offset=None,
                               staff=self.manager if body.get("start_date") else self.desk,
                               **{"payments": [{"method": "cash", "amount": "50.00"}], **body})

    def check_in(self, member_id: int) -> dict:
        return self.ok("POST", f"/members/{member_id}/check-ins")

    def cafe_sale(self, member_id: int, note: str) -> dict:
        product = self.product(sku=f"SHAKE-{self._next()}", name="Vanilla shake",
                               category="drinks", sale_price="4.50")
        self.receive(product["id"], 10, "1.50")
        return self.ok("POST", "/sales", json={
            "member_id": member_id, "lines": [{"kind": "product", "product_id": product["id"]}],
            "payments": [{"method": "card", "amount": "4.50"}], "note": note})

    def owned_counts(self, member_id: int) -> dict[str, int]:
        """Rows per table that belong to the member (the graph privacy uses)."""
        with self.db.sessionmaker() as s:
            return {name: s.scalar(select(func.count()).select_from(metadata.tables[name])
                                   .where(graph.owned_where(name, member_id)))
                    for name in graph.owned_tables()}

    def send_welcome_email(self, member_id: int, as_of=None) -> None:
        """Run the retention engine for `as_of` and deliver what is due (recorded, not sent).

        In the club's quiet hours the dispatcher delivers when they end, as it would."""
        now = clock.now()
        retention_service.run_day(self.db.sessionmaker, club_id=self.club.id,
                                  as_of=as_of or self.today, now=now, force=True)
        with transaction(self.db.sessionmaker) as s:
            s.execute(ScheduledTouchpoint.__table__.update()
                      .where(ScheduledTouchpoint.member_id == member_id)
                      .values(due_at=now - timedelta(minutes=1)))
        dispatch_due(self.db.sessionmaker, channels=Channels(email=Recording(), sms=Recording()),
                     now=message_window_opens(clubs_service.club_zone(self.club), now,
                                              clubs_service.club_settings(self.club)))


@pytest.fixture
def club(client, world) -> Club:
    c = world.club("Riverside Fitness", timezone="Europe/Berlin")
    return Club(client, world, c, owner=world.staff(c, Role.owner),
                manager=world.staff(c, Role.manager), desk=world.staff(c, Role.front_desk))


@dataclass
class Person:
    id: int
    first: str
    last: str
    email: str
    phone: str
    birth_date: str
    card: str

    @property
    def needles(self) -> list[str]:
        return [self.first, self.last, self.email, self.phone, self.phone.lstrip("+"),
                self.card, self.birth_date]


def full_person(c: Club, *, first="Zephyrine", last="Quillfeather",
                email="zephyrine.q@example.org", phone="+4915123456789",
                birth_date="1987-04-23", card="ZQ-7781") -> Person:
    """One person with a card, consents, a note, a membership, a visit, a café sale, a welcome
    email sent by the engine, a task and an interaction that mention them."""
    m = c.register(first, last, email=email, phone=phone, birth_date=birth_date, card=card,
                   consents={"email": True, "sms": True})
    mid = m["id"]
    c.ok("POST", f"/members/{mid}/notes", json={"text": f"{first} asked about knee rehab"})
    plan = c.plan()
    joined = c.today - timedelta(days=45)
    c.sell(mid, plan["id"], start_date=joined.isoformat())
    c.send_welcome_email(mid, as_of=joined)
    assert c.count("scheduled_touchpoints", member_id=mid, status="sent") == 1
    c.sell(mid, plan["id"], note=f"Sold to {first} {last}")
    c.check_in(mid)
    turnstile = c.world.device(c.club)
    r = c.client.post(f"{API}/access/events", json={"card": card.lower(), "event_id": f"{card}-1"},
                      headers=turnstile.headers)
    assert r.status_code == 200, r.text
    c.cafe_sale(mid, note=f"for {first} {last}, {phone}")
    c.ok("POST", "/tasks", json={"title": f"Call {first} {last} back",
                                  "details": f"ring {phone} or write to {email}",
                                  "member_id": mid})
    c.ok("POST", f"/members/{mid}/interactions", json={
        "kind": "call", "summary": f"Talked with {first} about her birthday {birth_date}",
        "outcome": "reached"})
    return Person(mid, first, last, email, phone, birth_date, card)


def scan(db, needles: list[str]) -> list[tuple[str, str, int, str]]:
    """(table, column, row id, needle) for every string or JSON value anywhere in the database
    that contains one of `needles` (case-insensitive)."""
    lowered = [n.lower() for n in needles if n]
    found = []
    with db.sessionmaker() as s:
        for table in metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | JSON)]
            if not columns:
                continue
            pk = list(table.primary_key.columns)
            for row in s.execute(select(*pk, *columns)):
                values = row._mapping
                for column in columns:
                    value = values[column.name]
                    if value is None:
                        continue
                    text = (value if isinstance(value, str) else repr(value)).lower()
                    for needle in lowered:
                        if needle in text:
                            found.append((table.name, column.name, values[pk[0].name], needle))
    return found
