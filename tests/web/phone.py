"""What the member app's browser tests share: a phone-sized page (390×844), a real SMTP server
the app sends to, the app's settings pointing at it, and checks every page must pass.

A test module takes the fixtures by importing them (`from tests.web.phone import smtp, settings,
phone  # noqa: F401`): pytest finds fixtures in the module's namespace."""
import re
import time
from collections.abc import Callable, Iterator

import pytest

from app.core.config import Settings
from app.web.member_kit import MEMBER_COOKIE
from tests.retention.servers import SmtpServer

PHONE = {"width": 390, "height": 844}
LINK = re.compile(r"https?://[^/\s]+(/app/sign-in/link\?token=[A-Za-z0-9_\-]+)")
UNLABELLED = """() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(el => el.type !== 'hidden')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map(el => el.name || el.id)"""
"""The form fields without a label (a page must have none)."""
FITS = "document.documentElement.scrollWidth <= window.innerWidth"
"""Nothing wider than the phone (no sideways scrolling)."""


def arrived(smtp: SmtpServer, found: Callable[[list], list], seconds: float = 10) -> list:
    """The messages `found` picks, once there are any: the app sends after its answer."""
    deadline = time.monotonic() + seconds
    while not (hits := found(smtp.messages)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return hits


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def settings(db, tmp_path_factory, smtp) -> Settings:
    return Settings(database_url=db.url, scheduler_enabled=False, _env_file=None,
                    data_dir=tmp_path_factory.getbasetemp() / "data", smtp_host="127.0.0.1",
                    smtp_port=smtp.port)


@pytest.fixture
def phone(browser, live_server, world):
    """A phone-sized browser on the live server: `phone()` opens another, signed-out one,
    `phone(member_id)` one signed in as that member. JS errors fail the test."""
    contexts, errors = [], []

    def open_tab(member: int | None = None):
        context = browser.new_context(base_url=live_server, viewport=PHONE, has_touch=True,
                                      is_mobile=True, locale="en-GB")
        context.set_default_timeout(10_000)
        if member is not None:
            context.add_cookies([{"name": MEMBER_COOKIE, "value": world.app_session(member),
                                  "url": f"{live_server}/app"}])
        contexts.append(context)
        tab = context.new_page()
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        return tab

    yield open_tab
    for context in contexts:
        context.close()
    assert not errors, f"errors in the browser: {errors}"
