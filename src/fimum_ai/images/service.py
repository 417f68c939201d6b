"""The image service the routes call: submit jobs (quota first), follow them, cancel them, and the
gallery of stored images. It owns the queue, the event bus and the file store."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select

from fimum_ai.accounts.principal import Principal
from fimum_ai.db import Database, ImageJob, StoredImage
from fimum_ai.errors import InvalidInput, NotFound
from fimum_ai.images.events import EventBus, JobEvent, LocalEventBus
from fimum_ai.images.jobs import LocalJobQueue, priority_of
from fimum_ai.images.provider import EngineProvider
from fimum_ai.images.requests import GenerateParams, resolve
from fimum_ai.images.storage import ImageStore
from fimum_ai.limits import QuotaService, Reservation
from fimum_ai.settings import Settings

log = logging.getLogger(__name__)
API = "/api/v1"


class ImageService:
    def __init__(
        self, settings: Settings, database: Database, provider: EngineProvider, quotas: QuotaService
    ) -> None:
        self.settings = settings
        self.db = database
        self.quotas = quotas
        self.store = ImageStore(settings.data_dir)
        self.bus: EventBus = LocalEventBus()
        self.queue = LocalJobQueue(database, provider, self.store, self.bus, quotas)

    async def start(self) -> None:
        await self.bus.start()
        await self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()
        await self.bus.aclose()

    # ------------------------------------------------------------------ jobs

    async def submit_generate(self, principal: Principal, params: GenerateParams) -> dict[str, Any]:
        resolve(params, self.settings.image_generation)  # unknown preset, size over the limit: 400 now
        reservation = await self.quotas.reserve(principal, "images", params.batch_size)
        job = ImageJob(
            user_id=principal.user_id,
            tier=principal.tier,
            priority=priority_of(principal.tier),
            kind="generate",
            params=params.model_dump(mode="json"),
            batch_size=params.batch_size,
            quota_day=reservation.day if reservation.counted else None,
            quota_n=reservation.n if reservation.counted else 0,
        )
        try:
            await asyncio.to_thread(self._insert, job)
        except Exception:
            await self.quotas.refund(principal.user_id, reservation)
            raise
        position = await asyncio.to_thread(self._position, job.id)
        self.bus.publish(JobEvent(job.id, "queued", {"position": position}))
        self.queue.wake()
        log.info(
            "image job queued", extra={"job_id": job.id, "user_id": principal.user_id, "n": params.batch_size}
        )
        return self._job_view(job, position)

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
            self.store.delete(row.original_path, row.thumbnail_path, row.metadata_path, row.source_path)

        await asyncio.to_thread(run)
