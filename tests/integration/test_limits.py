"""Rate limits and daily quotas against real backends: memory + Redis (rate limiter), SQLite +
PostgreSQL + Redis (quota store), and the middleware behind a real uvicorn server."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import time_machine
import uvicorn
from limits.aio.storage import MemoryStorage, RedisStorage
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fimum_ai.accounts.principal import Principal
from fimum_ai.db import Database, User, upgrade
from fimum_ai.limits import (
    DatabaseQuotaStore,
    QuotaExceeded,
    QuotaService,
    QuotaStore,
    RateLimited,
    RateLimiter,
    RateLimitMiddleware,
    RedisQuotaStore,
    build_quota_store,
)
from fimum_ai.settings import Settings, load_settings
from tests.conftest import JWT_TEST_SECRET, POSTGRES_URL, REDIS_URL

# Small limits keep every test short: anonymous 3/min, free 5/min (8 images, 2 research a day).
LIMITS: dict[str, Any] = {
    "auth": {"anonymous_requests_per_minute": 3},
    "tiers": {
        "free": {"requests_per_minute": 5, "research_per_day": 2},
        "pro": {"requests_per_minute": 1000, "research_per_day": -1},
        "enterprise": {"requests_per_minute": -1, "research_per_day": -1},
    },
    "image_generation": {"rate_limits": {"free": 8, "pro": 100, "enterprise": -1}},
}
NOW = datetime(2030, 1, 1, 12, 0, 5, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_settings(tmp_path: Path, redis_prefix: str | None = None, **extra: Any) -> Settings:
    if redis_prefix is None:
        return load_settings(data_dir=tmp_path, mode="embedded", **LIMITS, **extra)
    return load_settings(
        data_dir=tmp_path,
        mode="distributed",
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        jwt_secret=JWT_TEST_SECRET,
        **LIMITS,
        **extra,
    )


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    """Python's clock stands still at NOW (Redis keeps its own time for key expiry)."""
    with time_machine.travel(NOW, tick=False):
        yield


# --- RateLimiter -------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def limiter_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    prefix = request.getfixturevalue("redis_prefix") if request.param == "redis" else None
    return make_settings(tmp_path, prefix)


@pytest.fixture
async def limiter(limiter_settings: Settings) -> AsyncIterator[RateLimiter]:
    rl = RateLimiter.from_settings(limiter_settings)
    yield rl
    await rl.aclose()


@pytest.mark.anyio
async def test_hit_beyond_the_limit_is_refused_with_remaining_and_reset(
    limiter: RateLimiter, frozen_clock: None
) -> None:
    window_end = NOW.timestamp() + 60  # the window opens at the first hit
    states = [await limiter.hit("k", "3/minute") for _ in range(4)]
    assert [s.allowed for s in states] == [True, True, True, False]
    assert [s.remaining for s in states] == [2, 1, 0, 0]
    assert all(s.limit == 3 and s.reset_at == window_end for s in states)
    # Another key has its own count; a cost counts that many.
    other = await limiter.hit("other", "3/minute", cost=2)
    assert (other.allowed, other.remaining) == (True, 1)


@pytest.mark.anyio
async def test_check_or_raise_raises_rate_limited_with_retry_after(
    limiter: RateLimiter, frozen_clock: None
) -> None:
    await limiter.check_or_raise("otp", "2/15 minutes")
    await limiter.check_or_raise("otp", "2/15 minutes")
    with pytest.raises(RateLimited) as caught:
        await limiter.check_or_raise("otp", "2/15 minutes")
    error = caught.value
    assert error.retry_after == 15 * 60
    assert error.status == 429 and error.code == "rate_limited"
    assert error.headers["Retry-After"] == str(error.retry_after)
    assert error.headers["X-RateLimit-Limit"] == "2"
    assert error.headers["X-RateLimit-Remaining"] == "0"
    assert error.headers["X-RateLimit-Reset"] == str(int(NOW.timestamp()) + 15 * 60)
    assert error.to_dict()["error"]["details"] == {
        "limit": 2,
        "window": "15 minutes",
        "remaining": 0,
        "resets_at": "2030-01-01T12:15:05+00:00",
    }


