"""The image job queue. Embedded mode: `LocalJobQueue`, one worker thread that owns the engine, with
the queue persisted in the database (a restart loses nothing: queued jobs run, a job that was
running when the process died is retried once, then failed).

Scheduling: the highest tier first (Enterprise, Pro, Free), and inside a tier round-robin between
users (the user served longest ago goes next), so one user's pile of batches cannot starve others.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import func, select, update

from fimum_ai.db import Database, ImageJob, StoredImage
from fimum_ai.errors import FimumError, GenerationCancelled, InvalidInput
from fimum_ai.images.events import EventBus, JobEvent
from fimum_ai.images.progress import CancelToken, ProgressEvent
from fimum_ai.images.provider import EngineProvider
from fimum_ai.images.requests import GenerateParams
from fimum_ai.images.results import GenerationResult
from fimum_ai.images.storage import ImageStore
from fimum_ai.limits import QuotaService, Reservation

log = logging.getLogger(__name__)

TIER_PRIORITY = {"enterprise": 30, "pro": 20, "free": 10}
MAX_ATTEMPTS = 2  # a job interrupted by a crash is retried once
# Failures that are the server's fault give the quota back; the user's own mistakes do not.
_USER_FAULTS = {"invalid_input", "nsfw_content_blocked", "cancelled"}


def priority_of(tier: str) -> int:
    return TIER_PRIORITY.get(tier, TIER_PRIORITY["free"])


class JobQueue(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def wake(self) -> None:
        """A job was added to the database: look for work."""
        ...

    def cancel_running(self, job_id: str) -> bool:
        """Stop a running job within one step; False if it is not running here."""
        ...


@dataclass(frozen=True, slots=True)
class QuotaRefunder:
    """Gives a failed job's reservation back, from the worker thread, on the server's loop."""

    quotas: QuotaService
    loop: asyncio.AbstractEventLoop

    def __call__(self, job: ImageJob) -> None:
        if job.quota_day is None or job.quota_n <= 0:
            return
        reservation = Reservation("images", job.quota_n, job.quota_day)
        future = asyncio.run_coroutine_threadsafe(self.quotas.refund(job.user_id, reservation), self.loop)
        try:
            future.result(timeout=10)
        except Exception:
            log.exception("quota refund failed", extra={"job_id": job.id})


class LocalJobQueue:
    def __init__(
        self,
        database: Database,
        provider: EngineProvider,
        store: ImageStore,
        bus: EventBus,
        quotas: QuotaService,
        *,
        name: str = "local",
    ) -> None:
        self._db = database
        self._provider = provider
        self._store = store
        self._bus = bus
        self._quotas = quotas
        self._name = name
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: dict[str, CancelToken] = {}
        self._last_served: dict[str, float] = {}  # user id -> when their last job started
        self._refund: Callable[[ImageJob], None] = lambda job: None

    async def start(self) -> None:
        self._refund = QuotaRefunder(self._quotas, asyncio.get_running_loop())
        await asyncio.to_thread(self._recover)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._work, name=f"image-worker-{self._name}", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()
        for token in list(self._running.values()):
            token.cancel()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)
            self._thread = None

    def wake(self) -> None:
        self._wakeup.set()

    def cancel_running(self, job_id: str) -> bool:
        token = self._running.get(job_id)
        if token is None:
            return False
        token.cancel()
        return True

    # ----------------------------------------------------------------- worker thread

    def _recover(self) -> None:
        """After a crash: running jobs go back to the queue once, then fail."""
        with self._db.session() as session, session.begin():
            for job in session.scalars(select(ImageJob).where(ImageJob.status == "running")):
                if job.attempts < MAX_ATTEMPTS:
                    job.status, job.started_at, job.worker = "queued", None, None
                    log.warning("requeued a job interrupted by a restart", extra={"job_id": job.id})
                else:
                    self._finish(job, "failed", "interrupted", "the job was interrupted twice; try again")
                    self._refund(job)

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self._claim_next()
            except Exception:
                log.exception("the job queue could not read the database")
                job = None
            if job is None:
                self._wakeup.wait(timeout=1.0)
                self._wakeup.clear()
                continue
            self._run(job)

    def _claim_next(self) -> ImageJob | None:
        with self._db.session() as session, session.begin():
            top = session.scalar(select(func.max(ImageJob.priority)).where(ImageJob.status == "queued"))
            if top is None:
                return None
            candidates = session.scalars(
                select(ImageJob)
                .where(ImageJob.status == "queued", ImageJob.priority == top)
                .order_by(ImageJob.created_at)
                .limit(200)
            ).all()
            job = min(candidates, key=lambda j: (self._last_served.get(j.user_id, 0.0), j.created_at))
            claimed = session.execute(
                update(ImageJob)
                .where(ImageJob.id == job.id, ImageJob.status == "queued")
                .values(
                    status="running",
                    started_at=datetime.now(UTC),
                    attempts=ImageJob.attempts + 1,
                    worker=self._name,
                )
            )
            if getattr(claimed, "rowcount", 0) != 1:
                return None  # cancelled or taken meanwhile
            session.refresh(job)
            self._last_served[job.user_id] = time.monotonic()
            return job

    def _run(self, job: ImageJob) -> None:
        token = CancelToken()
        self._running[job.id] = token
        self._bus.publish(JobEvent(job.id, "started", {"attempt": job.attempts}))
        try:
            result = self._generate(job, token)
            image_ids = self._save(job, result)
        except GenerationCancelled:
            if self._stopping.is_set():
                self._requeue(job)  # the server is shutting down: the job runs again after the restart
            else:
                self._end(job, "cancelled", "cancelled", "cancelled by the user")
        except FimumError as exc:
            self._end(job, "failed", exc.code, exc.message)
        except Exception:
            log.exception("image job failed", extra={"job_id": job.id})
            self._end(job, "failed", "internal_error", "the image job failed on the server")
        else:
            with self._db.session() as session, session.begin():
                row = session.get(ImageJob, job.id)
                if row is not None:
                    row.image_ids = image_ids
                    self._finish(row, "completed", None, None)
            self._bus.publish(JobEvent(job.id, "completed", {"images": image_ids}))
        finally:
            self._running.pop(job.id, None)

    def _generate(self, job: ImageJob, token: CancelToken) -> GenerationResult:
        if job.kind != "generate":
            raise InvalidInput(f"job kind {job.kind!r} is not supported yet")
        params = GenerateParams.model_validate(job.params)
        engine = self._provider.get()
        started = time.monotonic()

        def on_progress(event: ProgressEvent) -> None:
            data: dict[str, Any] = {
                "step": event.step,
                "total": event.total,
                "stage": event.stage,
                "eta_s": round(event.eta_s, 2),
                "elapsed_s": round(time.monotonic() - started, 2),
            }
            if event.preview_jpeg:
                data["preview"] = base64.b64encode(event.preview_jpeg).decode()
            self._bus.publish(JobEvent(job.id, "progress", data))

        return engine.text_to_image(params, progress=on_progress, cancel=token)

    def _save(self, job: ImageJob, result: GenerationResult) -> list[str]:
        ids: list[str] = []
        rows: list[StoredImage] = []
        for image, meta in zip(result.images, result.metadata, strict=True):
            row = StoredImage(user_id=job.user_id, job_id=job.id, mode=meta.mode, width=meta.width)
            row.id = _new_id()
            files = self._store.write(job.user_id, row.id, image, meta)
            row.height, row.seed, row.model_version = meta.height, meta.seed, meta.model_version
            row.metadata_json = meta.model_dump(mode="json")
            row.original_path, row.thumbnail_path, row.metadata_path = (
                files.original,
                files.thumbnail,
                files.metadata,
            )
            rows.append(row)
            ids.append(row.id)
        with self._db.session() as session, session.begin():
            session.add_all(rows)
        return ids

    def _requeue(self, job: ImageJob) -> None:
        with self._db.session() as session, session.begin():
            session.execute(
                update(ImageJob)
                .where(ImageJob.id == job.id)
                .values(status="queued", started_at=None, worker=None, attempts=ImageJob.attempts - 1)
            )
        log.info("image job put back in the queue at shutdown", extra={"job_id": job.id})

    def _end(self, job: ImageJob, status: str, code: str, message: str) -> None:
        with self._db.session() as session, session.begin():
            row = session.get(ImageJob, job.id)
            if row is None:
                return
            self._finish(row, status, code, message)
        if code not in _USER_FAULTS or status == "cancelled":
            self._refund(job)
        event_type = "cancelled" if status == "cancelled" else "failed"
        data = {} if status == "cancelled" else {"code": code, "message": message}
        self._bus.publish(JobEvent(job.id, event_type, data))  # type: ignore[arg-type]

    @staticmethod
    def _finish(job: ImageJob, status: str, code: str | None, message: str | None) -> None:
        job.status = status
        job.finished_at = datetime.now(UTC)
        job.error_code, job.error_message = code, message


def _new_id() -> str:
    import uuid

    return str(uuid.uuid4())
