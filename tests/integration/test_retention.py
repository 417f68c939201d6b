"""Retention (spec 5.1 filesystem_ttl, section 8.2, FR-GDPR-004): old images, jobs and their prompts go,
young ones stay; shared duplicate files stay while needed; dry runs, `fimum cleanup`, the schedules
of both modes, one clean-up at a time, and cache hits on cleaned images. SQLite + in-process and
PostgreSQL + Redis (+ a real Celery worker), with the tiny model. Rows are aged in the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from fimum_ai.app import create_app
from fimum_ai.db import Database, ImageJob, StoredImage, User, upgrade
from fimum_ai.images.retention import CleanupReport, _exclusive, parse_age, run_cleanup
from fimum_ai.images.storage import ImageStore
from fimum_ai.settings import ConfigError, load_settings
from tests.conftest import CeleryWorker, auth_headers, remember_secret

FIMUM = str(Path(sys.executable).with_name("fimum"))
SMALL = {"width": 512, "height": 512, "steps": 20}
# A prompt of our own, registered as a secret: the suite fails if any log record carries it.
PROMPT = f"a lighthouse, retention probe {uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def no_scheduled_cleanup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run clean-ups themselves; the schedule is switched on only where it is the subject."""
    monkeypatch.setenv("FIMUM_CLEANUP_INTERVAL_S", "0")
    remember_secret(PROMPT)


@pytest.fixture
def client(backend: str, with_tiny_models: Path, image_workers: list[Any]) -> Iterator[TestClient]:
    with TestClient(create_app(load_settings())) as test_client:
        yield test_client


