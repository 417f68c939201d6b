"""The revocation list: Redis in distributed mode (shared by every replica), the database plus an
in-process copy in embedded mode. One interface; `build_revocation_store` picks the backend.

Three kinds of entry, each expiring when nothing it could revoke is still valid:
`jti:<id>` one access token, `fam:<id>` one login session (every token of a refresh family),
`usr:<id>` = epoch seconds: every token of that user issued before then ("log out everywhere").
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

import redis.asyncio as aioredis
from sqlalchemy import delete, select

from fimum_ai.db import Database, RevokedToken
from fimum_ai.settings import Settings


class RevocationStore(Protocol):
    async def start(self) -> None: ...
    async def revoke_token(self, jti: str, ttl_s: float) -> None: ...
    async def revoke_family(self, family_id: str, ttl_s: float) -> None: ...
    async def revoke_user_before(self, user_id: str, when: float, ttl_s: float) -> None: ...
    async def is_revoked(
        self, *, jti: str | None, family_id: str | None, user_id: str, issued_at: float
    ) -> bool:
        """True if the token, its session, or every token of its user issued before it was revoked."""
        ...

    async def aclose(self) -> None: ...


def _revoked(jti_hit: object, fam_hit: object, user_before: str | bytes | None, issued_at: float) -> bool:
    if jti_hit is not None or fam_hit is not None:
        return True
    return user_before is not None and issued_at <= float(user_before)


class RedisRevocationStore:
    def __init__(self, url: str, prefix: str) -> None:
        self._redis = aioredis.Redis.from_url(url)
        self._prefix = prefix + "revoked:"

    async def start(self) -> None:
        await self._redis.ping()

    async def _set(self, key: str, value: str, ttl_s: float) -> None:
        if ttl_s > 0:
            await self._redis.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))

    async def revoke_token(self, jti: str, ttl_s: float) -> None:
        await self._set(f"jti:{jti}", "1", ttl_s)

    async def revoke_family(self, family_id: str, ttl_s: float) -> None:
        await self._set(f"fam:{family_id}", "1", ttl_s)

    async def revoke_user_before(self, user_id: str, when: float, ttl_s: float) -> None:
        await self._set(f"usr:{user_id}", repr(when), ttl_s)

    async def is_revoked(
        self, *, jti: str | None, family_id: str | None, user_id: str, issued_at: float
    ) -> bool:
        p = self._prefix
        # One round trip for all three checks.
        jti_hit, fam_hit, user_before = await self._redis.mget(
            f"{p}jti:{jti or '-'}", f"{p}fam:{family_id or '-'}", f"{p}usr:{user_id}"
        )
        return _revoked(jti_hit, fam_hit, user_before, issued_at)

    async def aclose(self) -> None:
        await self._redis.aclose()


class DatabaseRevocationStore:
    """Embedded mode is one process: every entry lives in a dict (checks cost a lookup) and in the
    database (so a restart does not bring a revoked token back)."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._entries: dict[str, tuple[str, float]] = {}  # key -> (value, expires epoch)

    async def start(self) -> None:
        self._entries = await asyncio.to_thread(self._load)

    def _load(self) -> dict[str, tuple[str, float]]:
        now = datetime.now(UTC)
        with self._db.session() as session, session.begin():
            session.execute(delete(RevokedToken).where(RevokedToken.expires_at <= now))
            rows = session.scalars(select(RevokedToken)).all()
            return {row.key: (row.value, row.expires_at.timestamp()) for row in rows}

    async def _set(self, key: str, value: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        expires = time.time() + ttl_s
        self._entries[key] = (value, expires)
        await asyncio.to_thread(self._save, key, value, expires)

    def _save(self, key: str, value: str, expires: float) -> None:
        with self._db.session() as session, session.begin():
            session.merge(RevokedToken(key=key, value=value, expires_at=datetime.fromtimestamp(expires, UTC)))

    def _get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= time.time():
            self._entries.pop(key, None)
            return None
        return entry[0]

    async def revoke_token(self, jti: str, ttl_s: float) -> None:
        await self._set(f"jti:{jti}", "1", ttl_s)

    async def revoke_family(self, family_id: str, ttl_s: float) -> None:
        await self._set(f"fam:{family_id}", "1", ttl_s)

    async def revoke_user_before(self, user_id: str, when: float, ttl_s: float) -> None:
        await self._set(f"usr:{user_id}", repr(when), ttl_s)

    async def is_revoked(
        self, *, jti: str | None, family_id: str | None, user_id: str, issued_at: float
    ) -> bool:
        return _revoked(
            self._get(f"jti:{jti}") if jti else None,
            self._get(f"fam:{family_id}") if family_id else None,
            self._get(f"usr:{user_id}"),
            issued_at,
        )

    async def aclose(self) -> None:
        self._entries.clear()


def build_revocation_store(settings: Settings, database: Database) -> RevocationStore:
    if settings.mode == "distributed" and settings.redis_url:
        return RedisRevocationStore(settings.redis_url, settings.redis_prefix)
    return DatabaseRevocationStore(database)


def remaining(expires_at: float) -> float:
    return max(0.0, expires_at - time.time())


__all__ = [
    "DatabaseRevocationStore",
    "RedisRevocationStore",
    "RevocationStore",
    "build_revocation_store",
    "remaining",
]
