"""Image service: what the API adds to a job, cache hits, thumbnails and the NSFW check (issue 5).

A real server: this script started with `--serve PORT` in its own process, embedded mode (SQLite,
the local job queue's worker thread, the in-process result cache, NudeNet) on 127.0.0.1, the app
built with `create_app(load_settings())` and run by uvicorn as `fimum serve` does, on a fresh data
folder with the tiny demo model (built afresh there). Before the app is created, the server wraps
some functions of the image service in timers (`SPAN_TARGETS`: the engine call, its per-step
progress hook, the worker's `_save`, the NSFW check, the PNG encode, the thumbnail, file writes,
database commits, ...). Every call records its start and end on CLOCK_MONOTONIC, which this process
reads too, and the process CPU time spent meanwhile, so each request can be cut into phases. A few
bench-only routes under `/_bench/` (added by this script, not part of the product) mint the bench
user's token, run a direct engine call, report the server's CPU clock and hand over the spans.

The client is httpx in this process: one keep-alive connection, one request at a time, an
enterprise-tier user (no rate limit, no daily quota) with a JWT access token (what a sign-in gives).

Measurements (`--only`, default all; the list is `MEASUREMENTS`):

- overhead: POST /api/v1/image/generate (sync mode), 512², 20 steps, a new seed each time (no cache
  hits), interleaved with direct engine calls of the same parameters on the same engine object.
  API overhead per job = request wall time (client) - the engine call inside that job less the
  progress callbacks inside it (goal <= 60 ms); the PNG encode and the NSFW check of that job are
  reported separately, and the overhead without them (goal <= 15 ms). The same in server CPU time.
  Also: the request against the paired direct engine call, and where the time goes.
- cache: repeated seeded requests answered from the result cache: hit latency (goal <= 20 ms), and
  a repeat-heavy trace (Zipf-distributed draws of seeded prompts): hit rate from /metrics
  (`fimum_image_cache_requests_total`; spec > 80 %) against the best possible for that trace.
- units: the worker's own functions timed directly on images the service generated (512² and
  1024²): thumbnail (goal <= 20 ms from 1024²), NSFW check (goal <= 100 ms, spec < 500 ms), PNG
  encode, pHash, a whole ImageStore.write.
- batching: dynamic batching in the engine (this process, tiny model): 4 compatible jobs through one
  `text_to_image_batch` call vs one by one; throughput ratio and the largest pixel difference.

See bench/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import hashlib
import inspect
import io
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import _common as c
from fastapi import APIRouter, Body, Request  # module level: FastAPI resolves route annotations here

NAME = "image_service_bench"
GOAL_OVERHEAD_MS = 60.0
GOAL_CORE_MS = 15.0  # overhead without the PNG encode and the NSFW check
GOAL_HIT_MS = 20.0
GOAL_HIT_RATE = 0.80  # spec: > 80 %
GOAL_THUMBNAIL_MS = 20.0
GOAL_NSFW_MS = 100.0
SPEC_NSFW_MS = 500.0
EMAIL = "image-bench@example.com"
TIER = "enterprise"  # unlimited requests and images: the limiter and the quota never interfere
SIZE = 512
STEPS = 20  # the API's minimum
SEED_BASE = {"warmup": 900_000, "overhead": 100_000, "trace": 200_000, "units": 300_000, "batching": 400_000}
SOURCES = (
    "app.py",
    "images/jobs.py",
    "images/engine.py",
    "images/service.py",
    "images/routes.py",
    "images/storage.py",
    "images/safety.py",
    "images/cache.py",
    "images/events.py",
)

# (span name, module, class or None, attribute): wrapped in timers in the server process. A target
# that does not exist (code moved) is skipped and reported; the phases that need it show "-".
SPAN_TARGETS: tuple[tuple[str, str, str | None, str], ...] = (
    ("submit", "fimum_ai.images.service", "ImageService", "submit"),
    ("cache_key", "fimum_ai.images.service", "ImageService", "_cache_key"),
    ("from_cache", "fimum_ai.images.service", "ImageService", "_from_cache"),
    ("read_images", "fimum_ai.images.service", "ImageService", "images"),
    ("claim", "fimum_ai.images.jobs", "JobRunner", "claim_next"),
    ("claim_companions", "fimum_ai.images.jobs", "JobRunner", "claim_companions"),
    ("heartbeat", "fimum_ai.images.jobs", "JobRunner", "_heartbeat"),
    ("save", "fimum_ai.images.jobs", "JobRunner", "_save"),
    ("duplicate_lookup", "fimum_ai.images.jobs", "JobRunner", "_duplicate"),
    ("phash", "fimum_ai.images.jobs", None, "perceptual_hash"),
    ("engine", "fimum_ai.images.engine", "ImageEngine", "text_to_image"),
    ("engine_batch", "fimum_ai.images.engine", "ImageEngine", "text_to_image_batch"),  # dynamic batching
    # The engine's per-step hook: with a progress callback (the worker's) it also encodes a latent
    # preview JPEG every few steps and calls the callback (events, heartbeats); without one (a
    # direct call) it only counts the step. Inside the engine call, but API work.
    ("progress", "fimum_ai.images._runtime", "Progress", "advance"),
    ("preview", "fimum_ai.images._runtime", None, "latents_to_jpeg"),  # the latent preview JPEG
    ("nsfw", "fimum_ai.images.safety", "SafetyService", "check_image"),
    ("store_write", "fimum_ai.images.storage", "ImageStore", "write"),
    ("png", "fimum_ai.images.storage", None, "png_bytes"),
    ("thumbnail", "fimum_ai.images.storage", None, "thumbnail_jpeg"),
    ("file_write", "fimum_ai.images.storage", None, "write_atomic"),
    # Every `with session.begin():` block ends here: flush, SQL, COMMIT (SQLite: journal + fsync).
    ("db_commit", "sqlalchemy.orm.session", "SessionTransaction", "commit"),
)
# Zero-length marks "event:<type>" when a job event is published (queued, started, completed, ...).
EVENT_TARGET = ("fimum_ai.images.events", "LocalEventBus", "publish")


# --------------------------------------------------------------------------------------------------
# Server side (`--serve PORT`): the app as `fimum serve` builds it, timers, bench-only routes


class Span(NamedTuple):
    """One call of a wrapped function: CLOCK_MONOTONIC start and end (seconds, comparable across
    processes), the thread, and the process CPU time (all threads) spent meanwhile."""

    name: str
    start: float
    end: float
    thread: str
    cpu: float

    @property
    def wall(self) -> float:
        return self.end - self.start


class SpanRecorder:
    """A Span for every call of the wrapped functions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self.patched: list[str] = []
        self.missing: list[str] = []

    def record(self, name: str, start: float, end: float, cpu: float) -> None:
        span = Span(name, start, end, threading.current_thread().name, cpu)
        with self._lock:
            self._spans.append(span)

    def drain(self) -> list[Span]:
        with self._lock:
            spans, self._spans = self._spans, []
        return spans

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        clock, cpu_clock = time.monotonic, time.process_time
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                start, cpu = clock(), cpu_clock()
                try:
                    return await function(*args, **kwargs)
                finally:
                    self.record(name, start, clock(), cpu_clock() - cpu)

            return timed_async

        @functools.wraps(function)
        def timed_sync(*args: Any, **kwargs: Any) -> Any:
            start, cpu = clock(), cpu_clock()
            try:
                return function(*args, **kwargs)
            finally:
                self.record(name, start, clock(), cpu_clock() - cpu)

        return timed_sync

    def mark_events(self, publish: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(publish)
        def marked(bus: Any, event: Any) -> Any:
            now = time.monotonic()
            self.record(f"event:{event.type}", now, now, 0.0)
            return publish(bus, event)

        return marked

    def instrument(self) -> None:
        import importlib

        targets = [*SPAN_TARGETS, ("event", *EVENT_TARGET)]
        for name, module_name, class_name, attribute in targets:
            where = f"{module_name}.{class_name + '.' if class_name else ''}{attribute}"
            try:
                owner: Any = importlib.import_module(module_name)
                if class_name is not None:
                    owner = getattr(owner, class_name)
                original = getattr(owner, attribute)
            except (ImportError, AttributeError):
                self.missing.append(where)
                continue
            wrapped = self.mark_events(original) if name == "event" else self.wrap(name, original)
            setattr(owner, attribute, wrapped)
            self.patched.append(where)


def serve(port: int) -> int:
    """The hidden `--serve PORT` mode: `fimum serve`'s app, settings and logging, plus the timers
    and the `/_bench/` routes."""
    import uvicorn

    from fimum_ai._cli_common import configure_logs
    from fimum_ai.app import create_app
    from fimum_ai.logs import uvicorn_log_config
    from fimum_ai.settings import load_settings

    sources = source_digests()  # the code this process runs (others may edit src/ meanwhile)
    settings = load_settings()
    configure_logs(settings)
    recorder = SpanRecorder()
    recorder.instrument()  # before the app exists: it must hold the wrapped functions
    app = create_app(settings)
    router = APIRouter(prefix="/_bench", include_in_schema=False)

    @router.post("/token")
    async def token(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        """The bench user (created with the requested tier) and an access token from the sessions
        service: what a sign-in ends with (tests/conftest.py `auth_headers` does the same)."""
        from fimum_ai.accounts.identifiers import parse_identifier
        from fimum_ai.accounts.users import create_user, find_by_identifier

        accounts = request.app.state.accounts

        def user_id() -> str:
            with accounts.db.session() as session, session.begin():
                identifier = parse_identifier(body["email"])
                user = find_by_identifier(session, identifier)
                if user is None:
                    user = create_user(session, identifier, tier=body["tier"])
                return str(user.id)

        uid = await asyncio.to_thread(user_id)
        pair = await accounts.sessions.start(uid, user_agent=NAME)
        return {"user_id": uid, "access_token": pair.access_token}

    @router.post("/engine")
    async def engine_call(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        """A direct `engine.text_to_image(params)` on the server's own engine object (no progress
        callback, no cancel token: what a library user writes), in a thread as the worker runs it."""
        from fimum_ai.images.requests import GenerateParams

        params = GenerateParams.model_validate(body)
        provider = request.app.state.engine_provider

        def run() -> dict[str, Any]:
            engine = provider.get()
            start, cpu = time.monotonic(), time.process_time()
            result = engine.text_to_image(params)
            end, cpu = time.monotonic(), time.process_time() - cpu
            meta = result.metadata[0]
            return {"wall_s": end - start, "cpu_s": cpu, "generation_time_s": meta.generation_time_s}

        return await asyncio.to_thread(run)

    @router.get("/spans")
    async def spans() -> dict[str, Any]:
        return {"spans": recorder.drain(), "patched": recorder.patched, "missing": recorder.missing}

    @router.get("/cpu")
    async def cpu() -> float:
        """This process's CPU seconds so far (all threads; CLOCK_PROCESS_CPUTIME_ID, ns resolution)."""
        return time.process_time()

    @router.get("/info")
    async def info(request: Request) -> dict[str, Any]:
        import torch

        engine = request.app.state.engine_provider.get()
        return {
            "device": engine.device,
            "precision": engine.precision,
            "torch_threads": torch.get_num_threads(),
            "sources": sources,
            "pid": os.getpid(),
        }

    app.include_router(router)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=uvicorn_log_config())
    return 0


def source_digests() -> dict[str, str]:
    """First 12 hex digits of the SHA-256 of the measured sources: which code a number belongs to."""
    found = {}
    for relative in SOURCES:
        path = c.REPO_ROOT / "src" / "fimum_ai" / relative
        try:
            found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        except OSError:
            found[relative] = "missing"
    return found


# --------------------------------------------------------------------------------------------------
# Client side: the server process, requests, spans


@dataclass
class Sample:
    """One request: client wall times, the server's CPU time meanwhile, the response, and the
    server's spans that started inside its window."""

    t0: float
    t1: float
    server_cpu: float
    body: dict[str, Any]
    spans: list[Span]
    response_bytes: int

    @property
    def total(self) -> float:
        return self.t1 - self.t0

    def first(self, name: str) -> Span | None:
        return next((span for span in self.spans if span.name == name), None)

    def matching(self, name: str) -> list[Span]:
        """Spans called `name`; "name@outer": only those inside a span called `outer`."""
        name, _, outer = name.partition("@")
        found = [span for span in self.spans if span.name == name]
        if not outer:
            return found
        outers = [span for span in self.spans if span.name == outer]
        return [s for s in found if any(o.start <= s.start <= s.end <= o.end for o in outers)]

    def sum(self, name: str, *, cpu: bool = False) -> float | None:
        found = [span.cpu if cpu else span.wall for span in self.matching(name)]
        return sum(found) if found else None

    def count(self, name: str) -> int:
        return len(self.matching(name))


class Service:
    """The server process on a free port with a fresh data folder and the tiny model; an httpx
    client signed in as the enterprise bench user."""

    def __init__(self, workdir: Path) -> None:
        import httpx

        self.workdir = workdir
        model_dir = workdir / "tiny-sdxl"
        c.log(f"building the tiny demo model set in {model_dir}")
        c.tiny_models(model_dir)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FIMUM_", "IMAGE_"))}
        env.update(
            FIMUM_CONFIG=str(c.REPO_ROOT / "config" / "models.yaml"),
            FIMUM_DATA_DIR=str(workdir / "data"),
            FIMUM_DEMO_MODEL_PATH=str(model_dir),
            IMAGE_MODEL_BASE_PATH=str(workdir / "no-sdxl-base"),
            IMAGE_MODEL_REFINER_PATH=str(workdir / "no-sdxl-refiner"),
            IMAGE_MODEL_UPSCALER_PATH=str(workdir / "no-sdxl-upscaler"),
            IMAGE_DEVICE="cpu",
        )
        self.env = env
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = workdir / "server.log"
        self._log = self.log_path.open("wb")
        command = [sys.executable, str(Path(__file__).resolve()), "--serve", str(port)]
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=self._log)
        self.client = httpx.Client(base_url=self.url, timeout=600)
        try:
            self._sign_in()
        except BaseException:
            c.log(f"server log tail:\n{self.log_tail()}")
            self.stop()
            raise

    def _sign_in(self) -> None:
        import httpx

        deadline = time.monotonic() + 180
        while True:
            try:
                if self.client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start; see {self.log_path}")
            time.sleep(0.2)
        auth = self.client.post("/_bench/token", json={"email": EMAIL, "tier": TIER})
        if auth.status_code != 200:
            raise RuntimeError(f"/_bench/token answered {auth.status_code}: {auth.text[:500]}")
        self.user_id = auth.json()["user_id"]
        self.headers = {"Authorization": f"Bearer {auth.json()['access_token']}"}
        c.log(f"server pid {self.process.pid} on {self.url}, user {self.user_id} ({TIER})")
        spans = self.client.get("/_bench/spans").json()
        self.patched, self.missing = spans["patched"], spans["missing"]
        if self.missing:
            c.log(f"not timed (not found in src/): {', '.join(self.missing)}")
        self.cpu_bias = 0.0
        self.cpu_bias = statistics.median(self._cpu_pair() for _ in range(30))
        c.log(f"server CPU of one /_bench/cpu round trip (subtracted): {self.cpu_bias * 1e6:.0f} µs")

    def server_cpu(self) -> float:
        value: float = self.client.get("/_bench/cpu").json()
        return value

    def _cpu_pair(self) -> float:
        """Server CPU between two back-to-back readings: what the readings themselves cost."""
        first = self.server_cpu()
        return self.server_cpu() - first

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = self.client.get("/_bench/info").json()
        return data

    def generate(self, body: dict[str, Any]) -> Sample:
        """POST /api/v1/image/generate (sync mode). Timed from before the request is sent to the
        last byte of the response (httpx reads the body inside `post`); JSON decoding is not timed.
        The server's CPU is read just before and after (less the cost of the readings)."""
        cpu0 = self.server_cpu()
        t0 = time.monotonic()
        response = self.client.post("/api/v1/image/generate", json=body, headers=self.headers)
        t1 = time.monotonic()
        server_cpu = self.server_cpu() - cpu0 - self.cpu_bias
        data = response.json()
        if response.status_code != 200:
            raise RuntimeError(f"generate answered {response.status_code}: {json.dumps(data)[:500]}")
        return Sample(t0, t1, server_cpu, data, self._spans(t0, t1), len(response.content))

    def direct_engine(self, body: dict[str, Any]) -> dict[str, Any]:
        """The bench route's direct engine call: its wall and process CPU seconds."""
        response = self.client.post("/_bench/engine", json=body)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        self._spans(0, 0)  # drop the spans of this call (the engine's own timer)
        return data

    def _spans(self, t0: float, t1: float) -> list[Span]:
        """The spans that started inside [t0, t1] (the rest of the job's `finally` may end later)."""
        spans = self.client.get("/_bench/spans").json()["spans"]
        return [Span(*s) for s in spans if t0 <= s[1] <= t1]

    def cache_counters(self) -> dict[str, float]:
        """`fimum_image_cache_requests_total{result=...}` from /metrics."""
        text = self.client.get("/metrics").text
        found = {"hit": 0.0, "miss": 0.0}
        for result, value in re.findall(
            r'^fimum_image_cache_requests_total\{result="(\w+)"\}\s+([\d.e+-]+)$', text, re.MULTILINE
        ):
            found[result] = float(value)
        return found

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def request_body(seed: int, prompt: str = c.PROMPT, size: int = SIZE, steps: int = STEPS) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "negative_prompt": c.NEGATIVE_PROMPT,
        "width": size,
        "height": size,
        "steps": steps,
        "guidance_scale": 7.5,
        "scheduler": "DPMSolverMultistep",
        "seed": seed,
        "batch_size": 1,
        "refine": False,
    }


