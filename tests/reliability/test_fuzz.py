"""API fuzzing with Schemathesis over the whole OpenAPI schema of `create_app(settings)`.

Every operation gets a bounded number of generated requests (positive *and* negative data),
derandomised so a run is reproducible, sent once as the owner of a seeded club and once as the
club's device. Checks: no 5xx (an unhandled exception counts as a 5xx), the status code is one the
operation declares, the content type and (for 2xx) the body match the declared schema.

Failures are collected, not raised one by one, so a run reports every failing operation at once
(and Hypothesis does not spend minutes shrinking). Longer run (see docs/reliability.md):

    FITCLUB_FUZZ_EXAMPLES=200 .venv/bin/pytest tests/reliability/test_fuzz.py -q
"""
import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hyp_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = int(os.environ.get("FITCLUB_FUZZ_EXAMPLES", "6"))

# Operations not fuzzed, with the reason. Logout would revoke the token every other case uses.
SKIPPED = {
    ("POST", "/api/v1/auth/logout"): "revokes the fuzzing token; covered in tests/core/test_auth.py",
}

# Known failures (method, path) -> reason, each reported to its owner; remove an entry when fixed.
KNOWN_FAILURES: dict[tuple[str, str], str] = {}

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
NEGATIVE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]


def _load_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _fuzz_operation(operation, headers: dict, mode: GenerationMode, examples: int,
                    failures: list, stats: Counter) -> None:
    checks = CHECKS if mode is GenerationMode.POSITIVE else NEGATIVE_CHECKS
    label = f"{operation.method.upper()} {operation.path}"

    @hyp_settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        stats["cases"] += 1
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # noqa: BLE001 - the app raised: a 500 in production
            failures.append(f"{label} [{mode.value}] raised {type(exc).__name__}: {exc}\n"
                            f"  {case.as_curl_command()}")
            return
        stats[response.status_code // 100] += 1
        try:
            case.validate_response(response, checks=checks)
        except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
            found = getattr(exc, "exceptions", [exc])
            titles = "; ".join(f"{getattr(f, 'title', type(f).__name__)}: "
                               f"{str(getattr(f, 'message', f))[:300]}" for f in found)
            failures.append(f"{label} [{mode.value}] {response.status_code} {titles}\n"
                            f"    body: {response.text[:300]}\n    {case.as_curl_command()[:600]}")

    try:
        run()
    except Unsatisfiable:  # nothing to negate (an operation without parameters or body)
        pass


def _device_operation(operation) -> bool:
    """Operations a device key authenticates (APIKeyHeader security)."""
    return any("APIKeyHeader" in requirement
               for requirement in operation.definition.raw.get("security") or [])


@pytest.mark.slow
@pytest.mark.parametrize("as_", ["owner", "device"])
def test_fuzz_whole_api(db, app, client, clubs, as_):
    headers = clubs.a.owner.headers if as_ == "owner" else clubs.a.device.headers
    schema = _load_schema(app)
    failures: list[str] = []
    stats: Counter = Counter()
    operations = known = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        if key in SKIPPED:
            continue
        operations += 1
        before = len(failures)
        examples = EXAMPLES
        if as_ == "device" and not _device_operation(operation):
            examples = max(2, EXAMPLES // 3)  # staff operations: the device key must get a 401
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(operation, headers, mode, examples, failures, stats)
        if key in KNOWN_FAILURES:
            known += len(failures) - before
            del failures[before:]
    print(f"\nfuzz[{db.backend}, {as_}]: {operations} operations, {stats['cases']} cases, "
          f"2xx={stats[2]} 4xx={stats[4]} 5xx={stats[5]}, failures={len(failures)}, "
          f"known failures={known}")
    if failures:
        print("\n".join(dict.fromkeys(failures)))
    assert not failures, f"{len(failures)} fuzz failures (printed above)"
