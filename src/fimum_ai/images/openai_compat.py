"""OpenAI-compatible `POST /v1/images/generations`, so clients written for OpenAI's Images API
(Open WebUI, LibreChat, the `openai` SDK) use Fimum unchanged: point them at `http://HOST/v1` with a
personal API key (`fim_...`) as the OpenAI key."""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from fimum_ai.accounts.auth import CurrentUser
from fimum_ai.errors import NOT_SIGNED_IN, RATE_LIMITED, ErrorDoc, InvalidInput, error_responses
from fimum_ai.images.requests import MAX_SEED, GenerateParams
from fimum_ai.images.routes import GENERATION_REFUSED, Images, job_error
from fimum_ai.settings import SchedulerName

router = APIRouter(
    prefix="/v1", tags=["openai-compatible"], responses=error_responses(*NOT_SIGNED_IN, RATE_LIMITED)
)
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")


class ImagesGenerationRequest(BaseModel):
    """OpenAI's fields, plus SDXL's. OpenAI fields that do not apply here (`model`, `quality`,
    `style`, `user`, ...) are accepted and ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(
        extra="ignore",
        strict=True,  # as the schema says: `"n": "2"` is refused, not coerced
        json_schema_extra={
            "examples": [
                {
                    "prompt": "a lighthouse at dusk",
                    "n": 1,
                    "size": "1024x1024",
                    "response_format": "b64_json",
                },
                {"prompt": "a red fox", "size": "768x512", "steps": 30, "seed": 42, "response_format": "url"},
            ]
        },
    )

    prompt: str = Field(
        min_length=1, max_length=1000, description="What to draw (1-1000 characters).", examples=["a red fox"]
    )
    n: int = Field(1, ge=1, le=8, description="Images to generate (1-8).", examples=[1])
    size: str = Field(
        "1024x1024",
        description='"WIDTHxHEIGHT", each side 512-4096 in steps of 64 (e.g. 1024x1024, 1152x896).',
        examples=["1024x1024"],
    )
    response_format: Literal["b64_json", "url"] = Field(
        "b64_json", description="b64_json (default), or url (fetching it needs the same bearer key)."
    )
    negative_prompt: str = Field(
        "", max_length=1000, description="Fimum: what to keep out (0-1000 characters).", examples=["blurry"]
    )
    steps: int | None = Field(
        None, ge=20, le=100, description="Fimum: denoising steps, 20-100.", examples=[30]
    )
    guidance_scale: float | None = Field(
        None, ge=1.0, le=15.0, description="Fimum: CFG scale, 1.0-15.0.", examples=[7.5]
    )
    scheduler: SchedulerName | None = Field(None, description="Fimum: the sampler.")
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED - 8, description=f"Fimum: 0-{MAX_SEED - 8}; default random.", examples=[42]
    )
    style_preset: str | None = Field(
        None, description="Fimum: a style preset (GET /api/v1/image/presets).", examples=["cinematic"]
    )
    refine: bool | None = Field(None, description="Fimum: run the refiner; default when installed.")

    def params(self) -> GenerateParams:
        match = _SIZE.match(self.size)
        if match is None:
            raise InvalidInput('size: use "WIDTHxHEIGHT", e.g. "1024x1024"', details={"field": "size"})
        width, height = int(match.group(1)), int(match.group(2))
        fields = self.model_dump(exclude={"n", "size", "response_format"}, exclude_none=True)
        try:
            return GenerateParams(**fields, width=width, height=height, batch_size=self.n)
        except ValueError as exc:
            raise InvalidInput(f"size: {size_problem(width, height)}", details={"field": "size"}) from exc


class ImageData(BaseModel):
    b64_json: str | None = Field(None, description="The PNG, base64 (response_format b64_json).")
    url: str | None = Field(None, description="Where to fetch it, with the same key (response_format url).")
    revised_prompt: None = None


class ImagesResponse(BaseModel):
    """OpenAI's answer shape."""

    created: int = Field(description="Unix time.", examples=[1735732800])
    data: list[ImageData]


_IMAGES: dict[int | str, dict[str, Any]] = {200: {"model": ImagesResponse, "description": "The images"}}


def size_problem(width: int, height: int) -> str:
    for side in (width, height):
        if not 512 <= side <= 4096 or side % 64:
            return f"{width}x{height} is not possible: each side must be 512-4096 in steps of 64"
    return "invalid parameters"


@router.post(
    "/images/generations",
    summary="OpenAI-compatible image generation",
    response_model=None,
    responses=_IMAGES
    | error_responses(
        ErrorDoc.of(InvalidInput, 'size: use "WIDTHxHEIGHT", e.g. "1024x1024"', {"field": "size"}),
        *GENERATION_REFUSED,
    ),
)
async def generations(
    body: ImagesGenerationRequest, principal: CurrentUser, images: Images, request: Request
) -> dict[str, Any]:
    job = await images.submit_generate(principal, body.params())
    event = await images.wait(job["id"])
    if event.type != "completed":
        raise job_error(event)
    stored = await images.images(list(event.data["images"]), with_data=body.response_format == "b64_json")
    base = str(request.base_url).rstrip("/")
    data = [
        {"b64_json": item["image_base64"], "revised_prompt": None}
        if body.response_format == "b64_json"
        else {"url": base + item["url"], "revised_prompt": None}
        for item in stored
    ]
    return {"created": int(time.time()), "data": data}