def generate(client: TestClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/image/generate", json={"prompt": PROMPT, **SMALL, **fields}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def database(client: TestClient) -> Database:
    db: Database = client.app.state.database  # type: ignore[attr-defined]
    return db


def store(client: TestClient) -> ImageStore:
    image_store: ImageStore = client.app.state.images.store  # type: ignore[attr-defined]
    return image_store


def cleanup(client: TestClient, **options: Any) -> CleanupReport:
    return run_cleanup(database(client), store(client), **options)


def age(
    client: TestClient, image_ids: tuple[str, ...] | list[str] = (), job_ids: tuple[str, ...] | list[str] = ()
) -> None:
    """Make rows look 8 days old (past the default 7-day TTL)."""
    then = datetime.now(UTC) - timedelta(days=8)
    with database(client).session() as session, session.begin():
        if image_ids:
            session.execute(update(StoredImage).where(StoredImage.id.in_(image_ids)).values(created_at=then))
        if job_ids:
            session.execute(
                update(ImageJob).where(ImageJob.id.in_(job_ids)).values(created_at=then, finished_at=then)
            )


def move_to_month(client: TestClient, image_id: str, year: str, month: str) -> None:
    """Put an image's files where an image made in that month lives."""
    with database(client).session() as session, session.begin():
        row = session.get(StoredImage, image_id)
        assert row is not None
        for attr in ("original_path", "thumbnail_path", "metadata_path"):
            old = getattr(row, attr)
            new = f"images/{row.user_id}/{year}/{month}/{Path(old).name}"
            store(client).path(new).parent.mkdir(parents=True, exist_ok=True)
            os.replace(store(client).path(old), store(client).path(new))
            setattr(row, attr, new)


def files_on_disk(client: TestClient) -> set[str]:
    root = store(client).data_dir
    return {
        p.relative_to(root).as_posix()
        for folder in ("images", "uploads")
        for p in (root / folder).rglob("*")
        if p.is_file()
    }


def image_ids(client: TestClient) -> set[str]:
    with database(client).session() as session:
        return set(session.scalars(select(StoredImage.id)))


def job_ids(client: TestClient) -> set[str]:
    with database(client).session() as session:
        return set(session.scalars(select(ImageJob.id)))


def counts(report: CleanupReport) -> dict[str, int]:
    return {k: getattr(report, k) for k in ("images", "jobs", "files", "uploads", "orphans")}


def test_old_images_jobs_and_leftovers_go_young_ones_stay(client: TestClient) -> None:
    ada = auth_headers(client, tier="pro")
    old = generate(client, ada, seed=1)
    young = generate(client, ada, seed=2)
    old_image, young_image = old["images"][0]["id"], young["images"][0]["id"]
    assert young["images"][0]["metadata"].get("duplicate_of") is None
    with database(client).session() as session:
        row = session.get(StoredImage, old_image)
        assert row is not None
        user = row.user_id
    move_to_month(client, old_image, "2020", "01")
    age(client, [old_image], [old["id"]])
    data = store(client).data_dir
    # A crash left a finished job's input behind, and an image file whose row was never written.
    leftover = data / "uploads" / user / f"{young['id']}_image.png"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"\x89PNG leftover")
    orphan = data / "images" / user / "2020" / "02" / f"{uuid.uuid4()}_original.png"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"\x89PNG orphan")

    before = (files_on_disk(client), image_ids(client), job_ids(client))
    dry = cleanup(client, dry_run=True)
    assert counts(dry) == {"images": 1, "jobs": 1, "files": 3, "uploads": 1, "orphans": 0}
    assert dry.bytes_freed > 0 and dry.dry_run
    assert (files_on_disk(client), image_ids(client), job_ids(client)) == before

    report = cleanup(client)
    assert counts(report) == counts(dry) and report.bytes_freed == dry.bytes_freed
    assert report.folders == 1  # 2020/01; 2020 still holds 2020/02
    assert image_ids(client) == {young_image}
    assert job_ids(client) == {young["id"]}
    left = files_on_disk(client)
    assert not any(old_image in f for f in left) and not leftover.exists()
    assert orphan.exists()  # an hour's grace: its row may be on its way
    assert sum(young_image in f for f in left) == 3
    gallery = client.get("/api/v1/images", headers=ada).json()["items"]
    assert [i["id"] for i in gallery] == [young_image]
    assert client.get(young["images"][0]["url"], headers=ada).status_code == 200
    assert client.get(f"/api/v1/image/jobs/{old['id']}", headers=ada).status_code == 404

    # Two hours on, the orphan goes too, with its folders; nothing else has expired.
    later = cleanup(client, now=datetime.now(UTC) + timedelta(hours=2))
    assert counts(later) == {"images": 0, "jobs": 0, "files": 0, "uploads": 0, "orphans": 1}
    assert later.folders == 2 and not (data / "images" / user / "2020").exists()
    assert image_ids(client) == {young_image} and sum(young_image in f for f in files_on_disk(client)) == 3

    again = cleanup(client)  # idempotent
    assert counts(again) == dict.fromkeys(counts(again), 0) and again.folders == 0


