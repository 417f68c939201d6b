"""/api/v1/image/* (jobs) and /api/v1/images/* (the gallery). Every route needs a signed-in user.

Routes are thin: validate with the shared request models, call the image service, shape the
response (FR-IMG-008).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

from fastapi import APIRouter, Depends, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile as StarletteUploadFile

from fimum_ai.accounts.auth import CurrentUser
from fimum_ai.accounts.principal import Principal
from fimum_ai.errors import (
    MALFORMED_BODY,
    NOT_SIGNED_IN,
    RATE_LIMITED,
    VALIDATION_FAILED,
    ErrorDoc,
    FimumError,
    GenerationCancelled,
    GpuOutOfMemory,
    InvalidInput,
    ModelNotInstalled,
    NotAuthenticated,
    NotFound,
    error_responses,
)
from fimum_ai.images import uploads
from fimum_ai.images.events import JobEvent
from fimum_ai.images.provider import INSTALL_HINT, EngineProvider
from fimum_ai.images.requests import (
    EXAMPLE_IMAGE_BASE64,
    EXAMPLE_MASK_BASE64,
    IMAGE_UPLOAD_GUIDE,
    EditParams,
    GenerateParams,
    OutpaintParams,
    UpscaleParams,
)
from fimum_ai.images.safety import ContentBlocked
from fimum_ai.images.service import ImageService
from fimum_ai.limits import QuotaExceeded
from fimum_ai.settings import Settings

# Every route needs a signed-in user and counts against the per-user request limit.
_SIGNED_IN = error_responses(*NOT_SIGNED_IN, RATE_LIMITED)
router = APIRouter(prefix="/api/v1/image", tags=["images"], responses=_SIGNED_IN)
R = TypeVar("R", bound=BaseModel)

# --- Documented failures (the codes are the exception classes' own) ---------------------------------

NO_SUCH_JOB = ErrorDoc.of(NotFound, "no such job")
NO_SUCH_IMAGE = ErrorDoc.of(NotFound, "no such image")
# Before anything is queued (prompt filter, preset, size), or the finished job's (image filter).
GENERATION_REFUSED = (
    ErrorDoc.of(
        InvalidInput, "unknown style_preset 'oil'; known: anime, artistic, ...", {"field": "style_preset"}
    ),
    ErrorDoc.example(ContentBlocked("prompt", "nudity")),
    MALFORMED_BODY,
    ErrorDoc.of(GenerationCancelled, "the job was cancelled"),
    ErrorDoc(
        413,
        uploads.UploadTooLarge.code,
        f"the request body is larger than the {uploads.MAX_EDIT_BODY_BYTES} byte limit",
        {"limit_bytes": uploads.MAX_EDIT_BODY_BYTES},
    ),
    VALIDATION_FAILED,
    ErrorDoc.of(
        QuotaExceeded,
        "Daily images quota reached: 5 of 5 used, 1 requested. It resets at 2025-01-02T00:00:00Z.",
        {"kind": "images", "limit": 5, "used": 5, "requested": 1, "resets_at": "2025-01-02T00:00:00Z"},
    ),
    RATE_LIMITED,  # a route's own 429 replaces its router's
    ErrorDoc.of(ModelNotInstalled, INSTALL_HINT),
    ErrorDoc.of(
        GpuOutOfMemory,
        "the GPU (cuda:0) ran out of memory, even with VAE tiling and attention slicing: ...",
        {"device": "cuda:0", "free_bytes": 52428800},
    ),
    ErrorDoc(503, "interrupted", "the job was interrupted twice; try again"),
)
UPLOAD_REFUSED = (
    ErrorDoc.of(
        uploads.InvalidImage,
        "image: the image data is corrupt or unreadable",
        {"field": "image", "reason": "corrupt"},
    ),
    ErrorDoc.of(InvalidInput, "image: send the image as a file part or as image_base64", {"field": "image"}),
    ErrorDoc.of(
        uploads.UploadTooLarge,
        "image: the upload is larger than the 10 MiB limit",
        {"field": "image", "limit_bytes": uploads.MAX_UPLOAD_BYTES},
    ),
    ErrorDoc.of(
        uploads.UnsupportedMediaType,
        "image: only PNG, JPEG and WebP images are accepted (this looks like image/gif)",
        {"field": "image", "detected": "image/gif", "allowed": list(uploads.ALLOWED_TYPES)},
    ),
)


# --- Response bodies (documentation: routes return plain dicts, `response_model=None`) ------------


class JobError(BaseModel):
    code: str = Field(examples=["nsfw_content_blocked"])
    message: str


class JobView(BaseModel):
    """An image job (what `async` requests answer with 202, and GET /jobs/{id})."""

    id: str = Field(description="The job's id (UUID).", examples=["9b2f6c1e-3f0a-4d55-8a0e-1f2d3c4b5a69"])
    status: Literal["queued", "running", "completed", "failed", "cancelled"]
    kind: Literal["generate", "edit", "outpaint", "upscale"]
    batch_size: int = Field(examples=[1])
    created_at: str = Field(description="ISO 8601, UTC.")
    started_at: str | None
    finished_at: str | None
    position: int | None = Field(description="Place in the queue (1 = next) while queued.", examples=[1])
    url: str = Field(examples=["/api/v1/image/jobs/9b2f6c1e-3f0a-4d55-8a0e-1f2d3c4b5a69"])
    websocket_url: str = Field(
        description="Live events: queued, started, progress, completed, failed, cancelled.",
        examples=["/api/v1/image/jobs/9b2f6c1e-3f0a-4d55-8a0e-1f2d3c4b5a69/events"],
    )
    image_ids: list[str] = Field(description="The results' ids once completed (GET /api/v1/images/{id}).")
    error: JobError | None = Field(None, description="Why it failed (failed jobs only).")


class JobList(BaseModel):
    items: list[JobView] = Field(description="My latest 50 jobs, newest first.")
    next_cursor: None = None


class ImageView(BaseModel):
    """A stored image: its metadata and where to fetch it (the file needs the same bearer key)."""

    id: str = Field(examples=["c2f06b43-5815-5dab-b7de-34b60eab3688"])
    seed: int = Field(examples=[42])
    width: int = Field(examples=[1024])
    height: int = Field(examples=[768])
    mode: str = Field(description="How it was made: text-to-image, image-to-image, inpaint...")
    created_at: str = Field(description="ISO 8601, UTC.")
    url: str = Field(examples=["/api/v1/images/c2f06b43-5815-5dab-b7de-34b60eab3688/file"])
    thumbnail_url: str = Field(
        examples=["/api/v1/images/c2f06b43-5815-5dab-b7de-34b60eab3688/file?variant=thumbnail"]
    )
    metadata: dict[str, Any] = Field(description="Prompt, parameters, seed, model and timings.")
    duplicate_of: str | None = Field(description="An earlier image with (nearly) the same pixels.")


class ImagePage(BaseModel):
    items: list[ImageView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class GeneratedImage(BaseModel):
    id: str
    image_base64: str = Field(description="The PNG, base64.")
    thumbnail_base64: str = Field(description="A 256×256 JPEG, base64.")
    url: str
    thumbnail_url: str
    seed: int
    metadata: dict[str, Any]


class GenerationResult(BaseModel):
    """What a request that waits (no `async`) gets: the finished job's images."""

    id: str = Field(description="The job's id.")
    status: Literal["completed"]
    images: list[GeneratedImage]
    metadata: dict[str, Any] = Field(description="The first image's metadata: prompt, parameters, seed...")


