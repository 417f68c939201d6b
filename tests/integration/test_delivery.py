"""One-time-code delivery through real peers: an SMTP server, an SMS centre and a GSM modem on a pty.

Every test here also checks (autouse fixture) that no log record, at DEBUG, carries the code.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import smpplib.consts as c
from prometheus_client import REGISTRY

from fimum_ai.accounts.delivery import Channel, DeliveryError, Dispatcher, OtpMessage, build_dispatcher
from fimum_ai.accounts.delivery.console import ConsoleChannel
from fimum_ai.accounts.delivery.email import SmtpChannel
from fimum_ai.accounts.delivery.messages import email_html, email_text, sms_text
from fimum_ai.accounts.delivery.modem import ModemChannel
from fimum_ai.accounts.delivery.smpp import SmppChannel, encode_sms
from fimum_ai.settings import load_settings
from tests.peers.modem import GsmModem
from tests.peers.plugin import SMPP_PASSWORD, SMPP_SYSTEM_ID, SMTP_PASSWORD, SMTP_USER
from tests.peers.smsc import Smsc
from tests.peers.smtp import SmtpServer

CODE = "730914"
EMAIL = "ada@example.com"
PHONE = "+14155550123"
T = TypeVar("T")
_STANDARD_RECORD_FIELDS = set(vars(logging.makeLogRecord({})))
PEER_LOGGERS = ("mail.log",)  # aiosmtpd, the test's mail server, logs the DATA it receives at DEBUG


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def email_message(recipient: str = EMAIL, public_url: str | None = None) -> OtpMessage:
    return OtpMessage("email", recipient, CODE, expires_in_s=600, public_url=public_url)


def sms_message(recipient: str = PHONE) -> OtpMessage:
    return OtpMessage("sms", recipient, CODE, expires_in_s=600)


def deliveries(channel: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("fimum_otp_deliveries_total", {"channel": channel, "outcome": outcome})
    return value or 0.0


@pytest.fixture(autouse=True)
def no_code_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Whatever a test does, the code reaches no log record of ours or of the client libraries: not its
    message, extras or traceback, not even hex-encoded (smpplib dumps PDUs in hex at DEBUG)."""
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        if record.name.startswith(PEER_LOGGERS):
            continue
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD_RECORD_FIELDS}
        text = record.getMessage() + json.dumps(extras, default=str) + (record.exc_text or "")
        assert CODE not in text, f"the code leaked into a log record: {record.name}: {text}"
        assert CODE.encode().hex() not in text.lower(), f"the code leaked (hex) into {record.name}"


def smtp_channel(server: SmtpServer, **overrides: Any) -> SmtpChannel:
    fields: dict[str, Any] = {"smtp_host": server.host, "smtp_port": server.port, "smtp_timeout_s": 5.0}
    fields["smtp_tls"] = {"plain": "none"}.get(server.security, server.security)
    settings = load_settings(**(fields | overrides))
    return SmtpChannel.from_settings(settings, ssl_context=server.client_context)


def smpp_channel(smsc: Smsc, **overrides: Any) -> SmppChannel:
    fields: dict[str, Any] = {
        "smpp_host": smsc.host,
        "smpp_port": smsc.port,
        "smpp_system_id": SMPP_SYSTEM_ID,
        "smpp_password": SMPP_PASSWORD,
        "smpp_timeout_s": 2.0,
    }
    return SmppChannel.from_settings(load_settings(**(fields | overrides)))


async def dispatch(dispatcher: Dispatcher, *messages: OtpMessage, timeout: float = 5.0) -> None:
    await dispatcher.start()
    try:
        for message in messages:
            dispatcher.enqueue(message)
        await dispatcher.wait_idle(timeout)
    finally:
        await dispatcher.stop()


# ---- the message and its texts -----------------------------------------------------------------------


def test_repr_of_a_message_hides_the_code() -> None:
    message = email_message()
    assert CODE not in repr(message) and CODE not in str(message)
    assert "a***@example.com" in repr(message) and EMAIL not in repr(message)
    assert sms_message().masked_recipient == "+1415*****23"


def test_a_message_is_validated() -> None:
    with pytest.raises(ValueError):
        OtpMessage("sms", "14155550123", CODE, expires_in_s=600)
    with pytest.raises(ValueError):
        OtpMessage("email", EMAIL, "12a456", expires_in_s=600)


