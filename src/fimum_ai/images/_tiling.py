"""Tile layout and seam blending for the tiled x4 upscaler (numpy only, no torch).

Tiles overlap; each tile's weight ramps linearly from ~0 to 1 across every overlap it shares with
a neighbour, so two overlapping tiles cross-fade instead of meeting at a hard seam. Outputs are
accumulated (pixels * weight, weight) in a float32 band a single tile row tall; once the next tile
row starts, the rows above it are final and are written to the uint8 result. Memory therefore
grows with the output width, never with the number of tiles or the output height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
ByteArray = npt.NDArray[np.uint8]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length); neighbours overlap >= `overlap`."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    count = math.ceil((length - tile) / stride) + 1
    return [min(i * stride, length - tile) for i in range(count)]


def ramp_weights(starts: list[int], index: int, tile: int, scale: int) -> FloatArray:
    """1-D weights (output pixels) of tile `index`: linear ramps over the overlaps with its neighbours."""
    size = tile * scale
    weights = np.ones(size, dtype=np.float32)
    centres = np.arange(size, dtype=np.float32) + 0.5
    if index > 0:
        before = (starts[index - 1] + tile - starts[index]) * scale
        if before > 0:
            weights = np.minimum(weights, np.clip(centres / before, 0.0, 1.0))
    if index + 1 < len(starts):
        after = (starts[index] + tile - starts[index + 1]) * scale
        if after > 0:
            weights = np.minimum(weights, np.clip((size - centres) / after, 0.0, 1.0))
    return weights


@dataclass(frozen=True, slots=True)
class TileGrid:
    """Where the tiles of an input of `width` x `height` (already padded to >= one tile) go."""

    width: int
    height: int
    tile_w: int
    tile_h: int
    xs: list[int]
    ys: list[int]

    @classmethod
    def build(cls, width: int, height: int, tile: int, overlap: int) -> TileGrid:
        tile_w, tile_h = min(tile, width), min(tile, height)
        return cls(
            width,
            height,
            tile_w,
            tile_h,
            tile_starts(width, tile_w, overlap),
            tile_starts(height, tile_h, overlap),
        )

    @property
    def count(self) -> int:
        return len(self.xs) * len(self.ys)


class BandBlender:
    """Accumulate weighted tiles row by row into a uint8 image of `height` x `width` (output pixels)."""

    def __init__(self, width: int, height: int, band_height: int) -> None:
        self.out: ByteArray = np.zeros((height, width, 3), dtype=np.uint8)
        self._acc: FloatArray = np.zeros((band_height, width, 3), dtype=np.float32)
        self._wsum: FloatArray = np.zeros((band_height, width), dtype=np.float32)
        self._top = 0

    @property
    def band_bytes(self) -> int:
        return int(self._acc.nbytes + self._wsum.nbytes)

    def add(self, y: int, x: int, pixels: FloatArray, weight: FloatArray) -> None:
        """Add a tile (h x w x 3 floats in [0, 1]) with its h x w weights at output (y, x)."""
        if y < self._top:
            raise ValueError("tiles must arrive in row order")
        if y > self._top:
            self._advance(y)
        h, w = weight.shape
        rows = slice(y - self._top, y - self._top + h)
        self._acc[rows, x : x + w] += pixels * weight[..., None]
        self._wsum[rows, x : x + w] += weight

    def finish(self) -> ByteArray:
        self._flush(min(self._acc.shape[0], self.out.shape[0] - self._top))
        return self.out

    def _advance(self, new_top: int) -> None:
        done = min(new_top - self._top, self._acc.shape[0])
        self._flush(done)
        # Keep the rows the next tile row overlaps; zero the rest.
        self._acc = np.roll(self._acc, -done, axis=0)
        self._wsum = np.roll(self._wsum, -done, axis=0)
        self._acc[-done:] = 0.0
        self._wsum[-done:] = 0.0
        self._top = new_top

    def _flush(self, rows: int) -> None:
        if rows <= 0:
            return
        wsum = np.maximum(self._wsum[:rows], 1e-8)[..., None]
        values = np.clip(self._acc[:rows] / wsum, 0.0, 1.0) * 255.0
        self.out[self._top : self._top + rows] = np.rint(values).astype(np.uint8)
