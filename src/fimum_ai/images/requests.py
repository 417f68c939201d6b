"""Request parameters for every image mode, validated once here and shared by engine, CLI and API.

Bounds follow the spec (FR-IMG-004): prompt 1-1000 chars, sizes 512-4096 in steps of 64,
steps 20-100, guidance 1.0-15.0, batch 1-8. Unset steps/guidance/scheduler take the style
preset's suggestion, then the configured default (`resolve`). No torch here.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fimum_ai.errors import InvalidInput
from fimum_ai.settings import ImageGenerationConfig, SchedulerName

MAX_SEED = 2**32 - 1  # seeds stay in uint32 so seed + i (batch) fits every generator
MIN_SIZE, MAX_SIZE, SIZE_STEP = 512, 4096, 64
Mode = Literal["text-to-image", "image-to-image", "inpaint", "outpaint", "upscale"]


# A 64×64 PNG (the smallest accepted side) and an all-white mask: the examples in the API docs, so
# "Try it out" on the edit endpoints works as shown.
EXAMPLE_IMAGE_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAUUlEQVR42u3PMQ0AMAgAMJg4hKEJgVPBQdI6aFZPXPbiOAEBAQEBAQEB"
    "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAYF9H+C3Afz7lnT+AAAAAElFTkSuQmCC"
)
EXAMPLE_MASK_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAAAAACPAi4CAAAAK0lEQVR42u3MMREAAAgEoNf+nTWEmwcBqMlNRyAQCAQCgUAgEAgEAsHz"
    "YAFQLQF/OJ8+2wAAAABJRU5ErkJggg=="
)
IMAGE_UPLOAD_GUIDE = (
    "PNG, JPEG or WebP (recognised from the bytes, not from a declared type), at most 10 MB decoded, "
    "each side 64-8192 px and at most 4096×4096 pixels in all. Base64 text: raw (`iVBORw0KGgo...`) or a "
    "data URL (`data:image/png;base64,iVBORw0KGgo...`); line breaks and missing `=` padding are fine. "
    "With multipart/form-data, send the file itself as the `image` part instead."
)


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(
        min_length=1,
        max_length=1000,
        description="What to draw (1-1000 characters).",
        examples=["a lighthouse on a cliff at dusk, oil painting"],
    )
    negative_prompt: str = Field(
        "",
        max_length=1000,
        description="What to keep out of the image (0-1000 characters; not content-filtered).",
        examples=["blurry, low quality, text, watermark"],
    )
    steps: int | None = Field(
        None,
        ge=20,
        le=100,
        description="Denoising steps, 20-100. Default: the style preset's, else 50.",
        examples=[30],
    )
    guidance_scale: float | None = Field(
        None,
        ge=1.0,
        le=15.0,
        description="How closely to follow the prompt (CFG scale), 1.0-15.0. "
        "Default: the preset's, else 7.5.",
        examples=[7.5],
    )
    scheduler: SchedulerName | None = Field(
        None,
        description="Sampler. Default: the style preset's, else DPMSolverMultistep.",
        examples=["DPMSolverMultistep"],
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=MAX_SEED - 8,
        description=f"0-{MAX_SEED - 8}; image i of a batch uses seed + i. Same seed and parameters: "
        "the same image. Default: random (returned in the metadata).",
        examples=[42],
    )
    batch_size: int = Field(1, ge=1, le=8, description="Images to generate, 1-8.", examples=[1])
    style_preset: str | None = Field(
        None,
        description="A configured style preset (GET /api/v1/image/presets): photorealistic, anime, "
        "artistic, technical-diagram, logo, sketch, cinematic...",
        examples=["photorealistic"],
    )


_SIZE = "{} in pixels: 512-4096 in steps of 64 (at most image_generation.generation.max_resolution)."


class GenerateParams(_Common):
    """Text-to-image (FR-IMG-004/007)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "prompt": "a lighthouse on a cliff at dusk, oil painting",
                    "negative_prompt": "blurry, low quality",
                    "width": 1024,
                    "height": 768,
                    "steps": 30,
                    "guidance_scale": 7.5,
                    "seed": 42,
                    "style_preset": "artistic",
                }
            ]
        }
    )

    width: int = Field(
        1024,
        ge=MIN_SIZE,
        le=MAX_SIZE,
        multiple_of=SIZE_STEP,
        description=_SIZE.format("Width"),
        examples=[1024],
    )
    height: int = Field(
        1024,
        ge=MIN_SIZE,
        le=MAX_SIZE,
        multiple_of=SIZE_STEP,
        description=_SIZE.format("Height"),
        examples=[768],
    )
    refine: bool | None = Field(
        None, description="Run the refiner stage. Default: when a refiner is installed.", examples=[True]
    )


