"""What every delivery channel shares: the message, the error, the channel protocol."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from fimum_ai.accounts.identifiers import mask
from fimum_ai.errors import FimumError

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_CODE = re.compile(r"\d{4,10}")


@dataclass(frozen=True, repr=False)
class OtpMessage:
    """One one-time code on its way to one person."""

    channel: Literal["email", "sms"]
    recipient: str  # an e-mail address, or an E.164 phone number like +14155550123
    code: str  # digits
    expires_in_s: int
    public_url: str | None = None

    def __post_init__(self) -> None:
        if self.channel not in ("email", "sms"):
            raise ValueError(f"channel must be 'email' or 'sms', not {self.channel!r}")
        if not _CODE.fullmatch(self.code):
            raise ValueError("code must be 4 to 10 digits")
        if self.channel == "sms" and not _E164.fullmatch(self.recipient):
            raise ValueError("an SMS recipient must be an E.164 number like +14155550123")
        if self.channel == "email" and "@" not in self.recipient:
            raise ValueError("an e-mail recipient must be an e-mail address")
        if self.expires_in_s <= 0:
            raise ValueError("expires_in_s must be positive")

    @property
    def masked_recipient(self) -> str:
        return mask(self.recipient)

    @property
    def expires_in_min(self) -> int:
        return max(1, round(self.expires_in_s / 60))

    def __repr__(self) -> str:
        # A message may end up in a log line or a traceback: never show the code, nor the full address.
        return (
            f"OtpMessage(channel={self.channel!r}, recipient={self.masked_recipient!r}, code='******', "
            f"expires_in_s={self.expires_in_s!r}, public_url={self.public_url!r})"
        )

    __str__ = __repr__


class DeliveryError(FimumError):
    """A channel could not deliver a message. `permanent` errors (a refused address, an invalid number,
    bad credentials) are not worth retrying; the others (timeouts, 4xx, throttling) are."""

    code = "delivery_failed"
    status = 503

    def __init__(
        self, message: str, *, permanent: bool = False, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.permanent = permanent


class Channel(Protocol):
    """A way to deliver one-time codes. `send` raises DeliveryError; `aclose` releases connections."""

    name: str  # "console" | "smtp" | "smpp" | "modem"

    async def send(self, message: OtpMessage) -> None: ...

    async def aclose(self) -> None: ...


def e164_digits(number: str) -> str:
    """+14155550123 -> 14155550123 (an SMSC's international address), or a permanent DeliveryError."""
    if not _E164.fullmatch(number):
        raise DeliveryError("not an E.164 phone number", permanent=True)
    return number[1:]
