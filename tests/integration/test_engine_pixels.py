"""The engine's pixel helpers: sizes, masks, feathered paste-back, outpaint canvas, tile blending,
latent previews. Fast: no model runs."""

from __future__ import annotations

import io
import itertools
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from fimum_ai.errors import InvalidInput
from fimum_ai.images import _imaging as im
from fimum_ai.images._preview import SDXL_FACTORS, latents_to_jpeg
from fimum_ai.images._tiling import BandBlender, TileGrid, ramp_weights, tile_starts
from fimum_ai.images.engine import _steps_for_strength

NATIVE = 1024 * 1024


@pytest.mark.parametrize(
    ("size", "bucket"),
    [((4096, 4096), (1024, 1024)), ((4096, 2048), (1408, 704)), ((2048, 1152), (1344, 768))],
)
def test_native_bucket_keeps_aspect_within_native_area(
    size: tuple[int, int], bucket: tuple[int, int]
) -> None:
    w, h = im.native_bucket(*size, NATIVE)
    assert (w, h) == bucket
    assert w % 64 == 0 and h % 64 == 0 and w * h <= NATIVE
    assert abs(w / h - size[0] / size[1]) < 0.1


@pytest.mark.parametrize("size", [(600, 520), (4000, 3000), (100, 100), (512, 2048), (1024, 1024)])
def test_working_size_is_a_multiple_of_64_between_the_bounds(size: tuple[int, int]) -> None:
    w, h = im.working_size(*size, NATIVE)
    assert w % 64 == 0 and h % 64 == 0
    assert 0.9 * 512 * 512 <= w * h <= NATIVE
    assert abs(math.log((w / h) / (size[0] / size[1]))) < 0.15
    if 512 * 512 <= size[0] * size[1] <= NATIVE and size[0] % 64 == 0 and size[1] % 64 == 0:
        assert (w, h) == size


def test_binarize_mask_accepts_l_rgb_rgba() -> None:
    grey = Image.fromarray(np.array([[0, 127, 128, 255]], dtype=np.uint8), "L")
    assert np.asarray(im.binarize_mask(grey, (4, 1))).tolist() == [[0, 0, 255, 255]]
    rgb = Image.new("RGB", (4, 4), (255, 255, 255))
    assert np.asarray(im.binarize_mask(rgb, (4, 4))).min() == 255
    # A transparent layer with white strokes: transparent keeps, painted edits.
    layer = Image.new("RGBA", (4, 4), (255, 255, 255, 0))
    layer.putpixel((1, 1), (255, 255, 255, 255))
    binary = np.asarray(im.binarize_mask(layer, (4, 4)))
    assert binary[1, 1] == 255 and binary.sum() == 255
    # Another size with the same aspect ratio is resized; another aspect ratio is refused.
    assert im.binarize_mask(Image.new("L", (8, 8), 255), (4, 4)).size == (4, 4)
    with pytest.raises(InvalidInput, match="mask"):
        im.binarize_mask(Image.new("L", (8, 4), 255), (4, 4))


def test_feather_stays_inside_the_mask() -> None:
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 47, 47), fill=255)
    alpha = np.asarray(im.feather_inside(mask, 4)).astype(int)
    inside = np.asarray(mask) == 255
    assert (alpha[~inside] == 0).all()
    assert alpha[32, 32] == 255  # deep inside: fully generated
    assert alpha[32, 16] == round(255 / 4)  # at the edge: a quarter
    assert list(alpha[32, 16:21]) == sorted(alpha[32, 16:21])  # rising inward

    original = Image.new("RGB", (64, 64), (10, 20, 30))
    generated = Image.new("RGB", (64, 64), (200, 100, 50))
    out = np.asarray(im.paste_back(original, generated, mask, 4))
    assert (out[~inside] == (10, 20, 30)).all()
    assert (out[32, 32] == (200, 100, 50)).all()


def test_outpaint_canvas_keeps_the_original_and_masks_the_new_area() -> None:
    source = Image.new("RGB", (32, 24), (0, 0, 255))
    ImageDraw.Draw(source).rectangle((0, 0, 15, 23), fill=(255, 0, 0))
    init, mask = im.outpaint_canvas(source, 8, 0, 0, 16)
    assert init.size == mask.size == (40, 40)
    assert np.array_equal(np.asarray(init)[0:24, 8:40], np.asarray(source))
    m = np.asarray(mask)
    assert (m[0:24, 8:40] == 0).all() and (m[:, :8] == 255).all() and (m[24:] == 255).all()
    # The new area continues the edge colours (red on the left) instead of being blank.
    assert np.asarray(init)[12, 0, 0] > 150


def test_tile_starts_cover_with_overlap() -> None:
    assert tile_starts(64, 64, 16) == [0]
    for length in (65, 100, 128, 500, 1024):
        starts = tile_starts(length, 64, 16)
        assert starts[0] == 0 and starts[-1] == length - 64
        assert all(b - a <= 48 for a, b in itertools.pairwise(starts))  # overlap >= 16


def test_blender_cross_fades_and_reproduces_constant_tiles() -> None:
    # Every tile the same colour: the weighted average is exactly that colour everywhere,
    # across band flushes of several tile rows.
    grid = TileGrid.build(100, 90, 32, 8)
    scale = 2
    blender = BandBlender(grid.width * scale, grid.height * scale, grid.tile_h * scale)
    for yi, y in enumerate(grid.ys):
        for xi, x in enumerate(grid.xs):
            weight = np.outer(
                ramp_weights(grid.ys, yi, grid.tile_h, scale), ramp_weights(grid.xs, xi, grid.tile_w, scale)
            )
            tile = np.full((*weight.shape, 3), 0.5, dtype=np.float32)
            blender.add(y * scale, x * scale, tile, weight)
    out = blender.finish()
    assert out.shape == (180, 200, 3) and (out == 128).all()

    # Two tiles of different colours: a linear ramp over the overlap, no step.
    blender = BandBlender(96, 32, 32)
    starts = tile_starts(96, 64, 32)
    for index, value in enumerate((0.0, 1.0)):
        weight = np.outer(np.ones(32, dtype=np.float32), ramp_weights(starts, index, 64, 1)[:64])
        blender.add(0, starts[index], np.full((32, 64, 3), value, dtype=np.float32), weight)
    row = blender.finish()[0, :, 0].astype(int)
    assert (row[:32] == 0).all() and (row[64:] == 255).all()
    assert np.all(np.diff(row) >= 0) and np.abs(np.diff(row)).max() <= 255 / 32 + 1


def test_steps_for_strength_always_runs_a_step() -> None:
    assert _steps_for_strength(20, 0.5) == 20
    assert _steps_for_strength(20, 0.01) == 100
    for strength in (0.001, 0.003, 0.049, 0.05, 0.3, 1.0):
        n = _steps_for_strength(20, strength)
        assert int(n * strength) >= 1 and n >= 20


def test_latent_preview_is_a_small_jpeg() -> None:
    latents = torch.randn(2, 4, 128, 96, generator=torch.Generator().manual_seed(0))
    data = latents_to_jpeg(latents, SDXL_FACTORS)
    assert data is not None
    preview = Image.open(io.BytesIO(data))
    assert preview.format == "JPEG" and preview.size == (96, 128)
    assert latents_to_jpeg(torch.randn(1, 16, 8, 8), SDXL_FACTORS) is None
