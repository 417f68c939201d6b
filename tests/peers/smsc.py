"""A small SMS centre: an SMPP 3.4 server on 127.0.0.1 built on asyncio and smpplib's PDU classes.

It runs its own event loop in a thread (so sync tests and `asyncio.run` tests can both use it),
decodes the real PDUs with `smpplib.smpp.parse_pdu`, answers with `smpplib.smpp.make_pdu`, and
records everything: the submitted messages (text decoded from GSM-7 or UCS2) and every command.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import smpplib.consts as c
import smpplib.gsm
import smpplib.smpp
from smpplib.client import SimpleSequenceGenerator

_GSM_BASIC = smpplib.gsm.GSM_CHARACTER_TABLE
_ESM_SMSC_DELIVERY_RECEIPT = 0x04  # SMPP 3.4 section 5.2.12 (smpplib has no name for it)


def decode_short_message(data: bytes, data_coding: int, esm_class: int = 0) -> str:
    """What a handset would show: the user data header removed, GSM-7 (one septet per octet, as
    SMPP carries it), Latin-1 or UCS2 decoded."""
    if esm_class & c.SMPP_GSMFEAT_UDHI:
        data = data[1 + data[0] :]
    if data_coding == c.SMPP_ENCODING_ISO10646:
        return data.decode("utf-16-be")
    if data_coding == c.SMPP_ENCODING_ISO88591:
        return data.decode("latin-1")
    chars, escape = [], False
    for octet in data:
        if octet == 0x1B and not escape:
            escape = True
            continue
        chars.append(_GSM_BASIC[octet + 0x80 if escape else octet])
        escape = False
    return "".join(chars)


@dataclass(frozen=True)
class SubmittedSms:
    system_id: str
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    destination_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    data_coding: int
    esm_class: int
    registered_delivery: int
    text: str
    message_id: str


@dataclass(frozen=True)
class SeenCommand:
    command: str
    status: int
    at: float  # time.monotonic()


class _Session:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.system_id: str | None = None  # set once bound


class Smsc:
    def __init__(
        self, *, system_id: str = "fimum", password: str = "secret", host: str = "127.0.0.1"
    ) -> None:
        self.system_id = system_id
        self.password = password
        self.host = host
        self.port = 0
        self.receipts = True  # answer registered_delivery with a deliver_sm receipt
        self._lock = threading.Lock()
        self._messages: list[SubmittedSms] = []
        self._commands: list[SeenCommand] = []
        self._throttle: list[int] = []  # statuses to answer the next submit_sm with
        self._sessions: set[_Session] = set()
        self._ids = itertools.count(1)
        self._seq = SimpleSequenceGenerator()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-smsc", daemon=True)

    # ---- control, from the test's thread ---------------------------------------------------------------

    def start(self) -> Smsc:
        self._thread.start()
        server: asyncio.Server = self._call(asyncio.start_server(self._serve, self.host, 0))
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            await self._drop()
            await self._server.wait_closed()

        self._call(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def messages(self) -> list[SubmittedSms]:
        with self._lock:
            return list(self._messages)

    @property
    def commands(self) -> list[str]:
        """Every PDU received, by command name, in order (e.g. 'bind_transceiver', 'enquire_link')."""
        with self._lock:
            return [seen.command for seen in self._commands]

    def seen(self, command: str) -> list[SeenCommand]:
        with self._lock:
            return [seen for seen in self._commands if seen.command == command]

    @property
    def connections(self) -> int:
        return len(self._sessions)

    def throttle(self, times: int, status: int = c.SMPP_ESME_RTHROTTLED) -> None:
        """Answer the next `times` submit_sm with `status` instead of accepting them."""
        with self._lock:
            self._throttle.extend([status] * times)

    def drop_connections(self) -> None:
        """Close every client connection at once, as a restarting SMSC would."""
        self._call(self._drop())

    def send_enquire_link(self) -> None:
        """Probe every bound client; their enquire_link_resp shows up in `commands`."""

        async def probe() -> None:
            for session in list(self._sessions):
                if session.system_id is not None:
                    self._write(session, smpplib.smpp.make_pdu("enquire_link", client=self._seq))
                    await session.writer.drain()

        self._call(probe())

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"SMSC: condition not met in {timeout} s; commands seen: {self.commands}")
            time.sleep(0.01)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(5)

    # ---- the server, on its own loop ---------------------------------------------------------------------

    async def _drop(self) -> None:
        sessions, self._sessions = list(self._sessions), set()
        for session in sessions:
            session.writer.close()
        for session in sessions:
            with contextlib.suppress(OSError):
                await session.writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(writer)
        self._sessions.add(session)
        try:
            while True:
                header = await reader.readexactly(4)
                (length,) = struct.unpack(">L", header)
                data = header + await reader.readexactly(length - 4)
                pdu = smpplib.smpp.parse_pdu(data, client=self._seq, allow_unknown_opt_params=True)
                with self._lock:
                    self._commands.append(SeenCommand(pdu.command, int(pdu.status), time.monotonic()))
                if not await self._handle(session, pdu):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._sessions.discard(session)
            writer.close()

    async def _handle(self, session: _Session, pdu: Any) -> bool:
        """Answer one PDU; False ends the session."""
        command = pdu.command
        if command == "bind_transceiver":
            ok = bool(pdu.system_id.decode() == self.system_id and pdu.password.decode() == self.password)
            status = c.SMPP_ESME_ROK if ok else c.SMPP_ESME_RINVPASWD
            self._reply(session, pdu, "bind_transceiver_resp", status=status, system_id="TESTSMSC")
            if ok:
                session.system_id = self.system_id
            return ok
        if command == "enquire_link":
            self._reply(session, pdu, "enquire_link_resp")
        elif command == "unbind":
            self._reply(session, pdu, "unbind_resp")
            return False
        elif command == "submit_sm":
            if session.system_id is None:
                self._reply(session, pdu, "submit_sm_resp", status=c.SMPP_ESME_RINVBNDSTS)
            else:
                self._submit(session, pdu)
        elif not pdu.is_response():
            self._reply(session, pdu, "generic_nack", status=c.SMPP_ESME_RINVCMDID)
        return True

    def _submit(self, session: _Session, pdu: Any) -> None:
        with self._lock:
            status = self._throttle.pop(0) if self._throttle else c.SMPP_ESME_ROK
        if status != c.SMPP_ESME_ROK:
            self._reply(session, pdu, "submit_sm_resp", status=status)
            return
        message_id = f"{next(self._ids):08X}"
        sms = SubmittedSms(
            system_id=session.system_id or "",
            source_addr=pdu.source_addr.decode(),
            source_addr_ton=pdu.source_addr_ton,
            source_addr_npi=pdu.source_addr_npi,
            destination_addr=pdu.destination_addr.decode(),
            dest_addr_ton=pdu.dest_addr_ton,
            dest_addr_npi=pdu.dest_addr_npi,
            data_coding=pdu.data_coding,
            esm_class=pdu.esm_class,
            registered_delivery=pdu.registered_delivery,
            text=decode_short_message(pdu.short_message or b"", pdu.data_coding, pdu.esm_class),
            message_id=message_id,
        )
        with self._lock:
            self._messages.append(sms)
        self._reply(session, pdu, "submit_sm_resp", message_id=message_id)
        if self.receipts and pdu.registered_delivery & c.SMPP_SMSC_DELIVERY_RECEIPT_BITMASK:
            receipt = smpplib.smpp.make_pdu(
                "deliver_sm",
                client=self._seq,
                source_addr_ton=pdu.dest_addr_ton,
                source_addr_npi=pdu.dest_addr_npi,
                source_addr=sms.destination_addr,
                destination_addr=sms.source_addr,
                esm_class=_ESM_SMSC_DELIVERY_RECEIPT,
                short_message=f"id:{message_id} sub:001 dlvrd:001 stat:DELIVRD err:000 text:".encode(),
            )
            self._write(session, receipt)

    def _reply(self, session: _Session, request: Any, command: str, **fields: Any) -> None:
        resp = smpplib.smpp.make_pdu(command, client=self._seq, **fields)
        resp.sequence = request.sequence
        self._write(session, resp)

    @staticmethod
    def _write(session: _Session, pdu: Any) -> None:
        session.writer.write(pdu.generate())
