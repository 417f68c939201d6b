"""A GSM modem on a pseudo-terminal: answers the AT text-mode SMS dialogue (3GPP TS 27.005).

The channel under test opens `device` (the pty's slave side) with pyserial like a real modem; a
thread here reads the master side and answers. Echo is on until ATE0, as on real modems.
"""

from __future__ import annotations

import os
import pty
import re
import select
import threading
import time
import tty
from dataclasses import dataclass

_CMGS = re.compile(r'AT\+CMGS="([^"]+)"(?:,\d+)?', re.IGNORECASE)
_CSCS = re.compile(r'AT\+CSCS="([A-Z0-9]+)"', re.IGNORECASE)


@dataclass(frozen=True)
class DeliveredSms:
    number: str
    text: str


class GsmModem:
    def __init__(self) -> None:
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.device = os.ttyname(self._slave)
        self._lock = threading.Lock()
        self._messages: list[DeliveredSms] = []
        self._commands: list[str] = []
        self._errors: list[int] = []  # +CMS ERROR codes for the next sends
        self.silent = False  # stop answering at all (a hung modem)
        self.echo = True
        self.text_mode = False
        self.charset = "IRA"
        self._number: str | None = None  # set between AT+CMGS and Ctrl-Z
        self._ref = 0
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="test-gsm-modem", daemon=True)

    def start(self) -> GsmModem:
        self._thread.start()
        return self

    def stop(self) -> None:
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            os.close(fd)

    @property
    def messages(self) -> list[DeliveredSms]:
        with self._lock:
            return list(self._messages)

    @property
    def commands(self) -> list[str]:
        """Every AT command line received, in order."""
        with self._lock:
            return list(self._commands)

    def fail_next(self, cms_error: int, times: int = 1) -> None:
        """Answer the next `times` messages with +CMS ERROR: <cms_error>."""
        with self._lock:
            self._errors.extend([cms_error] * times)

    # ---- the modem's side ------------------------------------------------------------------------------

    def _run(self) -> None:
        pending = b""
        while True:
            readable, _, _ = select.select([self._master, self._wake_r], [], [])
            if self._wake_r in readable:
                return
            try:
                pending += os.read(self._master, 4096)
            except OSError:  # EIO: no process has the slave open (between two opens)
                time.sleep(0.01)
                continue
            if self.silent:
                pending = b""
                continue
            pending = self._consume(pending)

    def _consume(self, data: bytes) -> bytes:
        """Act on every complete command (or message text); return the incomplete rest."""
        while data:
            if self._number is not None:  # typing the message: it ends at Ctrl-Z, Esc abandons it
                end = min((i for i in (data.find(b"\x1a"), data.find(b"\x1b")) if i >= 0), default=-1)
                if end < 0:
                    return data
                body, terminator, data = data[:end], data[end : end + 1], data[end + 1 :]
                self._message(body, send=terminator == b"\x1a")
                continue
            end = data.find(b"\r")
            if end < 0:
                return data
            line, data = data[:end].decode("ascii", "replace").strip(), data[end + 1 :]
            if line:
                if self.echo:
                    self._write(line + "\r")
                self._command(line)
        return data

    def _command(self, line: str) -> None:
        with self._lock:
            self._commands.append(line)
        upper = line.upper()
        if upper in ("AT", "AT+CMEE=1", "AT+CMEE=0") or upper.startswith("AT+CSMP="):
            self._result("OK")
        elif upper in ("ATE0", "ATE1"):
            self.echo = upper == "ATE1"
            self._result("OK")
        elif upper in ("AT+CMGF=0", "AT+CMGF=1"):
            self.text_mode = upper.endswith("1")
            self._result("OK")
        elif match := _CSCS.fullmatch(line):
            self.charset = match[1].upper()
            self._result("OK" if self.charset in ("IRA", "GSM", "UCS2") else "ERROR")
        elif match := _CMGS.fullmatch(line):
            if not self.text_mode:
                self._result("+CMS ERROR: 304")  # PDU mode parameter: we only speak text mode
                return
            self._number = self._decode(match[1])
            self._write("\r\n> ")
        else:
            self._result("ERROR")

    def _message(self, body: bytes, *, send: bool) -> None:
        number, self._number = self._number, None
        if not send:
            self._result("OK")
            return
        with self._lock:
            error = self._errors.pop(0) if self._errors else None
        if error is not None:
            self._result(f"+CMS ERROR: {error}")
            return
        assert number is not None
        with self._lock:
            self._messages.append(DeliveredSms(number, self._decode(body.decode("ascii", "replace"))))
        self._ref = (self._ref + 1) % 256
        self._write(f"\r\n+CMGS: {self._ref}\r\n")
        self._result("OK")

    def _decode(self, text: str) -> str:
        return bytes.fromhex(text).decode("utf-16-be") if self.charset == "UCS2" else text

    def _result(self, code: str) -> None:
        self._write(f"\r\n{code}\r\n")

    def _write(self, text: str) -> None:
        os.write(self._master, text.encode("ascii"))
