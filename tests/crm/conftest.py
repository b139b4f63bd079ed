from tests.retention.conftest import rw  # noqa: F401 - the same builders