class ImageModels(BaseModel):
    installed: bool = Field(description="Whether any image model is installed.")
    demo: bool = Field(description="The tiny noise-only demo model is the one in use.")
    base: str | None
    refiner: str | None
    upscaler: str | None
    loaded: bool = Field(description="Loaded into memory (the first request loads it).")


class Preset(BaseModel):
    name: str = Field(examples=["photorealistic"])
    description: str
    prompt: str = Field(description="The prompt template; {prompt} is replaced by yours.")
    negative: str
    steps: int | None
    guidance_scale: float | None
    scheduler: str | None


class PresetList(BaseModel):
    items: list[Preset]
    next_cursor: None = None


def _ok(model: type[BaseModel], description: str = "Success") -> dict[int | str, dict[str, Any]]:
    """Document the 200 body; routes keep `response_model=None` so nothing is filtered out."""
    return {200: {"model": model, "description": description}}


_QUEUED: dict[int | str, dict[str, Any]] = {
    202: {
        "model": JobView,
        "description": "Queued (with `async: true` or `Prefer: respond-async`): the job; follow it on its "
        "`websocket_url` or `url`.",
    }
}


async def get_provider(request: Request) -> EngineProvider:
    provider: EngineProvider = request.app.state.engine_provider
    return provider


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Provider = Annotated[EngineProvider, Depends(get_provider)]
AppSettings = Annotated[Settings, Depends(get_settings)]


