"""The image service over HTTP and WebSocket with the tiny model: jobs, live events, cancel, quotas,
scheduling, restarts and the gallery. The local queue runs in both deployments' storage
(SQLite + in-process, PostgreSQL + Redis)."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fimum_ai.app import create_app
from fimum_ai.settings import load_settings
from tests.conftest import auth_headers

SMALL = {"width": 512, "height": 512, "steps": 20}


@pytest.fixture
def client(backend: str, with_tiny_models: Path, image_workers: list[Any]) -> Iterator[TestClient]:
    with TestClient(create_app(load_settings())) as test_client:
        yield test_client


def events_of(client: TestClient, job: dict[str, Any], headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every WebSocket event of a job until its end, authenticating with the first message."""
    token = headers["Authorization"].removeprefix("Bearer ")
    received = []
    with client.websocket_connect(job["websocket_url"]) as ws:
        ws.send_json({"type": "auth", "token": token})
        while True:
            event = ws.receive_json()
            received.append(event)
            if event["type"] in ("completed", "failed", "cancelled", "error"):
                return received


def wait_status(client: TestClient, job_id: str, headers: dict[str, str], *wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        job: dict[str, Any] = client.get(f"/api/v1/image/jobs/{job_id}", headers=headers).json()
        if job["status"] in wanted:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.25)  # well under the free tier's 100 requests a minute


