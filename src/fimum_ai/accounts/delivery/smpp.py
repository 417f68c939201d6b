"""SMS over SMPP 3.4 with smpplib.

smpplib is blocking and not thread-safe, so ONE thread owns ONE bound transceiver connection: it
submits queued messages, answers the SMSC (enquire_link, deliver_sm receipts, unbind), sends
enquire_link keep-alives while idle, and reconnects + rebinds on the next message after the
connection dropped. `send()` hands a job to that thread and awaits a concurrent.futures.Future.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import re
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

import smpplib.client
import smpplib.consts as c
import smpplib.exceptions
import smpplib.gsm
import smpplib.smpp

from fimum_ai.accounts.delivery.base import DeliveryError, OtpMessage, e164_digits
from fimum_ai.accounts.delivery.messages import sms_text
from fimum_ai.settings import Settings

log = logging.getLogger(__name__)

# smpplib logs every PDU as hex at DEBUG, and a submit_sm carries the code: drop those records.
_WIRE_LOGGER = "fimum_ai.accounts.delivery.smpp.wire"


def _no_pdu_dumps(record: logging.LogRecord) -> bool:
    return not (isinstance(record.msg, str) and record.msg.startswith((">>", "<<")))


logging.getLogger(_WIRE_LOGGER).addFilter(_no_pdu_dumps)

# Worth another attempt later; every other non-zero submit_sm status is final (bad number, barred, ...).
RETRYABLE_STATUS = frozenset(
    {c.SMPP_ESME_RTHROTTLED, c.SMPP_ESME_RMSGQFUL, c.SMPP_ESME_RSYSERR, c.SMPP_ESME_RX_T_APPN}
)
# A bind refused for these reasons needs a configuration change, not a retry.
_PERMANENT_BIND_STATUS = frozenset({c.SMPP_ESME_RINVPASWD, c.SMPP_ESME_RINVSYSID, c.SMPP_ESME_RINVSYSTYP})
_SMPP_ERRORS = (
    smpplib.exceptions.ConnectionError,
    smpplib.exceptions.PDUError,
    smpplib.exceptions.UnknownCommandError,
    OSError,
)
_RECEIPT = re.compile(rb"id:(\S+).*?stat:(\w+)", re.DOTALL)


def encode_sms(text: str) -> tuple[list[bytes], int, int]:
    """(parts, data_coding, esm_class): GSM-7 (data_coding 0) when every character has a GSM-7 code,
    else UCS2 (8); a text longer than one SMS is split into parts with a concatenation header."""
    parts, coding, esm_class = smpplib.gsm.make_parts(text)
    return cast(list[bytes], parts), int(coding), int(esm_class)


def source_address(addr: str) -> tuple[int, int, str]:
    """(TON, NPI, address) for a sender: an international number, a short code, or up to 11 letters."""
    if addr.startswith("+") and addr[1:].isdigit():
        return c.SMPP_TON_INTL, c.SMPP_NPI_ISDN, addr[1:]
    if addr.isdigit():
        return (c.SMPP_TON_INTL if len(addr) > 8 else c.SMPP_TON_UNK), c.SMPP_NPI_ISDN, addr
    return c.SMPP_TON_ALNUM, c.SMPP_NPI_UNK, addr[:11]


class _Client(smpplib.client.Client):  # type: ignore[misc]
    _socket: socket.socket | None

    def __init__(self, host: str, port: int, *, timeout: float, logger_name: str) -> None:
        # allow_unknown_opt_params: an SMSC's vendor TLVs must not break the session (and no warning).
        super().__init__(host, port, timeout=timeout, logger_name=logger_name, allow_unknown_opt_params=True)

    def fileno(self) -> int:
        """So select() can wait on the client."""
        assert self._socket is not None
        return self._socket.fileno()

    def close(self) -> None:
        """Close whatever the state (smpplib's disconnect() warns when the session is still bound)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self.state = c.SMPP_CLIENT_STATE_CLOSED


class _Dropped(Exception):
    """The connection is no longer usable."""


@dataclass
class _Job:
    destination: str
    text: str
    future: concurrent.futures.Future[list[str]]


class SmppChannel:
    name = "smpp"

    def __init__(
        self,
        *,
        host: str,
        port: int = 2775,
        system_id: str,
        password: str = "",
        system_type: str = "",
        source_addr: str = "Fimum",
        enquire_link_s: float = 30.0,
        timeout_s: float = 10.0,
        delivery_receipts: bool = True,
    ) -> None:
        if not source_addr.isascii():
            raise ValueError("smpp_source_addr must be ASCII")
        self.host, self.port = host, port
        self.system_id, self._password, self.system_type = system_id, password, system_type
        self.source = source_address(source_addr)
        self.enquire_link_s = enquire_link_s
        self.timeout_s = timeout_s
        self._receipts = (
            c.SMPP_SMSC_DELIVERY_RECEIPT_BOTH if delivery_receipts else c.SMPP_SMSC_DELIVERY_RECEIPT_NONE
        )
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._wake_r: socket.socket | None = None  # wakes the thread up from select(); made with it
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        # Owned by the thread alone.
        self._client: _Client | None = None
        self._last_io = 0.0
        self._probe_sent: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SmppChannel:
        if not settings.smpp_host:
            raise ValueError("smpp_host is not set")
        return cls(
            host=settings.smpp_host,
            port=settings.smpp_port,
            system_id=settings.smpp_system_id,
            password=settings.smpp_password.get_secret_value() if settings.smpp_password else "",
            system_type=settings.smpp_system_type,
            source_addr=settings.smpp_source_addr,
            enquire_link_s=settings.smpp_enquire_link_s,
            timeout_s=settings.smpp_timeout_s,
        )

    async def send(self, message: OtpMessage) -> None:
        await self.send_text(message.recipient, sms_text(message))

    async def send_text(self, recipient: str, text: str) -> list[str]:
        """Submit `text` to an E.164 number; returns the SMSC's message id(s)."""
        job = _Job(e164_digits(recipient), text, concurrent.futures.Future())
        with self._lock:
            if self._closed:
                raise DeliveryError("the SMPP channel is closed")
            self._jobs.put(job)
            self._ensure_thread()
            self._wake()
        # Connect, bind and submit may each take up to timeout_s; a job still queued after that is
        # cancelled here and skipped by the thread.
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job.future), 3 * self.timeout_s)
        except TimeoutError:
            raise DeliveryError("the SMSC did not answer in time") from None

    async def aclose(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            self._jobs.put(None)
            self._wake()
        if thread is not None:
            await asyncio.to_thread(thread.join, self.timeout_s + 1.0)
        for end in (self._wake_r, self._wake_w):
            if end is not None:
                end.close()

    def _ensure_thread(self) -> None:
        """Start the connection thread on first use (and again should it ever have died)."""
        if self._thread is not None and self._thread.is_alive():
            return
        if self._wake_r is None:
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="fimum-smpp", daemon=True)
        self._thread.start()

    def _wake(self) -> None:
        if self._wake_w is not None:
            self._wake_w.send(b"\0")

    # ---- the connection thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    self._idle()
                    continue
                if job is None:
                    break
                self._process(job)
        except Exception:
            log.exception("smpp connection thread failed", extra={"smsc": f"{self.host}:{self.port}"})
        finally:
            self._shutdown()

    def _idle(self) -> None:
        """Wait for a job, a PDU from the SMSC, or the next keep-alive, whichever comes first."""
        client, wake = self._client, self._wake_r
        assert wake is not None
        if client is None:
            select.select([wake], [], [])
            self._drain_wake()
            return
        due = self._last_io + self.enquire_link_s
        if self._probe_sent is not None:
            due = min(due, self._probe_sent + self.timeout_s)
        waits = [wake.fileno(), client.fileno()]
        readable, _, _ = select.select(waits, [], [], max(0.0, due - time.monotonic()))
        if waits[0] in readable:
            self._drain_wake()
        try:
            if waits[1] in readable:
                self._read(client)
            self._keep_alive(client)
        except (_Dropped, *_SMPP_ERRORS) as exc:
            self._drop(exc)

    def _keep_alive(self, client: _Client) -> None:
        now = time.monotonic()
        if self._probe_sent is not None and now - self._probe_sent >= self.timeout_s:
            raise _Dropped("no answer to enquire_link")
        if now - self._last_io >= self.enquire_link_s:
            client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=client))
            self._last_io = now
            if self._probe_sent is None:
                self._probe_sent = now

    def _process(self, job: _Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return  # the caller gave up while the job was queued
        try:
            job.future.set_result(self._submit(job))
        except DeliveryError as exc:
            job.future.set_exception(exc)
        except Exception as exc:  # a bug must reach the caller, not kill the thread
            log.exception("smpp submit failed unexpectedly")
            job.future.set_exception(DeliveryError(f"SMPP submit failed ({type(exc).__name__})"))

    def _submit(self, job: _Job) -> list[str]:
        parts, coding, esm_class = encode_sms(job.text)
        ids: list[str] = []
        client, fresh = self._connection()
        while len(ids) < len(parts):
            try:
                ids.append(self._submit_part(client, job.destination, parts[len(ids)], coding, esm_class))
            except (_Dropped, *_SMPP_ERRORS) as exc:
                self._drop(exc)
                # A connection that died while idle shows it only when used: reconnect once, as long
                # as no part went out on it (a resent part would arrive twice).
                if fresh or ids:
                    raise DeliveryError("lost the connection to the SMSC") from None
                client, fresh = self._connection()
        return ids

    def _submit_part(
        self, client: _Client, destination: str, part: bytes, coding: int, esm_class: int
    ) -> str:
        ton, npi, source = self.source
        pdu = smpplib.smpp.make_pdu(
            "submit_sm",
            client=client,
            source_addr_ton=ton,
            source_addr_npi=npi,
            source_addr=source,
            dest_addr_ton=c.SMPP_TON_INTL,
            dest_addr_npi=c.SMPP_NPI_ISDN,
            destination_addr=destination,
            esm_class=esm_class,
            data_coding=coding,
            short_message=part,
            registered_delivery=self._receipts,
        )
        client.send_pdu(pdu)
        self._last_io = time.monotonic()
        resp = self._response(client, pdu.sequence)
        status = int(resp.status)
        if resp.command == "generic_nack" or status != c.SMPP_ESME_ROK:
            raise DeliveryError(
                f"SMSC refused the message: {c.DESCRIPTIONS.get(status, 'unknown status')} (0x{status:08X})",
                permanent=status not in RETRYABLE_STATUS,
                details={"smpp_status": status},
            )
        message_id = resp.message_id or b""
        return message_id.decode("ascii", "replace") if isinstance(message_id, bytes) else str(message_id)

    def _response(self, client: _Client, sequence: int) -> Any:
        """Read PDUs (answering the SMSC's own requests) until the response to `sequence`."""
        deadline = time.monotonic() + self.timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([client], [], [], remaining)
            if readable:
                pdu = self._read(client)
                if pdu is not None and pdu.sequence == sequence:
                    return pdu
        # The session state is unknown now (a late answer may still come): start afresh next time.
        self._drop(_Dropped("no answer in time"))
        raise DeliveryError("the SMSC did not answer in time")

    def _read(self, client: _Client) -> Any | None:
        """Read one PDU and answer it if it is a request; return it if it is a response."""
        pdu = client.read_pdu()
        self._last_io = time.monotonic()
        self._probe_sent = None  # any PDU shows the link is alive
        command = pdu.command
        if pdu.is_response():
            return pdu
        if command == "enquire_link":
            self._answer(client, pdu, "enquire_link_resp")
        elif command == "deliver_sm":
            self._answer(client, pdu, "deliver_sm_resp")
            self._log_receipt(pdu)
        elif command == "unbind":
            self._answer(client, pdu, "unbind_resp")
            raise _Dropped("the SMSC unbound")
        else:
            self._answer(client, pdu, "generic_nack", status=c.SMPP_ESME_RINVCMDID)
        return None

    @staticmethod
    def _answer(client: _Client, request: Any, command: str, **fields: Any) -> None:
        resp = smpplib.smpp.make_pdu(command, client=client, **fields)
        resp.sequence = request.sequence
        client.send_pdu(resp)

    @staticmethod
    def _log_receipt(pdu: Any) -> None:
        # Only the id and the state: a receipt's text field repeats the start of the message (the code).
        found = _RECEIPT.search(pdu.short_message or b"")
        if found:
            log.debug(
                "smpp delivery receipt",
                extra={"message_id": found[1].decode("ascii", "replace"), "state": found[2].decode("ascii")},
            )

    def _connection(self) -> tuple[_Client, bool]:
        """The bound client, and whether it was bound just now."""
        if self._client is not None:
            try:
                self._poll(self._client)  # notices a connection the SMSC closed while we were idle
            except (_Dropped, *_SMPP_ERRORS) as exc:
                self._drop(exc)
        if self._client is not None:
            return self._client, False
        client = _Client(self.host, self.port, timeout=self.timeout_s, logger_name=_WIRE_LOGGER)
        try:
            client.connect()
            client.bind_transceiver(
                system_id=self.system_id, password=self._password, system_type=self.system_type
            )
        except smpplib.exceptions.PDUError as exc:
            client.close()
            status = exc.args[1] if len(exc.args) > 1 else None
            raise DeliveryError(
                f"the SMSC refused the bind: {c.DESCRIPTIONS.get(status, 'unknown status')}",
                permanent=status in _PERMANENT_BIND_STATUS,
                details={"smpp_status": status},
            ) from None
        except (smpplib.exceptions.ConnectionError, OSError):
            client.close()
            raise DeliveryError(f"could not connect to the SMSC at {self.host}:{self.port}") from None
        log.info("smpp bound", extra={"smsc": f"{self.host}:{self.port}", "system_id": self.system_id})
        self._client = client
        self._last_io = time.monotonic()
        self._probe_sent = None
        return client, True

    def _poll(self, client: _Client) -> None:
        while select.select([client], [], [], 0)[0]:
            self._read(client)

    def _drop(self, reason: BaseException) -> None:
        if self._client is not None:
            log.warning(
                "smpp connection dropped",
                extra={"smsc": f"{self.host}:{self.port}", "reason": str(reason) or type(reason).__name__},
            )
            self._client.close()
            self._client = None
        self._probe_sent = None

    def _drain_wake(self) -> None:
        assert self._wake_r is not None
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass

    def _shutdown(self) -> None:
        client = self._client
        if client is not None:
            with contextlib.suppress(_Dropped, DeliveryError, *_SMPP_ERRORS):
                unbind = smpplib.smpp.make_pdu("unbind", client=client)
                client.send_pdu(unbind)
                self._response(client, unbind.sequence)
            client.close()
            self._client = None
        # Whatever is still queued will not be sent.
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None and job.future.set_running_or_notify_cancel():
                job.future.set_exception(DeliveryError("the SMPP channel is closed"))
