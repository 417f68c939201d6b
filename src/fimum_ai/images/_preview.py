"""Cheap live previews: latents -> RGB by a fixed linear projection, no VAE call.

The 4x3 factors are the "latent to RGB" approximations ComfyUI uses for its Latent2RGB previews
(and A1111 for "Approx cheap"): a least-squares fit from each model family's 4 latent channels to
RGB in [-1, 1]. A 128x128 latent (a 1024x1024 image) costs well under a millisecond.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image

# (4 x 3 factors, RGB bias) applied to latents in the diffusion model's (scaled) space.
SDXL_FACTORS: tuple[list[list[float]], list[float]] = (
    [
        [0.3651, 0.4232, 0.4341],
        [-0.2533, -0.0042, 0.1068],
        [0.1076, 0.1111, -0.0362],
        [-0.3165, -0.2492, -0.2188],
    ],
    [0.1084, -0.0175, -0.0011],
)
X4_UPSCALER_FACTORS: tuple[list[list[float]], list[float]] = (
    [
        [-0.2340, -0.3863, -0.3257],
        [0.0994, 0.0885, -0.0908],
        [-0.2833, -0.2349, -0.3741],
        [0.2523, -0.0055, -0.1651],
    ],
    [0.0, 0.0, 0.0],
)
PREVIEW_MAX_SIDE = 256
PREVIEW_QUALITY = 70


def current_sigma(scheduler: object) -> float | None:
    """Sigma of the sample the scheduler just produced, for schedulers that work in sigma space
    (Euler, LMS, ...: their latents are scaled by sqrt(sigma^2 + 1)); None for the others."""
    if float(getattr(scheduler, "init_noise_sigma", 1.0)) <= 1.0:
        return None
    sigmas = getattr(scheduler, "sigmas", None)
    index = getattr(scheduler, "step_index", None)
    if sigmas is None or index is None or index >= len(sigmas):
        return None
    return float(sigmas[index])


def latents_to_jpeg(
    latents: torch.Tensor,
    factors: tuple[list[list[float]], list[float]],
    sigma: float | None = None,
) -> bytes | None:
    """JPEG of the first image in a (batch, 4, h, w) latent batch; None when it has other channels."""
    matrix, bias = factors
    if latents.ndim != 4 or latents.shape[1] != len(matrix):
        return None
    sample = latents[0].detach().to(device="cpu", dtype=torch.float32)
    if sigma is not None:
        sample = sample / math.sqrt(sigma * sigma + 1.0)
    rgb = torch.einsum("chw,cr->hwr", sample, torch.tensor(matrix)) + torch.tensor(bias)
    pixels = ((rgb.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8).numpy()
    image = Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")
    if max(image.size) > PREVIEW_MAX_SIDE:
        image.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=PREVIEW_QUALITY)
    return buffer.getvalue()
