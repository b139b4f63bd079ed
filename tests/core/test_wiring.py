"""Nothing registers itself by being imported: `app.wiring.install()` is the one place, and a
process that forgets it gets an error instead of silently skipped work."""
import subprocess
import sys
from pathlib import Path

import pytest

from app import wiring
from app.billing.service import line_kinds
from app.core import events
from app.core.events import MemberErased, MembershipSold, VisitGranted

ROOT = Path(__file__).resolve().parents[2]

IMPORT_EVERYTHING = """
import importlib, pkgutil, app
for module in pkgutil.walk_packages(app.__path__, "app."):
    if module.name != "app.asgi":  # the ASGI entry point builds the app (and so wires it)
        importlib.import_module(module.name)
from app.billing.service import line_kinds
from app.core import events
from app.core.events import MembershipSold
kinds = line_kinds()
handlers = [h for t in events.Event.__args__ for h in events.handlers(t)]
try:
    events.publish(None, MembershipSold(1, 1, 1, 1))
    refused = False
except RuntimeError:
    refused = True
print(len(kinds), len(handlers), refused)
"""


def test_importing_every_module_registers_nothing_and_publishing_before_wiring_fails():
    done = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], cwd=ROOT, text=True,
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "0", "True"]


def test_the_wiring_subscribes_each_domain_once():
    wiring.install()
    wiring.install()  # idempotent
    assert set(line_kinds()) >= {"membership", "pt_package", "product"}
    assert len(events.handlers(VisitGranted)) == 2  # retention stage, class attendance
    assert len(events.handlers(MembershipSold)) == 2  # lead won, turnstile allow-list
    assert len(events.handlers(MemberErased)) == 1


def test_handlers_can_be_replaced_for_a_test_and_come_back():
    wiring.install()
    before = events.handlers(VisitGranted)
    with events.replaced(VisitGranted, best_effort=[lambda session, event: None]):
        assert len(events.handlers(VisitGranted)) == 1
    assert events.handlers(VisitGranted) == before


@pytest.mark.parametrize("event", [VisitGranted])
def test_an_event_without_handlers_is_a_no_op(event):
    with events.replaced(event):
        events.publish(None, event(1, 1, None))
