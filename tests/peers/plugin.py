"""Fixtures that run the peers (registered in tests/conftest.py with `pytest_plugins`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.modem import GsmModem
from tests.peers.openrouter import OpenRouterStandIn
from tests.peers.smsc import Smsc
from tests.peers.smtp import SmtpServer

SMTP_USER = "mailer"
SMTP_PASSWORD = "correct horse battery staple"
SMPP_SYSTEM_ID = "fimum"
SMPP_PASSWORD = "secret12"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """Plain SMTP, no AUTH, on 127.0.0.1:`smtp_server.port`; received mail in `.messages`."""
    server = SmtpServer("plain").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_tls_server() -> Iterator[SmtpServer]:
    """STARTTLS required, AUTH (SMTP_USER / SMTP_PASSWORD) only after it; `.client_context` trusts the
    certificate (issued for localhost and 127.0.0.1 by a trustme CA)."""
    server = SmtpServer("starttls", users={SMTP_USER: SMTP_PASSWORD}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    """An SMPP 3.4 SMS centre on 127.0.0.1:`smsc.port` accepting SMPP_SYSTEM_ID / SMPP_PASSWORD."""
    server = Smsc(system_id=SMPP_SYSTEM_ID, password=SMPP_PASSWORD).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gsm_modem() -> Iterator[GsmModem]:
    """A GSM modem on the pseudo-terminal `gsm_modem.device`; sent SMS in `.messages`."""
    modem = GsmModem().start()
    try:
        yield modem
    finally:
        modem.stop()


@pytest.fixture
def openrouter() -> Iterator[OpenRouterStandIn]:
    """An OpenAI-compatible chat-completions server standing in for OpenRouter on
    `openrouter.base_url`; script replies with `.script(model, Reply...)`, read `.requests`."""
    server = OpenRouterStandIn().start()
    try:
        yield server
    finally:
        server.stop()
