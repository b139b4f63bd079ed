import pytest


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """Argon2 with small parameters (these tests hash many passwords on a shared 2-core box); the
    hashes carry their parameters, so verification is unaffected in kind."""
    from argon2 import PasswordHasher

    from app.core import security

    monkeypatch.setattr(security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                            parallelism=1))