@pytest.mark.anyio
async def test_clear_and_unlimited(limiter: RateLimiter, limiter_settings: Settings) -> None:
    for _ in range(3):
        await limiter.hit("k", "3/hour")
    assert not (await limiter.hit("k", "3/hour")).allowed
    await limiter.clear("k", "3/hour")
    assert (await limiter.hit("k", "3/hour")).remaining == 2
    await limiter.clear("k", "3/hour")

    for rate in ("-1/minute", RateLimiter.per_minute(-1), None):
        for _ in range(50):
            state = await limiter.hit("unlimited", rate)
            assert state.allowed and state.unlimited and state.headers() == {}
    # Nothing was stored for the unlimited key (or left behind by the cleared one).
    if isinstance(limiter.storage, MemoryStorage):
        assert not limiter.storage.storage
    else:
        client = redis.Redis.from_url(REDIS_URL)
        assert list(client.scan_iter(match=f"{limiter_settings.redis_prefix}*")) == []
        client.close()


@pytest.mark.anyio
async def test_a_new_window_opens_when_the_old_one_ends(limiter: RateLimiter) -> None:
    assert (await limiter.hit("w", "2/second")).allowed
    assert (await limiter.hit("w", "2/second")).allowed
    refused = await limiter.hit("w", "2/second")
    assert not refused.allowed and refused.reset_at <= time.time() + 1
    await asyncio.sleep(max(0.0, refused.reset_at - time.time()) + 0.05)
    again = await limiter.hit("w", "2/second")
    assert (again.allowed, again.remaining) == (True, 1) and again.reset_at > refused.reset_at


@pytest.mark.anyio
async def test_unlimited_works_without_reachable_storage() -> None:
    rl = RateLimiter(RedisStorage("async+redis://127.0.0.1:1", implementation="redispy"))
    assert (await rl.check_or_raise("k", "-1/minute")).allowed
    await rl.aclose()


@pytest.mark.anyio
async def test_two_limiters_on_one_redis_share_the_count(
    tmp_path: Path, redis_prefix: str, frozen_clock: None
) -> None:
    settings = make_settings(tmp_path, redis_prefix)
    a, b = RateLimiter.from_settings(settings), RateLimiter.from_settings(settings)
    try:
        results = [await (a if i % 2 else b).hit("shared", "4/minute") for i in range(6)]
        assert [r.allowed for r in results] == [True, True, True, True, False, False]
        assert [r.remaining for r in results] == [3, 2, 1, 0, 0, 0]
        # b opened the window; a learnt its end from Redis (TTL has whole seconds).
        assert all(NOW.timestamp() + 58 <= r.reset_at <= NOW.timestamp() + 60 for r in results)
    finally:
        await a.aclose()
        await b.aclose()


# --- Quotas ------------------------------------------------------------------------------------

StoreFactory = Callable[[], QuotaStore]


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def quota_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[StoreFactory, str]]:
    """(a factory of stores sharing one backend, a user id). Each call = one more 'process'."""
    if request.param == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        yield (lambda: RedisQuotaStore(REDIS_URL, prefix)), "user-1"
        return
    if request.param == "sqlite":
        settings = load_settings(data_dir=tmp_path)
    else:
        schema = request.getfixturevalue("pg_schema")
        settings = load_settings(data_dir=tmp_path, database_url=POSTGRES_URL, database_schema=schema)
    database = Database(settings)
    upgrade(database.engine, settings.database_schema)
    with database.session() as session, session.begin():
        user = User(email="quota@example.com")
        session.add(user)
    yield (lambda: DatabaseQuotaStore(database)), user.id
    database.dispose()


@pytest.fixture
async def quotas(
    quota_backend: tuple[StoreFactory, str], tmp_path: Path
) -> AsyncIterator[tuple[QuotaService, str]]:
    make_store, user_id = quota_backend
    service = QuotaService(make_store(), make_settings(tmp_path))
    yield service, user_id
    await service.aclose()


