from tests.memberships.conftest import shop  # noqa: F401 - the same fixture
