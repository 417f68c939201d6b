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


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1, max_length=1000, description="What to draw (1-1000 characters).")
    negative_prompt: str = Field("", max_length=1000, description="What to keep out of the image.")
    steps: int | None = Field(None, ge=20, le=100, description="Denoising steps (20-100, default 50).")
    guidance_scale: float | None = Field(None, ge=1.0, le=15.0, description="CFG scale (1.0-15.0).")
    scheduler: SchedulerName | None = Field(None, description="Sampler; default DPMSolverMultistep.")
    seed: int | None = Field(None, ge=0, le=MAX_SEED - 8, description="Seed; image i uses seed + i.")
    batch_size: int = Field(1, ge=1, le=8, description="Images to generate (1-8).")
    style_preset: str | None = Field(None, description="One of the configured style presets.")


class GenerateParams(_Common):
    """Text-to-image (FR-IMG-004/007)."""

    width: int = Field(1024, ge=MIN_SIZE, le=MAX_SIZE, multiple_of=SIZE_STEP)
    height: int = Field(1024, ge=MIN_SIZE, le=MAX_SIZE, multiple_of=SIZE_STEP)
    refine: bool | None = Field(None, description="Run the refiner stage; default: when installed.")


class EditParams(_Common):
    """Image-to-image, or inpainting when a mask is given (FR-IMG-005/006)."""

    strength: float = Field(0.8, ge=0.0, le=1.0, description="How much to change the original.")


class OutpaintParams(_Common):
    """Extend the canvas on any side and fill the new area."""

    left: int = Field(0, ge=0, le=2048, multiple_of=8)
    right: int = Field(0, ge=0, le=2048, multiple_of=8)
    top: int = Field(0, ge=0, le=2048, multiple_of=8)
    bottom: int = Field(0, ge=0, le=2048, multiple_of=8)

    @model_validator(mode="after")
    def _extends_something(self) -> OutpaintParams:
        if not (self.left or self.right or self.top or self.bottom):
            raise ValueError("give at least one of left, right, top, bottom > 0")
        return self


class UpscaleParams(BaseModel):
    """The x4 upscaler (scale 2 runs x4 then downsamples with Lanczos)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field("", max_length=1000)
    negative_prompt: str = Field("", max_length=1000)
    scale: Literal[2, 4] = 4
    steps: int = Field(20, ge=20, le=100)
    guidance_scale: float = Field(7.5, ge=1.0, le=15.0)
    noise_level: int = Field(20, ge=0, le=350)
    seed: int | None = Field(None, ge=0, le=MAX_SEED - 8)


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
