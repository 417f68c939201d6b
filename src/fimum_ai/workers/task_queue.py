"""The Celery app of distributed mode (the spec's `fimum_ai.workers.task_queue`).

Run one worker per GPU: `celery -A fimum_ai.workers.task_queue worker --pool=prefork --concurrency=1`,
or `fimum worker --devices cuda:0,cuda:1` which starts one such process per device. Broker and
result backend are Redis (`FIMUM_REDIS_URL`). Tasks are acknowledged late, one at a time, and
requeued when their worker process dies; the engine is loaded once per worker process.

A task does not name a job: `run_next` runs the best queued job at that moment (see JobRunner), so
one task per submitted job keeps every node busy while the database decides the order. A sweeper
thread in every worker puts jobs of dead workers back in the queue and sends a task for each, and
starts the retention clean-up (fimum_ai.images.retention) every `cleanup_interval_s`: a Redis key
gives one worker of the cluster the turn per interval, and the clean-up's PostgreSQL advisory lock
keeps two runs from overlapping.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from celery.signals import worker_process_init, worker_process_shutdown

from fimum_ai.db import Database, ImageJob
from fimum_ai.images.events import RedisEventBus
from fimum_ai.images.jobs import RUN_NEXT, JobRunner
from fimum_ai.images.provider import EngineProvider
from fimum_ai.images.safety import SafetyService
from fimum_ai.images.storage import ImageStore
from fimum_ai.settings import Settings, load_settings
from fimum_ai.workers.celery_app import make_celery

log = logging.getLogger(__name__)


settings = load_settings()
app = make_celery(settings)


@dataclass
class _Worker:
    settings: Settings
    database: Database
    runner: JobRunner
    stop: threading.Event
    cleanup_due: float | None = None  # time.monotonic() of the next retention clean-up
    cleaner: threading.Thread | None = None


_state: _Worker | None = None
_state_lock = threading.Lock()


def _worker() -> _Worker:
    """This process's database, engine and runner, built once (the model loads on the first job)."""
    global _state
    with _state_lock:
        if _state is None:
            current = load_settings()
            database = Database(current)
            bus = RedisEventBus(current.redis_url or "redis://127.0.0.1:6379/0", current.redis_prefix)
            runner = JobRunner(
                database,
                EngineProvider(current),
                ImageStore(current.data_dir),
                SafetyService(current),
                publish=bus.publish,
                refund=lambda job: _refund(current, database, job),
                remember=lambda key, ids: _remember(current, key, ids),
                name=f"{socket.gethostname()}:{os.getpid()}:{current.image_generation.hardware.device}",
                lease_s=current.worker_lease_s,
            )
            _state = _Worker(current, database, runner, threading.Event())
            threading.Thread(target=_sweep, args=(_state,), name="fimum-sweeper", daemon=True).start()
        return _state


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _on_process_init(**_: Any) -> None:
    _worker()


@worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _on_process_shutdown(**_: Any) -> None:
    if _state is not None:
        _state.stop.set()
        _state.runner.stopping.set()
        _state.runner.cancel_all()


def _sweep(state: _Worker) -> None:
    while not state.stop.wait(max(1.0, state.settings.worker_lease_s / 2)):
        try:
            for _ in state.runner.recover(only_stale=True):
                app.send_task(RUN_NEXT)
        except Exception:
            log.exception("the sweeper could not check for interrupted jobs")
        _clean_if_due(state)


def _clean_if_due(state: _Worker) -> None:
    """The retention clean-up, shortly after start and then every `cleanup_interval_s`, in a thread of
    its own (so a long clean-up never delays the recovery of interrupted jobs)."""
    from fimum_ai.images.retention import FIRST_RUN_DELAY_S, CleanupSchedule

    settings = state.settings
    if not CleanupSchedule.wanted(settings):
        return
    now = time.monotonic()
    if state.cleanup_due is None:
        state.cleanup_due = now + min(settings.cleanup_interval_s, FIRST_RUN_DELAY_S)
    if now < state.cleanup_due or (state.cleaner is not None and state.cleaner.is_alive()):
        return
    state.cleanup_due = now + settings.cleanup_interval_s
    if not _cluster_turn(settings):
        return  # another worker has run it within this interval
    state.cleaner = threading.Thread(target=_clean, args=(state,), name="fimum-retention", daemon=True)
    state.cleaner.start()


def _cluster_turn(settings: Settings) -> bool:
    """True for the one worker of the cluster that takes this interval's clean-up (SET NX with expiry)."""
    import redis

    client = redis.Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0")
    try:
        turn = client.set(
            f"{settings.redis_prefix}retention:turn",
            f"{socket.gethostname()}:{os.getpid()}",
            nx=True,
            px=max(1000, int(settings.cleanup_interval_s * 1000)),
        )
        return bool(turn)
    except Exception:
        log.warning("could not reach Redis for the retention clean-up's turn; trying later", exc_info=True)
        return False
    finally:
        client.close()


def _clean(state: _Worker) -> None:
    from fimum_ai.images.retention import run_cleanup

    try:
        run_cleanup(state.database, ImageStore(state.settings.data_dir), stop=state.stop)
    except Exception:
        log.exception("the retention clean-up failed; it runs again at the next interval")


@app.task(name=RUN_NEXT)  # type: ignore[untyped-decorator]
def run_next() -> str | None:
    runner = _worker().runner
    job = runner.claim_next()
    if job is None:
        return None  # cancelled meanwhile, or taken by another worker's earlier task
    runner.run(job)
    return job.id


def _refund(current: Settings, database: Database, job: ImageJob) -> None:
    from fimum_ai.limits import QuotaService, Reservation, build_quota_store

    if job.quota_day is None or job.quota_n <= 0:
        return

    async def refund() -> None:
        quotas = QuotaService(build_quota_store(current, database), current)
        try:
            await quotas.refund(job.user_id, Reservation("images", job.quota_n, job.quota_day))  # type: ignore[arg-type]
        finally:
            await quotas.aclose()

    asyncio.run(refund())


def _remember(current: Settings, key: str, image_ids: list[str]) -> None:
    from fimum_ai.images.cache import build_result_cache

    async def remember() -> None:
        cache = build_result_cache(current)
        if cache is not None:
            try:
                await cache.put(key, image_ids)
            finally:
                await cache.aclose()

    asyncio.run(remember())


__all__ = ["app", "make_celery", "run_next"]
