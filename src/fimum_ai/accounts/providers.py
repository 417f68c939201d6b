"""The seam for ways of signing in. A provider proves who someone is and returns the user; what
follows (tokens, sessions, revocation, limits) is the same for every provider.

Today there is one provider, the one-time code (`OtpService`, name "otp"). SAML single sign-on for
Enterprise (a later issue) implements this Protocol and adds its own routes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from fimum_ai.accounts.users import UserSnapshot


class LoginProvider(Protocol):
    name: str

    def sign_in(self, proof: Mapping[str, str]) -> UserSnapshot:
        """Check the provider's proof of identity (blocking; run it in a thread) and return the
        user, creating it where the sign-up policy allows; raise a FimumError if it fails."""
        ...