def test_a_duplicate_keeps_the_shared_files_while_its_twin_needs_them(
    backend: str, with_tiny_models: Path, image_workers: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIMUM_IMAGE_GENERATION__CACHING__ENABLED", "false")
    with TestClient(create_app(load_settings())) as client:
        ada = auth_headers(client, tier="pro")
        first = generate(client, ada, seed=11)["images"][0]
        second = generate(client, ada, seed=11)["images"][0]
        assert second["metadata"]["duplicate_of"] == first["id"]
        shared = {f for f in files_on_disk(client) if first["id"] in f}
        assert len(shared) == 3 and len(files_on_disk(client)) == 4  # second: its metadata only

        age(client, [first["id"]])
        assert counts(cleanup(client, dry_run=True))["files"] == 1
        report = cleanup(client)
        assert (report.images, report.files) == (1, 1)  # the first's metadata; not the pixels
        assert image_ids(client) == {second["id"]}
        assert client.get(second["url"], headers=ada).status_code == 200
        thumbnail = client.get(second["thumbnail_url"], headers=ada)
        assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"

        age(client, [second["id"]])
        dry = cleanup(client, dry_run=True, batch_size=1)
        assert (dry.images, dry.files) == (1, 3)
        report = cleanup(client, batch_size=1)
        assert (report.images, report.files) == (1, 3)
        assert image_ids(client) == set() and files_on_disk(client) == set()


def test_both_twins_expired_in_separate_batches_free_the_shared_files_once(
    backend: str, with_tiny_models: Path, image_workers: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIMUM_IMAGE_GENERATION__CACHING__ENABLED", "false")
    with TestClient(create_app(load_settings())) as client:
        ada = auth_headers(client, tier="pro")
        first = generate(client, ada, seed=21)["images"][0]
        second = generate(client, ada, seed=21)["images"][0]
        assert second["metadata"]["duplicate_of"] == first["id"]
        age(client, [first["id"], second["id"]])
        size = sum(store(client).path(f).stat().st_size for f in files_on_disk(client))
        dry = cleanup(client, dry_run=True, batch_size=1)
        assert (dry.images, dry.files, dry.bytes_freed) == (2, 4, size)
        report = cleanup(client, batch_size=1)
        assert (report.images, report.files, report.bytes_freed) == (2, 4, size)
        assert files_on_disk(client) == set()


def hits(client: TestClient) -> float:
    import re

    found = re.search(
        r'^fimum_image_cache_requests_total\{result="hit"\} (\S+)$', client.get("/metrics").text, re.M
    )
    return float(found.group(1)) if found else 0.0


def test_a_cache_hit_on_an_expired_or_cleaned_image_is_a_miss(client: TestClient) -> None:
    ada = auth_headers(client, tier="pro")
    first = generate(client, ada, seed=7)
    before = hits(client)
    assert generate(client, ada, seed=7)["images"][0]["id"] == first["images"][0]["id"]  # a hit
    assert hits(client) == before + 1

    # Past the TTL but not cleaned yet: not served again (its prompt would outlive the TTL).
    age(client, [first["images"][0]["id"]], [first["id"]])
    second = generate(client, ada, seed=7)
    assert second["images"][0]["id"] != first["images"][0]["id"] and hits(client) == before + 1

    # Cleaned: the cache still names the images, but they are gone, so the request runs again.
    age(client, [second["images"][0]["id"]], [second["id"]])
    assert cleanup(client).images == 2
    third = generate(client, ada, seed=7)
    assert hits(client) == before + 1
    assert third["images"][0]["id"] not in {first["images"][0]["id"], second["images"][0]["id"]}
    assert client.get(third["images"][0]["url"], headers=ada).status_code == 200
    usage = client.get("/api/v1/me", headers=ada).json()["usage"]["images"]
    assert usage["used"] == 3  # three runs of the model; the one hit was free


def fimum(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FIMUM, *args], env=dict(os.environ), capture_output=True, text=True, timeout=120)


def test_fimum_cleanup_command(client: TestClient) -> None:
    ada = auth_headers(client, tier="pro")
    old, young = generate(client, ada, seed=31), generate(client, ada, seed=32)
    age(client, [old["images"][0]["id"]], [old["id"]])

    dry = fimum("cleanup", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    summary = json.loads(dry.stdout)
    assert summary["dry_run"] is True and (summary["images"], summary["jobs"], summary["files"]) == (1, 1, 3)
    assert len(image_ids(client)) == 2

    table = fimum("cleanup")
    assert table.returncode == 0, table.stderr
    assert "deleted" in table.stdout and "images" in table.stdout and "space freed" in table.stdout
    assert image_ids(client) == {young["images"][0]["id"]} and job_ids(client) == {young["id"]}

    override = fimum("cleanup", "--older-than", "1s", "--json")  # everything older than a second
    assert override.returncode == 0, override.stderr
    assert json.loads(override.stdout)["images"] == 1 and image_ids(client) == set()

    bad = fimum("cleanup", "--older-than", "soon")
    assert bad.returncode == 2 and "--older-than" in bad.stderr and "Traceback" not in bad.stderr


def test_the_embedded_server_cleans_up_on_its_own(
    with_tiny_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIMUM_CLEANUP_INTERVAL_S", "1")
    with TestClient(create_app(load_settings())) as client:
        ada = auth_headers(client, tier="pro")
        old = generate(client, ada, seed=41)
        age(client, [old["images"][0]["id"]], [old["id"]])
        schedule = client.app.state.images.retention  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while image_ids(client) or job_ids(client) or files_on_disk(client) or schedule.last is None:
            assert time.monotonic() < deadline, "the scheduled clean-up did not run"
            time.sleep(0.2)
        assert schedule.last.images == 1 and schedule.last.jobs == 1


@pytest.mark.parametrize("backend", ["distributed"], indirect=True)
def test_a_celery_worker_cleans_up_on_its_own(backend: str, with_tiny_models: Path) -> None:
    worker = CeleryWorker("cleaner", extra_env={"FIMUM_CLEANUP_INTERVAL_S": "1", "FIMUM_WORKER_LEASE_S": "2"})
    try:
        with TestClient(create_app(load_settings())) as client:
            ada = auth_headers(client, tier="pro")
            old = generate(client, ada, seed=51)
            age(client, [old["images"][0]["id"]], [old["id"]])
            deadline = time.monotonic() + 60
            while image_ids(client) or job_ids(client) or files_on_disk(client):
                assert time.monotonic() < deadline, "\n".join(worker.output[-30:])
                time.sleep(0.3)
    finally:
        worker.stop()


def _old_jobs(db: Database, n: int) -> list[str]:
    then = datetime.now(UTC) - timedelta(days=30)
    with db.session() as session, session.begin():
        user = User(email=f"{uuid.uuid4().hex[:8]}@example.com")
        session.add(user)
        session.flush()
        jobs = [
            ImageJob(
                user_id=user.id,
                tier="free",
                kind="generate",
                status="completed",
                params={"prompt": PROMPT},
                created_at=then,
                finished_at=then,
            )
            for _ in range(n)
        ]
        session.add_all(jobs)
        session.flush()
        return [j.id for j in jobs]


def test_one_clean_up_at_a_time_and_ttl_zero_keeps_everything(backend: str) -> None:
    settings = load_settings()
    db = Database(settings)
    try:
        upgrade(db.engine, settings.database_schema)
        image_store = ImageStore(settings.data_dir)
        ids = _old_jobs(db, 40)

        with _exclusive(db, settings.data_dir) as mine:  # another process is cleaning
            assert mine
            busy = run_cleanup(db, image_store)
        assert busy.skipped == "another clean-up is running" and busy.jobs == 0

        forever = run_cleanup(db, image_store, older_than_s=0)
        assert forever.skipped == "keep forever" and forever.jobs == 0
        with db.session() as session:
            assert set(session.scalars(select(ImageJob.id))) == set(ids)

        # Two at once (two processes' schedules firing together): the jobs go exactly once.
        reports: list[CleanupReport] = []
        start = threading.Barrier(2)

        def run() -> None:
            start.wait()
            reports.append(run_cleanup(db, image_store, batch_size=7))

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(r.jobs for r in reports) == 40
        with db.session() as session:
            assert session.scalar(select(ImageJob.id)) is None  # no prompt outlives the TTL
    finally:
        db.dispose()


def test_ages_and_the_interval_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [parse_age(v) for v in ("7d", "12h", "30m", "90s", "3600", "1w", "1.5h")] == [
        604800,
        43200,
        1800,
        90,
        3600,
        604800,
        5400,
    ]
    for bad in ("", "0", "-1d", "soon", "7 days"):
        with pytest.raises(ValueError):
            parse_age(bad)
    assert load_settings().cleanup_interval_s == 0  # this module's fixture
    monkeypatch.delenv("FIMUM_CLEANUP_INTERVAL_S")
    assert load_settings().cleanup_interval_s == 3600
    monkeypatch.setenv("FIMUM_CLEANUP_INTERVAL_S", "0.5")
    with pytest.raises(ConfigError, match="cleanup_interval_s"):
        load_settings()
