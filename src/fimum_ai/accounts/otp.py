"""One-time login codes: 6 digits from PyOTP's HOTP over a per-challenge random secret, valid for
`auth.otp_ttl_s`, single use, at most `auth.otp_max_attempts` wrong tries, stored only as an Argon2id
hash (the secret is discarded; the code cannot be recovered from the database).

PyOTP's TOTP is not used on purpose: a 600 s time step is not "valid for 10 minutes from the request"
and every challenge in the same step would share a code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fimum_ai.accounts.identifiers import Identifier, parse_identifier
from fimum_ai.accounts.users import UserSnapshot, count_users, create_user, find_by_identifier
from fimum_ai.db import Database, OtpChallenge
from fimum_ai.errors import FimumError, Forbidden
from fimum_ai.settings import Settings

# OWASP's minimum Argon2id profile (19 MiB, 2 passes): ~20 ms here; the code has only 10^6 values,
# so the hash mostly makes a stolen database expensive to turn into live codes.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


class OtpInvalid(FimumError):
    code = "otp_invalid"
    status = 400


class OtpExpired(FimumError):
    code = "otp_expired"
    status = 400


class OtpAttemptsExceeded(FimumError):
    code = "otp_attempts_exceeded"
    status = 400


class AccountDisabled(Forbidden):
    code = "account_disabled"


@dataclass(frozen=True, slots=True)
class IssuedCode:
    code: str
    expires_in_s: int
    deliver: bool  # False: a decoy for an identifier that may not sign in (nothing is sent)


Outcome = Literal["ok", "invalid", "expired", "dead"]


class OtpService:
    """The one-time-code login provider (see providers.LoginProvider)."""

    name = "otp"

    def __init__(self, database: Database, settings: Settings) -> None:
        self._db = database
        self._settings = settings

    def issue(self, identifier: Identifier) -> IssuedCode:
        """Create a challenge (superseding older ones). Known and unknown identifiers take the same
        path and the same time; only `deliver` differs, and the caller answers both alike."""
        code = pyotp.HOTP(pyotp.random_base32(), digits=6).at(0)
        ttl = self._settings.auth.otp_ttl_s
        now = datetime.now(UTC)
        code_hash = _HASHER.hash(code)
        with self._db.session() as session, session.begin():
            session.execute(
                update(OtpChallenge)
                .where(OtpChallenge.identifier == identifier.value, OtpChallenge.state == "active")
                .values(state="superseded")
            )
            session.add(
                OtpChallenge(
                    identifier=identifier.value,
                    channel=identifier.channel,
                    code_hash=code_hash,
                    created_at=now,
                    expires_at=now + timedelta(seconds=ttl),
                )
            )
            deliver = self._may_sign_in(session, identifier)
        return IssuedCode(code, ttl, deliver)

    def _may_sign_in(self, session: Session, identifier: Identifier) -> bool:
        user = find_by_identifier(session, identifier)
        if user is not None:
            return not user.disabled
        return self._settings.signup_policy == "open"

    def sign_in(self, proof: Mapping[str, str]) -> UserSnapshot:
        return self.verify(parse_identifier(proof["identifier"]), proof["code"])

    def verify(self, identifier: Identifier, code: str) -> UserSnapshot:
        """The user the code belongs to (created on first sign-in when sign-up is open)."""
        max_attempts = self._settings.auth.otp_max_attempts
        attempts_left = 0
        with self._db.session() as session, session.begin():
            challenge = session.scalars(
                select(OtpChallenge)
                .where(OtpChallenge.identifier == identifier.value)
                .order_by(OtpChallenge.created_at.desc())
                .limit(1)
                .with_for_update()
            ).first()
            outcome: Outcome
            if challenge is None or challenge.state in ("used", "superseded"):
                outcome = "invalid"
            elif challenge.state == "dead":
                outcome = "dead"
            elif challenge.expires_at <= datetime.now(UTC):
                outcome = "expired"
            else:
                challenge.attempts += 1
                if _matches(challenge.code_hash, code):
                    challenge.state = "used"
                    outcome = "ok"
                else:
                    attempts_left = max_attempts - challenge.attempts
                    if attempts_left <= 0:
                        challenge.state = "dead"
                    outcome = "invalid" if attempts_left > 0 else "dead"
            user = self._sign_in(session, identifier) if outcome == "ok" else None
        # Raised after the commit: the attempt counter must be saved even when the code is wrong.
        if outcome == "expired":
            raise OtpExpired("the code has expired; request a new one")
        if outcome == "dead":
            raise OtpAttemptsExceeded("too many wrong codes; request a new one")
        if outcome == "invalid" or user is None:
            raise OtpInvalid("the code is not correct", details={"attempts_left": attempts_left})
        if user.disabled:
            raise AccountDisabled("this account is disabled")
        return user

    def _sign_in(self, session: Session, identifier: Identifier) -> UserSnapshot | None:
        user = find_by_identifier(session, identifier)
        if user is None:
            if self._settings.signup_policy != "open":
                return None
            # The first account of a fresh install administers it (as Open WebUI does).
            user = create_user(session, identifier, is_admin=count_users(session) == 0)
        if not user.disabled:
            user.last_login_at = datetime.now(UTC)
        session.flush()
        return UserSnapshot.of(user)


def _matches(code_hash: str, code: str) -> bool:
    try:
        return _HASHER.verify(code_hash, code)  # constant-time comparison inside argon2
    except (VerificationError, InvalidHashError):
        return False
