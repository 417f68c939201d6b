"""/api/v1/image/* — the image endpoints that exist so far (the job queue comes later).

Routes are thin: validate with the shared request models, run the engine off the event loop,
shape the response (FR-IMG-008).
"""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from fimum_ai.images.provider import EngineProvider
from fimum_ai.images.requests import GenerateParams
from fimum_ai.images.storage import png_bytes, thumbnail_jpeg
from fimum_ai.settings import Settings

router = APIRouter(prefix="/api/v1/image", tags=["images"])


def get_provider(request: Request) -> EngineProvider:
    provider: EngineProvider = request.app.state.engine_provider
    return provider


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Provider = Annotated[EngineProvider, Depends(get_provider)]
AppSettings = Annotated[Settings, Depends(get_settings)]


@router.get("/models", summary="Installed image models")
def image_models(provider: Provider) -> dict[str, Any]:
    return provider.status()


@router.get("/presets", summary="Style presets (FR-IMG-004)")
def presets(settings: AppSettings) -> dict[str, Any]:
    items = [
        {"name": name, **preset.model_dump()}
        for name, preset in settings.image_generation.style_presets.items()
    ]
    return {"items": items, "next_cursor": None}


@router.post(
    "/generate",
    summary="Text-to-image (FR-IMG-007)",
    responses={503: {"description": "model_not_installed or gpu_out_of_memory"}},
)
async def generate(params: GenerateParams, provider: Provider) -> dict[str, Any]:
    engine = await run_in_threadpool(provider.get)
    result = await run_in_threadpool(engine.text_to_image, params)
    images = []
    for image, meta in zip(result.images, result.metadata, strict=True):
        images.append(
            {
                "id": str(uuid.uuid4()),
                "seed": meta.seed,
                "image_base64": base64.b64encode(png_bytes(image, meta)).decode(),
                "thumbnail_base64": base64.b64encode(thumbnail_jpeg(image)).decode(),
            }
        )
    return {"images": images, "metadata": result.metadata[0].model_dump(mode="json")}
