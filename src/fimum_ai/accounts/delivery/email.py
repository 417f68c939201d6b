"""E-mail over SMTP with aiosmtplib: one connection per message (codes are few, and a fresh connection
never trips over a server-side idle timeout)."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Literal

import aiosmtplib

from fimum_ai.accounts.delivery.base import DeliveryError, OtpMessage
from fimum_ai.accounts.delivery.messages import email_html, email_subject, email_text
from fimum_ai.settings import Settings

TlsMode = Literal["none", "starttls", "tls"]
_DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "tls": 465}


class SmtpChannel:
    name = "smtp"

    def __init__(
        self,
        *,
        host: str,
        port: int | None = None,
        tls: TlsMode = "starttls",
        username: str | None = None,
        password: str | None = None,
        sender: str = "Fimum AI <no-reply@localhost>",
        timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`ssl_context` is the trust the server's certificate is checked against; None means the
        system's default CAs. Certificates are always verified."""
        self.host = host
        self.port = port if port is not None else _DEFAULT_PORTS[tls]
        self.tls = tls
        self.username = username
        self._password = password
        self.sender = sender
        self.timeout_s = timeout_s
        self._ssl_context = ssl_context or ssl.create_default_context()
        _, self._envelope_from = parseaddr(sender)
        if "@" not in self._envelope_from:
            raise ValueError(f"smtp_from: {sender!r} has no e-mail address")
        if username and password is None:
            raise ValueError("smtp_password: required with smtp_user")

    @classmethod
    def from_settings(cls, settings: Settings, *, ssl_context: ssl.SSLContext | None = None) -> SmtpChannel:
        if not settings.smtp_host:
            raise ValueError("smtp_host is not set")
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            tls=settings.smtp_tls,
            username=settings.smtp_user,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            sender=settings.smtp_from,
            timeout_s=settings.smtp_timeout_s,
            ssl_context=ssl_context,
        )

    def build(self, message: OtpMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.recipient
        mail["Subject"] = email_subject(message)
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = make_msgid(domain=self._envelope_from.rpartition("@")[2])
        # RFC 3834: tells vacation responders and list servers not to answer.
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(email_text(message))
        mail.add_alternative(email_html(message), subtype="html")
        return mail

    async def send(self, message: OtpMessage) -> None:
        try:
            await aiosmtplib.send(
                self.build(message),
                sender=self._envelope_from,
                recipients=[message.recipient],
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self._password,
                use_tls=self.tls == "tls",
                start_tls=self.tls == "starttls",
                tls_context=self._ssl_context,
                timeout=self.timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise _delivery_error(exc) from exc
        except ValueError as exc:  # an address the server cannot take (e.g. non-ASCII without SMTPUTF8)
            raise DeliveryError(f"the message cannot be sent: {exc}", permanent=True) from exc

    async def aclose(self) -> None:
        return None


def _delivery_error(exc: BaseException) -> DeliveryError:
    """5xx replies and configuration problems are permanent; connection trouble and 4xx are not."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refused.code for refused in exc.recipients]
        permanent = all(code >= 500 for code in codes)
        return DeliveryError(f"SMTP server refused the recipient ({codes[0]})", permanent=permanent)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        what = type(exc).__name__.removeprefix("SMTP")
        return DeliveryError(
            f"SMTP server answered {exc.code} ({what})", permanent=exc.code >= 500, details={"smtp": exc.code}
        )
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        # E.g. no STARTTLS or no AUTH on the server: only a configuration change helps.
        return DeliveryError(f"SMTP server does not support what is configured: {exc}", permanent=True)
    if _caused_by(exc, ssl.SSLCertVerificationError):
        return DeliveryError("SMTP server certificate could not be verified", permanent=True)
    if isinstance(exc, TimeoutError):
        return DeliveryError("SMTP server timed out")
    return DeliveryError(f"SMTP connection failed ({type(exc).__name__})")


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False
