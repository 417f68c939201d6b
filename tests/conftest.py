"""Shared fixtures: a clean configuration per test, and the tiny SDXL-architecture models."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.peers.plugin"]

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No FIMUM_*/IMAGE_* leaks in from the developer's shell; data goes to a temp dir."""
    for name in list(os.environ):
        if name.startswith(("FIMUM_", "IMAGE_")):
            monkeypatch.delenv(name)
    # Loading the embedding model sets these for its whole process (search/encoder.py); a test that
    # ran it earlier in the same worker must not make `fimum models download` offline in a later one.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("FIMUM_CONFIG", str(REPO / "config" / "models.yaml"))
    monkeypatch.setenv("FIMUM_DATA_DIR", str(tmp_path / "data"))
    # Nothing installed unless a test says so.
    monkeypatch.setenv("IMAGE_MODEL_BASE_PATH", str(tmp_path / "no-sdxl-base"))
    monkeypatch.setenv("IMAGE_MODEL_REFINER_PATH", str(tmp_path / "no-sdxl-refiner"))
    monkeypatch.setenv("IMAGE_MODEL_UPSCALER_PATH", str(tmp_path / "no-sdxl-upscaler"))
    monkeypatch.setenv("FIMUM_DEMO_MODEL_PATH", str(tmp_path / "no-demo"))
    monkeypatch.setenv("IMAGE_DEVICE", "cpu")
    # huggingface_hub caches what it fetches (even from loopback test hubs) under HF_HOME.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny demo models, built once per test session through the real `make_tiny`."""
    from fimum_ai.images.model_factory import make_tiny

    target = tmp_path_factory.mktemp("models") / "tiny-sdxl"
    make_tiny(target)
    return target


@pytest.fixture
def with_tiny_models(tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Configure the demo model path so the platform finds the tiny models."""
    monkeypatch.setenv("FIMUM_DEMO_MODEL_PATH", str(tiny_models_dir))
    return tiny_models_dir


# --- Databases and caches (issue 4): real PostgreSQL and Redis on 127.0.0.1, isolated per test ---

POSTGRES_URL = os.environ.get("FIMUM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FIMUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
JWT_TEST_SECRET = "test-secret-for-distributed-mode-0123456789abcdef"


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema name; dropped (with everything in it) afterwards."""
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield schema
    engine = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        # A session still holding a lock in the schema would make DROP wait forever: fail instead,
        # naming who holds it.
        connection.execute(text("SET LOCAL lock_timeout = '20s'"))
        try:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        except Exception as exc:
            raise AssertionError(f"schema {schema} still in use: {_pg_activity()}") from exc
    engine.dispose()


def _pg_activity() -> list[tuple[object, ...]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT pid, state, wait_event, xact_start, left(query, 120) FROM pg_stat_activity")
        )
        activity = [tuple(row) for row in rows]
    engine.dispose()
    return activity


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A fresh Redis key prefix; every key under it is deleted afterwards."""
    import uuid

    import redis

    prefix = f"fimum-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["embedded", "distributed"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once per deployment mode: SQLite + in-process, then PostgreSQL + Redis."""
    if request.param == "distributed":
        monkeypatch.setenv("FIMUM_MODE", "distributed")
        monkeypatch.setenv("FIMUM_DATABASE_URL", POSTGRES_URL)
        monkeypatch.setenv("FIMUM_DATABASE_SCHEMA", request.getfixturevalue("pg_schema"))
        monkeypatch.setenv("FIMUM_REDIS_URL", REDIS_URL)
        monkeypatch.setenv("FIMUM_REDIS_PREFIX", request.getfixturevalue("redis_prefix"))
        monkeypatch.setenv("FIMUM_JWT_SECRET", JWT_TEST_SECRET)
    return str(request.param)


# --- Secrets never reach a log (issue 4): every record of the suite is kept and checked at the end ---

ISSUED_SECRETS: list[str] = []  # OTP codes, tokens and API keys the tests saw; see remember_secret()
_STANDARD_RECORD_KEYS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message"}


def remember_secret(value: str) -> str:
    """Register a code/token/key so the end-of-session check looks for it in every log record."""
    ISSUED_SECRETS.append(value)
    return value


class _LogRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(0)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("mail.log"):
            return  # the test SMTP server (aiosmtpd) logs whole messages at DEBUG: it is the peer, not us
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD_RECORD_KEYS}
        self.lines.append(f"{record.getMessage()} {extras!r} {record.exc_text or ''}")


