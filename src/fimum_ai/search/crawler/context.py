"""What one crawl needs besides Scrapy: its options, the index, the near-duplicate store, the
page budget and the shared-frontier bookkeeping. The spider and its components read it from
`spider.ctx`, so nothing here is a module-level singleton."""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from fimum_ai.search.crawler.extractors import Extractors
from fimum_ai.search.crawler.fingerprint import NearDuplicates
from fimum_ai.search.crawler.memory import LinkMemory
from fimum_ai.search.documents import PageState


@dataclass(frozen=True, slots=True)
class CrawlOptions:
    seeds: tuple[str, ...]
    allow_domains: tuple[str, ...] = ()  # host names (sub-domains included); () = the seeds' hosts
    max_pages: int = 10_000
    depth: int = 5

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CrawlOptions:
        data = json.loads(text)
        return cls(
            seeds=tuple(data["seeds"]),
            allow_domains=tuple(data.get("allow_domains", ())),
            max_pages=int(data["max_pages"]),
            depth=int(data["depth"]),
        )


class IndexSink(Protocol):
    """The part of `SearchIndex` the crawler uses."""

    def add(self, pages: Any) -> None: ...

    def state(self, url: str) -> PageState | None: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class CrawlProgress:
    """One snapshot of a running crawl, for the CLI display and the admin API."""

    state: str = "running"  # running | finished | stopped | failed
    fetched: int = 0  # page responses handled (incl. 304 Not Modified)
    indexed: int = 0  # pages handed to the index
    unchanged: int = 0  # 304 answers and pages skipped because their sitemap lastmod is not newer
    removed: int = 0  # pages taken out of the index because they answered 404 or 410
    duplicates: int = 0  # near-copies of an indexed page (collapsed)
    skipped: int = 0  # robots.txt, noindex, unsupported types, oversized, off-site
    errors: int = 0  # network failures, HTTP 4xx/5xx, unreadable documents, index failures
    queue: int = 0
    in_flight: int = 0
    elapsed_s: float = 0.0
    pages_per_min: float = 0.0  # fetched per minute over the last ~10 seconds
    average_pages_per_min: float = 0.0  # fetched per minute since the start
    reason: str = ""
    # The counters behind skipped/errors/unchanged: skipped_robots, errors_http_404...
    breakdown: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CrawlReporter(Protocol):
    def report(self, progress: CrawlProgress) -> None: ...

    def stop_requested(self) -> bool: ...


class NullReporter:
    def report(self, progress: CrawlProgress) -> None:
        pass

    def stop_requested(self) -> bool:
        return False


class PageBudget:
    """At most `limit` page responses per crawl: a local counter, or a Redis counter that every
    process sharing the frontier draws from."""

    def __init__(self, limit: int, redis: Any = None, key: str = "") -> None:
        self.limit = limit
        self._redis = redis
        self._key = key
        self._used = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        if self._redis is not None:
            return int(self._redis.incr(self._key)) <= self.limit
        with self._lock:
            self._used += 1
            return self._used <= self.limit


@dataclass(slots=True)
class Frontier:
    """Where the queue and the seen-set live. For Redis: the key names under
    `{redis_prefix}crawler:{crawl_name}:` and the live workers (for a joint end of the crawl)."""

    kind: str  # "memory" | "redis"
    redis_url: str | None = None
    base_key: str = ""
    redis: Any = None
    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )

    @property
    def queue_key(self) -> str:
        return f"{self.base_key}requests"

    @property
    def seen_key(self) -> str:
        return f"{self.base_key}seen"

    @property
    def pages_key(self) -> str:
        return f"{self.base_key}pages"

    @property
    def options_key(self) -> str:
        return f"{self.base_key}options"

    def worker_key(self, worker: str | None = None) -> str:
        return f"{self.base_key}workers:{worker or self.worker_id}"

    def heartbeat(self, busy: bool) -> None:
        if self.redis is not None:
            self.redis.set(self.worker_key(), "1" if busy else "0", ex=15)

    def others_busy(self) -> bool:
        if self.redis is None:
            return False
        mine = self.worker_key()
        for key in self.redis.scan_iter(match=self.worker_key("*"), count=100):
            name = key.decode() if isinstance(key, bytes) else str(key)
            if name != mine and self.redis.get(key) == b"1":
                return True
        return False

    def leave(self, finished: bool) -> None:
        """Unregister this worker; the last one out of a finished crawl clears the frontier, so the
        next crawl of the same name starts afresh (a stopped crawl keeps it, to resume)."""
        if self.redis is None:
            return
        self.redis.delete(self.worker_key())
        if finished and not any(True for _ in self.redis.scan_iter(match=self.worker_key("*"), count=100)):
            self.redis.delete(self.queue_key, self.seen_key, self.pages_key, self.options_key)


@dataclass(slots=True)
class CrawlContext:
    options: CrawlOptions
    index: IndexSink
    near_duplicates: NearDuplicates
    links: LinkMemory
    budget: PageBudget
    frontier: Frontier
    reporter: CrawlReporter = field(default_factory=NullReporter)
    extractors: Extractors = field(default_factory=lambda: Extractors(0))
    index_batch: int = 200
    idle_close_s: float = 3.0
    follow_sitemaps: bool = True
