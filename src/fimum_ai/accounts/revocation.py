"""The revocation list: Redis in distributed mode (shared by every replica), the database plus an
in-process copy in embedded mode. One interface; `build_revocation_store` picks the backend.

Three kinds of entry, each expiring when nothing it could revoke is still valid:
`jti:<id>` one access token, `fam:<id>` one login session (every token of a refresh family),
`usr:<id>` = epoch seconds: every token of that user issued before then ("log out everywhere").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import delete, select

from fimum_ai.db import Database, RevokedToken
from fimum_ai.redis_clients import async_redis
from fimum_ai.settings import Settings

log = logging.getLogger(__name__)


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


class _Entries:
    """key -> (value, expires epoch): the in-process copy both stores check against."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[str, float]] = {}

    def put(self, key: str, value: str, expires: float) -> None:
        old = self.items.get(key)
        if old is not None and key.startswith("usr:") and float(old[0]) > float(value):
            return  # announcements can arrive out of order: the later cut-off wins
        self.items[key] = (value, expires)

    def get(self, key: str) -> str | None:
        entry = self.items.get(key)
        if entry is None:
            return None
        if entry[1] <= time.time():
            self.items.pop(key, None)
            return None
        return entry[0]

    def is_revoked(self, jti: str | None, family_id: str | None, user_id: str, issued_at: float) -> bool:
        return _revoked(
            self.get(f"jti:{jti}") if jti else None,
            self.get(f"fam:{family_id}") if family_id else None,
            self.get(f"usr:{user_id}"),
            issued_at,
        )


class _MirroredStore:
    """What both stores share: entries checked in memory, written through `_set` by each backend."""

    _entries: _Entries

    async def _set(self, key: str, value: str, ttl_s: float) -> None:
        raise NotImplementedError

    async def revoke_token(self, jti: str, ttl_s: float) -> None:
        await self._set(f"jti:{jti}", "1", ttl_s)

    async def revoke_family(self, family_id: str, ttl_s: float) -> None:
        await self._set(f"fam:{family_id}", "1", ttl_s)

    async def revoke_user_before(self, user_id: str, when: float, ttl_s: float) -> None:
        await self._set(f"usr:{user_id}", repr(when), ttl_s)

    async def is_revoked(
        self, *, jti: str | None, family_id: str | None, user_id: str, issued_at: float
    ) -> bool:
        return self._entries.is_revoked(jti, family_id, user_id, issued_at)


class RedisRevocationStore(_MirroredStore):
    """Redis is the shared truth; every replica keeps a mirror of it in memory, so checking a token
    costs no round trip. A revocation is written to Redis and announced on a pub/sub channel; every
    replica applies the announcement at once (milliseconds). A replica loads the whole list when it
    starts, again after any pub/sub reconnect, and every `resync_s` as a safety net."""

    def __init__(self, url: str, prefix: str, *, resync_s: float = 30.0) -> None:
        self._redis = async_redis(url)
        self._prefix = prefix + "revoked:"
        self._channel = prefix + "revocations"
        self._resync_s = resync_s
        self._entries = _Entries()
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._channel)  # subscribe first: nothing published meanwhile is lost
        await self._load()
        self._listener = asyncio.create_task(self._listen(pubsub), name="revocation-listener")

    async def _load(self) -> None:
        keys = [key async for key in self._redis.scan_iter(match=self._prefix + "*", count=1000)]
        fresh = _Entries()
        if keys:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.get(key)
                    pipe.pttl(key)
                results = await pipe.execute()
            now = time.time()
            for key, value, pttl in zip(keys, results[::2], results[1::2], strict=True):
                if value is not None and pttl and pttl > 0:
                    fresh.put(key.decode()[len(self._prefix) :], value.decode(), now + pttl / 1000)
        self._entries = fresh

    async def _listen(self, pubsub: Any) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=self._resync_s)
                if message is None:
                    await self._load()
                    continue
                key, value, expires = json.loads(message["data"])
                self._entries.put(str(key), str(value), float(expires))
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except Exception:
                log.warning("revocation channel lost; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                    pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                    await pubsub.subscribe(self._channel)
                    await self._load()

    async def _set(self, key: str, value: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        expires = time.time() + ttl_s
        self._entries.put(key, value, expires)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))
            pipe.publish(self._channel, json.dumps([key, value, expires]))
            await pipe.execute()

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        await self._redis.aclose()


class DatabaseRevocationStore(_MirroredStore):
    """Embedded mode is one process: every entry lives in a dict (checks cost a lookup) and in the
    database (so a restart does not bring a revoked token back)."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._entries = _Entries()

    async def start(self) -> None:
        self._entries = await asyncio.to_thread(self._load)

    def _load(self) -> _Entries:
        now = datetime.now(UTC)
        entries = _Entries()
        with self._db.session() as session, session.begin():
            session.execute(delete(RevokedToken).where(RevokedToken.expires_at <= now))
            for row in session.scalars(select(RevokedToken)):
                entries.put(row.key, row.value, row.expires_at.timestamp())
        return entries

    async def _set(self, key: str, value: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        expires = time.time() + ttl_s
        self._entries.put(key, value, expires)
        await asyncio.to_thread(self._save, key, value, expires)

    def _save(self, key: str, value: str, expires: float) -> None:
        with self._db.session() as session, session.begin():
            session.merge(RevokedToken(key=key, value=value, expires_at=datetime.fromtimestamp(expires, UTC)))

    async def aclose(self) -> None:
        self._entries = _Entries()


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
