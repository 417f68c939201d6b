"""The image job queue. Embedded mode: `LocalJobQueue`, one worker thread that owns the engine, with
the queue persisted in the database (a restart loses nothing: queued jobs run, a job that was
running when the process died is retried once, then failed).

Scheduling: the highest tier first (Enterprise, Pro, Free), and inside a tier round-robin between
users (the user served longest ago goes next), so one user's pile of batches cannot starve others.

Dynamic batching (FR-IMG-003): a worker that takes a text-to-image job also takes the queued jobs
that can share its pipeline call (`images/batching.py`), in scheduling order, up to
`IMAGE_MAX_BATCH_SIZE` images in all; each job keeps its own seeds, files, events and cancel.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol

from PIL import Image
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError
from sqlalchemy import func, or_, select, update

from fimum_ai.db import Database, ImageJob, StoredImage
from fimum_ai.errors import FimumError, GenerationCancelled, GpuOutOfMemory, InvalidInput
from fimum_ai.images.batching import BatchItem, batch_key
from fimum_ai.images.cache import DUPLICATE_DISTANCE, ResultCache, hash_distance, perceptual_hash
from fimum_ai.images.events import EventBus, JobEvent
from fimum_ai.images.progress import CancelToken, ProgressCallback, ProgressEvent
from fimum_ai.images.provider import EngineProvider
from fimum_ai.images.requests import EditParams, GenerateParams, OutpaintParams, UpscaleParams
from fimum_ai.images.results import GenerationResult
from fimum_ai.images.safety import SafetyService
from fimum_ai.images.storage import ImageStore, preserved_from_json
from fimum_ai.limits import QuotaService, Reservation
from fimum_ai.settings import Settings

log = logging.getLogger(__name__)
JOBS = Counter("fimum_image_jobs", "Image jobs that ended, by kind and status.", ["kind", "status"])
JOB_SECONDS = Histogram(
    "fimum_image_job_seconds",
    "Wall time of image jobs from start to end, by kind.",
    ["kind"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
QUEUE_DEPTH = Gauge("fimum_image_queue_depth", "Image jobs waiting in the queue.")

TIER_PRIORITY = {"enterprise": 30, "pro": 20, "free": 10}
MAX_ATTEMPTS = 2  # a job interrupted by a crash is retried once
_CANCEL_CHECK_EVERY_S = 0.25  # how often a running job looks for a cancel asked in another process
RUN_NEXT = "fimum.images.run_next"  # the Celery task (fimum_ai.workers.task_queue)
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
    """Gives a failed job's reservation back, from a worker thread, on the server's loop."""

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


Publish = Callable[[JobEvent], None]
Refund = Callable[[ImageJob], None]
Remember = Callable[[str, list[str]], None]  # cache key, image ids


class JobRunner:
    """Claims and runs image jobs from the database; the same code in the embedded worker thread and
    in every Celery worker process. Scheduling is decided here, in the database, so it holds across
    any number of workers: the highest tier first, then the user whose last job started longest ago.

    A running job writes a heartbeat while it runs; a job whose worker died (no heartbeat for
    `lease_s`) goes back to the queue once, then fails. Image ids are derived from the job id, so a
    job that runs again overwrites its own files instead of leaving a second set."""

    def __init__(
        self,
        database: Database,
        provider: EngineProvider,
        store: ImageStore,
        safety: SafetyService,
        *,
        publish: Publish,
        refund: Refund,
        remember: Remember,
        name: str,
        lease_s: float = 120.0,
    ) -> None:
        self._db = database
        self._provider = provider
        self._store = store
        self._safety = safety
        self._publish = publish
        self._refund = refund
        self._remember_result = remember
        self.name = name
        self.lease_s = lease_s
        self.stopping = threading.Event()
        self._running: dict[str, CancelToken] = {}

    def cancel_running(self, job_id: str) -> bool:
        token = self._running.get(job_id)
        if token is None:
            return False
        token.cancel()
        return True

    def cancel_all(self) -> None:
        for token in list(self._running.values()):
            token.cancel()

    def recover(self, *, only_stale: bool) -> list[str]:
        """Jobs left running by a dead worker: back to the queue once, then failed. Returns the ids
        put back in the queue (a distributed worker sends a task for each)."""
        limit = datetime.now(UTC) - timedelta(seconds=self.lease_s)
        failed: list[ImageJob] = []
        requeued: list[str] = []
        with self._db.session() as session, session.begin():
            query = select(ImageJob).where(ImageJob.status == "running")
            if only_stale:
                query = query.where(or_(ImageJob.heartbeat_at.is_(None), ImageJob.heartbeat_at < limit))
            for job in session.scalars(query.with_for_update(skip_locked=True)):
                if only_stale and job.heartbeat_at is None and job.started_at and job.started_at >= limit:
                    continue  # just claimed, first heartbeat not written yet
                if job.attempts < MAX_ATTEMPTS:
                    job.status, job.started_at, job.worker, job.heartbeat_at = "queued", None, None, None
                    requeued.append(job.id)
                    log.warning("requeued an interrupted job", extra={"job_id": job.id})
                else:
                    _finish(job, "failed", "interrupted", "the job was interrupted twice; try again")
                    failed.append(job)
        for job in failed:
            self._refund(job)
            self._publish(JobEvent(job.id, "failed", {"code": "interrupted", "message": job.error_message}))
        return requeued

    def claim_next(self) -> ImageJob | None:
        for _ in range(5):  # another worker may win the race for the chosen job
            with self._db.session() as session, session.begin():
                QUEUE_DEPTH.set(session.scalar(select(func.count()).where(ImageJob.status == "queued")) or 0)
                top = session.scalar(select(func.max(ImageJob.priority)).where(ImageJob.status == "queued"))
                if top is None:
                    return None
                candidates = session.scalars(
                    select(ImageJob)
                    .where(ImageJob.status == "queued", ImageJob.priority == top)
                    .order_by(ImageJob.created_at)
                    .limit(200)
                ).all()
                job = _in_turn(session, candidates)[0]
                if self._claim(session, job):
                    return job
        return None

    def _claim(self, session: Any, job: ImageJob) -> bool:
        """Mark a queued job as ours (False when another worker was quicker)."""
        now = datetime.now(UTC)
        claimed = session.execute(
            update(ImageJob)
            .where(ImageJob.id == job.id, ImageJob.status == "queued")
            .values(
                status="running",
                started_at=now,
                heartbeat_at=now,
                attempts=ImageJob.attempts + 1,
                worker=self.name,
            )
        )
        if getattr(claimed, "rowcount", 0) != 1:
            return False
        session.refresh(job)
        return True

    def claim_companions(self, job: ImageJob) -> list[ImageJob]:
        """Queued jobs that can run in one batch with `job` (dynamic batching), claimed in
        scheduling order until the batch holds `IMAGE_MAX_BATCH_SIZE` images."""
        config = self._provider.config
        if job.kind != "generate":
            return []
        try:
            params = GenerateParams.model_validate(job.params)
        except ValidationError:
            return []
        key, room = batch_key(params, config), config.generation.batch_size - params.batch_size
        if key is None or room <= 0:
            return []
        claimed: list[ImageJob] = []
        with self._db.session() as session, session.begin():
            candidates = session.scalars(
                select(ImageJob)
                .where(ImageJob.status == "queued", ImageJob.kind == "generate", ImageJob.id != job.id)
                .order_by(ImageJob.priority.desc(), ImageJob.created_at)
                .limit(100)
            ).all()
            for candidate in _in_turn(session, candidates):
                try:
                    other = GenerateParams.model_validate(candidate.params)
                except ValidationError:
                    continue
                if (
                    other.batch_size <= room
                    and batch_key(other, config) == key
                    and self._claim(session, candidate)
                ):
                    claimed.append(candidate)
                    room -= other.batch_size
                    if room == 0:
                        break
        return claimed

    def run(self, job: ImageJob) -> None:
        """Run a claimed job, with the queued jobs that can share its batch."""
        jobs = [job, *self.claim_companions(job)]
        tokens = {j.id: CancelToken() for j in jobs}
        self._running.update(tokens)
        done = threading.Event()
        # The heartbeat runs beside the jobs, so loading a model or a slow step never looks like death.
        beat = threading.Thread(target=self._beat, args=(tokens, done), name="job-heartbeat", daemon=True)
        beat.start()
        for each in jobs:
            self._publish(JobEvent(each.id, "started", {"attempt": each.attempts}))
        try:
            if len(jobs) > 1:
                try:
                    outcomes = self._generate_batch(jobs, tokens)
                except GpuOutOfMemory:
                    log.warning("a dynamic batch ran out of GPU memory: running its jobs one by one")
                else:
                    for each, outcome in zip(jobs, outcomes, strict=True):
                        self._conclude(each, outcome)
                    return
            for each in jobs:
                self._conclude(each, _outcome(partial(self._generate, each, tokens[each.id])))
        finally:
            done.set()
            beat.join(5)
            for each in jobs:
                self._running.pop(each.id, None)
                if self._status(each.id) != "queued":
                    self._store.delete(*(each.inputs or {}).get("files", []))

    def _conclude(self, job: ImageJob, outcome: GenerationResult | Exception) -> None:
        """Store a job's images and announce its end, or record why it ended without them."""
        try:
            if isinstance(outcome, Exception):
                raise outcome
            image_ids = self._save(job, outcome)
        except GenerationCancelled:
            if self.stopping.is_set():
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
                    _finish(row, "completed", None, None)
            self._remember(job, image_ids)
            self._store.delete(*(job.inputs or {}).get("files", []))  # before anyone hears it ended
            self._publish(JobEvent(job.id, "completed", {"images": image_ids}))

    def _generate_batch(
        self, jobs: list[ImageJob], tokens: dict[str, CancelToken]
    ) -> list[GenerationResult | Exception]:
        """One pipeline call for compatible jobs; an error of the whole call is every job's error
        (except running out of GPU memory: the caller then runs the jobs one by one)."""
        try:
            engine = self._provider.get()
            items = [
                BatchItem(GenerateParams.model_validate(j.params), self._reporter(j), tokens[j.id])
                for j in jobs
            ]
            return list(engine.text_to_image_batch(items))
        except GpuOutOfMemory:
            raise
        except Exception as exc:
            return [exc] * len(jobs)

    def _reporter(self, job: ImageJob) -> ProgressCallback:
        """Progress events of one job. No database work here: the engine waits for this callback
        between steps (the heartbeat thread looks for cancels instead)."""
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
            self._publish(JobEvent(job.id, "progress", data))

        return on_progress

    def _generate(self, job: ImageJob, token: CancelToken) -> GenerationResult:
        engine = self._provider.get()
        on_progress = self._reporter(job)
        if job.kind == "generate":
            return engine.text_to_image(
                GenerateParams.model_validate(job.params), progress=on_progress, cancel=token
            )
        image = self._input(job, "image")
        if image is None:
            raise InvalidInput("the job's input image is missing")
        if job.kind == "edit":
            params = EditParams.model_validate(job.params)
            mask = self._input(job, "mask")
            if mask is not None:
                return engine.inpaint(image, mask, params, progress=on_progress, cancel=token)
            return engine.image_to_image(image, params, progress=on_progress, cancel=token)
        if job.kind == "outpaint":
            return engine.outpaint(
                image, OutpaintParams.model_validate(job.params), progress=on_progress, cancel=token
            )
        if job.kind == "upscale":
            return engine.upscale(
                image, UpscaleParams.model_validate(job.params), progress=on_progress, cancel=token
            )
        raise InvalidInput(f"unknown job kind {job.kind!r}")

    def _input(self, job: ImageJob, name: str) -> Image.Image | None:
        relative = (job.inputs or {}).get(name)
        if not relative:
            return None
        with Image.open(self._store.path(relative)) as opened:
            return opened.convert("L" if name == "mask" else "RGB")

    def _save(self, job: ImageJob, result: GenerationResult) -> list[str]:
        # Every image is checked before anything is stored: a blocked batch leaves nothing behind.
        for image in result.images:
            self._safety.check_image(job.user_id, image)
        inputs = job.inputs or {}
        preserved = preserved_from_json(inputs["preserved"]) if inputs.get("preserved") else None
        source = self._store.path(inputs["image"]) if preserved is not None else None
        ids: list[str] = []
        rows: list[StoredImage] = []
        for index, (image, meta) in enumerate(zip(result.images, result.metadata, strict=True)):
            row = StoredImage(
                id=image_id(job.id, index),
                user_id=job.user_id,
                job_id=job.id,
                mode=meta.mode,
                width=meta.width,
            )
            row.height, row.seed, row.model_version = meta.height, meta.seed, meta.model_version
            row.phash = perceptual_hash(image)
            twin = self._duplicate(job, row.phash, rows)
            row.metadata_json = meta.model_dump(mode="json")
            if twin is not None:
                # The same picture again: point at its files; only the metadata is new.
                row.duplicate_of = twin.duplicate_of or twin.id
                row.metadata_json["duplicate_of"] = row.duplicate_of
                row.original_path, row.thumbnail_path = twin.original_path, twin.thumbnail_path
                row.metadata_path = self._store.write_metadata(
                    job.user_id, row.id, row.metadata_json, meta.created_at
                )
            else:
                files = self._store.write(job.user_id, row.id, image, meta, preserved, source)
                row.original_path, row.thumbnail_path = files.original, files.thumbnail
                row.metadata_path, row.source_path = files.metadata, files.source
            rows.append(row)
            ids.append(row.id)
        with self._db.session() as session, session.begin():
            for row in rows:
                session.merge(row)  # a re-run after a crash finds the first run's rows
        return ids

    def _remember(self, job: ImageJob, image_ids: list[str]) -> None:
        key = (job.inputs or {}).get("cache_key")
        if key:
            self._remember_result(str(key), image_ids)

    def _beat(self, tokens: dict[str, CancelToken], done: threading.Event) -> None:
        """Beside the running jobs, off the engine's thread: look for a cancel asked through another
        process every 0.25 s, and write heartbeats every second (or a quarter of the lease)."""
        write_every, written = min(1.0, self.lease_s / 4), time.monotonic()
        while not done.wait(_CANCEL_CHECK_EVERY_S):
            write = time.monotonic() - written >= write_every
            for job_id, token in tokens.items():
                try:
                    if self._heartbeat(job_id, write=write):
                        token.cancel()
                except Exception:
                    log.warning("heartbeat failed", exc_info=True, extra={"job_id": job_id})
            if write:
                written = time.monotonic()

    def _heartbeat(self, job_id: str, *, write: bool = True) -> bool:
        """Record that the job is alive (when `write`); True when someone asked to cancel it."""
        with self._db.session() as session, session.begin():
            if write:
                session.execute(
                    update(ImageJob).where(ImageJob.id == job_id).values(heartbeat_at=datetime.now(UTC))
                )
            return bool(session.scalar(select(ImageJob.cancel_requested).where(ImageJob.id == job_id)))

    def _status(self, job_id: str) -> str | None:
        with self._db.session() as session:
            return session.scalar(select(ImageJob.status).where(ImageJob.id == job_id))

    def _requeue(self, job: ImageJob) -> None:
        with self._db.session() as session, session.begin():
            session.execute(
                update(ImageJob)
                .where(ImageJob.id == job.id)
                .values(status="queued", started_at=None, worker=None, attempts=ImageJob.attempts - 1)
            )
        log.info("image job put back in the queue at shutdown", extra={"job_id": job.id})

    def _duplicate(self, job: ImageJob, phash: str, fresh: list[StoredImage]) -> StoredImage | None:
        """This user's most recent near-identical image (pHash distance <= DUPLICATE_DISTANCE),
        not counting an earlier run of this same job. Images within an hour of the retention limit
        are not linked to: the clean-up could delete their files before the new row exists."""
        query = select(StoredImage).where(
            StoredImage.user_id == job.user_id,
            StoredImage.phash.is_not(None),
            or_(StoredImage.job_id.is_(None), StoredImage.job_id != job.id),
        )
        ttl = self._provider.config.caching.filesystem_ttl
        if ttl > 0:
            query = query.where(
                StoredImage.created_at > datetime.now(UTC) - timedelta(seconds=max(0, ttl - 3600))
            )
        with self._db.session() as session:
            recent = session.scalars(query.order_by(StoredImage.created_at.desc()).limit(500)).all()
        for candidate in [*reversed(fresh), *recent]:
            if (
                candidate.phash
                and hash_distance(candidate.phash, phash) <= DUPLICATE_DISTANCE
                and self._store.path(candidate.original_path).is_file()
            ):
                return candidate
        return None

    def _end(self, job: ImageJob, status: str, code: str, message: str) -> None:
        with self._db.session() as session, session.begin():
            row = session.get(ImageJob, job.id)
            if row is None:
                return
            _finish(row, status, code, message)
        if code not in _USER_FAULTS or status == "cancelled":
            self._refund(job)
        event_type = "cancelled" if status == "cancelled" else "failed"
        data = {} if status == "cancelled" else {"code": code, "message": message}
        self._store.delete(*(job.inputs or {}).get("files", []))  # before anyone hears it ended
        self._publish(JobEvent(job.id, event_type, data))  # type: ignore[arg-type]