@router.get("/models", summary="Installed image models", response_model=None, responses=_ok(ImageModels))
async def image_models(provider: Provider, _: CurrentUser) -> dict[str, Any]:
    return provider.status()


@router.get("/presets", summary="Style presets (FR-IMG-004)", response_model=None, responses=_ok(PresetList))
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

    # Strict, as the schema says: `"async": 0` or `"width": "512"` are refused (422), not coerced.
    model_config = ConfigDict(strict=True)

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


def job_error(event: JobEvent) -> FimumError:
    if event.type == "cancelled":
        return GenerationCancelled("the job was cancelled")
    error = FimumError(str(event.data.get("message", "the job failed")))
    error.code = str(event.data.get("code", "internal_error"))
    error.status = _STATUS_OF_CODE.get(error.code, 500)
    return error


@router.post(
    "/generate",
    summary="Text-to-image (FR-IMG-007)",
    response_model=None,
    responses={**_ok(GenerationResult), **_QUEUED, **error_responses(*GENERATION_REFUSED)},
)
async def generate(
    body: GenerateRequest, principal: CurrentUser, images: Images, request: Request, response: Response
) -> dict[str, Any]:
    job = await images.submit_generate(principal, body.params())
    return await _answer(images, job, body.run_async, request, response)


async def _answer(
    images: ImageService, job: dict[str, Any], run_async: bool, request: Request, response: Response
) -> dict[str, Any]:
    """202 with the job, or wait for it and answer with the images (FR-IMG-008)."""
    if run_async or "respond-async" in request.headers.get("prefer", ""):
        response.status_code = 202
        return job
    event = await images.wait(job["id"])
    if event.type != "completed":
        raise job_error(event)
    stored = await images.images(list(event.data["images"]), with_data=True)
    keys = ("id", "image_base64", "thumbnail_base64", "url", "thumbnail_url", "seed", "metadata")
    return {
        "id": job["id"],
        "status": "completed",
        "images": [{k: item[k] for k in keys} for item in stored],
        "metadata": stored[0]["metadata"] if stored else {},
    }


class _WithImage(BaseModel):
    # Strict, as the schema says (multipart text fields are JSON-decoded first: "true", "0.5", "4").
    model_config = ConfigDict(strict=True)

    image_base64: str | None = Field(
        None,
        description="The input image (required here or as the multipart `image` part): " + IMAGE_UPLOAD_GUIDE,
        examples=[EXAMPLE_IMAGE_BASE64, "data:image/png;base64," + EXAMPLE_IMAGE_BASE64],
    )
    run_async: bool = Field(
        False,
        alias="async",
        description="Answer 202 with the job at once instead of waiting (or send `Prefer: respond-async`).",
    )


class EditRequest(EditParams, _WithImage):
    """Image-to-image; with a mask, inpainting (white = repaint). FR-IMG-005/006."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"prompt": "the same scene in winter", "image_base64": EXAMPLE_IMAGE_BASE64, "strength": 0.6},
                {
                    "prompt": "a red door",
                    "image_base64": EXAMPLE_IMAGE_BASE64,
                    "mask_base64": EXAMPLE_MASK_BASE64,
                    "seed": 42,
                },
            ]
        }
    )

    mask_base64: str | None = Field(
        None,
        description="Optional inpainting mask, white = repaint, black = keep; the image's size or aspect "
        "ratio (within 1 %). Same formats and limits as the image (any size from 1 px), or the multipart "
        "`mask` part.",
        examples=[EXAMPLE_MASK_BASE64],
    )
    preserve_original: bool = Field(
        False,
        description="Keep the input's EXIF/ICC/text (minus GPS) on the result, and the input beside it.",
    )


class OutpaintRequest(OutpaintParams, _WithImage):
    """Extend the canvas by the given pixels per side and fill the new area."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "prompt": "more of the beach",
                    "image_base64": EXAMPLE_IMAGE_BASE64,
                    "right": 64,
                    "bottom": 32,
                }
            ]
        }
    )


