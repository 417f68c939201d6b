"""SMS through a GSM modem on a serial port (pyserial), in AT text mode (3GPP TS 27.005).

The port is opened once and kept; one send at a time holds it (a lock), and the blocking I/O runs in
a worker thread so the event loop never waits on the modem.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time

import serial

from fimum_ai.accounts.delivery.base import DeliveryError, OtpMessage, e164_digits
from fimum_ai.accounts.delivery.messages import sms_text
from fimum_ai.settings import Settings

log = logging.getLogger(__name__)

CTRL_Z = b"\x1a"  # ends the message text
ESC = b"\x1b"  # abandons it
# +CMS ERROR codes that mean this number or this message will never go through (RP causes of
# 3GPP TS 24.011 and the TS 27.005 parameter errors); the rest (network, SIM, memory) may pass later.
PERMANENT_CMS = frozenset({1, 8, 10, 21, 28, 29, 30, 50, 69, 81, 95, 96, 97, 98, 99, 111, 127, 304, 305})
_LINE_END = re.compile(rb"\r\n|\r|\n")
_CMS = re.compile(r"\+CMS ERROR:\s*(\d+)")
_CMGS = re.compile(r"\+CMGS:\s*(\d+)")
# Printable ASCII is sent as is (character set IRA); anything else as UCS2 hex.
_PLAIN = re.compile(r"[\x20-\x7e\n]*")


class ModemChannel:
    name = "modem"

    def __init__(self, *, device: str, baud: int = 115200, timeout_s: float = 10.0) -> None:
        self.device = device
        self.baud = baud
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._port: serial.Serial | None = None
        self._charset: str | None = None
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ModemChannel:
        if not settings.modem_device:
            raise ValueError("modem_device is not set")
        return cls(device=settings.modem_device, baud=settings.modem_baud, timeout_s=settings.modem_timeout_s)

    async def send(self, message: OtpMessage) -> None:
        await self.send_text(message.recipient, sms_text(message))

    async def send_text(self, recipient: str, text: str) -> int:
        """Send `text` to an E.164 number; returns the modem's message reference."""
        number = "+" + e164_digits(recipient)
        return await asyncio.to_thread(self._send_blocking, number, text)

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                self._closed = True
                self._close_port()

        await asyncio.to_thread(close)

    # ---- blocking side, under the lock ----------------------------------------------------------------

    def _send_blocking(self, number: str, text: str) -> int:
        with self._lock:
            if self._closed:
                raise DeliveryError("the modem channel is closed")
            try:
                port = self._port or self._open()
                plain = _PLAIN.fullmatch(text) is not None
                self._use_charset(port, "IRA" if plain else "UCS2")
                if plain:
                    address, body = number, text.encode("ascii")
                else:
                    address, body = _ucs2_hex(number), _ucs2_hex(text).encode("ascii")
                self._command(port, f'AT+CMGS="{address}"', prompt=True)
                port.write(body + CTRL_Z)
                lines = self._result(port)
            except DeliveryError as exc:
                if "cms_error" not in exc.details:
                    self._close_port()  # a timeout or a bare ERROR: open and set up afresh next time
                raise
            except (serial.SerialException, OSError) as exc:
                self._close_port()
                raise DeliveryError(f"modem I/O failed ({type(exc).__name__})") from None
            found = next((m for m in map(_CMGS.match, lines) if m), None)
            return int(found[1]) if found else -1

    def _open(self) -> serial.Serial:
        # exclusive: a second process typing AT commands into the same modem would garble both.
        port = serial.Serial(
            self.device, self.baud, timeout=0.05, write_timeout=self.timeout_s, exclusive=True
        )
        self._port, self._charset = port, None
        self._command(port, "AT")
        self._command(port, "ATE0")  # no echo: nothing to skip in the answers
        with contextlib.suppress(DeliveryError):  # numeric error codes, where the modem has them
            self._command(port, "AT+CMEE=1")
        self._command(port, "AT+CMGF=1")  # text mode
        log.info("gsm modem ready", extra={"device": self.device})
        return port

    def _use_charset(self, port: serial.Serial, charset: str) -> None:
        if self._charset == charset:
            return
        self._command(port, f'AT+CSCS="{charset}"')
        # Data coding scheme 8 (UCS2) or 0 (GSM 7-bit); validity 167 = 24 hours.
        self._command(port, f"AT+CSMP=17,167,0,{8 if charset == 'UCS2' else 0}")
        self._charset = charset

    def _command(self, port: serial.Serial, command: str, *, prompt: bool = False) -> list[str]:
        port.reset_input_buffer()  # stale unsolicited lines are not answers to this command
        port.write(command.encode("ascii") + b"\r")
        return self._result(port, prompt=prompt)

    def _result(self, port: serial.Serial, *, prompt: bool = False) -> list[str]:
        """The information lines before the final result code; or on `prompt`, before the `> ` prompt."""
        deadline = time.monotonic() + self.timeout_s
        pending = b""
        lines: list[str] = []
        while time.monotonic() < deadline:
            pending += port.read(max(1, port.in_waiting))
            *complete, pending = _LINE_END.split(pending)
            for raw in complete:
                line = raw.decode("ascii", "replace").strip()
                if line == "OK":
                    return lines
                if line == "ERROR" or line.startswith(("+CMS ERROR:", "+CME ERROR:")):
                    raise _modem_error(line)
                if line:
                    lines.append(line)
            if prompt and pending.lstrip().startswith(b">"):
                return lines
        port.write(ESC)  # leave no half-typed message behind
        raise DeliveryError("the modem did not answer in time")

    def _close_port(self) -> None:
        if self._port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
            self._port, self._charset = None, None


def _modem_error(line: str) -> DeliveryError:
    found = _CMS.match(line)
    if found:
        code = int(found[1])
        return DeliveryError(
            f"the modem refused the message: +CMS ERROR: {code}",
            permanent=code in PERMANENT_CMS,
            details={"cms_error": code},
        )
    return DeliveryError(f"the modem answered {line}")


def _ucs2_hex(text: str) -> str:
    return text.encode("utf-16-be").hex().upper()
