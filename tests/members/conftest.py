"""Members tests act as the front desk: a club, a desk login, and a helper to register people."""
from dataclasses import dataclass

import pytest

from app.core.actors import Role


@dataclass
class Desk:
    """A signed-in front-desk user of one club, talking to the API."""

    client: object
    staff: object
    club: object

    @property
    def headers(self) -> dict[str, str]:
        return self.staff.headers

    def get(self, path: str, **kwargs):
        return self.client.get(f"/api/v1{path}", headers=self.headers, **kwargs)

    def post(self, path: str, json=None, **kwargs):
        return self.client.post(f"/api/v1{path}", json=json, headers=self.headers, **kwargs)

    def patch(self, path: str, json=None, **kwargs):
        return self.client.patch(f"/api/v1{path}", json=json, headers=self.headers, **kwargs)

    def register(self, first_name: str, last_name: str, **fields) -> dict:
        r = self.post("/members", {"first_name": first_name, "last_name": last_name, **fields})
        assert r.status_code == 201, r.text
        return r.json()

    def search(self, q: str | None = None, **params) -> dict:
        if q is not None:
            params["q"] = q
        r = self.get("/members", params=params)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def club(world):
    return world.club("Riverside Fitness", timezone="Europe/Berlin")


@pytest.fixture
def desk(client, world, club) -> Desk:
    return Desk(client, world.staff(club, Role.front_desk), club)


@pytest.fixture
def other_desk(client, world) -> Desk:
    """The front desk of another club."""
    other = world.club("Hilltop Gym", timezone="Europe/Berlin")
    return Desk(client, world.staff(other, Role.front_desk), other)


def names(page: dict) -> list[str]:
    return [item["name"] for item in page["items"]]
