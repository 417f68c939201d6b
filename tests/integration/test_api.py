"""The API as clients see it: a real uvicorn process for start-up, the ASGI app for the routes."""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fimum_ai.app import create_app
from fimum_ai.settings import load_settings
from tests.conftest import auth_headers

FIMUM = str(Path(sys.executable).with_name("fimum"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(load_settings()), raise_server_exceptions=False) as c:
        yield c


def test_healthz_without_models(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["mode"] == "embedded"
    assert body["image_model"]["installed"] is False


def test_image_request_without_model_is_a_clear_503(client: TestClient) -> None:
    headers = auth_headers(client)
    response = client.post("/api/v1/image/generate", json={"prompt": "a lighthouse"}, headers=headers)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "model_not_installed"
    assert "fimum models download" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 1001}, "prompt"),
        ({"prompt": "a", "width": 500}, "width"),
        ({"prompt": "a", "width": 4160}, "width"),
        ({"prompt": "a", "steps": 19}, "steps"),
        ({"prompt": "a", "guidance_scale": 15.5}, "guidance_scale"),
        ({"prompt": "a", "scheduler": "Heun"}, "scheduler"),
        ({"prompt": "a", "batch_size": 9}, "batch_size"),
        ({"prompt": "a", "colour": "red"}, "colour"),
    ],
)
def test_invalid_generate_bodies_get_422_naming_the_field(client: TestClient, body: dict, field: str) -> None:
    response = client.post("/api/v1/image/generate", json=body, headers=auth_headers(client))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith(field)
    assert "Traceback" not in response.text


def test_unknown_route_is_json_404(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_presets_are_listed_from_config(client: TestClient) -> None:
    items = client.get("/api/v1/image/presets", headers=auth_headers(client)).json()["items"]
    names = {p["name"] for p in items}
    expected = {"photorealistic", "anime", "artistic", "technical-diagram", "logo", "sketch", "cinematic"}
    assert names == expected


def test_generate_with_the_demo_model(with_tiny_models: Path) -> None:
    with TestClient(create_app(load_settings())) as client:
        assert client.get("/healthz").json()["image_model"]["demo"] is True
        response = client.post(
            "/api/v1/image/generate",
            json={"prompt": "a lighthouse", "width": 512, "height": 512, "steps": 20, "seed": 7},
            headers=auth_headers(client),
        )
    assert response.status_code == 200, response.text
    body = response.json()
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][0]["image_base64"])))
    thumb = Image.open(io.BytesIO(base64.b64decode(body["images"][0]["thumbnail_base64"])))
    assert image.size == (512, 512)
    assert image.format == "PNG"
    assert thumb.size == (256, 256)
    assert body["images"][0]["seed"] == 7
    meta = body["metadata"]
    assert meta["seed"] == 7
    assert meta["demo_model"] is True
    assert meta["model_version"].startswith("sha256:")
    assert meta["generation_time_s"] > 0


def test_fimum_serve_starts_a_real_server_with_docs() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [FIMUM, "serve", "--port", str(port)],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = proc.stdout.read() if proc.stdout else ""
                    raise AssertionError(f"server did not start: {log}") from None
                time.sleep(0.2)
        assert health.json()["status"] == "ok"
        assert httpx.get(f"{base}/docs").status_code == 200
        paths = httpx.get(f"{base}/openapi.json").json()["paths"]
        assert "/api/v1/image/generate" in paths
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    # logs are JSON lines, and the missing model was announced
    log_lines = [line for line in output.splitlines() if line.startswith("{")]
    assert any("model_not_installed" in line for line in log_lines)


def test_serve_with_bad_config_exits_2_naming_the_key() -> None:
    env = os.environ | {"IMAGE_PRECISION": "fp8"}
    proc = subprocess.run([FIMUM, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "image_generation.generation.precision" in proc.stderr
    assert "IMAGE_PRECISION" in proc.stderr
    assert "Traceback" not in proc.stderr