# --------------------------------------------------------------------------------------------------
# Statistics and formatting


def ms_summary(samples: Sequence[float]) -> dict[str, float | int]:
    """Order statistics in milliseconds."""
    return {k: (v * 1000 if k != "n" else v) for k, v in c.summarize(samples).as_dict().items()}


def fmt_ms(summary: dict[str, Any] | None) -> str:
    if not summary:
        return "–"
    return f"{summary['median']:.1f} [{summary['q1']:.1f}–{summary['q3']:.1f}]"


def verdict(summary: dict[str, Any], goal_ms: float, cpu: dict[str, Any] | None = None) -> str:
    """met; within noise (the median is over the goal, the lower quartile is not); missed. With the
    CPU time of the same thing: whether it would fit if it had the cores to itself."""
    if summary["median"] <= goal_ms:
        return "met"
    if summary["q1"] <= goal_ms:
        return "within noise (IQR spans the goal)"
    if cpu is not None and cpu["median"] <= goal_ms:
        return "missed in wall time; met in CPU time"
    return "missed"


def goal_row(measure: str, value: str, goal: str, result: str) -> dict[str, str]:
    return {"measure": measure, "value": value, "goal": goal, "verdict": result}


def median_int(values: Sequence[int]) -> int:
    return int(sorted(values)[len(values) // 2])


# Phases of a generated request, in time order: (label, start mark, end mark). A mark is "t0" /
# "t1" (the client's send and receive) or "<span>.start" / "<span>.end" (first span of that name).
PHASES: tuple[tuple[str, str, str], ...] = (
    ("client → submit starts (HTTP in, auth, body validation)", "t0", "submit.start"),
    ("submit (prompt filter, cache key, quota, DB insert, position)", "submit.start", "submit.end"),
    ("submitted → worker starts it (wake, claim in the DB)", "submit.end", "event:started.start"),
    (
        "worker: started → engine call (heartbeat thread, engine look-up)",
        "event:started.start",
        "engine.start",
    ),
    ("engine call (incl. progress callbacks, see below)", "engine.start", "engine.end"),
    ("engine → save", "engine.end", "save.start"),
    ("save: NSFW, pHash, duplicates, files, DB rows", "save.start", "save.end"),
    ("save → completed event (DB status, cache entry)", "save.end", "event:completed.start"),
    ("completed → last response byte (wake, read files, base64, JSON, HTTP)", "event:completed.start", "t1"),
)
HIT_PHASES: tuple[tuple[str, str, str], ...] = (
    ("client → submit starts (HTTP in, auth, body validation)", "t0", "submit.start"),
    ("submit (prompt filter, cache key, cache lookup, job row)", "submit.start", "submit.end"),
    ("submitted → last response byte (read files, base64, JSON, HTTP)", "submit.end", "t1"),
)
# Spans inside the phases above (summed per request when a function runs more than once);
# "name@outer" counts only the spans inside the span `outer`.
PARTS: tuple[tuple[str, str], ...] = (
    ("cache_key", "cache key (includes the model version: hashes of the model files)"),
    ("from_cache", "cache lookup + serving a hit (DB rows)"),
    ("claim", "claiming the job (DB; the idle worker also polls every second)"),
    ("claim_companions", "dynamic batching: looking for compatible queued jobs (DB)"),
    ("progress@engine", "progress callbacks inside the engine call (previews, events, heartbeats)"),
    ("preview@progress", "  latent preview JPEGs"),
    ("heartbeat@progress", "  heartbeats from the progress callback (DB write + cancel check)"),
    ("heartbeat", "heartbeats, both threads (the heartbeat thread's run beside the engine)"),
    ("nsfw", "NSFW check (NudeNet)"),
    ("phash", "pHash"),
    ("duplicate_lookup", "duplicate lookup (DB, up to 500 rows)"),
    ("store_write", "ImageStore.write (PNG, thumbnail, metadata, 3 atomic writes)"),
    ("png", "PNG encode (compress_level 1)"),
    ("thumbnail", "thumbnail (256² JPEG)"),
    ("file_write", "atomic file writes (temp + fsync + rename)"),
    ("db_commit@save", "database commits inside save (the image rows)"),
    ("db_commit@submit", "database commits inside submit (the job row)"),
    ("db_commit", "database commits (flush + COMMIT), all of them"),
    ("read_images", "read the stored files back + base64 (response)"),
)


def mark(sample: Sample, name: str) -> float | None:
    if name == "t0":
        return sample.t0
    if name == "t1":
        return sample.t1
    span_name, edge = name.rsplit(".", 1)
    span = sample.first(span_name)
    return None if span is None else span.start if edge == "start" else span.end


def phase_table(samples: Sequence[Sample], phases: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
    rows = []
    for label, start_mark, end_mark in phases:
        values = []
        for sample in samples:
            start, end = mark(sample, start_mark), mark(sample, end_mark)
            if start is not None and end is not None:
                values.append(end - start)
        rows.append({"phase": label, "ms": ms_summary(values) if values else None})
    for name, label in PARTS:
        found = [s for s in samples if s.count(name)]
        if found:
            rows.append(
                {
                    "phase": f"  of which: {label}",
                    "span": name,
                    "ms": ms_summary([s.sum(name) or 0.0 for s in found]),
                    "cpu_ms": ms_summary([s.sum(name, cpu=True) or 0.0 for s in found]),
                    "calls": sum(s.count(name) for s in found) / len(samples),
                }
            )
    return rows


def print_phases(title: str, rows: Sequence[dict[str, Any]]) -> None:
    table = [
        [
            row["phase"],
            fmt_ms(row["ms"]),
            f"{row['cpu_ms']['median']:.1f}" if "cpu_ms" in row else "",
            f"{row['calls']:.2f}" if "calls" in row else "",
        ]
        for row in rows
    ]
    c.print_table(title, ["phase", "wall ms median [q1–q3]", "process CPU ms", "calls/request"], table)


# --------------------------------------------------------------------------------------------------
# Measurements


@dataclass
class Context:
    args: argparse.Namespace
    service: Service | None
    results: dict[str, Any] = field(default_factory=dict)
    goals: list[dict[str, str]] = field(default_factory=list)
    # The overhead measurement's requests: cached by then, the cache measurement repeats them.
    overhead_bodies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def api(self) -> Service:
        assert self.service is not None
        return self.service


def warm_up(ctx: Context) -> None:
    """Engine load, NudeNet session, imagehash/scipy imports, first DB writes: before any timing."""
    for index in range(2):
        ctx.api.generate(request_body(SEED_BASE["warmup"] + index))
    ctx.api.direct_engine(request_body(SEED_BASE["warmup"] + 10))


@dataclass(frozen=True)
class JobCost:
    """One request's wall and server CPU seconds, split into the engine's work and the rest."""

    request: float
    engine: float  # the engine call inside the job, less the progress callbacks inside it
    progress: float  # the progress callbacks inside the engine call (API work)
    png: float
    nsfw: float
    request_cpu: float
    engine_cpu: float | None
    png_cpu: float
    nsfw_cpu: float

    @classmethod
    def of(cls, sample: Sample) -> JobCost:
        engine = sample.first("engine")
        progress = sample.sum("progress@engine") or 0.0
        progress_cpu = sample.sum("progress@engine", cpu=True) or 0.0
        if engine is None:  # not timed (the code moved): the engine's own clock, no CPU
            engine_wall, engine_cpu = float(sample.body["metadata"]["generation_time_s"]), None
        else:
            engine_wall, engine_cpu = engine.wall - progress, engine.cpu - progress_cpu
        return cls(
            request=sample.total,
            engine=engine_wall,
            progress=progress,
            png=sample.sum("png") or 0.0,
            nsfw=sample.sum("nsfw") or 0.0,
            request_cpu=sample.server_cpu,
            engine_cpu=engine_cpu,
            png_cpu=sample.sum("png", cpu=True) or 0.0,
            nsfw_cpu=sample.sum("nsfw", cpu=True) or 0.0,
        )

    @property
    def overhead(self) -> float:
        return self.request - self.engine

    @property
    def overhead_cpu(self) -> float | None:
        return None if self.engine_cpu is None else self.request_cpu - self.engine_cpu

    @property
    def core(self) -> float:
        return self.overhead - self.png - self.nsfw

    @property
    def core_cpu(self) -> float | None:
        overhead = self.overhead_cpu
        return None if overhead is None else overhead - self.png_cpu - self.nsfw_cpu


def measure_overhead(ctx: Context) -> None:
    """API request against the engine call inside it and against a direct engine call, interleaved."""
    repeats = ctx.args.repeats
    samples: list[Sample] = []
    direct: list[dict[str, Any]] = []
    for index in range(repeats):
        body = request_body(SEED_BASE["overhead"] + index)
        ctx.overhead_bodies.append(body)
        for variant in ("api", "direct") if index % 2 == 0 else ("direct", "api"):
            if variant == "api":
                samples.append(ctx.api.generate(body))
            else:
                direct.append(ctx.api.direct_engine(body))
        cost = JobCost.of(samples[-1])
        c.log(
            f"overhead {index + 1}/{repeats}: request {cost.request * 1000:.0f} ms, engine in job "
            f"{cost.engine * 1000:.0f} ms, direct engine {direct[-1]['wall_s'] * 1000:.0f} ms, overhead "
            f"{cost.overhead * 1000:.1f} ms (CPU {(cost.overhead_cpu or 0) * 1000:.1f}), "
            f"load {c.load_average()[0]:.2f}"
        )
    ctx.results["overhead"] = overhead_result(samples, direct)
    report_overhead(ctx, ctx.results["overhead"])


def overhead_result(samples: Sequence[Sample], direct: Sequence[dict[str, Any]]) -> dict[str, Any]:
    costs = [JobCost.of(s) for s in samples]
    direct_wall = [float(d["wall_s"]) for d in direct]
    direct_cpu = [float(d["cpu_s"]) for d in direct]
    timed_engine = all(s.first("engine") is not None for s in samples)

    def summary(values: Sequence[float | None]) -> dict[str, float | int] | None:
        present = [v for v in values if v is not None]
        return ms_summary(present) if len(present) == len(values) and present else None

    duplicates = sum(1 for s in samples if s.body["images"][0]["metadata"].get("duplicate_of"))
    return {
        "size": SIZE,
        "steps": STEPS,
        "n": len(samples),
        "engine_time_source": "timer around ImageEngine.text_to_image in the worker"
        if timed_engine
        else "metadata.generation_time_s (the engine call was not timed)",
        "spans_found": sorted({span.name for s in samples for span in s.spans}),
        "request_ms": summary([k.request for k in costs]),
        "request_server_cpu_ms": summary([k.request_cpu for k in costs]),
        "engine_in_job_ms": summary([k.engine for k in costs]),
        "engine_in_job_cpu_ms": summary([k.engine_cpu for k in costs]),
        "progress_callbacks_ms": summary([k.progress for k in costs]),
        "direct_engine_ms": summary(direct_wall),
        "direct_engine_cpu_ms": summary(direct_cpu),
        "overhead_ms": summary([k.overhead for k in costs]),
        "overhead_cpu_ms": summary([k.overhead_cpu for k in costs]),
        "png_ms": summary([k.png for k in costs]),
        "png_cpu_ms": summary([k.png_cpu for k in costs]),
        "nsfw_ms": summary([k.nsfw for k in costs]),
        "nsfw_cpu_ms": summary([k.nsfw_cpu for k in costs]),
        "overhead_without_png_nsfw_ms": summary([k.core for k in costs]),
        "overhead_without_png_nsfw_cpu_ms": summary([k.core_cpu for k in costs]),
        "request_minus_direct_engine_ms": summary(
            [k.request - d for k, d in zip(costs, direct_wall, strict=True)]
        ),
        "request_minus_direct_engine_cpu_ms": summary(
            [k.request_cpu - d for k, d in zip(costs, direct_cpu, strict=True)]
        ),
        "engine_in_job_minus_direct_ms": summary(
            [k.engine - d for k, d in zip(costs, direct_wall, strict=True)]
        ),
        "engine_call_minus_generation_time_ms": summary(
            [
                s.first("engine").wall - float(s.body["metadata"]["generation_time_s"])  # type: ignore[union-attr]
                for s in samples
            ]
        )
        if timed_engine
        else None,
        "response_bytes": median_int([s.response_bytes for s in samples]),
        "duplicates": duplicates,
        "phases": phase_table(samples, PHASES),
        "samples": [
            {
                "request_s": k.request,
                "engine_s": k.engine,
                "progress_s": k.progress,
                "png_s": k.png,
                "nsfw_s": k.nsfw,
                "server_cpu_s": k.request_cpu,
                "engine_cpu_s": k.engine_cpu,
                "direct_engine_s": d["wall_s"],
                "direct_engine_cpu_s": d["cpu_s"],
            }
            for k, d in zip(costs, direct, strict=True)
        ],
        "load_average_after": c.load_average(),
    }


# (label, wall key, CPU key or None) of the overhead table, in order.
OVERHEAD_ROWS: tuple[tuple[str, str, str | None], ...] = (
    ("request (client: send → last byte; server CPU meanwhile)", "request_ms", "request_server_cpu_ms"),
    ("engine call inside the job, less its progress callbacks", "engine_in_job_ms", "engine_in_job_cpu_ms"),
    ("  progress callbacks inside the engine call (API work)", "progress_callbacks_ms", None),
    ("direct engine call, same parameters, interleaved", "direct_engine_ms", "direct_engine_cpu_ms"),
    ("API overhead = request − engine (same job)", "overhead_ms", "overhead_cpu_ms"),
    ("  PNG encode in the job", "png_ms", "png_cpu_ms"),
    ("  NSFW check in the job", "nsfw_ms", "nsfw_cpu_ms"),
    (
        "  overhead without PNG encode and NSFW check",
        "overhead_without_png_nsfw_ms",
        "overhead_without_png_nsfw_cpu_ms",
    ),
    (
        "request − paired direct engine call",
        "request_minus_direct_engine_ms",
        "request_minus_direct_engine_cpu_ms",
    ),
    ("engine in the job − paired direct engine call", "engine_in_job_minus_direct_ms", None),
    ("engine call − its metadata generation_time_s", "engine_call_minus_generation_time_ms", None),
)


def report_overhead(ctx: Context, r: dict[str, Any]) -> None:
    def cpu(key: str | None) -> str:
        return f"{r[key]['median']:.1f}" if key and r.get(key) else ""

    c.print_table(
        f"API overhead per job: POST /api/v1/image/generate (sync), {SIZE}², {STEPS} steps, n={r['n']} "
        f"(response {r['response_bytes'] / 1e6:.2f} MB, {r['duplicates']} pHash duplicates)",
        ["measure", "wall ms median [q1–q3]", "server CPU ms median"],
        [[label, fmt_ms(r.get(key)), cpu(cpu_key)] for label, key, cpu_key in OVERHEAD_ROWS],
    )
    print_phases(
        "Where a request's time goes (server timers; client and server on CLOCK_MONOTONIC)", r["phases"]
    )

    def value(key: str) -> str:
        cpu_ms = r.get(key.replace("_ms", "_cpu_ms"))
        return f"{fmt_ms(r[key])} ms" + (f" (server CPU {cpu_ms['median']:.1f})" if cpu_ms else "")

    def judged(key: str, goal_ms: float) -> str:
        return verdict(r[key], goal_ms, r.get(key.replace("_ms", "_cpu_ms")))

    core = "overhead_without_png_nsfw_ms"
    ctx.goals += [
        goal_row(
            f"API overhead per job, {SIZE}² (request − engine call)",
            value("overhead_ms"),
            f"≤ {GOAL_OVERHEAD_MS:.0f} ms",
            judged("overhead_ms", GOAL_OVERHEAD_MS),
        ),
        goal_row(
            "API overhead without PNG encode and NSFW check",
            value(core),
            f"≤ {GOAL_CORE_MS:.0f} ms",
            judged(core, GOAL_CORE_MS),
        ),
        goal_row(f"PNG encode in the job, {SIZE}²", value("png_ms"), "info", "–"),
        goal_row(f"NSFW check in the job, {SIZE}²", value("nsfw_ms"), "info", "–"),
        goal_row(
            "request − paired direct engine call (noisier)",
            value("request_minus_direct_engine_ms"),
            "info",
            "–",
        ),
    ]


def zipf_trace(requests: int, distinct: int, exponent: float, seed: int) -> list[int]:
    """`requests` draws of items 0..distinct-1 with probability ∝ 1 / (rank + 1) ** exponent."""
    weights = [1 / (rank + 1) ** exponent for rank in range(distinct)]
    return random.Random(seed).choices(range(distinct), weights=weights, k=requests)


def measure_cache(ctx: Context) -> None:
    """Hit latency: the overhead measurement's requests again (or fresh ones); hit rate: a trace."""
    bodies = ctx.overhead_bodies[: ctx.args.hits]
    if len(bodies) < ctx.args.hits:  # run without the overhead measurement: make the entries now
        for index in range(len(bodies), ctx.args.hits):
            body = request_body(SEED_BASE["overhead"] + index)
            ctx.api.generate(body)
            bodies.append(body)
    before = ctx.api.cache_counters()
    hits: list[Sample] = []
    for _ in range(ctx.args.hit_rounds):
        hits += [ctx.api.generate(body) for body in bodies]
    after = ctx.api.cache_counters()
    counted_hits = after["hit"] - before["hit"]
    ran_a_job = [s for s in hits if s.first("engine") is not None or s.first("event:started") is not None]
    hit_latency = ms_summary([s.total for s in hits])
    hit_cpu = ms_summary([s.server_cpu for s in hits])
    c.log(
        f"cache hits: {len(hits)} requests, {counted_hits:.0f} counted as hits, "
        f"median {hit_latency['median']:.1f} ms"
    )

    trace = zipf_trace(ctx.args.trace_requests, ctx.args.trace_distinct, ctx.args.zipf, seed=5)
    before = ctx.api.cache_counters()
    trace_samples: list[Sample] = []
    started = time.monotonic()
    for index, item in enumerate(trace):
        body = request_body(SEED_BASE["trace"] + item, prompt=f"{c.PROMPT}, variation {item}")
        trace_samples.append(ctx.api.generate(body))
        if (index + 1) % 25 == 0:
            c.log(f"trace {index + 1}/{len(trace)}, load {c.load_average()[0]:.2f}")
    after = ctx.api.cache_counters()
    trace_hits, trace_misses = after["hit"] - before["hit"], after["miss"] - before["miss"]
    distinct_seen = len(set(trace))
    hit_rate = trace_hits / max(1.0, trace_hits + trace_misses)
    ideal = 1 - distinct_seen / len(trace)
    trace_hit_samples = [s for s in trace_samples if s.first("engine") is None]
    result = {
        "hit_requests": len(hits),
        "hits_counted_by_metrics": counted_hits,
        "hit_requests_that_ran_a_job": len(ran_a_job),
        "hit_latency_ms": hit_latency,
        "hit_server_cpu_ms": hit_cpu,
        "hit_response_bytes": median_int([s.response_bytes for s in hits]),
        "hit_phases": phase_table(hits, HIT_PHASES),
        "trace": {
            "requests": len(trace),
            "distinct_prompts": ctx.args.trace_distinct,
            "distinct_drawn": distinct_seen,
            "zipf_exponent": ctx.args.zipf,
            "hits": trace_hits,
            "misses": trace_misses,
            "hit_rate": hit_rate,
            "ideal_hit_rate": ideal,
            "hit_latency_ms": ms_summary([s.total for s in trace_hit_samples]) if trace_hit_samples else None,
            "duration_s": time.monotonic() - started,
        },
        "load_average_after": c.load_average(),
    }
    ctx.results["cache"] = result
    c.print_table(
        "Result cache",
        ["measure", "value"],
        [
            [
                f"hit latency: {len(hits)} repeated seeded requests ({len(bodies)} × {ctx.args.hit_rounds})",
                f"{fmt_ms(hit_latency)} ms (server CPU {hit_cpu['median']:.1f} ms)",
            ],
            ["  counted as hits by /metrics; of them ran a job", f"{counted_hits:.0f}; {len(ran_a_job)}"],
            ["  response size", f"{result['hit_response_bytes'] / 1e6:.2f} MB"],
            [
                f"trace: {len(trace)} requests, {ctx.args.trace_distinct} seeded prompts, "
                f"Zipf s={ctx.args.zipf}",
                f"hit rate {hit_rate:.1%} ({trace_hits:.0f} hits, {trace_misses:.0f} misses)",
            ],
            [
                f"  ideal for this trace (1 − {distinct_seen} distinct drawn / {len(trace)})",
                f"{ideal:.1%}",
            ],
            ["  latency of the trace's hits", f"{fmt_ms(result['trace']['hit_latency_ms'])} ms"],
        ],
    )
    print_phases("Where a cache hit's time goes", result["hit_phases"])
    ctx.goals += [
        goal_row(
            "cache hit latency (sync generate, 512², seeded)",
            f"{fmt_ms(hit_latency)} ms (server CPU {hit_cpu['median']:.1f})",
            f"≤ {GOAL_HIT_MS:.0f} ms",
            verdict(hit_latency, GOAL_HIT_MS),
        ),
        goal_row(
            f"cache hit rate, trace {len(trace)} req / {ctx.args.trace_distinct} prompts "
            f"(Zipf {ctx.args.zipf})",
            f"{hit_rate:.1%} (ideal {ideal:.1%})",
            f"> {GOAL_HIT_RATE:.0%} (spec)",
            "met" if hit_rate > GOAL_HIT_RATE else "missed",
        ),
    ]


def measure_units(ctx: Context) -> None:
    """The worker's functions timed directly, in this process, on images the service generated."""
    from PIL import Image

    from fimum_ai.images.cache import perceptual_hash
    from fimum_ai.images.results import ImageMetadata
    from fimum_ai.images.safety import SafetyService
    from fimum_ai.images.storage import ImageStore, png_bytes, thumbnail_jpeg
    from fimum_ai.settings import load_settings

    images: dict[int, Any] = {}
    metas: dict[int, Any] = {}
    for size in (512, 1024):
        sample = ctx.api.generate(request_body(SEED_BASE["units"] + size, size=size))
        item = sample.body["images"][0]
        images[size] = Image.open(io.BytesIO(base64.b64decode(item["image_base64"]))).convert("RGB")
        metas[size] = ImageMetadata.model_validate(item["metadata"])
        c.log(f"units: {size}² image generated through the API ({sample.total:.1f} s)")
    for name in [n for n in os.environ if n.startswith(("FIMUM_", "IMAGE_"))]:
        del os.environ[name]
    os.environ.update({k: v for k, v in ctx.api.env.items() if k.startswith(("FIMUM_", "IMAGE_"))})
    safety = SafetyService(load_settings())
    if safety.image_checker is None:
        raise RuntimeError("NudeNet is not installed: the NSFW check cannot be measured")
    store_dir = Path(tempfile.mkdtemp(prefix="store-", dir=ctx.api.workdir))
    store = ImageStore(store_dir)
    functions: dict[str, Callable[[], object]] = {}
    for size in (512, 1024):
        image, meta = images[size], metas[size]
        functions[f"thumbnail {size}²"] = functools.partial(thumbnail_jpeg, image)
        functions[f"NSFW check {size}²"] = functools.partial(safety.check_image, "bench", image)
        functions[f"PNG encode {size}² (compress_level 1, as stored)"] = functools.partial(
            png_bytes, image, meta, compress_level=1
        )
        functions[f"pHash {size}²"] = functools.partial(perceptual_hash, image)
        functions[f"ImageStore.write {size}² (PNG + thumbnail + metadata, fsync)"] = functools.partial(
            store.write, "bench", f"unit-{size}", image, meta
        )
    for function in functions.values():  # warm-up (NudeNet session, imports)
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    cpu: dict[str, list[float]] = {name: [] for name in functions}
    names = list(functions)
    for repeat in range(ctx.args.unit_repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            with c.timed() as elapsed:
                functions[name]()
            times[name].append(elapsed.wall)
            cpu[name].append(elapsed.cpu)
    shutil.rmtree(store_dir, ignore_errors=True)
    result: dict[str, Any] = {
        name: {"ms": ms_summary(times[name]), "cpu_ms": ms_summary(cpu[name])} for name in names
    }
    result |= {
        "repeats": ctx.args.unit_repeats,
        "png_bytes": {str(s): len(png_bytes(images[s], metas[s], compress_level=1)) for s in (512, 1024)},
        "load_average_after": c.load_average(),
    }
    ctx.results["units"] = result
    c.print_table(
        f"The worker's functions, direct calls in this process ({ctx.args.unit_repeats} runs each, "
        "interleaved)",
        ["function", "wall ms median [q1–q3]", "process CPU ms median"],
        [[name, fmt_ms(result[name]["ms"]), f"{result[name]['cpu_ms']['median']:.1f}"] for name in names],
    )
    thumb = result["thumbnail 1024²"]
    ctx.goals.append(
        goal_row(
            "thumbnail from a 1024² image",
            f"{fmt_ms(thumb['ms'])} ms (CPU {thumb['cpu_ms']['median']:.1f})",
            f"≤ {GOAL_THUMBNAIL_MS:.0f} ms",
            verdict(thumb["ms"], GOAL_THUMBNAIL_MS, thumb["cpu_ms"]),
        )
    )
    for size in (512, 1024):
        nsfw = result[f"NSFW check {size}²"]
        spec = "spec met" if nsfw["ms"]["median"] < SPEC_NSFW_MS else "spec missed"
        ctx.goals.append(
            goal_row(
                f"NSFW check per image (NudeNet, CPU), {size}²",
                f"{fmt_ms(nsfw['ms'])} ms (CPU {nsfw['cpu_ms']['median']:.1f})",
                f"≤ {GOAL_NSFW_MS:.0f} ms (spec < {SPEC_NSFW_MS:.0f})",
                f"{verdict(nsfw['ms'], GOAL_NSFW_MS, nsfw['cpu_ms'])}; {spec}",
            )
        )


# ==================================================================================================
# Dynamic batching (FR-IMG-003): "4 compatible jobs batched vs one by one (throughput ratio)".
def measure_batching(ctx: Context) -> None:
    """The engine in this process (tiny base model, 512², 20 steps): four compatible jobs (own
    prompts and seeds) through one `text_to_image_batch` call against the same four jobs through
    `text_to_image` one after another, in alternating order each round. Throughput ratio = one by
    one / batched (paired per round). Also the largest pixel difference between a job's batched
    image and its solo run (batched matrix products may round differently)."""
    from fimum_ai.images.batching import BatchItem

    rounds = ctx.args.batch_rounds
    config = c.image_config(generation={"batch_size": 4}, hardware={"device": "cpu"})
    engine = c.load_engine(c.tiny_models(), config, device="cpu")
    jobs = [
        c.generate_params(SIZE, 1, STEPS, SEED_BASE["batching"] + index).model_copy(
            update={"prompt": f"{c.PROMPT}, variation {index}"}
        )
        for index in range(4)
    ]
    engine.text_to_image_batch([BatchItem(job) for job in jobs])  # warm-up: first calls of each shape
    engine.text_to_image(jobs[0])
    solo_s: list[float] = []
    batched_s: list[float] = []
    solo_cpu: list[float] = []
    batched_cpu: list[float] = []
    difference = 0
    for index in range(rounds):
        for variant in ("solo", "batched") if index % 2 == 0 else ("batched", "solo"):
            wall, cpu = time.perf_counter(), time.process_time()
            if variant == "solo":
                solo = [engine.text_to_image(job).images[0] for job in jobs]
                solo_s.append(time.perf_counter() - wall)
                solo_cpu.append(time.process_time() - cpu)
            else:
                outcomes = engine.text_to_image_batch([BatchItem(job) for job in jobs])
                batched_s.append(time.perf_counter() - wall)
                batched_cpu.append(time.process_time() - cpu)
                batched = [o.images[0] for o in outcomes if not isinstance(o, Exception)]
        difference = max(difference, c.max_pixel_difference(solo, batched))
        c.log(
            f"batching round {index + 1}/{rounds}: "
            f"one by one {solo_s[-1]:.2f} s, one batch {batched_s[-1]:.2f} s"
        )
    engine.unload()
    ratio = c.paired_ratios(solo_s, batched_s)
    ctx.results["batching"] = {
        "jobs": 4,
        "size": SIZE,
        "steps": STEPS,
        "device": engine.device,
        "one_by_one_s": c.summarize(solo_s).as_dict(),
        "batched_s": c.summarize(batched_s).as_dict(),
        "one_by_one_cpu_s": c.summarize(solo_cpu).as_dict(),
        "batched_cpu_s": c.summarize(batched_cpu).as_dict(),
        "throughput_ratio": ratio.as_dict(),
        "max_pixel_difference": difference,
    }
    rows = []
    for label, wall_s, cpu_s in (("one by one", solo_s, solo_cpu), ("one batch", batched_s, batched_cpu)):
        spread = c.summarize(wall_s)
        rows.append(
            [
                label,
                f"{spread.median:.2f} [{spread.q1:.2f}–{spread.q3:.2f}]",
                f"{statistics.median(cpu_s):.2f}",
            ]
        )
    c.print_table(
        "Dynamic batching: 4 compatible jobs (tiny model, 512², 20 steps, CPU)",
        ["variant", "seconds median [q1–q3]", "CPU s median"],
        rows,
    )
    ctx.goals.append(
        goal_row(
            "dynamic batching: 4 compatible jobs, throughput batched / one by one",
            f"{ratio.median:.2f}× [{ratio.q1:.2f}–{ratio.q3:.2f}] (max pixel difference {difference})",
            "info (> 1 = batching helps)",
            "–",
        )
    )


# ==================================================================================================


@dataclass(frozen=True)
class Measurement:
    function: Callable[[Context], None]
    needs_server: bool
    help: str


MEASUREMENTS: dict[str, Measurement] = {
    "overhead": Measurement(measure_overhead, True, "API overhead per job vs the engine call (512²)"),
    "cache": Measurement(measure_cache, True, "cache hit latency and hit rate on a Zipf trace"),
    "units": Measurement(measure_units, True, "thumbnail, NSFW check, PNG encode, pHash, store write"),
    "batching": Measurement(
        measure_batching, False, "dynamic batching: 4 compatible jobs, engine throughput ratio"
    ),
}


# Counts: (quick, full, what). --quick takes the first.
COUNTS: dict[str, tuple[int, int, str]] = {
    "repeats": (8, 40, "overhead: API request / direct engine call pairs"),
    "hits": (8, 20, "cache: distinct cached requests repeated"),
    "hit_rounds": (2, 3, "cache: times each of them is repeated"),
    "trace_requests": (60, 200, "cache: requests in the trace"),
    "trace_distinct": (10, 30, "cache: distinct seeded prompts in the trace"),
    "unit_repeats": (15, 60, "units: timed runs per function"),
    "batch_rounds": (2, 6, "batching: rounds of 4 jobs one by one + 4 jobs batched"),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="the smaller counts below (~2.5 min instead of ~8)"
    )
    parser.add_argument(
        "--only", default=",".join(MEASUREMENTS), help=f"comma-separated subset of: {', '.join(MEASUREMENTS)}"
    )
    for key, (quick, full, what) in COUNTS.items():
        option = "--" + key.replace("_", "-")
        parser.add_argument(option, type=int, default=None, help=f"{what} (default {full}; quick {quick})")
    parser.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of the trace (default 1.0)")
    parser.add_argument("--keep", action="store_true", help="keep the server's data folder and log")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for key, (quick, full, _) in COUNTS.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in args.only if name not in MEASUREMENTS]
    if unknown:
        parser.error(f"unknown measurement(s) {', '.join(unknown)}; choose from {', '.join(MEASUREMENTS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve is not None:
        return serve(args.serve)
    machine = c.machine_info()
    c.log(f"load average before: {machine['load_average']}")
    workdir = Path(tempfile.mkdtemp(prefix="fimum-image-bench-"))
    payload: dict[str, Any] = {
        "machine": machine,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {k: v for k, v in vars(args).items() if k != "serve"},
        "tier": TIER,
        "sources_at_start": source_digests(),
    }
    ctx = Context(args, None)
    try:
        if any(MEASUREMENTS[name].needs_server for name in args.only):
            ctx.service = Service(workdir)
            warm_up(ctx)
            payload["server"] = ctx.api.info() | {"timed": ctx.api.patched, "not_timed": ctx.api.missing}
            c.log(
                f"engine on {payload['server']['device']} ({payload['server']['precision']}), "
                f"torch threads {payload['server']['torch_threads']}"
            )
        for name in args.only:
            c.log(f"measuring {name}")
            MEASUREMENTS[name].function(ctx)
            payload |= {"results": ctx.results, "goals": ctx.goals}
            c.write_json(NAME, payload)  # after every measurement: a later failure keeps the earlier ones
    except BaseException:
        if ctx.service is not None:
            c.log(f"server log tail:\n{ctx.service.log_tail()}")
        raise
    finally:
        if ctx.service is not None:
            ctx.service.stop()
        if args.keep:
            c.log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    payload["load_average_after"] = c.load_average()
    payload["sources_at_end"] = source_digests()
    if payload["sources_at_end"] != payload["sources_at_start"]:
        c.log("note: sources in src/ changed during the run (the server ran the ones read at its start)")
    payload |= {"results": ctx.results, "goals": ctx.goals}
    c.print_table(
        f"Goals (load average before {machine['load_average'][0]:.2f}, "
        f"after {payload['load_average_after'][0]:.2f})",
        ["measure", "value", "goal", "verdict"],
        [[g["measure"], g["value"], g["goal"], g["verdict"]] for g in ctx.goals],
    )
    c.log(f"wrote {c.write_json(NAME, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
