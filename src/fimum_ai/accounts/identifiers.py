"""E-mail addresses and phone numbers as login identifiers, normalised so one person is one key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from fimum_ai.errors import InvalidInput

Kind = Literal["email", "phone"]


@dataclass(frozen=True, slots=True)
class Identifier:
    kind: Kind
    value: str  # lower-case e-mail address, or E.164 phone number

    @property
    def channel(self) -> Literal["email", "sms"]:
        return "email" if self.kind == "email" else "sms"

    def masked(self) -> str:
        return mask(self.value)


def parse_identifier(raw: str) -> Identifier:
    """An e-mail address or an international phone number (+ and country code); else InvalidInput."""
    text = raw.strip()
    if "@" in text:
        try:
            email = validate_email(text, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise InvalidInput(f"identifier: not a valid e-mail address ({exc})") from None
        # Mailboxes are case-insensitive in practice; one account per address whatever the case.
        return Identifier("email", email.lower())
    if not text.startswith("+"):
        raise InvalidInput(
            "identifier: give an e-mail address or a phone number in international form (+ and country code)"
        )
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(f"identifier: not a valid phone number ({exc})") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput("identifier: not a valid phone number")
    return Identifier("phone", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def mask(value: str) -> str:
    """For logs and screens: a***@example.com, +1415*****23."""
    if "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    return value[:5] + "*" * max(0, len(value) - 7) + value[-2:]
