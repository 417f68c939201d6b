"""Crawls started from the admin API: each one a process of its own, its state in a shared store.

The API never runs Scrapy itself (Twisted's reactor must not share uvicorn's event loop): it starts
`python -m fimum_ai.search.crawler.job ID`, which crawls and writes its progress to the job store
twice a second. The store is a folder of JSON files in embedded mode and Redis in distributed mode,
so any API replica can show a crawl and ask it to stop; the crawl process sees the stop request on
its next tick and ends cleanly (what it fetched so far stays indexed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from fimum_ai.errors import Conflict, NotFound
from fimum_ai.search.crawler.context import CrawlOptions, CrawlProgress
from fimum_ai.settings import Settings

FINAL_STATES = ("finished", "stopped", "failed")
MAX_RUNNING_PER_PROCESS = 4
# A crawl reports twice a second; one silent this long has died (killed, its machine gone).
SILENT_AFTER_S = 60.0


def _now() -> str:
    return datetime.now(UTC).isoformat()


class JobStore(Protocol):
    def put(self, job: dict[str, Any]) -> None: ...

    def get(self, job_id: str) -> dict[str, Any] | None: ...

    def list(self) -> list[dict[str, Any]]: ...

    def request_stop(self, job_id: str) -> None: ...

    def stop_requested(self, job_id: str) -> bool: ...


class FileJobStore:
    """`{data_dir}/search/crawls/{id}.json`, replaced atomically on every write."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, job_id: str, suffix: str = ".json") -> Path:
        return self.folder / f"{uuid.UUID(job_id)}{suffix}"  # a UUID or ValueError: no path tricks

    def put(self, job: dict[str, Any]) -> None:
        path = self._path(job["id"])
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(job), encoding="utf-8")
        os.replace(tmp, path)

    def get(self, job_id: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self._path(job_id).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        return data

    def list(self) -> list[dict[str, Any]]:
        jobs = [self.get(path.stem) for path in self.folder.glob("*.json")]
        return sorted((j for j in jobs if j), key=lambda j: str(j["created_at"]), reverse=True)

    def request_stop(self, job_id: str) -> None:
        self._path(job_id, ".stop").touch()

    def stop_requested(self, job_id: str) -> bool:
        return self._path(job_id, ".stop").exists()


class RedisJobStore:
    """`{prefix}crawler:jobs:{id}` (JSON) and the ids in `{prefix}crawler:jobs` (newest first)."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.base = f"{prefix}crawler:jobs"

    def put(self, job: dict[str, Any]) -> None:
        created = datetime.fromisoformat(job["created_at"]).timestamp()
        pipe = self.client.pipeline()
        pipe.set(f"{self.base}:{job['id']}", json.dumps(job))
        pipe.zadd(self.base, {job["id"]: created})
        pipe.execute()

    def get(self, job_id: str) -> dict[str, Any] | None:
        raw = self.client.get(f"{self.base}:{job_id}")
        return json.loads(raw) if raw else None

    def list(self) -> list[dict[str, Any]]:
        ids = [i.decode() for i in self.client.zrevrange(self.base, 0, 199)]
        return [job for job in (self.get(i) for i in ids) if job]

    def request_stop(self, job_id: str) -> None:
        self.client.set(f"{self.base}:{job_id}:stop", "1", ex=7 * 86400)

    def stop_requested(self, job_id: str) -> bool:
        return bool(self.client.exists(f"{self.base}:{job_id}:stop"))


def open_job_store(settings: Settings) -> JobStore:
    if settings.mode == "distributed" and settings.redis_url:
        import redis

        return RedisJobStore(redis.Redis.from_url(settings.redis_url), settings.redis_prefix)
    return FileJobStore(settings.data_dir / "search" / "crawls")


class JobReporter:
    """The crawl process's side: progress into the store; stop when asked, or when the API process
    that started the crawl is gone."""

    def __init__(self, store: JobStore, job: dict[str, Any]) -> None:
        self.store = store
        self.job = job
        self.parent = os.getppid()

    def report(self, progress: CrawlProgress) -> None:
        self.job["state"] = progress.state
        self.job["progress"] = progress.as_dict()
        self.job["updated_at"] = _now()
        if progress.state in FINAL_STATES:
            self.job["finished_at"] = _now()
        self.store.put(self.job)

    def stop_requested(self) -> bool:
        return self.store.stop_requested(self.job["id"]) or os.getppid() != self.parent


def settings_json(settings: Settings) -> str:
    """The settings for a child process, secrets included (sent over a pipe, never a file)."""

    def plain(value: Any) -> Any:
        if hasattr(value, "get_secret_value"):
            return value.get_secret_value()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return json.dumps(plain(settings.model_dump()))


class CrawlJobs:
    """The API's side: start, list, watch and stop crawl processes."""

    def __init__(self, settings: Settings, store: JobStore | None = None) -> None:
        self.settings = settings
        self.store = store or open_job_store(settings)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def start(self, options: CrawlOptions, started_by: str) -> dict[str, Any]:
        with self._lock:
            running = [i for i, p in self._procs.items() if p.poll() is None]
            if len(running) >= MAX_RUNNING_PER_PROCESS:
                raise Conflict(
                    f"{len(running)} crawls are running on this server already; stop one first",
                    details={"running": running},
                )
            job_id = str(uuid.uuid4())
            job: dict[str, Any] = {
                "id": job_id,
                "state": "starting",
                "seeds": list(options.seeds),
                "allow_domains": list(options.allow_domains),
                "max_pages": options.max_pages,
                "depth": options.depth,
                "started_by": started_by,
                "created_at": _now(),
                "finished_at": None,
                "progress": CrawlProgress(state="starting").as_dict(),
            }
            self.store.put(job)
            log_dir = self.settings.data_dir / "search" / "crawls"
            log_dir.mkdir(parents=True, exist_ok=True)
            with open(log_dir / f"{job_id}.log", "ab") as log_file:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "fimum_ai.search.crawler.job", job_id],
                    stdin=subprocess.PIPE,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=os.environ | {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
                )
            assert proc.stdin is not None
            proc.stdin.write(settings_json(self.settings).encode())
            proc.stdin.close()
            self._procs[job_id] = proc
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        job = self.store.get(job_id) if _is_uuid(job_id) else None
        if job is None:
            raise NotFound("no such crawl", details={"id": job_id})
        if job["state"] in FINAL_STATES:
            return job
        proc = self._procs.get(job_id)
        if proc is not None and proc.poll() is not None:
            # The process ended without its last report (killed, crashed before starting).
            return self._fail(job, f"the crawl process exited with status {proc.returncode}")
        last = datetime.fromisoformat(job.get("updated_at") or job["created_at"])
        if proc is None and (datetime.now(UTC) - last).total_seconds() > SILENT_AFTER_S:
            # Started elsewhere (another replica) and silent: that process is gone.
            return self._fail(
                job, f"no progress report for {SILENT_AFTER_S:.0f} s: the crawl process is gone"
            )
        return job

    def _fail(self, job: dict[str, Any], reason: str) -> dict[str, Any]:
        job["state"] = job["progress"]["state"] = "failed"
        job["finished_at"] = _now()
        job["progress"]["reason"] = reason
        self.store.put(job)
        return job

    def list(self) -> list[dict[str, Any]]:
        return [self.get(job["id"]) for job in self.store.list()]

    def stop(self, job_id: str) -> dict[str, Any]:
        job = self.get(job_id)
        if job["state"] in FINAL_STATES:
            raise Conflict(f"the crawl is {job['state']} already", details={"state": job["state"]})
        self.store.request_stop(job_id)
        job["stop_requested"] = True
        return job

    def close(self, timeout_s: float = 15.0) -> None:
        """Stop this process's crawls (server shutdown)."""
        for job_id, proc in list(self._procs.items()):
            if proc.poll() is None:
                self.store.request_stop(job_id)
        for proc in self._procs.values():
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait(5)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
