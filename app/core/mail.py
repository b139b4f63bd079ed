"""Sending email over SMTP: the one way the application sends an email.

`Mailer(settings).send(Email(...)) -> Sent`: smtplib (plain, STARTTLS or implicit TLS; optional
login), one connection per message. An `Email` may carry a stable Message-ID (`message_key`,
e.g. "touchpoint-12" or "notice-7") so a message sent twice can be recognised, extra headers
(List-Unsubscribe) and an HTML part. `Sent` says whether the server accepted it and, if not,
whether trying again may help: a timeout, a lost connection or a 4xx answer may; a refused
recipient or a 5xx answer will not. Used by retention's email channel and the dues notices.
"""
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, parseaddr

from app.core.config import Settings


@dataclass
class Email:
    to: str
    subject: str
    body: str
    html: str | None = None
    message_key: str | None = None
    """The local part of a stable Message-ID (`<key@sender's domain>`); None: one is made up."""
    sender_name: str | None = None
    """Shown instead of the configured sender's name (the club's name, say)."""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Sent:
    ok: bool
    error: str | None = None
    retryable: bool = True
    message_id: str | None = None


class Mailer:
    def __init__(self, settings: Settings):
        self.host, self.port = settings.smtp_host, settings.smtp_port
        self.user, self.password = settings.smtp_user, settings.smtp_password
        self.starttls, self.implicit_tls = settings.smtp_starttls, settings.smtp_ssl
        self.sender = settings.smtp_from
        self.timeout = settings.smtp_timeout

    def build(self, email: Email) -> EmailMessage:
        """The message as it goes out."""
        name, address = parseaddr(self.sender)
        domain = address.rpartition("@")[2] or "fitclub.local"
        message = EmailMessage()
        message["From"] = formataddr((email.sender_name or name, address))
        message["To"] = email.to
        message["Subject"] = email.subject
        if email.message_key:
            message["Message-ID"] = f"<{email.message_key}@{domain}>"
        else:
            message["Message-ID"] = make_msgid(domain=domain)
        for header, value in email.headers.items():
            message[header] = value
        message.set_content(email.body)
        if email.html:
            message.add_alternative(email.html, subtype="html")
        return message

    def send(self, email: Email) -> Sent:
        """Send one message on a connection of its own; never raises for SMTP or network
        trouble (the answer says what went wrong and whether to try again)."""
        message = self.build(email)
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
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            return Sent(False, f"recipient refused: {exc.recipients}", retryable=False)
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)
            return Sent(False, f"SMTP {exc.smtp_code}: {text}", retryable=exc.smtp_code < 500)
        except (smtplib.SMTPException, OSError) as exc:
            return Sent(False, f"SMTP: {exc.__class__.__name__}: {exc}", retryable=True)
        return Sent(True, message_id=message["Message-ID"])
