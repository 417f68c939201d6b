"""The image service the routes call: submit jobs (quota first), follow them, cancel them, and the
gallery of stored images. It owns the queue, the event bus and the file store."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel
from sqlalchemy import and_, func, or_, select

from fimum_ai.accounts.principal import Principal
from fimum_ai.db import Database, ImageJob, StoredImage
from fimum_ai.errors import InvalidInput, NotFound
from fimum_ai.images.cache import CACHE_REQUESTS, build_result_cache, cache_key
from fimum_ai.images.events import EventBus, JobEvent, LocalEventBus, RedisEventBus
from fimum_ai.images.jobs import CeleryJobQueue, JobQueue, LocalJobQueue, priority_of
from fimum_ai.images.model_store import model_version
from fimum_ai.images.provider import EngineProvider
from fimum_ai.images.requests import CommonParams, GenerateParams, resolve
from fimum_ai.images.retention import CleanupSchedule, is_expired
from fimum_ai.images.safety import SafetyService
from fimum_ai.images.storage import ImageStore, preserved_to_json, unreferenced_files, write_atomic
from fimum_ai.images.uploads import UploadedImage, sanitized_png
from fimum_ai.limits import QuotaService, Reservation
from fimum_ai.settings import Settings

log = logging.getLogger(__name__)
API = "/api/v1"
JobKind = Literal["generate", "edit", "outpaint", "upscale"]
_MODEL_VERSION_TTL_S = 5.0  # a model swapped on disk changes cache keys within this


class ImageService:
    def __init__(
        self, settings: Settings, database: Database, provider: EngineProvider, quotas: QuotaService
    ) -> None:
        self.settings = settings
        self.db = database
        self.quotas = quotas
        self.store = ImageStore(settings.data_dir)
        self.safety = SafetyService(settings)
        self.cache = build_result_cache(settings)
        self.provider = provider
        self._version: tuple[float, str | None] | None = None  # (read at, version) for cache keys
        self.bus: EventBus
        self.queue: JobQueue
        if settings.mode == "distributed" and settings.redis_url:
            # Celery workers on any number of nodes; events over Redis so any replica can serve them.
            self.bus = RedisEventBus(settings.redis_url, settings.redis_prefix)
            self.queue = CeleryJobQueue(settings)
        else:
            self.bus = LocalEventBus()
            self.queue = LocalJobQueue(
                database, provider, self.store, self.bus, quotas, self.safety, self.cache
            )
        # Retention clean-up: here in embedded mode; distributed mode's workers run it (task_queue).
        self.retention: CleanupSchedule | None = None
        if isinstance(self.queue, LocalJobQueue) and CleanupSchedule.wanted(settings):
            self.retention = CleanupSchedule(database, self.store, settings.cleanup_interval_s)

    async def start(self) -> None:
        await self.bus.start()
        await self.queue.start()
        if self.retention is not None:
            await self.retention.start()

    async def stop(self) -> None:
        if self.retention is not None:
            await self.retention.stop()
        await self.queue.stop()
        await self.bus.aclose()
        if self.cache is not None:
            await self.cache.aclose()

    # ------------------------------------------------------------------ jobs

    async def submit_generate(self, principal: Principal, params: GenerateParams) -> dict[str, Any]:
        return await self.submit(principal, "generate", params)

    async def submit(
        self,
        principal: Principal,
        kind: JobKind,
        params: BaseModel,
        *,
        image: UploadedImage | None = None,
        mask: Image.Image | None = None,
        preserve: bool = False,
    ) -> dict[str, Any]:
        """Check, reserve the quota, persist the job (and its inputs), wake the queue.
        Nothing is queued and nothing is counted when a check fails."""
        prompt = str(getattr(params, "prompt", ""))
        if prompt:
            self.safety.check_prompt(principal.user_id, prompt)  # the positive prompt only
        if isinstance(params, CommonParams):
            resolve(params, self.settings.image_generation)  # unknown preset, size over the limit: 400
        n = int(getattr(params, "batch_size", 1))
        key = await self._cache_key(kind, params, image, mask, preserve)
        if key is not None and self.cache is not None:
            served = await self._from_cache(principal, kind, params, key)
            CACHE_REQUESTS.labels("hit" if served else "miss").inc()
            if served is not None:
                return served
        reservation = await self.quotas.reserve(principal, "images", n)
        job = ImageJob(
            id=str(uuid.uuid4()),
            user_id=principal.user_id,
            tier=principal.tier,
            priority=priority_of(principal.tier),
            kind=kind,
            params=params.model_dump(mode="json"),
            batch_size=n,
            quota_day=reservation.day if reservation.counted else None,
            quota_n=reservation.n if reservation.counted else 0,
        )
        try:
            inputs = await asyncio.to_thread(
                self._store_inputs, principal.user_id, job.id, image, mask, preserve
            )
            job.inputs = {**inputs, "cache_key": key} if key is not None else inputs
            await asyncio.to_thread(self._insert, job)
        except Exception:
            await self.quotas.refund(principal.user_id, reservation)
            self.store.delete(*(job.inputs or {}).get("files", []))
            raise
        position = await asyncio.to_thread(self._position, job.id)
        self.bus.publish(JobEvent(job.id, "queued", {"position": position}))
        self.queue.wake()
        log.info(
            "image job queued", extra={"job_id": job.id, "user_id": principal.user_id, "kind": kind, "n": n}
        )
        return self._job_view(job, position)

    async def _cache_key(
        self,
        kind: str,
        params: BaseModel,
        image: UploadedImage | None,
        mask: Image.Image | None,
        preserve: bool,
    ) -> str | None:
        if self.cache is None or getattr(params, "seed", None) is None:
            return None  # without a seed every run differs: nothing to reuse
        version = await self._current_model_version()
        if version is None:
            return None
        inputs = None
        if image is not None:
            mask_hash = hashlib.sha256(mask.tobytes()).hexdigest() if mask is not None else ""
            inputs = f"{image.sha256}|{mask_hash}|{preserve}"
        return cache_key(kind, params.model_dump(mode="json"), version, inputs)

    async def _current_model_version(self) -> str | None:
        """The installed models' version, re-read from disk at most every few seconds (walking the
        model folders costs ~1.6 ms, on every seeded request and cache hit otherwise)."""
        now = time.monotonic()
        if self._version is None or now - self._version[0] > _MODEL_VERSION_TTL_S:
            self._version = (now, await asyncio.to_thread(self._model_version))
        return self._version[1]

    def _model_version(self) -> str | None:
        models = self.provider.models()
        if models is None:
            return None
        paths = [models.base, models.refiner, models.upscaler]
        return "+".join(model_version(p) for p in paths if p is not None)

    async def _from_cache(
        self, principal: Principal, kind: str, params: BaseModel, key: str
    ) -> dict[str, Any] | None:
        assert self.cache is not None
        ids = await self.cache.get(key)
        if not ids:
            return None
        job = await asyncio.to_thread(self._serve_cached, principal, kind, params, ids)
        if job is None:
            return None
        self.bus.publish(JobEvent(job.id, "completed", {"images": list(job.image_ids), "cached": True}))
        log.info(
            "image request served from the cache", extra={"job_id": job.id, "user_id": principal.user_id}
        )
        return self._job_view(job, None)

    def _serve_cached(
        self, principal: Principal, kind: str, params: BaseModel, ids: list[str]
    ) -> ImageJob | None:
        """A completed job for the cached images; another user's are linked into this user's gallery."""
        now = datetime.now(UTC)
        with self.db.session() as session, session.begin():
            # Locked until this job is stored: the retention clean-up skips them meanwhile, or, if it
            # holds them, this waits and finds them gone.
            query = select(StoredImage).where(StoredImage.id.in_(ids)).order_by(StoredImage.id)
            rows = {r.id: r for r in session.scalars(query.with_for_update())}
            if len(rows) != len(ids) or not all(self._servable(r) for r in rows.values()):
                return None  # deleted, or past the retention TTL: generate again
            own: list[str] = []
            for image_id in ids:
                row = rows[image_id]
                if row.user_id != principal.user_id:
                    try:
                        row = self.store.link_copy(row, principal.user_id)
                    except FileNotFoundError:
                        return None  # its files went meanwhile (nothing is stored: a miss)
                    session.add(row)
                own.append(row.id)
            job = ImageJob(
                id=str(uuid.uuid4()),
                user_id=principal.user_id,
                tier=principal.tier,
                priority=priority_of(principal.tier),
                kind=kind,
                params=params.model_dump(mode="json"),
                batch_size=len(own),
                status="completed",
                created_at=now,
                started_at=now,
                finished_at=now,
                image_ids=own,
                worker="cache",
            )
            session.add(job)
        return job

    def _servable(self, row: StoredImage) -> bool:
        """Its files are there and the retention clean-up is not about to take it (a minute's margin:
        a response must not list an image that is gone when the client fetches it)."""
        if is_expired(row.created_at, self.settings, margin_s=60.0):
            return False
        return self.store.path(row.original_path).is_file() and self.store.path(row.thumbnail_path).is_file()

    def _store_inputs(
        self, user_id: str, job_id: str, image: UploadedImage | None, mask: Image.Image | None, preserve: bool
    ) -> dict[str, Any]:
        """Inputs wait under data/uploads/ as sanitised PNGs (pixels only) until the job ends."""
        if image is None:
            return {}
        folder = f"uploads/{user_id}"
        inputs: dict[str, Any] = {"image": f"{folder}/{job_id}_image.png"}
        write_atomic(self.store.path(inputs["image"]), sanitized_png(image))
        if mask is not None:
            inputs["mask"] = f"{folder}/{job_id}_mask.png"
            buf = io.BytesIO()
            mask.save(buf, format="PNG")
            write_atomic(self.store.path(inputs["mask"]), buf.getvalue())
        if preserve:
            inputs["preserved"] = preserved_to_json(image.metadata)
        inputs["files"] = [inputs["image"], inputs.get("mask")]
        return inputs

    def _insert(self, job: ImageJob) -> None:
        with self.db.session() as session, session.begin():
            session.add(job)

    def _position(self, job_id: str) -> int | None:
        """1 = next to run; None when not queued."""
        with self.db.session() as session:
            job = session.get(ImageJob, job_id)
            if job is None or job.status != "queued":
                return None
            ahead = session.scalar(
                select(func.count())
                .select_from(ImageJob)
                .where(
                    ImageJob.status == "queued",
                    or_(
                        ImageJob.priority > job.priority,
                        and_(ImageJob.priority == job.priority, ImageJob.created_at < job.created_at),
                    ),
                )
            )
            return int(ahead or 0) + 1

    async def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        async for event in self.bus.subscribe(job_id):
            yield event

    async def wait(self, job_id: str) -> JobEvent:
        """Until the job ends (the job keeps running if the caller goes away)."""
        async for event in self.bus.subscribe(job_id):
            if event.terminal:
                return event
        raise RuntimeError("event stream ended without a terminal event")

    async def job(self, principal: Principal, job_id: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            job = self._owned_job(principal, job_id)
            return self._job_view(job, self._position(job.id))

        return await asyncio.to_thread(run)

    def _owned_job(self, principal: Principal, job_id: str) -> ImageJob:
        with self.db.session() as session:
            job = session.get(ImageJob, job_id)
            if job is None or job.user_id != principal.user_id:
                raise NotFound("no such job")
            return job

    async def jobs(self, principal: Principal, *, limit: int = 50) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            with self.db.session() as session:
                rows = session.scalars(
                    select(ImageJob)
                    .where(ImageJob.user_id == principal.user_id)
                    .order_by(ImageJob.created_at.desc())
                    .limit(limit)
                ).all()
            return {"items": [self._job_view(j, self._position(j.id)) for j in rows], "next_cursor": None}

        return await asyncio.to_thread(run)

    async def cancel(self, principal: Principal, job_id: str) -> dict[str, Any]:
        """Queued: removed at once (quota given back). Running: stopped within one step."""

        def take_off_queue() -> ImageJob | None:
            with self.db.session() as session, session.begin():
                job = session.get(ImageJob, job_id)
                if job is None or job.user_id != principal.user_id:
                    raise NotFound("no such job")
                if job.status == "queued":
                    job.status, job.finished_at = "cancelled", datetime.now(UTC)
                    job.error_code, job.error_message = "cancelled", "cancelled by the user"
                    return job
                if job.status == "running":
                    job.cancel_requested = True  # seen by the worker, wherever it runs, within a step
                return None

        removed = await asyncio.to_thread(take_off_queue)
        if removed is not None:
            if removed.quota_day is not None and removed.quota_n:
                reservation = Reservation("images", removed.quota_n, removed.quota_day)
                await self.quotas.refund(removed.user_id, reservation)
            self.bus.publish(JobEvent(job_id, "cancelled", {}))
        else:
            self.queue.cancel_running(job_id)
        return await self.job(principal, job_id)

    def _job_view(self, job: ImageJob, position: int | None) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": job.id,
            "status": job.status,
            "kind": job.kind,
            "batch_size": job.batch_size,
            "created_at": job.created_at.isoformat(),
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "position": position,
            "url": f"{API}/image/jobs/{job.id}",
            "websocket_url": f"{API}/image/jobs/{job.id}/events",
            "image_ids": list(job.image_ids or []),
        }
        if job.status == "failed":
            view["error"] = {"code": job.error_code, "message": job.error_message}
        return view

    # --------------------------------------------------------------- gallery

    async def images(self, image_ids: list[str], *, with_data: bool) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            with self.db.session() as session:
                rows = {
                    r.id: r for r in session.scalars(select(StoredImage).where(StoredImage.id.in_(image_ids)))
                }
            return [self._image_view(rows[i], with_data=with_data) for i in image_ids if i in rows]

        return await asyncio.to_thread(run)

    def _image_view(self, row: StoredImage, *, with_data: bool) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": row.id,
            "seed": row.seed,
            "width": row.width,
            "height": row.height,
            "mode": row.mode,
            "created_at": row.created_at.isoformat(),
            "url": f"{API}/images/{row.id}/file",
            "thumbnail_url": f"{API}/images/{row.id}/file?variant=thumbnail",
            "metadata": row.metadata_json,
            "duplicate_of": row.duplicate_of,
        }
        if with_data:
            view["image_base64"] = base64.b64encode(self.store.path(row.original_path).read_bytes()).decode()
            view["thumbnail_base64"] = base64.b64encode(
                self.store.path(row.thumbnail_path).read_bytes()
            ).decode()
        return view

    async def gallery(self, principal: Principal, *, cursor: str | None, limit: int) -> dict[str, Any]:
        """Newest first, keyset-paginated on (created_at, id)."""

        def run() -> dict[str, Any]:
            with self.db.session() as session:
                query = select(StoredImage).where(StoredImage.user_id == principal.user_id)
                if cursor:
                    after = session.get(StoredImage, cursor)
                    if after is None or after.user_id != principal.user_id:
                        raise InvalidInput("cursor: unknown cursor", details={"field": "cursor"})
                    query = query.where(
                        or_(
                            StoredImage.created_at < after.created_at,
                            and_(StoredImage.created_at == after.created_at, StoredImage.id < after.id),
                        )
                    )
                rows = session.scalars(
                    query.order_by(StoredImage.created_at.desc(), StoredImage.id.desc()).limit(limit + 1)
                ).all()
            items = [self._image_view(r, with_data=False) for r in rows[:limit]]
            return {"items": items, "next_cursor": rows[limit - 1].id if len(rows) > limit else None}

        return await asyncio.to_thread(run)

    def owned_image(self, principal: Principal, image_id: str) -> StoredImage:
        with self.db.session() as session:
            row = session.get(StoredImage, image_id)
            if row is None or row.user_id != principal.user_id:
                raise NotFound("no such image")
            return row

    async def image(self, principal: Principal, image_id: str) -> dict[str, Any]:
        row = await asyncio.to_thread(self.owned_image, principal, image_id)
        return self._image_view(row, with_data=False)

    async def delete_image(self, principal: Principal, image_id: str) -> None:
        def run() -> None:
            with self.db.session() as session, session.begin():
                row = session.get(StoredImage, image_id)
                if row is None or row.user_id != principal.user_id:
                    raise NotFound("no such image")
                session.delete(row)
                session.flush()
                loose = unreferenced_files(session, [row])  # a duplicate may still show these pixels
            self.store.delete(*loose)  # after the commit: never a row without its files

        await asyncio.to_thread(run)
