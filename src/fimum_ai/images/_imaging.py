"""Pixel helpers for the engine: working sizes, masks, feathered paste-back, outpaint canvases.

PIL and numpy only (no torch), so they are cheap to test on their own.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from fimum_ai.errors import InvalidInput

LANCZOS = Image.Resampling.LANCZOS
MIN_WORK_PIXELS = 512 * 512  # SDXL falls apart well below this; smaller inputs are processed upscaled


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB copy; transparent areas become white (what a user sees in an image viewer)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB") if image.mode != "RGB" else image.copy()


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def _floor_to(value: float, multiple: int) -> int:
    return max(multiple, int(value // multiple) * multiple)


def native_bucket(width: int, height: int, native_pixels: int, multiple: int = 64) -> tuple[int, int]:
    """The largest size with the same aspect ratio, sides multiples of 64 and area <= native_pixels."""
    scale = math.sqrt(native_pixels / (width * height))
    return _floor_to(width * scale, multiple), _floor_to(height * scale, multiple)


def working_size(
    width: int, height: int, native_pixels: int, min_pixels: int = MIN_WORK_PIXELS, multiple: int = 64
) -> tuple[int, int]:
    """Size to run SDXL at for an input of width x height: same aspect ratio, sides multiples of 64,
    area clamped into [min_pixels, native_pixels] (larger inputs are processed downscaled)."""
    area = width * height
    target = min(max(area, min(min_pixels, native_pixels)), native_pixels)
    scale = math.sqrt(target / area)
    w, h = _round_to(width * scale, multiple), _round_to(height * scale, multiple)
    if w * h > native_pixels:
        w, h = native_bucket(width, height, native_pixels, multiple)
    return w, h


def binarize_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """An L mask of `size` with 255 = edit, 0 = keep.

    L/RGB masks: white (>= 50 % grey) edits. RGBA/LA masks: transparent pixels keep, so a
    transparent layer with white brush strokes works as well as an opaque black/white image.
    """
    if mask.mode in ("RGBA", "LA") or (mask.mode == "P" and "transparency" in mask.info):
        rgba = mask.convert("RGBA")
        grey = ImageChops.multiply(rgba.convert("L"), rgba.getchannel("A"))
    else:
        grey = mask.convert("L")
    if grey.size != size:
        mw, mh = grey.size
        if abs(mw / mh - size[0] / size[1]) > 0.01 * size[0] / size[1]:
            raise InvalidInput(
                f"the mask is {mw}x{mh} but the image is {size[0]}x{size[1]}: give a mask with the "
                "image's size (or at least its aspect ratio)",
                details={"field": "mask"},
            )
        grey = grey.resize(size, Image.Resampling.BILINEAR)
    return grey.point([0] * 128 + [255] * 128)


def feather_inside(mask: Image.Image, radius: int) -> Image.Image:
    """Alpha for pasting generated pixels over the original: 0 wherever `mask` is 0, and inside
    the mask rising linearly from 1/radius at its edge to 1 at `radius` pixels in.

    Feathering only inward keeps every unmasked pixel byte-identical while hiding the seam the
    VAE round trip leaves at the mask edge.
    """
    if radius <= 1:
        return mask.copy()
    total = np.zeros((mask.size[1], mask.size[0]), dtype=np.uint16)
    layer = mask
    for _ in range(radius):  # sum of successive 3x3 erosions = chessboard distance, capped
        total += np.asarray(layer, dtype=np.uint16)
        layer = layer.filter(ImageFilter.MinFilter(3))
    alpha = (total + radius // 2) // radius
    return Image.fromarray(alpha.astype(np.uint8), mode="L")


def feather_radius(width: int, height: int) -> int:
    return max(2, min(16, round(min(width, height) / 128)))


def paste_back(original: Image.Image, generated: Image.Image, mask: Image.Image, radius: int) -> Image.Image:
    """`generated` inside the (binary) mask, feathered inward; `original` untouched outside it."""
    return Image.composite(generated, original, feather_inside(mask, radius))


def outpaint_canvas(
    image: Image.Image, left: int, right: int, top: int, bottom: int
) -> tuple[Image.Image, Image.Image]:
    """(init, mask) for outpainting: the original in place, the new area filled with its edge
    pixels stretched outward and blurred (a content-aware colour prior for the inpaint), and a
    mask that is white exactly over the new area."""
    pixels = np.asarray(image)
    padded = np.pad(pixels, ((top, bottom), (left, right), (0, 0)), mode="edge")
    blur = max(4, min(64, max(left, right, top, bottom) // 4))
    init = Image.fromarray(padded).filter(ImageFilter.GaussianBlur(blur))
    init.paste(image, (left, top))
    mask = Image.new("L", init.size, 255)
    mask.paste(0, (left, top, left + image.width, top + image.height))
    return init, mask


def resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image if image.size == size else image.resize(size, LANCZOS)
