"""Rate limits and daily quotas for every tier.

- `RateLimiter`: requests per window over the `limits` library (in-process memory in embedded mode,
  Redis in distributed mode, so every API replica shares the count).
- `RateLimitMiddleware`: the per-request limit for `/api/` (per user by tier, else per client IP).
- `QuotaService`: daily counters per user and kind (images, research), UTC calendar days, with an
  atomic reserve/refund over a `QuotaStore` (the database in embedded mode, Redis in distributed).

-1 means unlimited everywhere; an unlimited limit never touches storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol

import anyio.to_thread
from limits import RateLimitItem, RateLimitItemPerMinute, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fimum_ai.accounts.principal import Principal
from fimum_ai.db import Database, QuotaUsage
from fimum_ai.errors import FimumError
from fimum_ai.redis_clients import async_redis
from fimum_ai.settings import Settings

logger = logging.getLogger(__name__)

QuotaKind = Literal["images", "research"]
QUOTA_KINDS: tuple[QuotaKind, ...] = ("images", "research")


def _iso(moment: float | datetime) -> str:
    if isinstance(moment, float | int):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).isoformat()


def _seconds_until(epoch: float) -> int:
    return max(1, math.ceil(epoch - time.time()))


# --- Results and errors -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateState:
    """The outcome of one hit. For an unlimited rate: limit = remaining = -1, reset_at = 0."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # epoch seconds (UTC) when the current window ends

    @property
    def unlimited(self) -> bool:
        return self.limit < 0

    def headers(self) -> dict[str, str]:
        if self.unlimited:
            return {}
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }


UNLIMITED = RateState(allowed=True, limit=-1, remaining=-1, reset_at=0.0)


class RateLimited(FimumError):
    code = "rate_limited"
    status = 429

    def __init__(self, state: RateState, window: str, message: str | None = None) -> None:
        self.retry_after = _seconds_until(state.reset_at)
        super().__init__(
            message or f"Too many requests: the limit is {state.limit} per {window}. Try again later.",
            details={
                "limit": state.limit,
                "window": window,
                "remaining": state.remaining,
                "resets_at": _iso(state.reset_at),
            },
            headers={"Retry-After": str(self.retry_after), **state.headers()},
        )


class QuotaExceeded(FimumError):
    code = "quota_exceeded"
    status = 429

    def __init__(self, *, kind: str, limit: int, used: int, requested: int, resets_at: datetime) -> None:
        self.retry_after = _seconds_until(resets_at.timestamp())
        super().__init__(
            f"Daily {kind} quota reached: {used} of {limit} used, {requested} requested. "
            f"It resets at {_iso(resets_at)}.",
            details={
                "kind": kind,
                "limit": limit,
                "used": used,
                "requested": requested,
                "resets_at": _iso(resets_at),
            },
            headers={"Retry-After": str(self.retry_after)},
        )


# --- Rate limiter ------------------------------------------------------------------------------


def _window_name(item: RateLimitItem) -> str:
    name = item.GRANULARITY.name
    return name if item.multiples == 1 else f"{item.multiples} {name}s"


@dataclass(slots=True)
class _Window:
    end: float  # epoch seconds
    total: int  # the shared count at the last sync
    pending: int  # admitted here since the last sync
    expiry: int  # the window's length in seconds
    synced_at: float = 0.0  # time.monotonic() of the last exchange with Redis


