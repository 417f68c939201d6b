"""JWT access and refresh tokens (PyJWT, HS256) and the signing key they are made with."""

from __future__ import annotations

import logging
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt

from fimum_ai.errors import InvalidToken
from fimum_ai.settings import Settings

log = logging.getLogger(__name__)
ISSUER = "fimum"
ALGORITHM = "HS256"
TokenType = Literal["access", "refresh"]


def signing_key(settings: Settings) -> bytes:
    """FIMUM_JWT_SECRET, or (embedded mode) a random key generated once into data_dir, mode 0600."""
    if settings.jwt_secret is not None:
        key = settings.jwt_secret.get_secret_value().encode()
        if len(key) < 32:
            raise ValueError("FIMUM_JWT_SECRET must be at least 32 bytes")
        return key
    path = settings.data_dir / "jwt_secret"
    if not path.exists():
        _create_secret_file(path)
    key = path.read_bytes().strip()
    if len(key) < 32:
        raise ValueError(
            f"{path}: the signing key is shorter than 32 bytes; delete the file to regenerate it"
        )
    return key


def _create_secret_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting together cannot both write a (different) key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_urlsafe(48).encode())
    log.info("generated a JWT signing key", extra={"path": str(path)})


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: str
    type: TokenType
    jti: str
    family_id: str
    issued_at: float
    expires_at: float


class TokenCodec:
    def __init__(self, key: bytes, *, access_ttl_s: int, refresh_ttl_s: int) -> None:
        self._key = key
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s

    def issue(self, type_: TokenType, user_id: str, family_id: str) -> IssuedToken:
        now = time.time()
        ttl = self.access_ttl_s if type_ == "access" else self.refresh_ttl_s
        jti = str(uuid.uuid4())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": user_id,
            "typ": type_,
            "jti": jti,
            "fam": family_id,
            "iat": now,  # a float: "log out everywhere" compares it at sub-second resolution
            "exp": int(now + ttl),
        }
        return IssuedToken(jwt.encode(claims, self._key, algorithm=ALGORITHM), jti, float(claims["exp"]))

    def decode(self, token: str, expected: TokenType) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "jti", "typ", "fam"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired", details={"reason": "expired"}) from None
        except jwt.InvalidTokenError:
            raise InvalidToken("the token is not valid", details={"reason": "invalid"}) from None
        if claims["typ"] != expected:
            raise InvalidToken(f"expected an {expected} token", details={"reason": "wrong_type"})
        return TokenClaims(
            user_id=str(claims["sub"]),
            type=expected,
            jti=str(claims["jti"]),
            family_id=str(claims["fam"]),
            issued_at=float(claims["iat"]),
            expires_at=float(claims["exp"]),
        )
