"""/api/v1/image/* (jobs) and /api/v1/images/* (the gallery). Every route needs a signed-in user.

Routes are thin: validate with the shared request models, call the image service, shape the
response (FR-IMG-008).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse
from PIL import Image
from pydantic import Field

from fimum_ai.accounts.auth import CurrentUser
from fimum_ai.accounts.principal import Principal
from fimum_ai.errors import FimumError, GenerationCancelled, NotAuthenticated, NotFound
from fimum_ai.images.events import JobEvent
from fimum_ai.images.provider import EngineProvider
from fimum_ai.images.requests import GenerateParams
from fimum_ai.images.service import ImageService
from fimum_ai.settings import Settings

router = APIRouter(prefix="/api/v1/image", tags=["images"])


async def get_provider(request: Request) -> EngineProvider:
    provider: EngineProvider = request.app.state.engine_provider
    return provider


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Provider = Annotated[EngineProvider, Depends(get_provider)]
AppSettings = Annotated[Settings, Depends(get_settings)]


@router.get("/models", summary="Installed image models")
async def image_models(provider: Provider, _: CurrentUser) -> dict[str, Any]:
    return provider.status()


@router.get("/presets", summary="Style presets (FR-IMG-004)")
async def presets(settings: AppSettings, _: CurrentUser) -> dict[str, Any]:
    items = [
        {"name": name, **preset.model_dump()}
        for name, preset in settings.image_generation.style_presets.items()
    ]
    return {"items": items, "next_cursor": None}


async def get_images(request: Request) -> ImageService:
    service: ImageService = request.app.state.images
    return service


Images = Annotated[ImageService, Depends(get_images)]


class GenerateRequest(GenerateParams):
    """The spec's body (FR-IMG-007) plus `batch_size`, `refine` and `async`."""

    run_async: bool = Field(
        False,
        alias="async",
        description="Answer 202 with the job at once instead of waiting (or send `Prefer: respond-async`).",
    )

    def params(self) -> GenerateParams:
        return GenerateParams.model_validate(self.model_dump(exclude={"run_async"}))


_STATUS_OF_CODE = {
    "model_not_installed": 503,
    "gpu_out_of_memory": 503,
    "invalid_input": 400,
    "nsfw_content_blocked": 400,
    "interrupted": 503,
}


def _job_error(event: JobEvent) -> FimumError:
    if event.type == "cancelled":
        return GenerationCancelled("the job was cancelled")
    error = FimumError(str(event.data.get("message", "the job failed")))
    error.code = str(event.data.get("code", "internal_error"))
    error.status = _STATUS_OF_CODE.get(error.code, 500)
    return error


@router.post(
    "/generate",
    summary="Text-to-image (FR-IMG-007)",
    responses={
        202: {
            "description": "Queued (with `async: true` or `Prefer: respond-async`): the job and its WebSocket"
        },
        429: {"description": "rate_limited, or quota_exceeded (daily images) with Retry-After"},
        503: {"description": "model_not_installed or gpu_out_of_memory"},
    },
)
async def generate(
    body: GenerateRequest, principal: CurrentUser, images: Images, request: Request, response: Response
) -> dict[str, Any]:
    job = await images.submit_generate(principal, body.params())
    if body.run_async or "respond-async" in request.headers.get("prefer", ""):
        response.status_code = 202
        return job
    event = await images.wait(job["id"])
    if event.type != "completed":
        raise _job_error(event)
    stored = await images.images(list(event.data["images"]), with_data=True)
    keys = ("id", "image_base64", "thumbnail_base64", "url", "thumbnail_url", "seed", "metadata")
    return {
        "id": job["id"],
        "status": "completed",
        "images": [{k: item[k] for k in keys} for item in stored],
        "metadata": stored[0]["metadata"] if stored else {},
    }


@router.get("/jobs", summary="My image jobs, newest first, with queue positions")
async def list_jobs(principal: CurrentUser, images: Images) -> dict[str, Any]:
    return await images.jobs(principal)


@router.get("/jobs/{job_id}", summary="One job: status, position, images when done")
async def get_job(job_id: str, principal: CurrentUser, images: Images) -> dict[str, Any]:
    return await images.job(principal, job_id)


@router.delete("/jobs/{job_id}", summary="Cancel a job (queued: removed; running: stopped within one step)")
async def cancel_job(job_id: str, principal: CurrentUser, images: Images) -> dict[str, Any]:
    return await images.cancel(principal, job_id)


