"""Outgoing channels behind one small interface: `send(message) -> Result`.

- `SmtpEmail`: `app.core.mail` (smtplib: plain, STARTTLS or implicit TLS; optional login), one
  connection per message, a `List-Unsubscribe` header and a stable Message-ID per touchpoint;
- `HttpSms`: an HTTP gateway called with httpx — `POST {"to", "text"}` with
  `Authorization: Bearer <token>` and an `Idempotency-Key` per touchpoint (or the message's own
  `key`: the member app's sign-in codes); 2xx means accepted;
- `Recording`: keeps messages in memory (simulations and tests).

A `Result` says whether the channel accepted the message and, if not, whether trying again may
help (a timeout or a 5xx may; a refused address or a 4xx will not). Call and trainer tasks are
not channels: they are rows in the CRM, written in the dispatcher's transaction.
"""
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol, Self

import httpx

from app.core.config import Settings
from app.core.mail import Email, Mailer


@dataclass
class Message:
    touchpoint_id: int
    club_id: int
    member_id: int
    channel: str
    to: str
    subject: str
    body: str
    unsubscribe_url: str | None = None
    sender_name: str | None = None
    key: str | None = None
    """The message's idempotency key at the gateway; default "touchpoint-<id>" (the member app's
    sign-in codes send under keys of their own)."""


@dataclass
class Result:
    ok: bool
    error: str | None = None
    retryable: bool = True
    provider_ref: str | None = None


class Channel(Protocol):
    def send(self, message: Message) -> Result: ...


class SmtpEmail:
    """Email through `app.core.mail` (the one way the application sends email), with a
    `List-Unsubscribe` header and a stable Message-ID per touchpoint."""

    def __init__(self, settings: Settings):
        self.mailer = Mailer(settings)

    def build(self, message: Message) -> EmailMessage:
        return self.mailer.build(self._email(message))

    @staticmethod
    def _email(message: Message) -> Email:
        headers = {}
        if message.unsubscribe_url:
            headers["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return Email(to=message.to, subject=message.subject, body=message.body,
                     message_key=f"touchpoint-{message.touchpoint_id}",
                     sender_name=message.sender_name, headers=headers)

    def send(self, message: Message) -> Result:
        sent = self.mailer.send(self._email(message))
        if sent.ok:
            return Result(True, provider_ref=sent.message_id)
        return Result(False, sent.error, retryable=sent.retryable)


class HttpSms:
    def __init__(self, settings: Settings, client: httpx.Client | None = None):
        self.url = settings.sms_gateway_url
        self.token = settings.sms_gateway_token
        self.client = client or httpx.Client(timeout=settings.sms_timeout)

    def send(self, message: Message) -> Result:
        headers = {"Idempotency-Key": message.key or f"touchpoint-{message.touchpoint_id}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self.client.post(self.url, json={"to": message.to, "text": message.body},
                                        headers=headers)
        except httpx.HTTPError as exc:
            return Result(False, f"SMS gateway: {exc.__class__.__name__}: {exc}", retryable=True)
        if 200 <= response.status_code < 300:
            ref = None
            try:
                body = response.json()
                ref = str(body.get("id")) if isinstance(body, dict) and body.get("id") else None
            except ValueError:
                pass
            return Result(True, provider_ref=ref)
        retryable = response.status_code >= 500 or response.status_code in (408, 429)
        return Result(False, f"SMS gateway answered {response.status_code}: "
                             f"{response.text[:200]}", retryable=retryable)

    def close(self) -> None:
        self.client.close()


@dataclass
class Recording:
    """Accepts everything and remembers it (bounded); used by simulations and tests."""

    keep: int = 1000
    messages: list[Message] = field(default_factory=list)
    count: int = 0
    local: bool = True  # nothing leaves the process: the dispatcher may record in batches

    def send(self, message: Message) -> Result:
        self.count += 1
        if len(self.messages) < self.keep:
            self.messages.append(message)
        return Result(True, provider_ref=f"recorded-{self.count}")


@dataclass
class Channels:
    email: Channel | None = None
    sms: Channel | None = None

    def for_name(self, name: str) -> Channel | None:
        return {"email": self.email, "sms": self.sms}.get(name)

    def close(self) -> None:
        for channel in (self.email, self.sms):
            closer = getattr(channel, "close", None)
            if closer:
                closer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def from_settings(settings: Settings) -> Channels:
    """Email always (SMTP defaults to localhost); SMS only when a gateway URL is configured."""
    sms = HttpSms(settings) if settings.sms_gateway_url else None
    return Channels(email=SmtpEmail(settings), sms=sms)


def recording() -> Channels:
    return Channels(email=Recording(), sms=Recording())