def test_texts() -> None:
    message = email_message(public_url="https://ai.example.com/login?a=1&b=<2>")
    html = email_html(message)
    assert CODE in html and "#0066CC" in html and "expires in 10 minutes" in html
    assert "did not ask" in html and "<2>" not in html and "&amp;b=&lt;2&gt;" in html
    assert CODE in email_text(message) and "did not ask" in email_text(message)
    sms = sms_text(OtpMessage("sms", PHONE, CODE, expires_in_s=60, public_url="https://ai.example.com/"))
    assert sms.startswith(f"{CODE} is your Fimum AI code. It expires in 1 minute.")
    assert sms.endswith(f"@ai.example.com #{CODE}")  # origin-bound code for autofill
    assert len(sms) <= 160 and encode_sms(sms)[1] == c.SMPP_ENCODING_DEFAULT


def test_gsm7_and_ucs2_encoding() -> None:
    parts, coding, _ = encode_sms("Code 123456 costs 0 €")  # € is in the GSM-7 extension table
    assert coding == c.SMPP_ENCODING_DEFAULT and parts == [b"Code 123456 costs 0 \x1be"]
    parts, coding, esm_class = encode_sms("Ваш код 123456")
    assert coding == c.SMPP_ENCODING_ISO10646 and parts == ["Ваш код 123456".encode("utf-16-be")]
    assert esm_class == 0
    parts, _, esm_class = encode_sms("Ж" * 100)  # more than 70 UCS2 characters: two parts with a UDH
    assert len(parts) == 2 and esm_class == c.SMPP_GSMFEAT_UDHI


# ---- console ------------------------------------------------------------------------------------------


