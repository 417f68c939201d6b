"""Job events (queued, started, progress, completed, failed, cancelled) from workers to API clients.

`LocalEventBus` serves embedded mode: workers are threads of the API process. Publishing is
thread-safe; subscribers are asyncio consumers on the server's loop. The last event of every job is
kept, so a client that connects late starts from the current state.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

EventType = Literal["queued", "started", "progress", "completed", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class JobEvent:
    job_id: str
    type: EventType
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL

    def message(self) -> dict[str, Any]:
        return {"type": self.type, "job_id": self.job_id, "at": self.at, **self.data}


class EventBus(Protocol):
    def publish(self, event: JobEvent) -> None: ...
    def last(self, job_id: str) -> JobEvent | None: ...
    def subscribe(self, job_id: str) -> AsyncIterator[JobEvent]: ...
    async def start(self) -> None: ...
    async def aclose(self) -> None: ...


class LocalEventBus:
    _KEEP = 10_000  # last events remembered (jobs), oldest dropped first

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: OrderedDict[str, JobEvent] = OrderedDict()
        self._subscribers: dict[str, list[asyncio.Queue[JobEvent]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def aclose(self) -> None:
        with self._lock:
            self._subscribers.clear()

    def publish(self, event: JobEvent) -> None:
        with self._lock:
            self._last[event.job_id] = event
            self._last.move_to_end(event.job_id)
            while len(self._last) > self._KEEP:
                self._last.popitem(last=False)
            queues = list(self._subscribers.get(event.job_id, ()))
        if not queues or self._loop is None:
            return
        for queue in queues:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self._loop:
                queue.put_nowait(event)
            else:
                self._loop.call_soon_threadsafe(queue.put_nowait, event)

    def last(self, job_id: str) -> JobEvent | None:
        with self._lock:
            return self._last.get(job_id)

    async def subscribe(self, job_id: str) -> AsyncIterator[JobEvent]:
        """The job's current event (if any), then every new one, until a terminal event."""
        queue: asyncio.Queue[JobEvent] = asyncio.Queue()
        with self._lock:
            self._subscribers.setdefault(job_id, []).append(queue)
            current = self._last.get(job_id)
        try:
            if current is not None:
                yield current
                if current.terminal:
                    return
            while True:
                event = await queue.get()
                if current is not None and event.at < current.at:
                    continue  # published before the snapshot above
                yield event
                if event.terminal:
                    return
        finally:
            with self._lock:
                subscribers = self._subscribers.get(job_id, [])
                if queue in subscribers:
                    subscribers.remove(queue)
                if not subscribers:
                    self._subscribers.pop(job_id, None)


class RedisEventBus:
    """Distributed mode: workers publish on a Redis channel per job and keep the job's last event
    under a key, so any API replica can serve any job's WebSocket, late clients included."""

    _KEEP_S = 86_400

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        from fimum_ai.redis_clients import async_redis

        self._url = url
        self._prefix = prefix + "jobevt:"
        self._sync = redis.Redis.from_url(url)
        self._async = async_redis(url)

    async def start(self) -> None:
        await self._async.ping()

    async def aclose(self) -> None:
        await self._async.aclose()
        self._sync.close()

    def publish(self, event: JobEvent) -> None:
        payload = json.dumps({"job_id": event.job_id, "type": event.type, "data": event.data, "at": event.at})
        with self._sync.pipeline(transaction=False) as pipe:
            pipe.set(f"{self._prefix}last:{event.job_id}", payload, ex=self._KEEP_S)
            pipe.publish(f"{self._prefix}{event.job_id}", payload)
            pipe.execute()

    def last(self, job_id: str) -> JobEvent | None:
        raw = self._sync.get(f"{self._prefix}last:{job_id}")
        return _decode(raw) if raw else None

    async def subscribe(self, job_id: str) -> AsyncIterator[JobEvent]:
        pubsub = self._async.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(f"{self._prefix}{job_id}")  # first, so nothing published meanwhile is lost
        try:
            raw = await self._async.get(f"{self._prefix}last:{job_id}")
            current = _decode(raw) if raw else None
            if current is not None:
                yield current
                if current.terminal:
                    return
            while True:
                message = await pubsub.get_message(timeout=30.0)
                if message is None:
                    continue
                event = _decode(message["data"])
                if current is not None and event.at <= current.at:
                    continue
                yield event
                if event.terminal:
                    return
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]


def _decode(raw: bytes | str) -> JobEvent:
    data = json.loads(raw)
    return JobEvent(data["job_id"], data["type"], data.get("data") or {}, float(data["at"]))
