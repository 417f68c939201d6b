"""Result cache and duplicate detection (FR-IMG-012/013).

- `ResultCache`: the same request (normalised parameters + model version + the input's pixel hash
  for edits) with an explicit seed gives the same pixels, so its images are served again without a
  GPU and without counting against the quota. In-process in embedded mode, Redis in distributed
  mode (TTL `image_generation.caching.redis_ttl`, 24 h). Requests without a seed draw a random one,
  so they are never cached.
- `perceptual_hash`: the pHash (imagehash) of every stored image; a near-identical new image of the
  same user is linked to the existing file instead of being stored again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from typing import Any, Protocol

from PIL import Image
from prometheus_client import Counter

from fimum_ai.redis_clients import async_redis
from fimum_ai.settings import Settings

CACHE_REQUESTS = Counter(
    "fimum_image_cache_requests", "Cacheable image requests by outcome (hit, miss).", ["result"]
)
# Hamming distance between 64-bit pHashes at or under which two images count as the same picture.
DUPLICATE_DISTANCE = 4


def cache_key(
    kind: str, params: dict[str, Any], model_version: str, input_hash: str | None = None
) -> str | None:
    """The cache key, or None when the request is not cacheable (no explicit seed)."""
    if params.get("seed") is None:
        return None
    canonical = json.dumps(
        {"kind": kind, "params": params, "model": model_version, "input": input_hash},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResultCache(Protocol):
    async def get(self, key: str) -> list[str] | None:
        """The image ids stored for this key, if any."""
        ...

    async def put(self, key: str, image_ids: list[str]) -> None: ...
    async def aclose(self) -> None: ...


class MemoryResultCache:
    def __init__(self, ttl_s: int, max_entries: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()

    async def get(self, key: str) -> list[str] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            self._entries.pop(key, None)
            return None
        self._entries.move_to_end(key)
        return list(entry[1])

    async def put(self, key: str, image_ids: list[str]) -> None:
        self._entries[key] = (time.monotonic() + self._ttl_s, list(image_ids))
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def aclose(self) -> None:
        self._entries.clear()


class RedisResultCache:
    def __init__(self, url: str, prefix: str, ttl_s: int) -> None:
        self._redis = async_redis(url)
        self._prefix = prefix + "imgcache:"
        self._ttl_s = ttl_s

    async def get(self, key: str) -> list[str] | None:
        raw = await self._redis.get(self._prefix + key)
        return [str(i) for i in json.loads(raw)] if raw else None

    async def put(self, key: str, image_ids: list[str]) -> None:
        if self._ttl_s > 0:
            await self._redis.set(self._prefix + key, json.dumps(image_ids), ex=self._ttl_s)

    async def aclose(self) -> None:
        await self._redis.aclose()


def build_result_cache(settings: Settings) -> ResultCache | None:
    caching = settings.image_generation.caching
    if not caching.enabled:
        return None
    if settings.mode == "distributed" and settings.redis_url:
        return RedisResultCache(settings.redis_url, settings.redis_prefix, caching.redis_ttl)
    return MemoryResultCache(caching.redis_ttl)


def perceptual_hash(image: Image.Image) -> str:
    import imagehash  # scipy and PyWavelets: loaded only where images are stored

    return str(imagehash.phash(image))


def hash_distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()
