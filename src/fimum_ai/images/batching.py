"""Dynamic batching (FR-IMG-003): which queued text-to-image jobs may share one pipeline call.

Jobs are compatible when everything that shapes the denoising loop is equal: size, steps,
scheduler, guidance scale, whether the refiner runs, and whether a negative prompt is given (SDXL
feeds zeros for a missing one, which cannot be mixed with encoded text in one call). Prompts and
seeds may differ: every image of a batch has its own prompt and its own random generator, so a
batched job gets the images it would have got alone (up to floating-point rounding).

Hi-res requests (above the native pixel count) run their per-image x4 upscale and are never
batched. No torch here: the API process computes keys too.
"""

from __future__ import annotations

from dataclasses import dataclass

from fimum_ai.errors import InvalidInput
from fimum_ai.images.progress import CancelToken, ProgressCallback
from fimum_ai.images.requests import GenerateParams, resolve
from fimum_ai.settings import ImageGenerationConfig

BatchKey = tuple[int, int, int, float, str, bool, bool]


def batch_key(params: GenerateParams, config: ImageGenerationConfig) -> BatchKey | None:
    """Equal keys = may run in one batch; None = runs alone."""
    if params.width * params.height > config.generation.native_pixels:
        return None
    try:
        resolved = resolve(params, config)
    except InvalidInput:
        return None
    return (
        params.width,
        params.height,
        resolved.steps,
        resolved.guidance_scale,
        resolved.scheduler,
        params.refine is not False,
        bool(resolved.negative_prompt),
    )


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One job of a batch: its parameters, its own progress callback and its own cancel token."""

    params: GenerateParams
    progress: ProgressCallback | None = None
    cancel: CancelToken | None = None


__all__ = ["BatchItem", "BatchKey", "batch_key"]