class SyncedCounter:
    """The per-request limit in distributed mode, without a Redis round trip per request.

    Each API process counts locally and, every `interval_s`, adds its counts to the shared Redis
    counters and learns the totals (one pipelined round trip for all keys). A request is admitted
    while (shared total at the last sync + what this process admitted since) stays within the limit.
    The price: within one interval replicas do not see each other's requests, so a client spreading
    requests over N replicas can pass the limit by what N-1 replicas admit in 50 ms. Exact limits
    (the 3 code requests per 15 minutes) keep using `RateLimiter.hit`, one round trip each.
    If Redis is unreachable, each process goes on limiting with its own counts.
    """

    def __init__(self, redis_url: str, prefix: str, interval_s: float = 0.05) -> None:
        self._redis = async_redis(redis_url)
        self._prefix = prefix
        self._interval_s = interval_s
        self._windows: dict[str, _Window] = {}
        self._task: asyncio.Task[None] | None = None
        self._last_failure_log = 0.0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="rate-limit-sync")

    async def hit(self, key: str, item: RateLimitItem) -> RateState:
        """Local when this process knows the key's current window; else one round trip to join it."""
        now = time.time()
        storage_key = self._prefix + item.key_for(key)
        window = self._windows.get(storage_key)
        idle = window is not None and time.monotonic() - window.synced_at > 2 * self._interval_s
        if window is None or window.end <= now or idle:
            # Unknown, over, or idle long enough that other replicas may have moved on: ask Redis.
            window = await self._join(storage_key, item, window if window and window.end > now else None)
            return RateState(
                window.total <= item.amount, item.amount, max(0, item.amount - window.total), window.end
            )
        count = window.total + window.pending + 1
        if count > item.amount:
            return RateState(False, item.amount, 0, window.end)
        window.pending += 1
        return RateState(True, item.amount, item.amount - count, window.end)

    async def _join(self, storage_key: str, item: RateLimitItem, current: _Window | None) -> _Window:
        """Count this hit (and any not yet synced) in Redis; learn the shared total and window end."""
        expiry = item.get_expiry()
        unsent = current.pending if current is not None else 0
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incrby(storage_key, unsent + 1)
                pipe.expire(storage_key, expiry, nx=True)
                pipe.pttl(storage_key)
                total, _, pttl = await pipe.execute()
            end = time.time() + (pttl / 1000 if pttl and pttl > 0 else expiry)
            window = _Window(end, int(total), 0, expiry, time.monotonic())
        except Exception:
            self._log_failure()
            if current is not None:  # Redis away: go on counting locally
                current.pending += 1
                current.synced_at = time.monotonic()
                return current
            window = _Window(time.time() + expiry, 0, 1, expiry, time.monotonic())
        self._windows[storage_key] = window
        return window

    def _log_failure(self) -> None:
        if time.monotonic() - self._last_failure_log > 10:
            self._last_failure_log = time.monotonic()
            logger.warning("rate limit sync with Redis failed; limiting locally", exc_info=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                self._log_failure()

    async def sync(self) -> None:
        now = time.time()
        for stale in [k for k, w in self._windows.items() if w.end <= now and w.pending == 0]:
            del self._windows[stale]
        batch = [(k, w, w.pending) for k, w in self._windows.items() if w.pending > 0]
        if not batch:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, window, sent in batch:
                pipe.incrby(key, sent)
                pipe.expire(key, window.expiry, nx=True)
                pipe.pttl(key)
            results = await pipe.execute()
        now = time.time()
        synced_at = time.monotonic()
        for (_, window, sent), total, pttl in zip(batch, results[::3], results[2::3], strict=True):
            window.pending -= sent
            window.total = int(total)
            window.synced_at = synced_at
            if pttl and pttl > 0:
                window.end = now + pttl / 1000

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.sync()  # hand over what was counted
        await self._redis.aclose()


class RateLimiter:
    """Fixed windows: a window opens at a key's first hit and lasts the rate's period.

    Why this strategy: one storage round trip per check (the library's INCR+EXPIRE Lua script on
    Redis, ~1 dict update in memory). The library's FixedWindowRateLimiter needs two more (GET, TTL)
    for the remaining/reset headers and the sliding-window counter two in all; here `remaining`
    comes from the INCR's result, and the window's end is remembered in-process by whoever opened
    it, so TTL is asked only once per key and window by a process that did not open it. Costs:
    up to 2x the limit in a burst across a window edge, and a refused hit still counts within its
    window (as in the library's fixed window), which changes nothing for cost=1.
    """

    def __init__(self, storage: Storage, synced: SyncedCounter | None = None) -> None:
        self.storage = storage
        # Distributed mode's per-request limit (see SyncedCounter); None: every hit goes to storage.
        self.synced = synced
        self._parsed: dict[str, RateLimitItem | None] = {}
        self._resets: dict[str, float] = {}  # storage key -> end of its window (epoch seconds)
        self._prune_at = 10_000

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        if settings.mode == "distributed" and settings.redis_url:
            url = settings.redis_url
            if url.startswith("unix://"):
                url = "redis+" + url
            storage = RedisStorage(
                "async+" + url, implementation="redispy", key_prefix=settings.redis_prefix + "rl"
            )
            return cls(storage, SyncedCounter(settings.redis_url, settings.redis_prefix + "rls:"))
        return cls(MemoryStorage())

    def item(self, rate: str | RateLimitItem | None) -> RateLimitItem | None:
        """A parsed rate; None when unlimited (None, a negative amount, or "-1/minute")."""
        if rate is None or isinstance(rate, RateLimitItem):
            return rate if rate is None or rate.amount >= 0 else None
        if rate not in self._parsed:
            self._parsed[rate] = None if rate.strip().startswith("-") else parse(rate)
        return self._parsed[rate]

    @staticmethod
    def per_minute(amount: int) -> RateLimitItem | None:
        return None if amount < 0 else RateLimitItemPerMinute(amount)

    async def hit(self, key: str, rate: str | RateLimitItem | None, cost: int = 1) -> RateState:
        item = self.item(rate)
        if item is None:
            return UNLIMITED
        storage_key = item.key_for(key)
        count = await self.storage.incr(storage_key, item.get_expiry(), cost)
        now = time.time()
        if count == cost:  # this hit opened the window
            reset_at = self._remember(storage_key, now + item.get_expiry(), now)
        else:
            reset_at = self._resets.get(storage_key, 0.0)
            if reset_at <= now:  # another process opened it (or we restarted): ask once
                reset_at = self._remember(storage_key, await self.storage.get_expiry(storage_key), now)
        return RateState(count <= item.amount, item.amount, max(0, item.amount - count), reset_at)

    def _remember(self, storage_key: str, reset_at: float, now: float) -> float:
        self._resets[storage_key] = reset_at
        if len(self._resets) > self._prune_at:  # amortised: the threshold grows with the live keys
            self._resets = {k: v for k, v in self._resets.items() if v > now}
            self._prune_at = max(10_000, 2 * len(self._resets))
        return reset_at

    async def check_or_raise(self, key: str, rate: str | RateLimitItem | None, cost: int = 1) -> RateState:
        state = await self.hit(key, rate, cost)
        if not state.allowed:
            item = self.item(rate)
            raise RateLimited(state, _window_name(item) if item else "")
        return state

    async def clear(self, key: str, rate: str | RateLimitItem | None) -> None:
        item = self.item(rate)
        if item is not None:
            self._resets.pop(item.key_for(key), None)
            await self.storage.clear(item.key_for(key))

    async def start(self) -> None:
        if self.synced is not None:
            await self.synced.start()

    async def hit_request(self, key: str, item: RateLimitItem) -> RateState:
        """The per-request limit: the synced counter when there is one (no round trip), else `hit`."""
        if self.synced is not None:
            return await self.synced.hit(key, item)
        return await self.hit(key, item)

    async def aclose(self) -> None:
        if self.synced is not None:
            await self.synced.aclose()
        if isinstance(self.storage, RedisStorage):
            client: Any = getattr(self.storage.bridge, "storage", None)  # the library keeps no close()
            if client is not None:
                await client.aclose()
        elif isinstance(self.storage, MemoryStorage) and self.storage.timer is not None:
            self.storage.timer.cancel()


class RateLimitMiddleware:
    """Pure ASGI (BaseHTTPMiddleware costs far more than the check itself) limit on `/api/`.

    Key and limit: the authenticated user's tier (`scope["state"]["principal"]`, set upstream) or
    the client IP with `auth.anonymous_requests_per_minute`. Unlimited tiers get no headers and no
    storage hit. If the limiter's storage fails, requests pass (a Redis blip must not take the API
    down) and a warning is logged at most every 10 s.
    """

    def __init__(self, app: ASGIApp, limiter: RateLimiter, settings: Settings) -> None:
        self.app = app
        self.limiter = limiter
        self._anonymous = RateLimiter.per_minute(settings.auth.anonymous_requests_per_minute)
        self._tiers = {
            name: RateLimiter.per_minute(t.requests_per_minute) for name, t in settings.tiers.items()
        }
        self._last_failure_log = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(("/api/", "/v1/")):
            await self.app(scope, receive, send)
            return
        principal = scope.get("state", {}).get("principal")
        if isinstance(principal, Principal):
            key = "user:" + principal.user_id
            item = self._tiers.get(principal.tier, self._tiers["free"])
        else:
            client = scope.get("client")
            key = "ip:" + (client[0] if client else "unknown")
            item = self._anonymous
        if item is None:
            await self.app(scope, receive, send)
            return
        try:
            state = await self.limiter.hit_request(key, item)
        except Exception:
            if time.monotonic() - self._last_failure_log > 10:
                self._last_failure_log = time.monotonic()
                logger.warning("rate limit storage failed; letting requests through", exc_info=True)
            await self.app(scope, receive, send)
            return
        if not state.allowed:
            await self._refuse(send, RateLimited(state, _window_name(item)))
            return
        extra = [(name.lower().encode(), value.encode()) for name, value in state.headers().items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    async def _refuse(send: Send, error: RateLimited) -> None:
        body = json.dumps(error.to_dict()).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((name.lower().encode(), value.encode()) for name, value in error.headers.items()),
        ]
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


# --- Daily quotas ------------------------------------------------------------------------------


class QuotaStore(Protocol):
    """Daily counters per (user, kind, UTC day). Both operations are atomic on their own."""

    async def reserve(self, user_id: str, kind: str, day: date, n: int, limit: int) -> tuple[bool, int]:
        """Add n unless the counter would pass limit. Returns (granted, used afterwards)."""
        ...

    async def refund(self, user_id: str, kind: str, day: date, n: int) -> None:
        """Take n back, never below 0."""
        ...

    async def used(self, user_id: str, kind: str, day: date) -> int: ...

    async def used_many(self, user_id: str, kinds: tuple[str, ...], day: date) -> dict[str, int]:
        """Every kind's counter in one round trip (GET /api/v1/me reads them all)."""
        ...

    async def aclose(self) -> None: ...


class DatabaseQuotaStore:
    """SQLite or PostgreSQL: one INSERT ... ON CONFLICT DO UPDATE ... WHERE per reservation."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def reserve(self, user_id: str, kind: str, day: date, n: int, limit: int) -> tuple[bool, int]:
        return await anyio.to_thread.run_sync(self._reserve, user_id, kind, day, n, limit)

    async def refund(self, user_id: str, kind: str, day: date, n: int) -> None:
        await anyio.to_thread.run_sync(self._refund, user_id, kind, day, n)

    async def used(self, user_id: str, kind: str, day: date) -> int:
        return await anyio.to_thread.run_sync(self._used, user_id, kind, day)

    async def used_many(self, user_id: str, kinds: tuple[str, ...], day: date) -> dict[str, int]:
        return await anyio.to_thread.run_sync(self._used_many, user_id, kinds, day)

    def _used_many(self, user_id: str, kinds: tuple[str, ...], day: date) -> dict[str, int]:
        query = select(QuotaUsage.kind, QuotaUsage.used).where(
            QuotaUsage.user_id == user_id, QuotaUsage.day == day, QuotaUsage.kind.in_(kinds)
        )
        with self.database.engine.connect() as connection:
            found = {kind: used for kind, used in connection.execute(query)}
        return {kind: int(found.get(kind, 0)) for kind in kinds}

    async def aclose(self) -> None:
        """The database belongs to the app; nothing to close here."""

    def _reserve(self, user_id: str, kind: str, day: date, n: int, limit: int) -> tuple[bool, int]:
        if n > limit:  # the INSERT branch has no WHERE, so a first reservation above the limit stops here
            return False, self._used(user_id, kind, day)
        values = {"user_id": user_id, "kind": kind, "day": day, "used": n}
        keys = [QuotaUsage.user_id, QuotaUsage.kind, QuotaUsage.day]
        fits = QuotaUsage.used + n <= limit
        if self.database.dialect == "postgresql":
            pg = postgresql.insert(QuotaUsage).values(values)
            stmt = pg.on_conflict_do_update(
                index_elements=keys, set_={"used": QuotaUsage.used + n}, where=fits
            ).returning(QuotaUsage.used)
        else:
            lite = sqlite.insert(QuotaUsage).values(values)
            stmt = lite.on_conflict_do_update(
                index_elements=keys, set_={"used": QuotaUsage.used + n}, where=fits
            ).returning(QuotaUsage.used)
        with self.database.engine.begin() as connection:
            used = connection.execute(stmt).scalar_one_or_none()
            if used is not None:
                return True, used
            current = connection.execute(
                select(QuotaUsage.used).where(*self._row(user_id, kind, day))
            ).scalar_one_or_none()
            return False, current or 0

    def _refund(self, user_id: str, kind: str, day: date, n: int) -> None:
        stmt = (
            update(QuotaUsage)
            .where(*self._row(user_id, kind, day))
            .values(used=case((QuotaUsage.used > n, QuotaUsage.used - n), else_=0))
        )
        with self.database.engine.begin() as connection:
            connection.execute(stmt)

    def _used(self, user_id: str, kind: str, day: date) -> int:
        with self.database.engine.connect() as connection:
            used = connection.execute(
                select(QuotaUsage.used).where(*self._row(user_id, kind, day))
            ).scalar_one_or_none()
        return used or 0

    @staticmethod
    def _row(user_id: str, kind: str, day: date) -> tuple[Any, ...]:
        return (QuotaUsage.user_id == user_id, QuotaUsage.kind == kind, QuotaUsage.day == day)


# KEYS[1] counter; ARGV: n, limit, ttl seconds. GET then INCRBY is atomic inside one script.
_RESERVE_LUA = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
if used + n > tonumber(ARGV[2]) then
  return {0, used}
end
used = redis.call('INCRBY', KEYS[1], n)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, used}
"""
_REFUND_LUA = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used > 0 then
  redis.call('SET', KEYS[1], math.max(used - tonumber(ARGV[1]), 0), 'KEEPTTL')
end
return 0
"""


class RedisQuotaStore:
    """Redis: a Lua script per reservation; keys expire about two days after their day."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.client = async_redis(redis_url)
        self.prefix = prefix
        self._reserve = self.client.register_script(_RESERVE_LUA)
        self._refund = self.client.register_script(_REFUND_LUA)

    def _key(self, user_id: str, kind: str, day: date) -> str:
        return f"{self.prefix}quota:{kind}:{day.isoformat()}:{user_id}"

    async def reserve(self, user_id: str, kind: str, day: date, n: int, limit: int) -> tuple[bool, int]:
        # Relative expiry from our clock, so it is right even if Redis's clock differs.
        ttl = _seconds_until(_midnight_after(day).timestamp() + 2 * 86400)
        granted, used = await self._reserve(keys=[self._key(user_id, kind, day)], args=[n, limit, ttl])
        return bool(granted), int(used)

    async def refund(self, user_id: str, kind: str, day: date, n: int) -> None:
        await self._refund(keys=[self._key(user_id, kind, day)], args=[n])

    async def used(self, user_id: str, kind: str, day: date) -> int:
        return int(await self.client.get(self._key(user_id, kind, day)) or 0)

    async def used_many(self, user_id: str, kinds: tuple[str, ...], day: date) -> dict[str, int]:
        values = await self.client.mget([self._key(user_id, kind, day) for kind in kinds])
        return {kind: int(value or 0) for kind, value in zip(kinds, values, strict=True)}

    async def aclose(self) -> None:
        await self.client.aclose()


def build_quota_store(settings: Settings, database: Database) -> QuotaStore:
    if settings.mode == "distributed" and settings.redis_url:
        return RedisQuotaStore(settings.redis_url, settings.redis_prefix)
    return DatabaseQuotaStore(database)


def _midnight_after(day: date) -> datetime:
    following = day + timedelta(days=1)
    return datetime(following.year, following.month, following.day, tzinfo=UTC)


def _today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True, slots=True)
class Reservation:
    kind: str
    n: int
    day: date
    counted: bool = True  # False when the limit was unlimited: nothing to refund