class UpscaleRequest(UpscaleParams, _WithImage):
    """x4 (or x2) upscaling with the SD x4 upscaler, tiled."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"image_base64": EXAMPLE_IMAGE_BASE64, "scale": 4, "prompt": "a lighthouse"}]
        }
    )


_FILE_FIELDS = ("image", "mask")


async def _read_body(request: Request, model: type[R]) -> tuple[R, dict[str, bytes]]:
    """JSON, or multipart/form-data with the same fields (the image and mask also as file parts)."""
    content_type = request.headers.get("content-type", "")
    files: dict[str, bytes] = {}
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_part_size=uploads.encoded_length(uploads.MAX_UPLOAD_BYTES) + 65536)
        fields: dict[str, Any] = {}
        for key, value in form.multi_items():
            if isinstance(value, StarletteUploadFile):
                if key in _FILE_FIELDS:
                    files[key] = await uploads.read_upload(value, field=key)
            else:
                fields[key] = _form_value(model, key, value)
    elif content_type.startswith("application/json") or not content_type:
        try:
            fields = await request.json()
        except ValueError:
            raise InvalidInput("the body is not valid JSON") from None
        if not isinstance(fields, dict):
            raise InvalidInput("the body must be a JSON object")
    else:
        raise uploads.UnsupportedMediaType(
            "send application/json or multipart/form-data", details={"content_type": content_type}
        )
    try:
        body = model.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    for name in _FILE_FIELDS:
        encoded = getattr(body, f"{name}_base64", None)
        if name not in files and encoded:
            files[name] = uploads.decode_base64_image(encoded, field=name)
    if "image" not in files:
        raise InvalidInput(
            "image: send the image as a file part or as image_base64", details={"field": "image"}
        )
    return body, files


def _form_value(model: type[BaseModel], key: str, value: str) -> Any:
    """Form fields are text; numbers, booleans and the literal 2/4 of `scale` are JSON inside it."""
    name = "run_async" if key == "async" else key
    field = model.model_fields.get(name)
    if field is None or str in (field.annotation, *get_args(field.annotation)):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


async def _load(files: dict[str, bytes]) -> tuple[uploads.UploadedImage, Image.Image | None]:
    image = await asyncio.to_thread(uploads.load_image, files["image"], "image")
    mask = None
    if "mask" in files:
        mask = await asyncio.to_thread(uploads.load_mask, files["mask"], (image.width, image.height), "mask")
    return image, mask


def _openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    multipart = {
        **schema,
        "properties": {
            **schema.get("properties", {}),
            "image": {"type": "string", "format": "binary", "description": "The input image as a file part."},
        },
    }
    if "mask_base64" in schema.get("properties", {}):
        multipart["properties"]["mask"] = {
            "type": "string",
            "format": "binary",
            "description": "Optional mask.",
        }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}, "multipart/form-data": {"schema": multipart}},
        }
    }


_IMAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ok(GenerationResult),
    **_QUEUED,
    **error_responses(*UPLOAD_REFUSED, *GENERATION_REFUSED),
}


@router.post(
    "/edit",
    summary="Image-to-image, or inpainting with a mask (FR-IMG-005/006)",
    openapi_extra=_openapi_body(EditRequest),
    response_model=None,
    responses=_IMAGE_ERRORS,
)
async def edit(
    principal: CurrentUser, images: Images, request: Request, response: Response
) -> dict[str, Any]:
    body, files = await _read_body(request, EditRequest)
    image, mask = await _load(files)
    params = EditParams.model_validate(body.model_dump(include=set(EditParams.model_fields)))
    job = await images.submit(
        principal, "edit", params, image=image, mask=mask, preserve=body.preserve_original
    )
    return await _answer(images, job, body.run_async, request, response)


@router.post(
    "/outpaint",
    summary="Extend the canvas and fill the new area",
    openapi_extra=_openapi_body(OutpaintRequest),
    response_model=None,
    responses=_IMAGE_ERRORS,
)
async def outpaint(
    principal: CurrentUser, images: Images, request: Request, response: Response
) -> dict[str, Any]:
    body, files = await _read_body(request, OutpaintRequest)
    image, _ = await _load({"image": files["image"]})
    params = OutpaintParams.model_validate(body.model_dump(include=set(OutpaintParams.model_fields)))
    job = await images.submit(principal, "outpaint", params, image=image)
    return await _answer(images, job, body.run_async, request, response)


@router.post(
    "/upscale",
    summary="Upscale x2 or x4 (tiled SD x4 upscaler)",
    openapi_extra=_openapi_body(UpscaleRequest),
    response_model=None,
    responses=_IMAGE_ERRORS,
)
async def upscale(
    principal: CurrentUser, images: Images, request: Request, response: Response
) -> dict[str, Any]:
    body, files = await _read_body(request, UpscaleRequest)
    image, _ = await _load({"image": files["image"]})
    params = UpscaleParams.model_validate(body.model_dump(include=set(UpscaleParams.model_fields)))
    job = await images.submit(principal, "upscale", params, image=image)
    return await _answer(images, job, body.run_async, request, response)


@router.get(
    "/jobs",
    summary="My image jobs, newest first, with queue positions",
    response_model=None,
    responses=_ok(JobList),
)
async def list_jobs(principal: CurrentUser, images: Images) -> dict[str, Any]:
    return await images.jobs(principal)


@router.get(
    "/jobs/{job_id}",
    summary="One job: status, position, images when done",
    response_model=None,
    responses={**_ok(JobView), **error_responses(NO_SUCH_JOB, VALIDATION_FAILED)},
)
async def get_job(job_id: str, principal: CurrentUser, images: Images) -> dict[str, Any]:
    return await images.job(principal, job_id)


@router.delete(
    "/jobs/{job_id}",
    summary="Cancel a job (queued: removed; running: stopped within one step)",
    response_model=None,
    responses={**_ok(JobView, "The job as it is now"), **error_responses(NO_SUCH_JOB, VALIDATION_FAILED)},
)
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


gallery = APIRouter(prefix="/api/v1/images", tags=["gallery"], responses=_SIGNED_IN)
_IMAGE_LOOKUP = error_responses(NO_SUCH_IMAGE, VALIDATION_FAILED)


@gallery.get(
    "",
    summary="My images, newest first (cursor pagination)",
    response_model=None,
    responses=_ok(ImagePage)
    | error_responses(
        ErrorDoc.of(InvalidInput, "cursor: unknown cursor", {"field": "cursor"}), VALIDATION_FAILED
    ),
)
async def list_images(
    principal: CurrentUser,
    images: Images,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 30,
) -> dict[str, Any]:
    return await images.gallery(principal, cursor=cursor, limit=limit)


@gallery.get(
    "/{image_id}",
    summary="One image's metadata and URLs",
    response_model=None,
    responses={**_ok(ImageView), **_IMAGE_LOOKUP},
)
async def get_image(image_id: str, principal: CurrentUser, images: Images) -> dict[str, Any]:
    return await images.image(principal, image_id)


@gallery.get(
    "/{image_id}/file",
    summary="The image file (PNG or WebP; original or 256×256 thumbnail)",
    response_class=Response,
    responses={
        200: {
            "description": "The image: PNG (original) or JPEG (thumbnail) unless `format` asks for another.",
            "content": {
                f"image/{kind}": {"schema": {"type": "string", "format": "binary"}}
                for kind in ("png", "webp", "jpeg")
            },
        },
        **_IMAGE_LOOKUP,
    },
)
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


@gallery.delete(
    "/{image_id}", status_code=204, summary="Delete an image and its files", responses=_IMAGE_LOOKUP
)
async def delete_image(image_id: str, principal: CurrentUser, images: Images) -> Response:
    await images.delete_image(principal, image_id)
    return Response(status_code=204)
