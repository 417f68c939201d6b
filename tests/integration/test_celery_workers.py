"""Distributed mode's workers as real processes: a Celery worker killed mid-job (kill -9), and
`fimum worker --devices cpu,cpu` starting one worker process per device."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fimum_ai.app import create_app
from fimum_ai.settings import load_settings
from tests.conftest import CeleryWorker, auth_headers

FIMUM = str(Path(sys.executable).with_name("fimum"))
SMALL = {"prompt": "a lighthouse", "width": 512, "height": 512, "steps": 20}


@pytest.fixture
def distributed(
    with_tiny_models: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> str:
    from tests.conftest import JWT_TEST_SECRET, POSTGRES_URL, REDIS_URL

    monkeypatch.setenv("FIMUM_MODE", "distributed")
    monkeypatch.setenv("FIMUM_DATABASE_URL", POSTGRES_URL)
    monkeypatch.setenv("FIMUM_DATABASE_SCHEMA", request.getfixturevalue("pg_schema"))
    monkeypatch.setenv("FIMUM_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("FIMUM_REDIS_PREFIX", request.getfixturevalue("redis_prefix"))
    monkeypatch.setenv("FIMUM_JWT_SECRET", JWT_TEST_SECRET)
    monkeypatch.setenv("FIMUM_WORKER_LEASE_S", "3")
    return "distributed"


@pytest.fixture
def client(distributed: str) -> Iterator[TestClient]:
    with TestClient(create_app(load_settings())) as test_client:
        yield test_client


def wait_for(
    client: TestClient, job_id: str, headers: dict[str, str], *wanted: str, timeout: float = 180
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/api/v1/image/jobs/{job_id}", headers=headers).json()
        if job.get("status") in wanted:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.25)


def test_a_job_survives_kill_9_of_its_worker_exactly_once(client: TestClient) -> None:
    headers = auth_headers(client, tier="pro")
    first = CeleryWorker("doomed")
    try:
        body = {**SMALL, "batch_size": 4, "seed": 9, "async": True}
        job = client.post("/api/v1/image/generate", json=body, headers=headers).json()
        wait_for(client, job["id"], headers, "running")
        for pid in [*first.children(), first.proc.pid]:
            os.kill(pid, signal.SIGKILL)  # the whole worker dies mid-job, without any clean-up
        first.proc.wait(10)
    finally:
        first.stop()
    second = CeleryWorker("rescuer")
    try:
        done = wait_for(client, job["id"], headers, "completed", "failed")
    finally:
        second.stop()
    assert done["status"] == "completed" and len(done["image_ids"]) == 4, done.get("error")
    data_dir = client.app.state.settings.data_dir  # type: ignore[attr-defined]
    files = [p for p in (data_dir / "images").rglob("*") if p.is_file()]
    assert len([p for p in files if p.name.endswith("_original.png")]) == 4  # one set, not two
    assert not [p for p in files if p.name.endswith(".tmp")]  # nothing half-written
    assert client.get("/api/v1/images", headers=headers).json()["items"].__len__() == 4


def test_fimum_worker_runs_one_process_per_device(client: TestClient) -> None:
    headers = auth_headers(client, tier="pro")
    proc = subprocess.Popen(
        [FIMUM, "worker", "--devices", "cpu,cpu", "--loglevel", "INFO"],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        jobs = [
            client.post("/api/v1/image/generate", json={**SMALL, "async": True}, headers=headers).json()
            for _ in range(4)
        ]
        done = [wait_for(client, j["id"], headers, "completed") for j in jobs]
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert "worker 0 on cpu" in output and "worker 1 on cpu" in output
    assert all(j["status"] == "completed" for j in done)


def test_fimum_worker_explains_what_it_needs_in_embedded_mode() -> None:
    result = subprocess.run(
        [FIMUM, "worker"], env=dict(os.environ), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "FIMUM_MODE=distributed" in result.stderr and "FIMUM_REDIS_URL" in result.stderr
