"""Shared arrangements for the reliability tests: two clubs with one of everything, built
through the API as staff would (so the fixtures follow the services' current signatures)."""
from dataclasses import dataclass

import pytest

from app.core.actors import Role
from tests.builders import ClubApi, DeviceKey, Staff


@dataclass
class ClubWorld:
    """A club with staff of every role, a device, a member with a card and a membership,
    a plan and a café product with stock, and the ids of all of them."""

    club_id: int
    staff: dict[Role, Staff]
    device: DeviceKey
    ids: dict[str, int]
    card: str
    member_token: str = ""
    """The member's member-app session (the `fitclub_member` cookie)."""

    @property
    def owner(self) -> Staff:
        return self.staff[Role.owner]


def _ok(response, *codes):
    assert response.status_code in (codes or (200, 201)), (response.request.url, response.text)
    return response.json() if response.content else None


def arrange_club(client, world, name: str, card: str) -> ClubWorld:
    club = world.club(name=name)
    staff = {role: world.staff(club, role) for role in Role}
    device = world.device(club)
    owner = staff[Role.owner]
    api = ClubApi(client, world, club, owner=owner, manager=owner, desk=owner)
    ids: dict[str, int] = {"club": club.id}
    ids["member"] = api.register("Ada", "Lovelace", email=f"ada.{club.id}@example.org",
                                 phone="+49 151 2345678" + str(club.id % 10), card=card)["id"]
    ids["plan"] = api.plan(price="49.00")["id"]
    sold = api.membership(ids["member"], ids["plan"], start_offset=None,
                          payments=[{"method": "card", "amount": "49.00"}])
    ids["membership"] = sold.get("membership", sold).get("id") if isinstance(sold, dict) else None
    ids["product"] = api.product(sku=f"WATER{club.id}", name="Water 0.5l", category="other",
                                 sale_price="2.00", reorder_level=5)["id"]
    api.receive(ids["product"], 100000, "0.50")
    sale = _ok(client.post("/api/v1/inventory/sales", headers=owner.headers, json={
        "items": [{"product_id": ids["product"], "quantity": 1}],
        "payments": [{"method": "cash", "amount": "2.00"}]}))
    ids["sale"] = sale["id"]
    return ClubWorld(club.id, staff, device, ids, card, world.app_session(ids["member"]))


@dataclass
class TwoClubs:
    a: ClubWorld
    b: ClubWorld


@pytest.fixture
def clubs(client, world) -> TwoClubs:
    return TwoClubs(arrange_club(client, world, "Club A", "CARD-A-0001"),
                    arrange_club(client, world, "Club B", "CARD-B-0001"))