def test_console_prints_the_code_on_stdout_and_not_in_the_logs(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    run(dispatch(Dispatcher(ConsoleChannel(), ConsoleChannel(), attempts=1, backoff_s=0)))  # nothing sent
    run(ConsoleChannel().send(email_message()))
    out = capsys.readouterr().out
    assert "DEVELOPMENT ONLY" in out and f": {CODE} (expires in 10 min)" in out and "a***@example.com" in out
    assert CODE not in caplog.text


def test_build_dispatcher_picks_the_configured_channels() -> None:
    def names(**fields: Any) -> tuple[str, str]:
        dispatcher = build_dispatcher(load_settings(**fields))
        return dispatcher.channels["email"].name, dispatcher.channels["sms"].name

    assert names() == ("console", "console")
    assert names(smtp_host="mail.example.com") == ("smtp", "console")
    assert names(modem_device="/dev/ttyUSB0") == ("console", "modem")
    assert names(smpp_host="smsc.example.com", modem_device="/dev/ttyUSB0") == ("console", "smpp")
    dispatcher = build_dispatcher(load_settings(auth={"delivery_attempts": 2, "delivery_backoff_s": 0.5}))
    assert (dispatcher.attempts, dispatcher.backoff_s) == (2, 0.5)


# ---- SMTP ---------------------------------------------------------------------------------------------


def test_smtp_plain_delivers_the_code_in_text_and_html(smtp_server: SmtpServer) -> None:
    channel = smtp_channel(smtp_server, smtp_from="Fimum AI <login@fimum.example>")
    run(channel.send(email_message()))
    (mail,) = smtp_server.messages
    assert mail.rcpt_tos == [EMAIL] and mail.mail_from == "login@fimum.example"
    assert CODE in mail.part("plain") and CODE in mail.part("html")
    message = mail.message
    assert message["To"] == EMAIL and message["From"] == "Fimum AI <login@fimum.example>"
    assert message["Subject"] == "Your Fimum AI sign-in code" and CODE not in message["Subject"]
    assert message["Date"] and message["Message-ID"].endswith("@fimum.example>")
    assert not mail.tls


def test_smtp_starttls_with_auth_verifies_the_certificate(smtp_tls_server: SmtpServer) -> None:
    channel = smtp_channel(smtp_tls_server, smtp_user=SMTP_USER, smtp_password=SMTP_PASSWORD)
    run(channel.send(email_message()))
    (mail,) = smtp_tls_server.messages
    assert mail.tls and mail.login == SMTP_USER
    assert CODE in mail.part("plain") and CODE in mail.part("html")


def test_smtp_refuses_an_untrusted_certificate(smtp_tls_server: SmtpServer) -> None:
    settings = load_settings(smtp_host="127.0.0.1", smtp_port=smtp_tls_server.port, smtp_tls="starttls")
    channel = SmtpChannel.from_settings(settings)  # the system CAs do not know the test CA
    with pytest.raises(DeliveryError) as caught:
        run(channel.send(email_message()))
    assert caught.value.permanent
    assert smtp_tls_server.messages == []


def test_smtp_wrong_password_is_permanent(smtp_tls_server: SmtpServer) -> None:
    channel = smtp_channel(smtp_tls_server, smtp_user=SMTP_USER, smtp_password="wrong")
    with pytest.raises(DeliveryError) as caught:
        run(channel.send(email_message()))
    assert caught.value.permanent and caught.value.details == {"smtp": 535}


def test_smtp_implicit_tls() -> None:
    server = SmtpServer("tls").start()
    try:
        run(smtp_channel(server).send(email_message()))
        (mail,) = server.messages
        assert mail.tls and CODE in mail.part("plain")
    finally:
        server.stop()


def test_dispatcher_retries_451_until_delivered(smtp_server: SmtpServer) -> None:
    smtp_server.fail_data = 2
    before = {outcome: deliveries("smtp", outcome) for outcome in ("sent", "retry", "failed")}
    dispatcher = Dispatcher(smtp_channel(smtp_server), ConsoleChannel(), attempts=4, backoff_s=0.01)
    run(dispatch(dispatcher, email_message()))
    assert smtp_server.data_attempts == 3
    (mail,) = smtp_server.messages
    assert CODE in mail.part("plain")
    assert deliveries("smtp", "retry") - before["retry"] == 2
    assert deliveries("smtp", "sent") - before["sent"] == 1
    assert deliveries("smtp", "failed") == before["failed"]


def test_dispatcher_gives_up_after_the_attempts(smtp_server: SmtpServer) -> None:
    smtp_server.fail_data = 10
    failed = deliveries("smtp", "failed")
    dispatcher = Dispatcher(smtp_channel(smtp_server), ConsoleChannel(), attempts=3, backoff_s=0.01)
    run(dispatch(dispatcher, email_message()))
    assert smtp_server.data_attempts == 3 and smtp_server.messages == []
    assert deliveries("smtp", "failed") - failed == 1


def test_dispatcher_does_not_retry_a_refused_recipient(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_server.refuse("nobody@example.com")
    retry, failed = deliveries("smtp", "retry"), deliveries("smtp", "failed")
    dispatcher = Dispatcher(smtp_channel(smtp_server), ConsoleChannel(), attempts=4, backoff_s=0.01)
    run(dispatch(dispatcher, email_message("nobody@example.com")))
    assert smtp_server.rcpt_attempts == 1 and smtp_server.messages == []
    assert deliveries("smtp", "failed") - failed == 1 and deliveries("smtp", "retry") == retry
    (record,) = [r for r in caplog.records if r.getMessage() == "otp delivery failed"]
    fields = vars(record)
    assert fields["channel"] == "smtp" and fields["recipient"] == "n***@example.com"
    assert fields["attempt"] == 1 and fields["error"] == "DeliveryError" and fields["permanent"] is True


def test_a_slow_mail_server_blocks_neither_enqueue_nor_sms(smtp_server: SmtpServer, smsc: Smsc) -> None:
    smtp_server.data_delay_s = 2.0

    async def scenario() -> None:
        dispatcher = Dispatcher(smtp_channel(smtp_server), smpp_channel(smsc), attempts=1, backoff_s=0)
        await dispatcher.start()
        try:
            started = time.perf_counter()
            for _ in range(4):
                dispatcher.enqueue(email_message())
            assert time.perf_counter() - started < 0.05
            dispatcher.enqueue(sms_message())
            await asyncio.to_thread(smsc.wait_for, lambda: len(smsc.messages) == 1, 1.5)
            assert smtp_server.messages == []  # the SMS went out while the mail server was asleep
            await dispatcher.wait_idle(timeout=10)
        finally:
            await dispatcher.stop()
        assert len(smtp_server.messages) == 4

    run(scenario())


def test_stop_drains_the_queue_and_then_refuses(smtp_server: SmtpServer) -> None:
    async def scenario() -> None:
        dispatcher = Dispatcher(smtp_channel(smtp_server), ConsoleChannel(), attempts=1, backoff_s=0)
        await dispatcher.start()
        dispatcher.enqueue(email_message())
        await dispatcher.stop(timeout=5)
        assert len(smtp_server.messages) == 1
        with pytest.raises(DeliveryError):
            dispatcher.enqueue(email_message())

    run(scenario())


def test_enqueue_from_another_thread(smtp_server: SmtpServer) -> None:
    async def scenario() -> None:
        dispatcher = Dispatcher(smtp_channel(smtp_server), ConsoleChannel(), attempts=1, backoff_s=0)
        await dispatcher.start()
        try:
            await asyncio.to_thread(dispatcher.enqueue, email_message())  # as a sync route would
            await asyncio.to_thread(smtp_server.wait_for_messages, 1)
            await dispatcher.wait_idle()
        finally:
            await dispatcher.stop()

    run(scenario())


# ---- SMPP ---------------------------------------------------------------------------------------------


async def send_and_close(channel: Channel, *messages: OtpMessage) -> None:
    try:
        for message in messages:
            await channel.send(message)
    finally:
        await channel.aclose()


def test_smpp_delivers_the_code(smsc: Smsc) -> None:
    async def scenario() -> None:
        channel = smpp_channel(smsc)
        try:
            await channel.send(sms_message())
            await asyncio.to_thread(smsc.wait_for, lambda: "deliver_sm_resp" in smsc.commands)
        finally:
            await channel.aclose()

    run(scenario())
    (sms,) = smsc.messages
    assert CODE in sms.text and sms.text == sms_text(sms_message())
    assert (sms.destination_addr, sms.dest_addr_ton, sms.dest_addr_npi) == ("14155550123", 1, 1)
    assert (sms.source_addr, sms.source_addr_ton) == ("Fimum", c.SMPP_TON_ALNUM)
    assert sms.data_coding == c.SMPP_ENCODING_DEFAULT and sms.registered_delivery == 1
    assert sms.system_id == SMPP_SYSTEM_ID
    # The delivery receipt was acknowledged, and the session ended with an unbind.
    assert smsc.commands == ["bind_transceiver", "submit_sm", "deliver_sm_resp", "unbind"]


def test_smpp_numeric_sender_and_ucs2_text(smsc: Smsc) -> None:
    async def scenario() -> list[str]:
        channel = smpp_channel(smsc, smpp_source_addr="+447700900123")
        try:
            return await channel.send_text(PHONE, f"Ваш код {CODE}")
        finally:
            await channel.aclose()

    ids = run(scenario())
    (sms,) = smsc.messages
    assert ids == [sms.message_id]
    assert sms.text == f"Ваш код {CODE}" and sms.data_coding == c.SMPP_ENCODING_ISO10646
    assert (sms.source_addr, sms.source_addr_ton, sms.source_addr_npi) == ("447700900123", 1, 1)


def test_smpp_wrong_password_fails_permanently(smsc: Smsc) -> None:
    with pytest.raises(DeliveryError) as caught:
        run(send_and_close(smpp_channel(smsc, smpp_password="wrong"), sms_message()))
    assert caught.value.permanent and caught.value.details["smpp_status"] == c.SMPP_ESME_RINVPASWD
    assert smsc.commands == ["bind_transceiver"] and smsc.messages == []


def test_smpp_unreachable_is_retryable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = load_settings(smpp_host="127.0.0.1", smpp_port=port, smpp_system_id="x", smpp_timeout_s=1.0)
    with pytest.raises(DeliveryError) as caught:
        run(send_and_close(SmppChannel.from_settings(settings), sms_message()))
    assert not caught.value.permanent


def test_smpp_throttled_then_delivered_through_the_dispatcher(smsc: Smsc) -> None:
    smsc.throttle(2)
    retry = deliveries("smpp", "retry")
    dispatcher = Dispatcher(ConsoleChannel(), smpp_channel(smsc), attempts=4, backoff_s=0.01)
    run(dispatch(dispatcher, sms_message()))
    assert len(smsc.seen("submit_sm")) == 3
    assert len(smsc.messages) == 1 and CODE in smsc.messages[0].text
    assert len(smsc.seen("bind_transceiver")) == 1  # throttling does not cost the connection
    assert deliveries("smpp", "retry") - retry == 2


def test_smpp_other_refusals_are_permanent(smsc: Smsc) -> None:
    smsc.throttle(1, status=c.SMPP_ESME_RINVDSTADR)
    with pytest.raises(DeliveryError) as caught:
        run(send_and_close(smpp_channel(smsc), sms_message()))
    assert caught.value.permanent and caught.value.details["smpp_status"] == c.SMPP_ESME_RINVDSTADR


def test_smpp_keeps_the_link_alive_and_answers_the_smsc(smsc: Smsc) -> None:
    async def scenario() -> None:
        channel = smpp_channel(smsc, smpp_enquire_link_s=0.2)
        try:
            await channel.send(sms_message())
            await asyncio.to_thread(smsc.wait_for, lambda: len(smsc.seen("enquire_link")) >= 2, 3.0)
            smsc.send_enquire_link()
            await asyncio.to_thread(smsc.wait_for, lambda: "enquire_link_resp" in smsc.commands, 3.0)
            await channel.send(sms_message())  # still the same session
        finally:
            await channel.aclose()

    run(scenario())
    links = smsc.seen("enquire_link")
    assert all(later.at - earlier.at >= 0.15 for earlier, later in itertools.pairwise(links))
    assert len(smsc.seen("bind_transceiver")) == 1 and len(smsc.messages) == 2


def test_smpp_reconnects_after_the_smsc_dropped_the_connection(smsc: Smsc) -> None:
    async def scenario() -> None:
        channel = smpp_channel(smsc)
        try:
            await channel.send(sms_message())
            await asyncio.to_thread(smsc.drop_connections)
            await channel.send(sms_message())
        finally:
            await channel.aclose()

    run(scenario())
    assert len(smsc.messages) == 2 and len(smsc.seen("bind_transceiver")) == 2


# ---- GSM modem ----------------------------------------------------------------------------------------


def modem_channel(modem: GsmModem, timeout_s: float = 2.0) -> ModemChannel:
    return ModemChannel.from_settings(load_settings(modem_device=modem.device, modem_timeout_s=timeout_s))


def test_modem_delivers_the_code(gsm_modem: GsmModem) -> None:
    async def scenario() -> None:
        channel = modem_channel(gsm_modem)
        try:
            await channel.send(sms_message())
            assert await channel.send_text("+79161234567", f"Ваш код {CODE}") == 2
        finally:
            await channel.aclose()

    run(scenario())
    first, second = gsm_modem.messages
    assert first.number == PHONE and CODE in first.text and first.text == sms_text(sms_message())
    assert second.number == "+79161234567" and second.text == f"Ваш код {CODE}"
    commands = gsm_modem.commands
    assert commands[:4] == ["AT", "ATE0", "AT+CMEE=1", "AT+CMGF=1"]
    assert f'AT+CMGS="{PHONE}"' in commands and commands.count("AT") == 1  # the port stays open


def test_modem_cms_errors(gsm_modem: GsmModem) -> None:
    async def scenario() -> None:
        channel = modem_channel(gsm_modem)
        try:
            gsm_modem.fail_next(28)  # unidentified subscriber: this number will not work
            with pytest.raises(DeliveryError) as caught:
                await channel.send(sms_message())
            assert caught.value.permanent and caught.value.details == {"cms_error": 28}
            gsm_modem.fail_next(38)  # network out of order: later, maybe
            with pytest.raises(DeliveryError) as caught:
                await channel.send(sms_message())
            assert not caught.value.permanent
            await channel.send(sms_message())
        finally:
            await channel.aclose()

    run(scenario())
    assert len(gsm_modem.messages) == 1


def test_modem_that_does_not_answer_times_out_retryably(gsm_modem: GsmModem) -> None:
    gsm_modem.silent = True
    with pytest.raises(DeliveryError) as caught:
        run(send_and_close(modem_channel(gsm_modem, timeout_s=0.3), sms_message()))
    assert not caught.value.permanent and "in time" in str(caught.value)


def test_modem_sends_one_message_at_a_time(gsm_modem: GsmModem) -> None:
    async def scenario() -> None:
        channel = modem_channel(gsm_modem)
        try:
            await asyncio.gather(*(channel.send(sms_message()) for _ in range(4)))
        finally:
            await channel.aclose()

    run(scenario())
    assert len(gsm_modem.messages) == 4
