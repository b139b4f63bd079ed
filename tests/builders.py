"""Small builders that arrange a club's world through the services (committed for real)."""
from dataclasses import dataclass, field
from datetime import timedelta

from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core.actors import Role
from app.core.db import transaction

PASSWORD = "correct horse battery"


@dataclass
class Staff:
    user_id: int
    email: str
    club_id: int
    role: Role
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class DeviceKey:
    device_id: int
    club_id: int
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Device-Key": self.key}


@dataclass
class World:
    db: object
    _n: int = field(default=0)

    def _next(self) -> int:
        self._n += 1
        return self._n

    def club(self, name: str = "Riverside Fitness", timezone: str = "Europe/Berlin",
             **settings) -> Club:
        with transaction(self.db.sessionmaker) as s:
            club = clubs_service.create_club(s, name=name, timezone=timezone)
            if settings:
                clubs_service.update_club_settings(s, club=club, changes=settings)
            return club

    def staff(self, club: Club, role: Role | str = Role.front_desk, email: str | None = None) -> Staff:
        role = Role(role)
        email = email or f"{role.value}{self._next()}@club{club.id}.test"
        with transaction(self.db.sessionmaker) as s:
            user = clubs_service.create_user(s, email=email, name=email.split("@")[0],
                                             password=PASSWORD)
            clubs_service.grant_role(s, by=None, user=user, club=club, role=role)
            token, _ = clubs_service.login(s, email=email, password=PASSWORD,
                                           ttl=timedelta(days=2))  # outlives a test that moves its clock
            return Staff(user.id, email, club.id, role, token)

    def device(self, club: Club, name: str | None = None, **kwargs) -> DeviceKey:
        with transaction(self.db.sessionmaker) as s:
            device, key = clubs_service.add_device(s, club=s.get(Club, club.id),
                                                   name=name or f"turnstile-{self._next()}",
                                                   **kwargs)
            return DeviceKey(device.id, club.id, key)