@pytest.mark.anyio
async def test_exactly_the_remaining_concurrent_reservations_succeed(
    quotas: tuple[QuotaService, str],
) -> None:
    service, user = quotas
    await service.reserve((user, "free"), "images", 3)  # 5 of 8 remain

    async def one() -> bool:
        try:
            await service.reserve((user, "free"), "images")
            return True
        except QuotaExceeded:
            return False

    results = await asyncio.gather(*(one() for _ in range(20)))
    assert sum(results) == 5
    report = (await service.report(user, "free"))["images"]
    assert (report.limit, report.used, report.remaining) == (8, 8, 0)


def test_exactly_the_remaining_reservations_succeed_from_20_threads(
    quota_backend: tuple[StoreFactory, str], tmp_path: Path
) -> None:
    """Each thread has its own event loop and store, as separate API processes would."""
    make_store, user = quota_backend
    settings = make_settings(tmp_path)
    asyncio.run(_reserve_once(QuotaService(make_store(), settings), user, 3))
    start = threading.Barrier(20)
    results: list[bool] = []

    def worker() -> None:
        service = QuotaService(make_store(), settings)
        start.wait()
        results.append(asyncio.run(_reserve_once(service, user, 1)))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 20 and sum(results) == 5


async def _reserve_once(service: QuotaService, user: str, n: int) -> bool:
    try:
        await service.reserve((user, "free"), "images", n)
        return True
    except QuotaExceeded:
        return False
    finally:
        await service.aclose()


@pytest.mark.anyio
async def test_refund_restores_and_never_goes_below_zero(quotas: tuple[QuotaService, str]) -> None:
    service, user = quotas
    principal = Principal(user, "free", False, "quota@example.com", None, "jwt")
    first = await service.reserve(principal, "research")
    await service.reserve(principal, "research")
    with pytest.raises(QuotaExceeded):
        await service.reserve(principal, "research")
    await service.refund(user, first)
    assert (await service.report(user, "free"))["research"].remaining == 1
    await service.reserve(principal, "research")
    for _ in range(3):
        await service.refund(user, first)
    assert (await service.report(user, "free"))["research"].used == 0
    # A first reservation larger than the whole quota is refused and counts nothing.
    with pytest.raises(QuotaExceeded) as caught:
        await service.reserve(principal, "images", 9)
    assert caught.value.details["used"] == 0
    assert (await service.report(user, "free"))["images"].used == 0


@pytest.mark.anyio
async def test_the_day_rolls_over_at_utc_midnight(quotas: tuple[QuotaService, str]) -> None:
    service, user = quotas
    with time_machine.travel(datetime(2030, 3, 10, 23, 59, 50, tzinfo=UTC), tick=False) as traveller:
        yesterday = await service.reserve((user, "free"), "research", 2)
        with pytest.raises(QuotaExceeded) as caught:
            await service.reserve((user, "free"), "research")
        error = caught.value
        assert error.status == 429 and error.code == "quota_exceeded"
        assert error.retry_after == 10 and error.headers == {"Retry-After": "10"}
        assert error.details == {
            "kind": "research",
            "limit": 2,
            "used": 2,
            "requested": 1,
            "resets_at": "2030-03-11T00:00:00+00:00",
        }

        traveller.move_to(datetime(2030, 3, 11, 0, 0, 1, tzinfo=UTC))
        today = await service.reserve((user, "free"), "research")
        assert today.day == date(2030, 3, 11)
        report = (await service.report(user, "free"))["research"]
        assert (report.used, report.remaining) == (1, 1)
        assert report.resets_at == datetime(2030, 3, 12, tzinfo=UTC)
        # A refund goes back to the reservation's own day.
        await service.refund(user, yesterday)
        assert await service.store.used(user, "research", date(2030, 3, 10)) == 0
        assert await service.store.used(user, "research", date(2030, 3, 11)) == 1