def _in_turn(session: Any, jobs: Sequence[ImageJob]) -> list[ImageJob]:
    """Scheduling order: the highest tier first, then the user whose last job started longest ago,
    then the oldest job."""
    last_started = dict(
        session.execute(
            select(ImageJob.user_id, func.max(ImageJob.started_at))
            .where(ImageJob.user_id.in_({j.user_id for j in jobs}), ImageJob.started_at.is_not(None))
            .group_by(ImageJob.user_id)
        ).all()
    )
    never = datetime.min.replace(tzinfo=UTC)
    return sorted(
        jobs, key=lambda j: (-j.priority, _aware(last_started.get(j.user_id)) or never, j.created_at)
    )


def _outcome(generate: Callable[[], GenerationResult]) -> GenerationResult | Exception:
    try:
        return generate()
    except Exception as exc:
        return exc


def _finish(job: ImageJob, status: str, code: str | None, message: str | None) -> None:
    JOBS.labels(job.kind, status).inc()
    started = _aware(job.started_at)
    if started is not None:
        JOB_SECONDS.labels(job.kind).observe((datetime.now(UTC) - started).total_seconds())
    job.status = status
    job.finished_at = datetime.now(UTC)
    job.error_code, job.error_message = code, message


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def image_id(job_id: str, index: int) -> str:
    """The id of a job's image number `index`: the same on every run of the job (idempotent writes)."""
    return str(uuid.uuid5(_IMAGE_NAMESPACE, f"{job_id}/{index}"))