def submit(client: TestClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"prompt": "a lighthouse at dusk", **SMALL, **fields, "async": True}
    response = client.post("/api/v1/image/generate", json=body, headers=headers)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def test_generate_waits_stores_and_serves_the_gallery(client: TestClient) -> None:
    ada = auth_headers(client, "ada@example.com")
    response = client.post(
        "/api/v1/image/generate", json={"prompt": "a lighthouse", **SMALL, "seed": 42}, headers=ada
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed" and len(body["images"]) == 1
    item = body["images"][0]
    assert item["seed"] == 42 and body["metadata"]["seed"] == 42
    assert body["metadata"]["parameters"]["prompt"] == "a lighthouse"
    png = Image.open(io.BytesIO(base64.b64decode(item["image_base64"])))
    assert png.format == "PNG" and png.size == (512, 512)
    assert Image.open(io.BytesIO(base64.b64decode(item["thumbnail_base64"]))).size == (256, 256)

    listed = client.get("/api/v1/images", headers=ada).json()
    assert [i["id"] for i in listed["items"]] == [item["id"]] and listed["next_cursor"] is None
    original = client.get(item["url"], headers=ada)
    assert original.headers["content-type"] == "image/png" and original.content.startswith(b"\x89PNG")
    webp = client.get(f"{item['url']}?format=webp", headers=ada)
    assert (
        webp.headers["content-type"] == "image/webp" and Image.open(io.BytesIO(webp.content)).format == "WEBP"
    )
    thumb = client.get(item["thumbnail_url"], headers=ada)
    assert thumb.headers["content-type"] == "image/jpeg"

    # The files are where the docs say, with one metadata file per image.
    data_dir = client.app.state.settings.data_dir  # type: ignore[attr-defined]
    files = sorted(p.name for p in (data_dir / "images").rglob("*") if p.is_file())
    assert files == sorted(f"{item['id']}_{s}" for s in ("metadata.json", "original.png", "thumbnail.jpg"))

    bob = auth_headers(client, "bob@example.com")
    assert client.get(f"/api/v1/images/{item['id']}", headers=bob).status_code == 404
    assert client.get(item["url"], headers=bob).status_code == 404
    assert client.delete(f"/api/v1/images/{item['id']}", headers=bob).status_code == 404
    assert client.delete(f"/api/v1/images/{item['id']}", headers=ada).status_code == 204
    assert client.get(f"/api/v1/images/{item['id']}", headers=ada).status_code == 404
    assert not any(p.is_file() for p in (data_dir / "images").rglob("*"))


def test_image_routes_need_a_signed_in_user(client: TestClient) -> None:
    for method, path in [
        ("POST", "/api/v1/image/generate"),
        ("GET", "/api/v1/image/jobs"),
        ("GET", "/api/v1/images"),
        ("GET", "/api/v1/image/presets"),
    ]:
        response = client.request(method, path, json={"prompt": "x"})
        assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


def test_websocket_events_of_a_batch_of_eight_in_order(with_tiny_models: Path) -> None:
    with TestClient(create_app(load_settings())) as client:
        headers = auth_headers(client, tier="pro")
        job = submit(client, headers, batch_size=8, seed=1)
        assert job["status"] == "queued" and job["websocket_url"].endswith("/events")
        events = events_of(client, job, headers)
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "completed" and len(events[-1]["images"]) == 8
    assert "started" in kinds
    assert kinds.index("started") < kinds.index("progress")
    progress = [e for e in events if e["type"] == "progress"]
    steps = [(e["step"], e["total"]) for e in progress]
    assert steps == sorted(steps) and steps[-1][0] == steps[-1][1]
    assert progress[-1]["total"] == 8 * 20  # every image's steps, one run after another
    assert all(e["eta_s"] >= 0 for e in progress)
    assert any("preview" in e for e in progress)
    assert kinds[0] in ("queued", "started", "progress")  # a late client starts from the current state


def test_websocket_refuses_strangers(client: TestClient) -> None:
    ada = auth_headers(client, "ada@example.com", tier="pro")
    job = submit(client, ada)
    with client.websocket_connect(job["websocket_url"]) as ws:
        ws.send_json({"type": "auth", "token": "not-a-token"})
        assert ws.receive_json()["code"] == "invalid_token"
    bob = auth_headers(client, "bob@example.com")
    assert events_of(client, job, bob)[-1] == {"type": "error", "code": "not_found", "message": "no such job"}
    wait_status(client, job["id"], ada, "completed")


def test_cancel_a_queued_job_and_a_running_one(client: TestClient) -> None:
    headers = auth_headers(client, tier="pro")
    running = submit(client, headers, batch_size=8)
    wait_status(client, running["id"], headers, "running")
    queued = submit(client, headers)
    assert client.get(f"/api/v1/image/jobs/{queued['id']}", headers=headers).json()["position"] == 1
    cancelled = client.delete(f"/api/v1/image/jobs/{queued['id']}", headers=headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    client.delete(f"/api/v1/image/jobs/{running['id']}", headers=headers)
    assert events_of(client, running, headers)[-1]["type"] == "cancelled"
    assert wait_status(client, running["id"], headers, "cancelled")["image_ids"] == []
    # Both reservations were given back.
    usage = client.get("/api/v1/me", headers=headers).json()["usage"]["images"]
    assert usage["used"] == 0


def test_daily_quota_admits_exactly_what_remains_under_concurrency(client: TestClient) -> None:
    headers = auth_headers(client)  # free: 5 images a day
    statuses: list[int] = []
    jobs: list[str] = []
    lock = threading.Lock()

    def post() -> None:
        body = {"prompt": "a lighthouse", **SMALL, "async": True}
        response = client.post("/api/v1/image/generate", json=body, headers=headers)
        with lock:
            statuses.append(response.status_code)
            if response.status_code == 202:
                jobs.append(response.json()["id"])
            else:
                assert response.json()["error"]["code"] == "quota_exceeded"
                assert int(response.headers["Retry-After"]) >= 1

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [202] * 5 + [429] * 15
    for job_id in jobs:
        client.delete(f"/api/v1/image/jobs/{job_id}", headers=headers)
    over = client.post(
        "/api/v1/image/generate", json={"prompt": "x", **SMALL, "batch_size": 6}, headers=headers
    )
    assert over.status_code == 429 and over.json()["error"]["details"]["limit"] == 5


def test_a_failed_job_gives_the_quota_back(backend: str, image_workers: list[Any]) -> None:
    # No model installed: the job fails on the server's side, so the image is not counted.
    with TestClient(create_app(load_settings())) as client:
        headers = auth_headers(client)
        response = client.post("/api/v1/image/generate", json={"prompt": "x", **SMALL}, headers=headers)
        assert response.status_code == 503 and response.json()["error"]["code"] == "model_not_installed"
        assert client.get("/api/v1/me", headers=headers).json()["usage"]["images"]["used"] == 0
        jobs = client.get("/api/v1/image/jobs", headers=headers).json()["items"]
        assert jobs[0]["status"] == "failed" and jobs[0]["error"]["code"] == "model_not_installed"


@pytest.mark.parametrize("max_batch", [1, 2])
def test_higher_tiers_first_then_round_robin_between_users(
    with_tiny_models: Path, max_batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGE_MAX_BATCH_SIZE", str(max_batch))
    with TestClient(create_app(load_settings())) as client:
        busy = auth_headers(client, "busy@example.com", tier="pro")
        other = auth_headers(client, "other@example.com", tier="pro")
        boss = auth_headers(client, "boss@example.com", tier="enterprise")
        blocker = submit(client, busy, steps=60)  # occupies the worker while the rest queue up
        wait_status(client, blocker["id"], busy, "running")
        later = [submit(client, busy), submit(client, busy), submit(client, other), submit(client, boss)]
        headers = [busy, busy, other, boss]
        finished = [wait_status(client, j["id"], h, "completed") for j, h in zip(later, headers, strict=True)]
        batches = [
            client.get(f"/api/v1/images/{j['image_ids'][0]}", headers=h)
            .json()["metadata"]["parameters"]
            .get("dynamic_batch")
            for j, h in zip(finished, headers, strict=True)
        ]
    order = [j["id"] for j in sorted(finished, key=lambda j: j["started_at"])]
    # Enterprise first; then the user who has not been served yet; then the busy user's jobs. With
    # dynamic batching (2 images a batch) the batches are [boss, other] and [busy, busy].
    assert order == [later[3]["id"], later[2]["id"], later[0]["id"], later[1]["id"]]
    if max_batch == 1:
        assert batches == [None] * 4
    else:
        assert batches == [{"jobs": 2, "images": 2}] * 4
        started = [datetime.fromisoformat(j["started_at"]) for j in finished]
        assert abs(started[3] - started[2]).total_seconds() < 1  # claimed together
        assert abs(started[1] - started[0]).total_seconds() < 1


def test_queued_and_interrupted_jobs_survive_a_restart(with_tiny_models: Path) -> None:
    with TestClient(create_app(load_settings())) as client:
        headers = auth_headers(client, tier="pro")
        first = submit(client, headers, batch_size=8)
        second = submit(client, headers)
        wait_status(client, first["id"], headers, "running")
    # The server stopped mid-job: the running job went back to the queue, the queued one stayed.
    with TestClient(create_app(load_settings())) as client:
        headers = auth_headers(client, tier="pro")
        done = [wait_status(client, j["id"], headers, "completed", "failed") for j in (first, second)]
    assert [j["status"] for j in done] == ["completed", "completed"]
    assert len(done[0]["image_ids"]) == 8 and len(done[1]["image_ids"]) == 1
