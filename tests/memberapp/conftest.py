"""The member app's tests: a club (`gym`, the `Shop` world of tests/builders.py) whose app sends
through real local servers — an SMTP server and an SMS gateway stand-in (tests/retention/
servers.py) — and the steps a member takes in the pages, as helpers."""
import re
from collections.abc import Iterator

import pytest

from app.core.config import Settings
from tests.builders import Shop
from tests.retention.servers import SmsGateway, SmtpServer

BASE = "http://testserver"
LINK = re.compile(r"(http://testserver/app/sign-in/link\?token=[A-Za-z0-9_\-]+)")
CODE = re.compile(r"\b(\d{6})\b")
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]*)"')


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def sms() -> Iterator[SmsGateway]:
    with SmsGateway() as gateway:
        yield gateway


@pytest.fixture
def settings(db, tmp_path_factory, smtp, sms) -> Settings:
    """The app's settings, sending email and SMS to the local servers."""
    return Settings(database_url=db.url, scheduler_enabled=False, _env_file=None,
                    data_dir=tmp_path_factory.getbasetemp() / "data", smtp_host="127.0.0.1",
                    smtp_port=smtp.port, sms_gateway_url=sms.url, sms_gateway_token="sms-key",
                    public_base_url=BASE)


@pytest.fixture
def gym(client, world) -> Shop:
    """A club with a manager and a desk (the API arranges)."""
    return Shop.open(client, world)


# --- what a member does in the pages ---------------------------------------------------------

def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def ask(client, address: str, lang: str | None = None):
    """Type an email address or a phone number on the sign-in page and send it."""
    headers = {"Accept-Language": lang} if lang else {}
    page = client.get("/app/sign-in", headers=headers)
    return client.post("/app/sign-in", data={"address": address, "csrf_token": csrf_of(page.text)},
                       headers=headers, follow_redirects=False)


def emails_to(smtp: SmtpServer, address: str) -> list:
    return [m for _from, to, m in smtp.messages if address in to]


def link_in(message) -> str:
    found = LINK.search(message.get_body(("plain",)).get_content())
    assert found, "no sign-in link in the email"
    return found.group(1)


def open_link(client, link: str):
    """Open the emailed link and press its button (the answer, not followed)."""
    page = client.get(link.removeprefix(BASE))
    assert page.status_code == 200, page.text
    token = link.rpartition("token=")[2]
    return client.post("/app/sign-in/link", data={"token": token, "csrf_token": csrf_of(page.text)},
                       follow_redirects=False)


def sign_in_by_email(client, smtp: SmtpServer, address: str):
    """The whole email sign-in: ask, read the link from the SMTP server, use it."""
    assert ask(client, address).status_code == 200
    return open_link(client, link_in(emails_to(smtp, address)[-1]))


def code_sent(sms: SmsGateway) -> str:
    found = CODE.search(sms.requests[-1]["body"]["text"])
    assert found, sms.requests[-1]
    return found.group(1)


def enter_code(client, code: str):
    page = client.get("/app/sign-in/code")
    assert page.status_code == 200, page.text
    return client.post("/app/sign-in/code", data={"code": code, "csrf_token": csrf_of(page.text)},
                       follow_redirects=False)


def post_form(client, page_path: str, action: str, data: dict, **kwargs):
    """POST a form of a page with the page's CSRF token."""
    page = client.get(page_path)
    assert page.status_code == 200, page.text
    return client.post(action, data=data | {"csrf_token": csrf_of(page.text)}, **kwargs)
