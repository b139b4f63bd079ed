"""Members tests act as the front desk: a club, a desk login, and a helper to register people."""
import pytest

from app.core.actors import Role
from tests.builders import Desk


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
