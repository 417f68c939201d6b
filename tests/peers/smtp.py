"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives.

Plain, STARTTLS or implicit TLS (a trustme CA signs its certificate; `client_context` trusts it),
optional AUTH, and switches for the failure cases: a slow DATA, N times 451, a 550 recipient.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Security = Literal["plain", "starttls", "tls"]


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None  # the AUTH user, if the client logged in
    tls: bool  # whether the session was encrypted

    def part(self, subtype: str) -> str:
        """The text/<subtype> body (plain or html), decoded."""
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None and body.get_content_subtype() == subtype, f"no text/{subtype} part"
        return str(body.get_content())


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        with self.server.lock:
            self.server.rcpt_attempts += 1
        if address.lower() in self.server.refused:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        with self.server.lock:
            self.server.data_attempts += 1
            delay = self.server.data_delay_s
        if delay:
            await asyncio.sleep(delay)
        with self.server.lock:
            if self.server.fail_data > 0:
                self.server.fail_data -= 1
                return "451 4.3.0 Temporary local problem, try again later"
        assert isinstance(envelope.content, bytes)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        auth = session.auth_data
        mail = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            message=parsed,
            login=auth.login.decode() if isinstance(auth, LoginPassword) else None,
            tls=smtp.transport is not None and smtp.transport.get_extra_info("ssl_object") is not None,
        )
        with self.server.lock:
            self.server._messages.append(mail)
        return "250 2.0.0 Message accepted for delivery"


class _Controller(Controller):
    """Binds port 0 and reads back the port the kernel chose (no race for a 'free' port)."""

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self._bind()

    async def _bind(self) -> asyncio.AbstractServer:
        server = await self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=0, ssl=self.ssl_context
        )
        self.port = server.sockets[0].getsockname()[1]
        return server


class SmtpServer:
    def __init__(
        self, security: Security = "plain", *, users: dict[str, str] | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.security = security
        self.host = host
        self.port = 0
        self.users = dict(users or {})
        self.lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self.refused: set[str] = set()
        self.fail_data = 0  # answer DATA with 451 this many more times
        self.data_delay_s = 0.0  # sleep before answering DATA
        self.rcpt_attempts = 0  # RCPT TO commands seen, refused ones included
        self.data_attempts = 0  # DATA commands seen, failed ones included
        self.ca: trustme.CA | None = None
        self.client_context: ssl.SSLContext | None = None  # trusts this server's certificate
        kwargs: dict[str, Any] = {"server_hostname": "localhost"}
        if security != "plain":
            self.ca = trustme.CA()
            server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert("localhost", host).configure_cert(server_ctx)
            self.client_context = ssl.create_default_context()
            self.ca.configure_trust(self.client_context)
            if security == "tls":
                kwargs["ssl_context"] = server_ctx
            else:
                kwargs |= {"tls_context": server_ctx, "require_starttls": True}
        if self.users:
            kwargs |= {"authenticator": self._authenticate, "auth_require_tls": security != "plain"}
        self._controller = _Controller(_Handler(self), hostname=host, **kwargs)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and self.users.get(auth_data.login.decode()) == (
            auth_data.password.decode()
        )
        # handled=False: aiosmtpd itself answers a failure with 535.
        return AuthResult(success=ok, handled=ok, auth_data=auth_data if ok else None)

    def start(self) -> SmtpServer:
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[ReceivedMail]:
        with self.lock:
            return list(self._messages)

    def refuse(self, address: str) -> None:
        """Answer RCPT TO for this address with 550."""
        self.refused.add(address.lower())

    def wait_for_messages(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.messages)} of {count} messages arrived")
            time.sleep(0.01)
        return self.messages
