"""Edits over HTTP with the tiny model: image-to-image, inpainting, outpainting, upscaling, with
JSON (base64) and multipart bodies; uploads checked at the edge; prompts checked before queueing."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fimum_ai.app import create_app
from fimum_ai.settings import load_settings
from tests.conftest import auth_headers


@pytest.fixture
def client(with_tiny_models: Path) -> Iterator[TestClient]:
    with TestClient(create_app(load_settings())) as test_client:
        yield test_client


def picture(size: tuple[int, int] = (512, 512), fmt: str = "PNG", **save: Any) -> bytes:
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format=fmt, **save)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def decoded(item: dict[str, Any]) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(item["image_base64"])))


def test_image_to_image_with_json_and_inpainting_with_multipart(client: TestClient) -> None:
    headers = auth_headers(client, tier="pro")
    body = {
        "image_base64": b64(picture()),
        "prompt": "a watercolour",
        "strength": 0.5,
        "steps": 20,
        "seed": 3,
    }
    response = client.post("/api/v1/image/edit", json=body, headers=headers)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["metadata"]["mode"] == "image-to-image" and decoded(result["images"][0]).size == (512, 512)

    mask = Image.new("L", (512, 512), 0)
    mask.paste(255, (128, 128, 384, 384))
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    files = {
        "image": ("in.jpg", picture(fmt="JPEG"), "image/jpeg"),
        "mask": ("mask.png", buf.getvalue(), "image/png"),
    }
    form = {"prompt": "a red door", "strength": "0.9", "steps": "20", "seed": "4"}
    response = client.post("/api/v1/image/edit", data=form, files=files, headers=headers)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["metadata"]["mode"] == "inpaint"
    # The inputs waited under data/uploads and are gone once the job ended.
    data_dir = client.app.state.settings.data_dir  # type: ignore[attr-defined]
    assert not [p for p in (data_dir / "uploads").rglob("*") if p.is_file()]


def test_preserve_original_keeps_metadata_without_gps_and_the_input(client: TestClient) -> None:
    headers = auth_headers(client)
    exif = Image.Exif()
    exif[0x010F] = "Fimum Camera Co"  # Make
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPS
    source = picture(fmt="JPEG", exif=exif.tobytes())
    body = {
        "image_base64": b64(source),
        "prompt": "sepia",
        "strength": 0.3,
        "steps": 20,
        "preserve_original": True,
    }
    response = client.post("/api/v1/image/edit", json=body, headers=headers)
    assert response.status_code == 200, response.text
    result = decoded(response.json()["images"][0])
    kept = result.getexif()
    assert kept.get(0x010F) == "Fimum Camera Co" and 0x8825 not in kept
    assert json.loads(result.info["fimum"])["mode"] == "image-to-image"
    data_dir = client.app.state.settings.data_dir  # type: ignore[attr-defined]
    sources = list((data_dir / "images").rglob("*_source.png"))
    assert len(sources) == 1 and Image.open(sources[0]).size == (512, 512)


def test_outpaint_and_upscale(client: TestClient) -> None:
    headers = auth_headers(client, tier="pro")
    body = {"image_base64": b64(picture()), "prompt": "more sky", "top": 64, "right": 64, "steps": 20}
    response = client.post("/api/v1/image/outpaint", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert decoded(response.json()["images"][0]).size == (576, 576)

    small = picture((64, 64))
    files = {"image": ("small.png", small, "image/png")}
    response = client.post("/api/v1/image/upscale", data={"scale": "4"}, files=files, headers=headers)
    assert response.status_code == 200, response.text
    assert decoded(response.json()["images"][0]).size == (256, 256)


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"GIF89a" + b"\x00" * 100, 415, "unsupported_media_type"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", 415, "unsupported_media_type"),
        (picture()[:400], 400, "invalid_image"),
    ],
)
def test_bad_uploads_are_refused_before_queueing(
    client: TestClient, data: bytes, status: int, code: str
) -> None:
    headers = auth_headers(client)
    response = client.post(
        "/api/v1/image/edit", json={"image_base64": b64(data), "prompt": "x"}, headers=headers
    )
    assert response.status_code == status and response.json()["error"]["code"] == code, response.text
    assert client.get("/api/v1/image/jobs", headers=headers).json()["items"] == []
    assert client.get("/api/v1/me", headers=headers).json()["usage"]["images"]["used"] == 0


def test_edit_body_errors(client: TestClient) -> None:
    headers = auth_headers(client)
    missing = client.post("/api/v1/image/edit", json={"prompt": "x"}, headers=headers)
    assert missing.status_code == 400 and missing.json()["error"]["message"].startswith("image:")
    bad_strength = client.post(
        "/api/v1/image/edit",
        json={"prompt": "x", "strength": 2, "image_base64": b64(picture())},
        headers=headers,
    )
    assert bad_strength.status_code == 422 and bad_strength.json()["error"]["message"].startswith("strength")
    wrong_type = client.post(
        "/api/v1/image/edit", content=b"x", headers={**headers, "content-type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    too_big = client.post(
        "/api/v1/image/edit", json={"prompt": "x", "image_base64": "A" * (15 * 1024 * 1024)}, headers=headers
    )
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "payload_too_large"


def test_unsafe_prompts_are_blocked_before_anything_is_queued(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    headers = auth_headers(client)
    prompt = "a n.u.d.e woman on a beach"
    response = client.post(
        "/api/v1/image/generate", json={"prompt": prompt, "width": 512, "height": 512}, headers=headers
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "nsfw_content_blocked" and error["details"]["stage"] == "prompt"
    assert prompt not in response.text
    assert client.get("/api/v1/image/jobs", headers=headers).json()["items"] == []
    assert "n.u.d.e" not in caplog.text
    # The negative prompt is not filtered: people list there what they want to avoid.
    ok = client.post(
        "/api/v1/image/generate",
        json={"prompt": "a beach", "negative_prompt": "nude, nsfw", "width": 512, "height": 512, "steps": 20},
        headers=headers,
    )
    assert ok.status_code == 200, ok.text
