"""Custom fields tests: a club with an owner, a manager, the front desk and a trainer."""
import pytest

from app.core.actors import Role
from tests.builders import Desk


class Staffer(Desk):
    """A signed-in staff user of any role, talking to the API."""

    def define(self, key: str, type_: str, **fields) -> dict:
        body = {"key": key, "label": fields.pop("label", key.replace("_", " ").capitalize()),
                "type": type_, **fields}
        r = self.post("/custom-fields", body)
        assert r.status_code == 201, r.text
        return r.json()


@pytest.fixture
def club(world):
    return world.club("Riverside Fitness", timezone="Europe/Berlin")


@pytest.fixture
def owner(client, world, club) -> Staffer:
    return Staffer(client, world.staff(club, Role.owner), club)


@pytest.fixture
def manager(client, world, club) -> Staffer:
    return Staffer(client, world.staff(club, Role.manager), club)


@pytest.fixture
def desk(client, world, club) -> Staffer:
    return Staffer(client, world.staff(club, Role.front_desk), club)


@pytest.fixture
def trainer(client, world, club) -> Staffer:
    return Staffer(client, world.staff(club, Role.trainer), club)


@pytest.fixture
def other_owner(client, world) -> Staffer:
    """The owner of another club."""
    other = world.club("Hilltop Gym", timezone="Europe/Berlin")
    return Staffer(client, world.staff(other, Role.owner), other)


@pytest.fixture
def fields(owner) -> dict[str, dict]:
    """One field of each type; all searchable, none required."""
    return {
        "shirt_size": owner.define("shirt_size", "choice", choices=["S", "M", "L"],
                                   searchable=True),
        "weight_kg": owner.define("weight_kg", "number", label="Weight (kg)", searchable=True),
        "medical_check": owner.define("medical_check", "date", label="Medical check",
                                      searchable=True),
        "newsletter_paper": owner.define("newsletter_paper", "yes_no",
                                         label="Paper newsletter", searchable=True),
        "employer": owner.define("employer", "text", searchable=True),
    }