_RECORDER = _LogRecorder()


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_logs() -> Iterator[_LogRecorder]:
    fimum_logger = logging.getLogger("fimum_ai")
    previous = fimum_logger.level
    fimum_logger.setLevel(logging.DEBUG)
    yield _RECORDER
    fimum_logger.setLevel(previous)
    leaks = []
    for secret in set(ISSUED_SECRETS):
        # Six-digit codes must stand alone to count (ids and timestamps contain digit runs).
        pattern = re.compile(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])")
        leaks += [line[:200] for line in _RECORDER.lines if pattern.search(line)]
    assert ISSUED_SECRETS == [] or _RECORDER.lines, "the log recorder saw nothing: it is not attached"
    assert not leaks, f"secrets found in logs: {leaks[:5]}"


@pytest.fixture(autouse=True)
def _log_recorder_attached() -> None:
    """CLI commands reconfigure logging; attach the recorder again before every test."""
    root = logging.getLogger()
    if _RECORDER not in root.handlers:
        root.addHandler(_RECORDER)
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)


def auth_headers(client: object, identifier: str = "ada@example.com", tier: str = "free") -> dict[str, str]:
    """Create a user in the app's database and start a session for it through the app's own
    SessionService: for tests whose subject is not signing in (that is tested end to end elsewhere)."""
    from fastapi.testclient import TestClient

    from fimum_ai.accounts.identifiers import parse_identifier
    from fimum_ai.accounts.users import create_user, find_by_identifier

    assert isinstance(client, TestClient)
    accounts = client.app.state.accounts  # type: ignore[attr-defined]
    with accounts.db.session() as session, session.begin():
        user = find_by_identifier(session, parse_identifier(identifier))
        if user is None:
            user = create_user(session, parse_identifier(identifier), tier=tier)
        user_id = user.id
    pair = client.portal.call(accounts.sessions.start, user_id)  # type: ignore[union-attr]
    remember_secret(pair.access_token)
    remember_secret(pair.refresh_token)
    return {"Authorization": f"Bearer {pair.access_token}"}


class CeleryWorker:
    """A real `celery -A fimum_ai.workers.task_queue worker` process with this test's environment."""

    def __init__(self, name: str, extra_env: dict[str, str] | None = None, pool: str = "prefork") -> None:
        import subprocess
        import sys

        celery = str(Path(sys.executable).with_name("celery"))
        self.name = name
        self.proc = subprocess.Popen(
            [
                celery,
                "-A",
                "fimum_ai.workers.task_queue",
                "worker",
                f"--pool={pool}",
                "--concurrency=1",
                "--loglevel=INFO",
                "-n",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env=os.environ | (extra_env or {}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        import threading

        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(90):
            self.stop()
            raise AssertionError("the Celery worker did not start:\n" + "\n".join(self.output[-40:]))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.rstrip())
            if " ready." in line:
                self._ready.set()

    def children(self) -> list[int]:
        import psutil

        return [child.pid for child in psutil.Process(self.proc.pid).children(recursive=True)]

    def stop(self) -> None:
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def image_workers(backend: str) -> Iterator[list[CeleryWorker]]:
    """Distributed mode: one real Celery worker for this test (embedded mode needs none)."""
    import uuid

    workers = [CeleryWorker(f"test-{uuid.uuid4().hex[:8]}")] if backend == "distributed" else []
    yield workers
    for worker in workers:
        worker.stop()
