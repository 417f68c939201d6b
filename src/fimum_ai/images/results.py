"""What the engine returns: images plus one metadata record each (FR-IMG-008). No torch here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict

from fimum_ai.images.requests import Mode


class ImageMetadata(BaseModel):
    model_config = ConfigDict(frozen=True)

    mode: Mode
    seed: int
    width: int
    height: int
    parameters: dict[str, Any]  # every parameter as run (after presets/defaults)
    scheduler: str
    generation_time_s: float  # wall time of the whole run that produced this image
    model_name: str  # e.g. "stable-diffusion-xl-base-1.0" or "tiny-sdxl/base"
    model_version: str  # content hash of the model folder (configs + weights)
    refiner_version: str | None = None
    device: str
    precision: str
    peak_vram_bytes: int | None = None  # torch.cuda.max_memory_allocated on CUDA
    peak_rss_bytes: int | None = None  # process peak RSS on CPU
    demo_model: bool = False  # True when the random-weight demo model produced it
    created_at: str  # ISO 8601, UTC


@dataclass(frozen=True, slots=True)
class GenerationResult:
    images: list[Image.Image]
    metadata: list[ImageMetadata]