@router.websocket("/jobs/{job_id}/events")
async def job_events(websocket: WebSocket, job_id: str) -> None:
    """Live events: queued {position}, started, progress {step, total, eta_s, preview}, completed {images},
    failed {code, message}, cancelled. Authenticate with an `Authorization: Bearer` header, or (browsers)
    with a first message `{"type": "auth", "token": "..."}` — never in the URL, so never in access logs."""
    await websocket.accept()
    principal = await _websocket_principal(websocket)
    if principal is None:
        return
    images: ImageService = websocket.app.state.images
    try:
        current = await images.job(principal, job_id)
    except NotFound:
        await websocket.send_json({"type": "error", "code": "not_found", "message": "no such job"})
        await websocket.close(code=4404)
        return
    if images.bus.last(job_id) is None:
        # Nothing in memory (e.g. after a restart): start from the database's view.
        await websocket.send_json(
            {"type": _state_event(current["status"]), "job_id": job_id, **_state(current)}
        )
        if current["status"] in ("completed", "failed", "cancelled"):
            await websocket.close()
            return
    try:
        async for event in images.events(job_id):
            await websocket.send_json(event.message())
        await websocket.close()
    except WebSocketDisconnect:
        pass


async def _websocket_principal(websocket: WebSocket) -> Principal | None:
    principal = websocket.scope.get("state", {}).get("principal")
    if isinstance(principal, Principal):
        return principal
    accounts = websocket.app.state.accounts
    try:
        first = await asyncio.wait_for(websocket.receive_json(), timeout=10)
        token = first.get("token") if isinstance(first, dict) and first.get("type") == "auth" else None
        if not isinstance(token, str):
            raise NotAuthenticated('send {"type": "auth", "token": "..."} first')
        resolved: Principal = await accounts.authenticate(token)
        return resolved
    except (TimeoutError, ValueError, KeyError, WebSocketDisconnect):
        error: FimumError = NotAuthenticated('send {"type": "auth", "token": "..."} first')
    except FimumError as exc:
        error = exc
    with contextlib.suppress(Exception):
        await websocket.send_json({"type": "error", "code": error.code, "message": error.message})
        await websocket.close(code=4401)
    return None


def _state_event(status: str) -> str:
    return {"running": "started"}.get(status, status)


def _state(job: dict[str, Any]) -> dict[str, Any]:
    if job["status"] == "queued":
        return {"position": job["position"]}
    if job["status"] == "completed":
        return {"images": job["image_ids"]}
    if job["status"] == "failed":
        return dict(job.get("error") or {})
    return {}


gallery = APIRouter(prefix="/api/v1/images", tags=["gallery"])


@gallery.get("", summary="My images, newest first (cursor pagination)")
async def list_images(
    principal: CurrentUser,
    images: Images,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 30,
) -> dict[str, Any]:
    return await images.gallery(principal, cursor=cursor, limit=limit)


@gallery.get("/{image_id}", summary="One image's metadata and URLs")
async def get_image(image_id: str, principal: CurrentUser, images: Images) -> dict[str, Any]:
    return await images.image(principal, image_id)


@gallery.get("/{image_id}/file", summary="The image file (PNG or WebP; original or 256×256 thumbnail)")
async def image_file(
    image_id: str,
    principal: CurrentUser,
    images: Images,
    variant: Literal["original", "thumbnail"] = "original",
    format: Literal["png", "webp", "jpeg"] | None = None,
) -> Response:
    row = await asyncio.to_thread(images.owned_image, principal, image_id)
    path = images.store.path(row.original_path if variant == "original" else row.thumbnail_path)
    native = "png" if variant == "original" else "jpeg"
    wanted = format or native
    headers = {
        "Cache-Control": "private, max-age=86400",
        "Content-Disposition": f'inline; filename="{image_id}.{wanted}"',
    }
    if wanted == native:
        return FileResponse(path, media_type=f"image/{native}", headers=headers)
    data = await asyncio.to_thread(_convert, path, wanted)
    return Response(data, media_type=f"image/{wanted}", headers=headers)


def _convert(path: Path, fmt: str) -> bytes:
    with Image.open(path) as image:
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format=fmt.upper(), quality=90)
        return buf.getvalue()


@gallery.delete("/{image_id}", status_code=204, summary="Delete an image and its files")
async def delete_image(image_id: str, principal: CurrentUser, images: Images) -> Response:
    await images.delete_image(principal, image_id)
    return Response(status_code=204)