@dataclass(frozen=True, slots=True)
class QuotaReport:
    limit: int | None  # None: unlimited
    used: int
    remaining: int | None  # None: unlimited
    resets_at: datetime


class QuotaService:
    def __init__(self, store: QuotaStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._warned: set[str] = set()
        # user id -> (valid until, day, counters): GET /api/v1/me shows counters up to 1 s old;
        # reservations never use this (they are atomic in the store).
        self._reported: dict[str, tuple[float, date, dict[str, int]]] = {}

    def limit_for(self, tier: str, kind: str) -> int:
        """The daily limit of a tier for a kind; -1 means unlimited. Unknown tiers count as free."""
        if tier not in self.settings.tiers:
            self._warn_once(tier, f"unknown tier {tier!r}; applying the free tier's limits")
            tier = "free"
        if kind == "images":
            own = self.settings.tiers[tier].images_per_day
            images: int | None = (
                own if own is not None else getattr(self.settings.image_generation.rate_limits, tier, None)
            )
            if images is None:
                self._warn_once(f"{tier}/images", f"no image limit for tier {tier!r}; applying free's")
                return self.settings.image_generation.rate_limits.free
            return images
        if kind == "research":
            return self.settings.tiers[tier].research_per_day
        raise ValueError(f"unknown quota kind {kind!r}")

    async def reserve(self, who: Principal | tuple[str, str], kind: QuotaKind, n: int = 1) -> Reservation:
        """Count n units of today's quota for a Principal or a (user_id, tier) pair.

        Raises QuotaExceeded (nothing is counted) when fewer than n remain."""
        if n < 1:
            raise ValueError("n must be at least 1")
        user_id, tier = (who.user_id, who.tier) if isinstance(who, Principal) else who
        limit = self.limit_for(tier, kind)
        day = _today()
        if limit < 0:
            return Reservation(kind, n, day, counted=False)
        self._reported.pop(user_id, None)
        granted, used = await self.store.reserve(user_id, kind, day, n, limit)
        if not granted:
            raise QuotaExceeded(
                kind=kind, limit=limit, used=used, requested=n, resets_at=_midnight_after(day)
            )
        return Reservation(kind, n, day)

    async def refund(self, user_id: str, reservation: Reservation) -> None:
        """Give back a reservation (e.g. the job failed), on the day it was made."""
        if reservation.counted:
            self._reported.pop(user_id, None)
            await self.store.refund(user_id, reservation.kind, reservation.day, reservation.n)

    async def report(self, user_id: str, tier: str) -> dict[str, QuotaReport]:
        day = _today()
        reports: dict[str, QuotaReport] = {}
        cached = self._reported.get(user_id)
        if cached is not None and cached[0] > time.monotonic() and cached[1] == day:
            counted = cached[2]
        else:
            counted = await self.store.used_many(user_id, QUOTA_KINDS, day)
            if len(self._reported) > 100_000:
                self._reported.clear()
            self._reported[user_id] = (time.monotonic() + 1.0, day, counted)
        for kind in QUOTA_KINDS:
            limit = self.limit_for(tier, kind)
            used = counted[kind]
            unlimited = limit < 0
            reports[kind] = QuotaReport(
                limit=None if unlimited else limit,
                used=used,
                remaining=None if unlimited else max(0, limit - used),
                resets_at=_midnight_after(day),
            )
        return reports

    async def aclose(self) -> None:
        await self.store.aclose()

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)


__all__ = [
    "QUOTA_KINDS",
    "UNLIMITED",
    "DatabaseQuotaStore",
    "QuotaExceeded",
    "QuotaKind",
    "QuotaReport",
    "QuotaService",
    "QuotaStore",
    "RateLimitMiddleware",
    "RateLimited",
    "RateLimiter",
    "RateState",
    "RedisQuotaStore",
    "Reservation",
    "build_quota_store",
]
