"""Upload validation (FR-IMG-015) against an attack corpus generated here: no binary fixtures."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import time
import zipfile
import zlib
from collections.abc import AsyncIterator

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile, PngImagePlugin
from starlette.datastructures import UploadFile

from fimum_ai.errors import FimumError, InvalidInput
from fimum_ai.images import uploads
from fimum_ai.images.uploads import (
    MAX_EDIT_BODY_BYTES,
    MAX_PIXELS,
    MAX_UPLOAD_BYTES,
    InvalidImage,
    UnsupportedMediaType,
    UploadTooLarge,
    decode_base64_image,
    load_image,
    load_mask,
    read_limited,
    read_upload,
    sanitized_png,
    sniff,
)

MARKER = b"FIMUM-EVIL-MARKER"


# --- Corpus builders ---------------------------------------------------------------------------


def photo(width: int = 96, height: int = 64, mode: str = "RGB") -> Image.Image:
    """A deterministic, non-trivial picture (gradients + noise)."""
    rng = np.random.default_rng(width * 10_000 + height)
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    base = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2)
    pixels = (base + rng.normal(0, 8, (height, width, 3))).clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB").convert(mode)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int, height: int) -> bytes:
    """A real, valid 1-bit PNG of width x height black pixels: tiny on disk, huge in memory."""
    row = bytes(1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def reason(error: pytest.ExceptionInfo[InvalidImage]) -> str:
    return str(error.value.details["reason"])


# --- Type by magic bytes -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt, kind", [("PNG", "png"), ("JPEG", "jpeg"), ("WEBP", "webp")])
def test_png_jpeg_webp_pass(fmt: str, kind: str) -> None:
    data = encode(photo(), fmt)
    assert sniff(data) == kind
    upload = load_image(data)
    assert upload.format == kind
    assert (upload.width, upload.height) == (96, 64)
    assert upload.image.mode == "RGB" and upload.image.size == (96, 64)
    assert upload.image.info == {}


REFUSED = {
    "gif": (encode(photo(), "GIF"), "image/gif"),
    "bmp": (encode(photo(), "BMP"), "image/bmp"),
    "tiff": (encode(photo(), "TIFF"), "image/tiff"),
    "svg": (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>x</script></svg>', None),
    "html": (b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>", "text/html"),
    "pdf": (b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF", "application/pdf"),
    "zip": (b"PK\x03\x04" + bytes(40), "application/zip"),
    "empty": (b"", "empty"),
    "random": (np.random.default_rng(7).bytes(4096), "application/octet-stream"),
    "riff-wave": (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(32), "application/octet-stream"),
    "short-jpeg-magic": (b"\xff\xd8", "application/octet-stream"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_everything_else_is_415(name: str) -> None:
    data, detected = REFUSED[name]
    with pytest.raises(UnsupportedMediaType) as error:
        load_image(data, field="image")
    assert error.value.status == 415 and error.value.code == "unsupported_media_type"
    assert error.value.details["allowed"] == ["image/png", "image/jpeg", "image/webp"]
    assert error.value.message.startswith("image:")
    if detected:
        assert error.value.details["detected"] == detected
    else:
        assert error.value.details["detected"] == "image/svg+xml"


def test_type_comes_from_magic_bytes_not_the_name() -> None:
    """A PNG uploaded as photo.jpg with image/jpeg is a PNG, and fine."""
    upload_file = UploadFile(
        io.BytesIO(encode(photo(), "PNG")), filename="photo.jpg", headers=None, size=None
    )
    data = asyncio.run(read_upload(upload_file))
    assert load_image(data).format == "png"


# --- Dimensions: decompression bombs, sides ------------------------------------------------------


def test_decompression_bomb_rejected_from_the_header(monkeypatch: pytest.MonkeyPatch) -> None:
    """20000x20000 (400 MP, past even Pillow's own hard limit) and 5000x5000 (25 MP: under Pillow's
    limit, over ours) are refused without a pixel decoded."""
    loads: list[object] = []
    original_load = ImageFile.ImageFile.load

    def spy_load(self: ImageFile.ImageFile) -> object:
        loads.append(self)
        return original_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy_load)
    for side in (20_000, 5_000):
        bomb = png_bomb(side, side)
        assert len(bomb) < 100_000
        started = time.perf_counter()
        with pytest.raises(InvalidImage) as error:
            load_image(bomb)
        assert time.perf_counter() - started < 1.0
        assert error.value.status == 400 and error.value.code == "invalid_image"
        assert reason(error) == "decompression_bomb"
        with pytest.raises(InvalidImage) as error:
            load_mask(bomb, (64, 64))
        assert reason(error) == "decompression_bomb"
    assert loads == []


def test_limit_is_the_platform_maximum() -> None:
    pillow_default = 1024 * 1024 * 1024 // 4 // 3
    assert MAX_PIXELS == 4096 * 4096 < pillow_default
    assert pillow_default == Image.MAX_IMAGE_PIXELS  # the global is left alone (not thread-safe)


def test_a_side_over_8192_is_refused() -> None:
    with pytest.raises(InvalidImage) as error:
        load_image(encode(Image.new("L", (9000, 64)), "PNG"))
    assert reason(error) == "too_large" and error.value.details["max_side"] == 8192


def test_tiny_images_are_refused() -> None:
    with pytest.raises(InvalidImage) as error:
        load_image(encode(photo(32, 200), "PNG"))
    assert reason(error) == "too_small"


# --- Truncated and corrupt -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_truncated_files_are_400(fmt: str) -> None:
    data = encode(photo(), fmt)
    with pytest.raises(InvalidImage) as error:
        load_image(data[: len(data) // 2])
    assert error.value.status == 400 and reason(error) == "truncated"


def test_truncated_images_are_never_loaded_partially() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_a_flipped_global_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        load_image(encode(photo(), "PNG"))


def test_corrupt_idat_is_400() -> None:
    data = bytearray(encode(photo(), "PNG"))
    start = data.index(b"IDAT") + 4
    for i in range(start + 20, start + 60):
        data[i] ^= 0xFF
    with pytest.raises(InvalidImage) as error:
        load_image(bytes(data))
    assert reason(error) == "corrupt"


def test_a_header_only_stub_is_400() -> None:
    with pytest.raises(InvalidImage) as error:
        load_image(encode(photo(), "PNG")[:30])
    assert reason(error) in {"corrupt", "truncated"}


# --- Nothing but pixels survives -----------------------------------------------------------------


def test_polyglot_png_with_an_appended_zip() -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("payload.js", MARKER + b" alert(document.cookie)")
    data = encode(photo(), "PNG") + archive.getvalue()
    assert zipfile.is_zipfile(io.BytesIO(data))  # really both a PNG and a ZIP
    upload = load_image(data)
    clean = sanitized_png(upload)
    assert MARKER not in clean and b"PK\x03\x04" not in clean
    assert not zipfile.is_zipfile(io.BytesIO(clean))
    assert Image.open(io.BytesIO(clean)).size == (96, 64)


def test_jpeg_with_script_in_comment_and_exif() -> None:
    exif = Image.Exif()
    exif[0x010E] = "<script>" + MARKER.decode() + "</script>"  # ImageDescription
    data = encode(photo(), "JPEG", comment=b"<script>" + MARKER + b"</script>", exif=exif)
    assert data.count(MARKER) == 2
    upload = load_image(data)
    clean = sanitized_png(upload)
    assert MARKER not in clean
    reopened = Image.open(io.BytesIO(clean))
    assert set(reopened.info) <= {"dpi"} and not reopened.getexif()


def test_png_with_html_in_a_text_chunk() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<html><script>" + MARKER.decode() + "</script></html>")
    info.add_text("Big", MARKER.decode() * 10, zip=True)
    upload = load_image(encode(photo(), "PNG", pnginfo=info))
    assert MARKER not in sanitized_png(upload)
    assert upload.image.info == {}


def test_exif_orientation_6_swaps_width_and_height() -> None:
    stored = Image.new("RGB", (200, 100), (255, 0, 0))
    stored.paste((0, 0, 255), (100, 0, 200, 100))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90° clockwise
    upload = load_image(encode(stored, "JPEG", exif=exif, quality=95))
    assert (upload.width, upload.height) == (100, 200)
    assert upload.image.size == (100, 200)
    red, _, blue = upload.image.getpixel((50, 20))  # type: ignore[misc]
    assert red > 200 and blue < 60  # the stored left side is now on top
    assert upload.metadata.exif is None  # orientation was the only tag, and it is applied


def test_alpha_is_flattened_onto_white() -> None:
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 128), (0, 0, 32, 64))
    image = load_image(encode(rgba, "PNG")).image
    assert image.mode == "RGB"
    assert image.getpixel((48, 10)) == (255, 255, 255)
    r, g, b = image.getpixel((10, 10))  # type: ignore[misc]
    assert r == 255 and 120 <= g <= 135 and g == b


def test_palette_transparency_and_16_bit_grey() -> None:
    palette = Image.new("P", (64, 64), 0)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.paste(1, (0, 0, 32, 64))
    image = load_image(encode(palette, "PNG", transparency=0)).image
    assert image.getpixel((10, 10)) == (10, 200, 30) and image.getpixel((50, 10)) == (255, 255, 255)
    grey16 = Image.fromarray(np.full((64, 64), 32768, dtype=np.uint16))
    assert load_image(encode(grey16, "PNG")).image.getpixel((5, 5)) == (128, 128, 128)


def test_pixel_hash_ignores_container_and_metadata() -> None:
    picture = photo()
    info = PngImagePlugin.PngInfo()
    info.add_text("k", "v")
    as_png = load_image(encode(picture, "PNG"))
    assert as_png.sha256 == load_image(encode(picture, "PNG", pnginfo=info, compress_level=9)).sha256
    assert as_png.sha256 == load_image(encode(picture, "WEBP", lossless=True)).sha256
    assert as_png.sha256 != load_image(encode(photo(96, 65), "PNG")).sha256
    assert len(as_png.sha256) == 64


# --- preserve_original metadata ------------------------------------------------------------------


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_exif_kept_without_gps_and_icc_kept() -> None:
    exif = Image.Exif()
    exif[0x010F] = "FimumCam"  # Make
    exif[0x0110] = "Model X"  # Model
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0x9003] = "2030:01:01 12:00:00"  # DateTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (52.0, 31.0, 12.0)
    gps[0x1B] = b"ASCII\x00\x00\x00GPSSECRET"  # GPSProcessingMethod
    icc = srgb_icc()
    data = encode(photo(), "JPEG", exif=exif, icc_profile=icc)
    assert b"GPSSECRET" in data

    metadata = load_image(data).metadata
    assert metadata.exif is not None and b"GPSSECRET" not in metadata.exif
    kept = Image.Exif()
    kept.load(metadata.exif)
    assert kept[0x010F] == "FimumCam" and kept[0x0110] == "Model X"
    assert 0x8825 not in kept and kept.get_ifd(0x8825) == {}
    assert 0x0112 not in kept  # already applied to the pixels
    assert kept.get_ifd(0x8769)[0x9003] == "2030:01:01 12:00:00"
    assert metadata.icc_profile == icc

    # What the edit result does with preserve_original: the metadata rides along on the output.
    result = encode(
        photo(64, 96), "PNG", pnginfo=metadata.png_info({"parameters": "a cat"}), **metadata.save_kwargs()
    )
    reopened = Image.open(io.BytesIO(result))
    assert reopened.getexif()[0x010F] == "FimumCam" and reopened.getexif().get_ifd(0x8825) == {}
    assert reopened.info["icc_profile"] == icc
    assert reopened.text == {"parameters": "a cat"}  # type: ignore[attr-defined]
    assert b"GPSSECRET" not in result
    as_jpeg = Image.open(io.BytesIO(encode(photo(), "JPEG", **metadata.save_kwargs())))
    assert as_jpeg.getexif()[0x0110] == "Model X" and as_jpeg.info["icc_profile"] == icc


def test_png_text_kept_bounded_and_without_xmp() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a lighthouse, Steps: 30")
    info.add_itxt("Title", "Leuchtturm ☀")
    info.add_text("XML:com.adobe.xmp", "<x:xmpmeta><exif:GPSLatitude>52,31N</exif:GPSLatitude></x:xmpmeta>")
    info.add_text("huge", "x" * (uploads.MAX_TEXT_VALUE_CHARS + 1))
    metadata = load_image(encode(photo(), "PNG", pnginfo=info)).metadata
    assert metadata.text == {"parameters": "a lighthouse, Steps: 30", "Title": "Leuchtturm ☀"}
    assert metadata.exif is None and metadata.icc_profile is None
    png_info = metadata.png_info({"parameters": "new", "extra": "1"})
    reopened = Image.open(io.BytesIO(encode(photo(), "PNG", pnginfo=png_info)))
    assert reopened.text == {"parameters": "new", "Title": "Leuchtturm ☀", "extra": "1"}  # type: ignore[attr-defined]


def test_metadata_of_a_plain_image_is_empty() -> None:
    metadata = load_image(encode(photo(), "WEBP")).metadata
    assert metadata.save_kwargs() == {} and metadata.text == {}


# --- base64 ------------------------------------------------------------------------------------


def test_base64_forms() -> None:
    data = encode(photo(), "PNG")
    raw = base64.b64encode(data).decode()
    assert decode_base64_image(raw, "image") == data
    assert decode_base64_image("data:image/png;base64," + raw, "image") == data
    assert decode_base64_image("DATA:image/jpeg;charset=x;base64," + raw, "image") == data  # type by magic
    wrapped = "\r\n".join(raw[i : i + 76] for i in range(0, len(raw), 76))
    assert decode_base64_image("  " + wrapped + "\n", "image") == data
    assert decode_base64_image(raw.rstrip("="), "image") == data  # missing padding tolerated


@pytest.mark.parametrize(
    "text", ["abc$def", "data:image/png,iVBORw0KGgo=", "ab=c", "aGVsbG8=aGVsbG8=", "a", "", "ñandú=="]
)
def test_bad_base64_is_400(text: str) -> None:
    with pytest.raises(InvalidImage) as error:
        decode_base64_image(text, "mask")
    assert reason(error) == "bad_base64" and error.value.status == 400
    assert error.value.message.startswith("mask:")


def test_oversized_base64_is_413_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*_: object, **__: object) -> bytes:
        raise AssertionError("decoded an oversized field")

    monkeypatch.setattr(base64, "b64decode", no_decoding)
    limit = 3000
    for text in ("A" * (uploads.encoded_length(limit) + 4), "A" * 10 * limit):
        with pytest.raises(UploadTooLarge) as error:
            decode_base64_image(text, "image", limit=limit)
        assert error.value.status == 413 and error.value.details["limit_bytes"] == limit
    monkeypatch.undo()
    exact = base64.b64encode(bytes(limit)).decode()
    assert len(decode_base64_image(exact, "image", limit=limit)) == limit


def test_the_edit_body_limit_admits_two_base64_uploads() -> None:
    two_base64_uploads = 2 * uploads.encoded_length(MAX_UPLOAD_BYTES)
    assert two_base64_uploads + 1024 * 1024 <= MAX_EDIT_BODY_BYTES < 30 * 1024 * 1024


# --- Reading with a limit ------------------------------------------------------------------------


def test_read_limited_stops_just_past_the_limit() -> None:
    pulled = 0
    chunk = bytes(1024 * 1024)

    async def hundred_megabytes() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(100):
            pulled += 1
            yield chunk

    with pytest.raises(UploadTooLarge) as error:
        asyncio.run(read_limited(hundred_megabytes(), 10 * 1024 * 1024, "image"))
    assert pulled == 11  # 10 MiB exactly is fine; the 11th chunk crosses the limit
    assert error.value.details == {"field": "image", "limit_bytes": 10 * 1024 * 1024}

    async def small() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b"cd"

    assert asyncio.run(read_limited(small(), 4, "image")) == b"abcd"


def test_read_upload() -> None:
    data = encode(photo(), "PNG")
    assert asyncio.run(read_upload(UploadFile(io.BytesIO(data)))) == data
    with pytest.raises(UploadTooLarge):
        asyncio.run(read_upload(UploadFile(io.BytesIO(data)), limit=len(data) - 1, field="mask"))
    declared = UploadFile(io.BytesIO(b""), size=MAX_UPLOAD_BYTES + 1)  # refused on its declared size
    with pytest.raises(UploadTooLarge) as error:
        asyncio.run(read_upload(declared, field="mask"))
    assert error.value.message.startswith("mask:")


def test_errors_fit_the_hierarchy() -> None:
    assert issubclass(InvalidImage, InvalidInput) and issubclass(UploadTooLarge, FimumError)
    body = UploadTooLarge("x", details={"limit_bytes": 1}).to_dict()
    assert body == {"error": {"code": "payload_too_large", "message": "x", "details": {"limit_bytes": 1}}}


# --- Masks -------------------------------------------------------------------------------------


def test_mask_is_binarised() -> None:
    gradient = Image.linear_gradient("L").resize((96, 64))
    mask = load_mask(encode(gradient, "PNG"), (96, 64))
    assert mask.mode == "L" and mask.size == (96, 64) and mask.info == {}
    values = np.asarray(mask)
    assert set(np.unique(values)) == {0, 255}
    source = np.asarray(gradient)
    assert np.array_equal(values == 255, source > 127)


def test_jpeg_mask_noise_is_binarised() -> None:
    mask = Image.new("L", (96, 64), 0)
    mask.paste(255, (20, 10, 60, 50))
    loaded = np.asarray(load_mask(encode(mask, "JPEG", quality=60), (96, 64)))
    assert set(np.unique(loaded)) == {0, 255}
    assert loaded[30, 40] == 255 and loaded[5, 5] == 0


def test_alpha_mask_uses_transparency() -> None:
    layer = Image.new("RGBA", (96, 64), (0, 0, 0, 0))
    layer.paste((0, 0, 0, 255), (0, 0, 48, 64))  # black strokes on a transparent layer: repaint
    values = np.asarray(load_mask(encode(layer, "PNG"), (96, 64)))
    assert values[10, 10] == 255 and values[10, 80] == 0
    opaque = Image.new("RGBA", (96, 64), (0, 0, 0, 255))
    opaque.paste((255, 255, 255, 255), (48, 0, 96, 64))  # opaque RGBA: read by luminance
    values = np.asarray(load_mask(encode(opaque, "PNG"), (96, 64)))
    assert values[10, 10] == 0 and values[10, 80] == 255


def test_mask_of_the_same_aspect_is_resized() -> None:
    small = Image.new("L", (48, 32), 0)
    small.paste(255, (24, 0, 48, 32))
    mask = load_mask(encode(small, "PNG"), (96, 64))
    assert mask.size == (96, 64) and set(np.unique(np.asarray(mask))) == {0, 255}
    assert mask.getpixel((10, 10)) == 0 and mask.getpixel((90, 10)) == 255


def test_mask_size_mismatch_is_400() -> None:
    other_aspect = encode(Image.new("L", (96, 96), 255), "PNG")
    with pytest.raises(InvalidImage) as error:
        load_mask(other_aspect, (96, 64))
    assert reason(error) == "mask_size_mismatch"
    assert error.value.details["mask_size"] == [96, 96] and error.value.details["image_size"] == [96, 64]
    same_aspect = encode(Image.new("L", (48, 32), 255), "PNG")
    with pytest.raises(InvalidImage) as error:
        load_mask(same_aspect, (96, 64), resize=False)
    assert reason(error) == "mask_size_mismatch"


def test_mask_guards_are_the_images() -> None:
    with pytest.raises(UnsupportedMediaType) as media:
        load_mask(encode(photo(), "GIF"), (96, 64))
    assert media.value.details["field"] == "mask"
    data = encode(Image.new("L", (96, 64)), "PNG")
    with pytest.raises(InvalidImage) as error:
        load_mask(data[: len(data) // 2], (96, 64))
    assert reason(error) == "truncated" and error.value.details["field"] == "mask"
