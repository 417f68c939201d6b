"""Result cache (in-process and Redis) and perceptual-hash duplicates, over HTTP with the tiny model."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fimum_ai.app import create_app
from fimum_ai.settings import load_settings
from tests.conftest import auth_headers

SEEDED = {"prompt": "a lighthouse", "width": 512, "height": 512, "steps": 20, "seed": 11}


@pytest.fixture
def client(backend: str, with_tiny_models: Path, image_workers: list[object]) -> Iterator[TestClient]:
    with TestClient(create_app(load_settings())) as test_client:
        yield test_client


def hits(client: TestClient) -> float:
    found = re.search(
        r'^fimum_image_cache_requests_total\{result="hit"\} (\S+)$', client.get("/metrics").text, re.M
    )
    return float(found.group(1)) if found else 0.0


def originals(client: TestClient) -> list[Path]:
    data_dir = client.app.state.settings.data_dir  # type: ignore[attr-defined]
    return sorted((data_dir / "images").rglob("*_original.png"))


def test_a_repeated_seeded_request_is_served_from_the_cache(client: TestClient) -> None:
    ada = auth_headers(client, "ada@example.com", tier="pro")
    first = client.post("/api/v1/image/generate", json=SEEDED, headers=ada).json()
    before = hits(client)
    started = time.perf_counter()
    again = client.post("/api/v1/image/generate", json=SEEDED, headers=ada)
    elapsed = time.perf_counter() - started
    assert again.status_code == 200 and hits(client) == before + 1
    assert [i["id"] for i in again.json()["images"]] == [i["id"] for i in first["images"]]
    assert again.json()["images"][0]["image_base64"] == first["images"][0]["image_base64"]
    assert elapsed < 1.0, elapsed  # no model run (the run itself takes seconds here)
    usage = client.get("/api/v1/me", headers=ada).json()["usage"]["images"]
    assert usage["used"] == 1  # the hit did not count

    # Another user asking the same gets the same pixels as images of their own.
    bob = auth_headers(client, "bob@example.com", tier="pro")
    theirs = client.post("/api/v1/image/generate", json=SEEDED, headers=bob).json()
    assert theirs["images"][0]["id"] != first["images"][0]["id"]
    assert theirs["images"][0]["image_base64"] == first["images"][0]["image_base64"]
    assert len(originals(client)) == 2
    assert client.delete(f"/api/v1/images/{first['images'][0]['id']}", headers=ada).status_code == 204
    assert client.get(theirs["images"][0]["url"], headers=bob).status_code == 200

    # Changing anything that changes the pixels misses.
    other = client.post("/api/v1/image/generate", json={**SEEDED, "seed": 12}, headers=ada).json()
    assert other["images"][0]["id"] not in {first["images"][0]["id"], theirs["images"][0]["id"]}


def test_requests_without_a_seed_are_never_cached(client: TestClient) -> None:
    headers = auth_headers(client, tier="pro")
    unseeded = {k: v for k, v in SEEDED.items() if k != "seed"}
    one = client.post("/api/v1/image/generate", json=unseeded, headers=headers).json()
    two = client.post("/api/v1/image/generate", json=unseeded, headers=headers).json()
    assert one["images"][0]["seed"] != two["images"][0]["seed"]
    assert client.get("/api/v1/me", headers=headers).json()["usage"]["images"]["used"] == 2


def test_the_same_picture_again_is_linked_not_stored_twice(
    backend: str, with_tiny_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import CeleryWorker

    monkeypatch.setenv("FIMUM_IMAGE_GENERATION__CACHING__ENABLED", "false")
    workers = [CeleryWorker("dup")] if backend == "distributed" else []
    with TestClient(create_app(load_settings())) as client:
        headers = auth_headers(client, tier="pro")
        first = client.post("/api/v1/image/generate", json=SEEDED, headers=headers).json()["images"][0]
        second = client.post("/api/v1/image/generate", json=SEEDED, headers=headers).json()["images"][0]
        assert second["id"] != first["id"]
        assert second["metadata"]["duplicate_of"] == first["id"]
        assert len(originals(client)) == 1
        assert client.delete(f"/api/v1/images/{first['id']}", headers=headers).status_code == 204
        assert client.get(second["url"], headers=headers).status_code == 200
        listed = client.get(f"/api/v1/images/{second['id']}", headers=headers).json()
        assert listed["duplicate_of"] == first["id"]
    for worker in workers:
        worker.stop()