class EditParams(_Common):
    """Image-to-image, or inpainting when a mask is given (FR-IMG-005/006)."""

    strength: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="How much to change the original, 0.0 (nothing) to 1.0 (everything).",
        examples=[0.6],
    )


_MARGIN = "Pixels to add on the {} side: 0-2048 in steps of 8."


class OutpaintParams(_Common):
    """Extend the canvas on any side and fill the new area."""

    left: int = Field(0, ge=0, le=2048, multiple_of=8, description=_MARGIN.format("left"), examples=[0])
    right: int = Field(0, ge=0, le=2048, multiple_of=8, description=_MARGIN.format("right"), examples=[256])
    top: int = Field(0, ge=0, le=2048, multiple_of=8, description=_MARGIN.format("top"), examples=[0])
    bottom: int = Field(0, ge=0, le=2048, multiple_of=8, description=_MARGIN.format("bottom"), examples=[128])

    @model_validator(mode="after")
    def _extends_something(self) -> OutpaintParams:
        if not (self.left or self.right or self.top or self.bottom):
            raise ValueError("give at least one of left, right, top, bottom > 0")
        return self


class UpscaleParams(BaseModel):
    """The x4 upscaler (scale 2 runs x4 then downsamples with Lanczos)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(
        "",
        max_length=1000,
        description="Optional description of the image (0-1000 characters); guides the detail added.",
        examples=["a lighthouse on a cliff"],
    )
    negative_prompt: str = Field(
        "", max_length=1000, description="What to keep out (0-1000 characters).", examples=["blurry"]
    )
    scale: Literal[2, 4] = Field(4, description="2 or 4 times the width and height.", examples=[4])
    steps: int = Field(20, ge=20, le=100, description="Denoising steps, 20-100.", examples=[20])
    guidance_scale: float = Field(7.5, ge=1.0, le=15.0, description="CFG scale, 1.0-15.0.", examples=[7.5])
    noise_level: int = Field(
        20,
        ge=0,
        le=350,
        description="Noise added to the input, 0-350: more invents more detail.",
        examples=[20],
    )
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED - 8, description=f"0-{MAX_SEED - 8}; default: random.", examples=[42]
    )


@dataclass(frozen=True, slots=True)
class Resolved:
    """Fully specified parameters after presets and defaults: what the engine actually runs."""

    prompt: str
    negative_prompt: str
    steps: int
    guidance_scale: float
    scheduler: SchedulerName
    seed: int
    batch_size: int
    style_preset: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "scheduler": self.scheduler,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "style_preset": self.style_preset,
        }


def random_seed() -> int:
    return secrets.randbelow(MAX_SEED - 8)


def resolve(params: _Common, config: ImageGenerationConfig) -> Resolved:
    """Apply the style preset, then config defaults; draw a seed when none was given."""
    prompt, negative = params.prompt, params.negative_prompt
    steps, guidance, scheduler = params.steps, params.guidance_scale, params.scheduler
    if params.style_preset is not None:
        preset = config.style_presets.get(params.style_preset)
        if preset is None:
            known = ", ".join(sorted(config.style_presets)) or "none configured"
            raise InvalidInput(
                f"unknown style_preset {params.style_preset!r}; known: {known}",
                details={"field": "style_preset"},
            )
        prompt = preset.prompt.replace("{prompt}", prompt)
        negative = ", ".join(part for part in (negative, preset.negative) if part)
        steps = steps if steps is not None else preset.steps
        guidance = guidance if guidance is not None else preset.guidance_scale
        scheduler = scheduler if scheduler is not None else preset.scheduler
    gen = config.generation
    if isinstance(params, GenerateParams) and max(params.width, params.height) > gen.max_resolution:
        raise InvalidInput(
            f"width and height must be at most {gen.max_resolution} (image_generation.generation"
            ".max_resolution)",
            details={"field": "width" if params.width > gen.max_resolution else "height"},
        )
    return Resolved(
        prompt=prompt,
        negative_prompt=negative,
        steps=steps if steps is not None else gen.default_steps,
        guidance_scale=guidance if guidance is not None else gen.default_guidance_scale,
        scheduler=scheduler if scheduler is not None else gen.default_scheduler,
        seed=params.seed if params.seed is not None else random_seed(),
        batch_size=params.batch_size,
        style_preset=params.style_preset,
    )


CommonParams = _Common  # the public name for every diffusion mode's shared fields