@pytest.mark.anyio
async def test_unlimited_tiers_are_never_refused_nor_counted(quotas: tuple[QuotaService, str]) -> None:
    service, user = quotas
    for _ in range(30):
        reservation = await service.reserve((user, "enterprise"), "images", 4)
        assert not reservation.counted
        await service.reserve((user, "pro"), "research")
    report = await service.report(user, "enterprise")
    assert report["images"].limit is None and report["images"].remaining is None
    assert report["images"].used == 0 and report["research"].used == 0
    # An unknown tier gets the free tier's limits.
    assert service.limit_for("platinum", "images") == 8
    assert (await service.report(user, "platinum"))["research"].limit == 2


def test_build_quota_store_picks_the_backend_from_the_mode(tmp_path: Path, redis_prefix: str) -> None:
    database = Database(load_settings(data_dir=tmp_path))
    assert isinstance(build_quota_store(make_settings(tmp_path), database), DatabaseQuotaStore)
    store = build_quota_store(make_settings(tmp_path, redis_prefix), database)
    assert isinstance(store, RedisQuotaStore) and store.prefix == redis_prefix
    asyncio.run(store.aclose())
    database.dispose()


# --- Middleware behind a real uvicorn ------------------------------------------------------------


def _with_test_principal(app: ASGIApp) -> ASGIApp:
    """Stands in for the auth middleware: `X-Test-User: id:tier` becomes the scope's Principal."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"x-test-user":
                    user_id, tier = value.decode().split(":")
                    principal = Principal(user_id, tier, False, None, None, "jwt")
                    scope.setdefault("state", {})["principal"] = principal
        await app(scope, receive, send)

    return wrapped


@pytest.fixture
def server(limiter_settings: Settings) -> Iterator[httpx.Client]:
    limiter = RateLimiter.from_settings(limiter_settings)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await limiter.aclose()  # in the server's own event loop, where its connections live

    async def ping(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def health(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/api/ping", ping), Route("/healthz", health)], lifespan=lifespan)
    asgi = _with_test_principal(RateLimitMiddleware(app, limiter, limiter_settings))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    uv = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert uv.started, "uvicorn did not start"
    port = sock.getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
        yield client
    uv.should_exit = True
    thread.join(10)
    sock.close()


def test_middleware_limits_api_requests_per_ip(server: httpx.Client) -> None:
    started = time.time()
    responses = [server.get("/api/ping") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert all(r.headers["X-RateLimit-Limit"] == "3" for r in responses)
    reset = int(responses[0].headers["X-RateLimit-Reset"])
    assert started + 59 <= reset <= time.time() + 61
    assert all(r.headers["X-RateLimit-Reset"] == str(reset) for r in responses)
    refused = responses[-1]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["content-type"] == "application/json"
    error = refused.json()["error"]
    assert error["code"] == "rate_limited" and error["message"]
    assert error["details"]["limit"] == 3 and error["details"]["window"] == "minute"
    # Paths outside /api/ are not limited and carry no headers.
    for _ in range(5):
        health = server.get("/healthz")
        assert health.status_code == 200 and "X-RateLimit-Limit" not in health.headers


def test_middleware_keys_authenticated_users_by_tier(server: httpx.Client) -> None:
    for _ in range(3):
        server.get("/api/ping")
    assert server.get("/api/ping").status_code == 429  # the IP is used up ...
    free = [server.get("/api/ping", headers={"X-Test-User": "u1:free"}) for _ in range(6)]
    # ... but a signed-in user has their own key and their tier's limit (free: 5/minute).
    assert [r.status_code for r in free] == [200] * 5 + [429]
    assert free[0].headers["X-RateLimit-Limit"] == "5"
    assert server.get("/api/ping", headers={"X-Test-User": "u2:free"}).status_code == 200
    # Unlimited tier: never refused, no headers.
    for _ in range(10):
        r = server.get("/api/ping", headers={"X-Test-User": "u3:enterprise"})
        assert r.status_code == 200 and "X-RateLimit-Limit" not in r.headers
