"""Large images: tiled x4 upscaling (memory and seams), hires text-to-image, a 4096x4096 request.

The tiny x4 upscaler costs about a second per 64x64 tile on two CPU cores, so these tests keep
tile counts small; they are marked slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fimum_ai.images._tiling import tile_starts
from fimum_ai.images.engine import ImageEngine
from fimum_ai.images.model_store import ModelSet
from fimum_ai.images.progress import ProgressEvent
from fimum_ai.images.requests import GenerateParams
from tests.integration.test_engine import engine_config, tiny_set  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

MB = 1024 * 1024

# Runs in a fresh interpreter so that earlier tests' freed-but-cached heap does not hide growth.
# VAE tiling is off: the upscaler VAE's own tiling would otherwise bound the untiled run too.
MEMORY_SCRIPT = textwrap.dedent(
    """
    import ctypes, gc, json, sys
    from pathlib import Path
    from PIL import Image, ImageDraw, ImageFilter
    from fimum_ai.images.engine import ImageEngine
    from fimum_ai.images.model_store import ModelSet
    from fimum_ai.images.requests import UpscaleParams
    from fimum_ai.settings import ImageGenerationConfig

    models_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    models = ModelSet(models_dir / "base", None, models_dir / "upscaler", demo=True)

    def engine(tile, overlap):
        hardware = {"device": "cpu", "upscale_tile": tile, "upscale_tile_overlap": overlap,
                    "enable_vae_tiling": False}
        config = ImageGenerationConfig.model_validate(
            {"generation": {"precision": "fp32"}, "hardware": hardware})
        e = ImageEngine(models, config)
        e.load()
        return e

    def rss():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

    def upscale(e, image):
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        before = rss()
        result = e.upscale(image, UpscaleParams(seed=1, guidance_scale=1.0))
        return result.images[0], result.metadata[0].peak_rss_bytes - before

    image = Image.new("RGB", (128, 128), (40, 90, 160))
    draw = ImageDraw.Draw(image)
    draw.ellipse((20, 30, 90, 110), fill=(230, 190, 60))
    draw.rectangle((70, 10, 120, 60), fill=(200, 40, 40))
    image = image.filter(ImageFilter.GaussianBlur(2))

    tiled, untiled, hard = engine(64, 16), engine(128, 16), engine(64, 0)
    _, one_tile = upscale(tiled, image.crop((0, 0, 64, 64)))
    _, whole = upscale(untiled, image)
    blended, in_tiles = upscale(tiled, image)
    seams, _ = upscale(hard, image)
    blended.save(out / "blended.png")
    seams.save(out / "hard.png")
    print(json.dumps({"one_tile": one_tile, "untiled": whole, "tiled": in_tiles}))
    """
)


def neighbour_correlation(image: Image.Image, axis: int) -> np.ndarray[Any, Any]:
    """Correlation between each column (axis=1) or row (axis=0) and the next one.

    Inside one tile, neighbouring lines of the upscaler's output are strongly correlated; at a hard
    seam two unrelated tiles meet and the correlation collapses.
    """
    a = np.asarray(image, dtype=np.float64)
    if axis == 0:
        a = a.transpose(1, 0, 2)
    lines = a.transpose(1, 0, 2).reshape(a.shape[1], -1)
    left, right = lines[:-1] - lines[:-1].mean(1, keepdims=True), lines[1:] - lines[1:].mean(1, keepdims=True)
    return np.asarray((left * right).sum(1) / np.sqrt((left**2).sum(1) * (right**2).sum(1)))


def tile_edges(length: int, tile: int, overlap: int, scale: int) -> list[int]:
    """Output positions where a tile starts or ends inside the image."""
    starts = tile_starts(length, tile, overlap)
    edges = {s for s in starts if s > 0} | {s + tile for s in starts if s + tile < length}
    return sorted(e * scale for e in edges)


def test_tiled_upscale_has_bounded_memory_and_no_seams(tiny_models_dir: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(tiny_models_dir), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    peaks = json.loads(done.stdout.strip().splitlines()[-1])

    # 128x128 -> 512x512 in nine 64-pixel tiles costs what one tile costs, plus the blend band
    # (one tile row of float32 pixels and weights) and the uint8 result ...
    band = 64 * 4 * 512 * (3 + 1) * 4
    result = 512 * 512 * 3
    assert peaks["tiled"] <= peaks["one_tile"] + band + result + 32 * MB, peaks
    # ... while the same input untiled needs clearly more: it grows with the input, tiles do not.
    assert peaks["untiled"] > peaks["tiled"] + 32 * MB, peaks

    blended = Image.open(tmp_path / "blended.png")
    hard = Image.open(tmp_path / "hard.png")
    assert blended.size == hard.size == (512, 512)
    for axis in (0, 1):
        smooth = neighbour_correlation(blended, axis)
        edges = tile_edges(128, 64, 16, 4)
        assert min(smooth[e - 1] for e in edges) > 0.75 * np.median(smooth), (axis, edges)
        # The metric does see seams: tiles without overlap meet visibly at 256.
        seamed = neighbour_correlation(hard, axis)
        assert seamed[255] < 0.5 * np.median(seamed), axis


def test_hires_request_is_generated_at_the_bucket_and_x4_upscaled(tiny_set: ModelSet) -> None:  # noqa: F811
    config = engine_config({"native_pixels": 256 * 256}, upscale_tile=128, upscale_tile_overlap=32)
    engine = ImageEngine(tiny_set, config)
    events: list[ProgressEvent] = []
    try:
        result = engine.text_to_image(
            GenerateParams(
                prompt="a mountain panorama",
                width=1024,
                height=512,
                steps=20,
                guidance_scale=1.0,
                seed=4,
                refine=False,
            ),
            progress=events.append,
        )
    finally:
        engine.unload()
    assert result.images[0].size == (1024, 512)
    parameters = result.metadata[0].parameters
    assert parameters["generated_size"] == [320, 128]  # same aspect ratio, sides multiples of 64
    assert parameters["hires_method"] == "x4-upscaler+lanczos"
    assert parameters["upscaler_version"].startswith("sha256:")
    # Three 128-pixel tiles over the 320x128 bucket, 20 steps each, after 20 base steps.
    assert [e.step for e in events] == list(range(1, 20 + 3 * 20 + 1))
    assert {e.total for e in events} == {80}
    assert events[20].stage == "hires upscale tile 1/3" and events[-1].stage == "hires upscale tile 3/3"


def test_4096_request_completes_with_bounded_memory(tiny_set: ModelSet) -> None:  # noqa: F811
    # No upscaler installed: the 1024x1024 bucket is resized with Lanczos (the x4 path over a
    # 1024x1024 bucket is 25+ tiles, minutes per tile on two cores with the tiny model).
    models = ModelSet(base=tiny_set.base, refiner=None, upscaler=None, demo=True)
    engine = ImageEngine(models, engine_config())
    try:
        result = engine.text_to_image(
            GenerateParams(
                prompt="a city at night", width=4096, height=4096, steps=20, guidance_scale=1.0, seed=1
            )
        )
    finally:
        engine.unload()
    image, meta = result.images[0], result.metadata[0]
    assert image.size == (4096, 4096)
    assert meta.parameters["generated_size"] == [1024, 1024]
    assert meta.parameters["hires_method"] == "lanczos"
    assert meta.peak_rss_bytes is not None and meta.peak_rss_bytes < 3 * 1024 * MB
    assert np.asarray(image).std() > 1.0
