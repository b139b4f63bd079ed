"""Outgoing channels behind one small interface: `send(message) -> Result`.

- `SmtpEmail`: smtplib (plain, STARTTLS or implicit TLS; optional login), one connection per
  message, a `List-Unsubscribe` header and a stable Message-ID per touchpoint;
- `HttpSms`: an HTTP gateway called with httpx — `POST {"to", "text"}` with
  `Authorization: Bearer <token>` and an `Idempotency-Key` per touchpoint; 2xx means accepted;
- `Recording`: keeps messages in memory (simulations and tests).

A `Result` says whether the channel accepted the message and, if not, whether trying again may
help (a timeout or a 5xx may; a refused address or a 4xx will not). Call and trainer tasks are
not channels: they are rows in the CRM, written in the dispatcher's transaction.
"""
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, parseaddr
from typing import Protocol, Self

import httpx

from app.core.config import Settings


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


@dataclass
class Result:
    ok: bool
    error: str | None = None
    retryable: bool = True
    provider_ref: str | None = None


class Channel(Protocol):
    def send(self, message: Message) -> Result: ...


class SmtpEmail:
    def __init__(self, settings: Settings):
        self.host, self.port = settings.smtp_host, settings.smtp_port
        self.user, self.password = settings.smtp_user, settings.smtp_password
        self.starttls, self.implicit_tls = settings.smtp_starttls, settings.smtp_ssl
        self.sender = settings.smtp_from
        self.timeout = settings.smtp_timeout

    def build(self, message: Message) -> EmailMessage:
        name, address = parseaddr(self.sender)
        domain = address.rpartition("@")[2] or "fitclub.local"
        email = EmailMessage()
        email["From"] = formataddr((message.sender_name or name, address))
        email["To"] = message.to
        email["Subject"] = message.subject
        email["Message-ID"] = f"<touchpoint-{message.touchpoint_id}@{domain}>"
        if message.unsubscribe_url:
            email["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
            email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email.set_content(message.body)
        return email

    def send(self, message: Message) -> Result:
        email = self.build(message)
        try:
            if self.implicit_tls:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                if self.starttls and not self.implicit_tls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            return Result(False, f"recipient refused: {exc.recipients}", retryable=False)
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)
            return Result(False, f"SMTP {exc.smtp_code}: {text}", retryable=exc.smtp_code < 500)
        except (smtplib.SMTPException, OSError) as exc:
            return Result(False, f"SMTP: {exc.__class__.__name__}: {exc}", retryable=True)
        return Result(True, provider_ref=email["Message-ID"])


class HttpSms:
    def __init__(self, settings: Settings, client: httpx.Client | None = None):
        self.url = settings.sms_gateway_url
        self.token = settings.sms_gateway_token
        self.client = client or httpx.Client(timeout=settings.sms_timeout)

    def send(self, message: Message) -> Result:
        headers = {"Idempotency-Key": f"touchpoint-{message.touchpoint_id}"}
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
