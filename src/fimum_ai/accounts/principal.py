"""Who is calling: the authenticated user as every route and limit sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    tier: str
    is_admin: bool
    email: str | None
    phone: str | None
    via: Literal["jwt", "api_key"]
    jti: str | None = None  # the access token's id (None for API keys)
    family_id: str | None = None  # the login session the token belongs to
    expires_at: float | None = None  # the access token's exp (epoch seconds)
