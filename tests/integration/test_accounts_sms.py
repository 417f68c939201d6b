"""Sign-in by SMS: through a real SMPP 3.4 SMS centre and through a GSM modem on a pseudo-terminal."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from fimum_ai.app import create_app
from fimum_ai.settings import load_settings
from tests.conftest import remember_secret
from tests.peers.modem import GsmModem
from tests.peers.plugin import SMPP_PASSWORD, SMPP_SYSTEM_ID
from tests.peers.smsc import Smsc

PHONE = "+14155550123"
CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


def wait_for_text(texts: Callable[[], list[str]], nth: int = 1) -> str:
    deadline = time.monotonic() + 10
    while len(texts()) < nth:
        assert time.monotonic() < deadline, "no SMS arrived"
        time.sleep(0.02)
    found = CODE.search(texts()[nth - 1])
    assert found is not None, texts()[nth - 1]
    return remember_secret(found.group(1))


def sign_in_by_sms(client: TestClient, texts: Callable[[], list[str]]) -> dict[str, object]:
    accepted = client.post(
        "/api/v1/auth/otp/request", json={"identifier": "+1 (415) 555-0123", "channel": "sms"}
    )
    assert accepted.status_code == 202
    code = wait_for_text(texts)
    response = client.post("/api/v1/auth/otp/verify", json={"identifier": PHONE, "code": code})
    assert response.status_code == 200, response.text
    body = response.json()
    remember_secret(body["access_token"])
    remember_secret(body["refresh_token"])
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["user"]["phone"] == PHONE
    return dict(accepted.json())


@pytest.fixture
def open_signup(backend: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FIMUM_SIGNUP", "open")
    return backend


def test_sign_in_with_a_code_sent_over_smpp(
    open_signup: str, smsc: Smsc, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIMUM_SMPP_HOST", "127.0.0.1")
    monkeypatch.setenv("FIMUM_SMPP_PORT", str(smsc.port))
    monkeypatch.setenv("FIMUM_SMPP_SYSTEM_ID", SMPP_SYSTEM_ID)
    monkeypatch.setenv("FIMUM_SMPP_PASSWORD", SMPP_PASSWORD)
    with TestClient(create_app(load_settings())) as client:
        accepted = sign_in_by_sms(client, lambda: [m.text for m in smsc.messages])
    assert accepted["delivery"] == "smpp"
    sms = smsc.messages[0]
    assert sms.destination_addr == PHONE.lstrip("+") and sms.source_addr == "Fimum"
    assert "bind_transceiver" in smsc.commands and "submit_sm" in smsc.commands


def test_sign_in_with_a_code_sent_by_the_gsm_modem(
    open_signup: str, gsm_modem: GsmModem, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIMUM_MODEM_DEVICE", gsm_modem.device)
    with TestClient(create_app(load_settings())) as client:
        accepted = sign_in_by_sms(client, lambda: [m.text for m in gsm_modem.messages])
    assert accepted["delivery"] == "modem"
    assert gsm_modem.messages[0].number == PHONE


def test_without_any_server_codes_go_to_the_console_not_the_log(
    open_signup: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    stdout: list[str] = []

    def printed_codes() -> list[str]:
        stdout.extend(capsys.readouterr().out.splitlines())
        return [line for line in stdout if CODE.search(line)]

    with caplog.at_level("DEBUG"), TestClient(create_app(load_settings())) as client:
        accepted = sign_in_by_sms(client, printed_codes)
    assert accepted["delivery"] == "console"
    assert any("DEVELOPMENT" in line for line in stdout)
    code = CODE.search(printed_codes()[0])
    assert code is not None and code.group(1) not in caplog.text
