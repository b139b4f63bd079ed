from tests.memberships.conftest import _cheap_password_hashing, shop  # noqa: F401 - fixtures
