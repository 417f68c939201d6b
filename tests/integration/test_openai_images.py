"""OpenAI's own Python SDK as the client of `POST /v1/images/generations`, with a personal API key."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import openai
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fimum_ai.app import create_app
from fimum_ai.settings import load_settings
from tests.conftest import auth_headers, remember_secret


def sdk(client: TestClient) -> openai.OpenAI:
    headers = auth_headers(client, tier="pro")
    key = client.post("/api/v1/me/api-keys", json={"name": "openai sdk"}, headers=headers).json()["key"]
    remember_secret(key)
    # TestClient is an httpx.Client: the SDK's requests go through the real ASGI app.
    return openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=client, max_retries=0)


def test_the_openai_sdk_generates_images(with_tiny_models: Path) -> None:
    with TestClient(create_app(load_settings())) as client:
        result = sdk(client).images.generate(
            prompt="a lighthouse",
            n=2,
            size="512x512",
            response_format="b64_json",
            extra_body={"steps": 20, "seed": 5, "negative_prompt": "fog"},
        )
        assert result.data is not None and len(result.data) == 2
        first = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json or "")))
        assert first.size == (512, 512) and first.format == "PNG"
        as_url = sdk(client).images.generate(
            prompt="a lighthouse", size="512x512", response_format="url", extra_body={"steps": 20}
        )
        assert as_url.data is not None and (as_url.data[0].url or "").startswith(
            "http://testserver/api/v1/images/"
        )


def test_openai_errors_reach_the_sdk(with_tiny_models: Path) -> None:
    with TestClient(create_app(load_settings())) as client:
        api = sdk(client)
        with pytest.raises(openai.BadRequestError, match="size"):
            api.images.generate(prompt="a lighthouse", size="500x500")
        with pytest.raises(openai.BadRequestError, match=r"nsfw_content_blocked|blocked"):
            api.images.generate(prompt="a naked man", size="512x512")
        bad_key = openai.OpenAI(
            base_url="http://testserver/v1", api_key="fim_wrong", http_client=client, max_retries=0
        )
        with pytest.raises(openai.AuthenticationError):
            bad_key.images.generate(prompt="a lighthouse", size="512x512")
