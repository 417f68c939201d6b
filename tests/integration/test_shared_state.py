"""State that API replicas share through Redis without a round trip per request: the revocation
mirror (pub/sub) and the synced per-request rate limit. Two instances stand in for two replicas;
the cross-process test with two real servers is in test_accounts_processes.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from limits import parse

from fimum_ai.accounts.revocation import RedisRevocationStore
from fimum_ai.limits import SyncedCounter
from tests.conftest import REDIS_URL


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 2.0) -> float:
    """Seconds until `check` held (fails after `timeout`)."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < timeout, "did not happen in time"
        await asyncio.sleep(0.005)
    return time.monotonic() - start


def test_a_revocation_reaches_every_replica_at_once(redis_prefix: str) -> None:
    async def scenario() -> None:
        a, b = RedisRevocationStore(REDIS_URL, redis_prefix), RedisRevocationStore(REDIS_URL, redis_prefix)
        await a.start()
        await b.start()
        try:
            ask = {"jti": "t1", "family_id": "f1", "user_id": "u1", "issued_at": time.time()}
            assert not await b.is_revoked(**ask)
            await a.revoke_token("t1", 60)
            assert await a.is_revoked(**ask)  # the writer sees it without waiting
            waited = await eventually(lambda: b.is_revoked(**ask))
            assert waited < 0.5
            await a.revoke_family("f2", 60)
            await a.revoke_user_before("u3", time.time(), 60)
            # A replica that starts later loads what is already revoked.
            c = RedisRevocationStore(REDIS_URL, redis_prefix)
            await c.start()
            try:
                assert await c.is_revoked(jti="x", family_id="f2", user_id="u9", issued_at=0)
                assert await c.is_revoked(jti="x", family_id="y", user_id="u3", issued_at=time.time() - 5)
                assert not await c.is_revoked(jti="x", family_id="y", user_id="u3", issued_at=time.time() + 5)
            finally:
                await c.aclose()
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(scenario())


def test_revocations_expire_with_the_token(redis_prefix: str) -> None:
    async def scenario() -> None:
        store = RedisRevocationStore(REDIS_URL, redis_prefix)
        await store.start()
        try:
            await store.revoke_token("short", 0.2)
            assert await store.is_revoked(jti="short", family_id=None, user_id="u", issued_at=0)
            await asyncio.sleep(0.3)
            assert not await store.is_revoked(jti="short", family_id=None, user_id="u", issued_at=0)
        finally:
            await store.aclose()

    asyncio.run(scenario())


def test_synced_counters_share_one_limit_between_replicas(redis_prefix: str) -> None:
    async def scenario() -> None:
        rate = parse("10/minute")
        a = SyncedCounter(REDIS_URL, redis_prefix, interval_s=0.02)
        b = SyncedCounter(REDIS_URL, redis_prefix, interval_s=0.02)
        await a.start()
        await b.start()
        try:
            first = [await a.hit("user:1", rate) for _ in range(6)]
            assert all(s.allowed for s in first) and first[-1].remaining == 4
            await asyncio.sleep(0.15)  # a synced: b joins the window knowing a admitted 6
            second = [await b.hit("user:1", rate) for _ in range(6)]
            assert [s.allowed for s in second] == [True] * 4 + [False] * 2
            assert second[3].remaining == 0 and second[5].reset_at > time.time()
            await asyncio.sleep(0.15)
            assert not (await a.hit("user:1", rate)).allowed  # a learnt b's 4 as well
            assert (await a.hit("user:2", rate)).allowed  # other users are not affected
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(scenario())


def test_synced_counter_keeps_limiting_without_redis() -> None:
    async def scenario() -> None:
        counter = SyncedCounter("redis://127.0.0.1:1/0", "nowhere:", interval_s=0.01)
        await counter.start()
        try:
            rate = parse("3/minute")
            assert [(await counter.hit("ip:x", rate)).allowed for _ in range(4)] == [True, True, True, False]
            await asyncio.sleep(0.05)  # failing syncs are logged, not raised
        finally:
            await counter.aclose()

    asyncio.run(scenario())