_IMAGE_NAMESPACE = uuid.UUID("5b0f6c2e-3f7a-4d2c-9a51-6a0a3f2d9e11")


class CeleryJobQueue:
    """Distributed mode, API side: every submitted job sends one task; whichever worker takes it
    runs the best queued job at that moment (the JobRunner's scheduling), so priorities and
    round-robin hold across all GPU nodes. Cancels travel through the database."""

    def __init__(self, settings: Settings) -> None:
        from fimum_ai.workers.celery_app import make_celery

        self._celery = make_celery(settings)

    async def start(self) -> None:
        await asyncio.to_thread(self._celery.connection_for_write().ensure_connection, max_retries=3)

    async def stop(self) -> None:
        self._celery.close()

    def wake(self) -> None:
        self._celery.send_task(RUN_NEXT)

    def cancel_running(self, job_id: str) -> bool:
        return False  # the worker sees cancel_requested at its next heartbeat


class LocalJobQueue:
    """Embedded mode: one worker thread in the server process runs the JobRunner."""

    def __init__(
        self,
        database: Database,
        provider: EngineProvider,
        store: ImageStore,
        bus: EventBus,
        quotas: QuotaService,
        safety: SafetyService,
        cache: ResultCache | None = None,
        *,
        name: str = "local",
    ) -> None:
        self._db, self._provider, self._store, self._safety = database, provider, store, safety
        self._bus, self._quotas, self._cache, self._name = bus, quotas, cache, name
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.runner: JobRunner | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.runner = JobRunner(
            self._db,
            self._provider,
            self._store,
            self._safety,
            publish=self._bus.publish,
            refund=QuotaRefunder(self._quotas, self._loop),
            remember=self._remember,
            name=self._name,
        )
        await asyncio.to_thread(self.runner.recover, only_stale=False)  # one process: all were ours
        self._thread = threading.Thread(target=self._work, name=f"image-worker-{self._name}", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        if self.runner is not None:
            self.runner.stopping.set()
            self.runner.cancel_all()
        self._wakeup.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)
            self._thread = None

    def wake(self) -> None:
        self._wakeup.set()

    def cancel_running(self, job_id: str) -> bool:
        return self.runner is not None and self.runner.cancel_running(job_id)

    def _remember(self, key: str, image_ids: list[str]) -> None:
        if self._cache is None or self._loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._cache.put(key, image_ids), self._loop)
        try:
            future.result(timeout=10)
        except Exception:
            log.warning("could not store a result in the cache", exc_info=True)

    def _work(self) -> None:
        runner = self.runner
        assert runner is not None
        while not runner.stopping.is_set():
            try:
                job = runner.claim_next()
            except Exception:
                log.exception("the job queue could not read the database")
                job = None
            if job is None:
                self._wakeup.wait(timeout=1.0)
                self._wakeup.clear()
                continue
            runner.run(job)
