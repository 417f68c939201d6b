"""Authenticated API throughput: `GET /api/v1/me` with a bearer JWT against bare `GET /healthz`.

One `fimum serve` process (one uvicorn worker, distributed mode: PostgreSQL + Redis on 127.0.0.1,
a fresh schema and Redis prefix, both removed at the end), load from `wrk` in a separate process.
Per request `/api/v1/me` does what every authenticated call does (JWT check, with the server's
cache of decoded tokens; revocation check, one Redis MGET; user from the in-process 2 s cache;
per-user rate limit, one Redis script call, with the free tier's limit raised so that it runs on
every request and never trips) plus its own work (today's quota counters from Redis, a JSON body).
`/healthz` is the same server without any of it. For information only: the same `/me` with a
personal API key (`fim_...`: a database lookup per request); a trivial async FastAPI endpoint in a
second uvicorn process (the field notes' "≈ 12,700 req/s" reference, on this machine now); and a
what-if server (`serve_what_if`: `fimum serve` with cheap fixes applied to its app object in this
file, src/ untouched) for `/me` and for `/healthz`'s function served by an `async def` route.

After a warm-up, wrk settings (threads × connections) are tried on `/healthz` and the one with
the highest bare throughput is kept; then the variants run interleaved (A B … F, F … B A, ...).
`auth/bare` is the ratio of the median requests/s and, beside it, the median [min–max] of paired
ratios (round i of auth over round i of bare: neighbours in time, so slow drifts of the machine's
load cancel). CPU per request of the server process (user + system, all threads) and of Redis
(`INFO cpu`) over the requests wrk completed are reported too: they move less than requests/s
when other processes compete for the cores. Any non-2xx response or socket error makes a run
invalid and the benchmark fails. The main runs use FIMUM_LOG_LEVEL=WARNING (no per-request access
log); a second server at the default INFO level (an access-log line per request, JSON on stderr,
into a file) is measured after them.

The goal (issue): authenticated ≥ 40 % of the bare throughput and ≥ 5,000 requests/s. When it is
missed, or with --profile, the authenticated path is taken apart in this process, on the same
settings and the same Redis: each piece timed alone (JWT decode, revocation MGET, rate-limit hit,
quota report), then the whole ASGI app called directly (no HTTP, no socket) as shipped and with
one piece at a time removed or changed (interleaved), and a cProfile of the `/me` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common as c

GOAL_RATIO = 0.40
GOAL_RPS = 5000.0
POSTGRES_URL = os.environ.get("FIMUM_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FIMUM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
JWT_SECRET = "bench-only-jwt-secret-0123456789abcdefghijklmnop"
EMAIL = "bench@example.com"
RATE_LIMIT = 100_000_000  # the free tier's requests per minute: exercised on every request, never trips
VARIANTS = ("bare", "auth", "api_key", "trivial", "whatif_bare", "whatif_auth")
LABELS = {
    "bare": "GET /healthz (no credentials)",
    "auth": "GET /api/v1/me (bearer JWT)",
    "api_key": "GET /api/v1/me (API key; info)",
    "trivial": "trivial async FastAPI endpoint (other process; info)",
    "whatif_bare": "what-if server: /healthz's function as async def",
    "whatif_auth": "what-if server: /me (JWT), async auth deps + quota MGET",
}
WHAT_IF_HEALTHZ = "/bench/healthz-async"
PATHS = {
    "bare": "/healthz",
    "auth": "/api/v1/me",
    "api_key": "/api/v1/me",
    "trivial": "/healthz",
    "whatif_bare": WHAT_IF_HEALTHZ,
    "whatif_auth": "/api/v1/me",
}
JWT_VARIANTS = ("auth", "whatif_auth")
SERVER_PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "redis",
    "hiredis",
    "limits",
    "pyjwt",
)
SOURCES = (
    "app.py",
    "limits.py",
    "accounts/auth.py",
    "accounts/service.py",
    "accounts/revocation.py",
    "accounts/routes.py",
    "accounts/tokens.py",
)
# The reference: what the field notes measured ("a trivial FastAPI endpoint"), same uvicorn defaults.
TRIVIAL_APP = """
import sys
import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


# --------------------------------------------------------------------------------------------------
# wrk


@dataclass
class WrkRun:
    variant: str
    config: str
    requests_per_s: float
    requests: int
    duration_s: float
    latency_ms: dict[str, float]
    non_2xx: int
    socket_errors: dict[str, int]
    server_cpu_s: float
    redis_cpu_s: float
    wrk_cpu_s: float
    load_average: tuple[float, float, float]

    @property
    def server_cpu_us_per_request(self) -> float:
        return 1e6 * self.server_cpu_s / max(1, self.requests)

    @property
    def redis_cpu_us_per_request(self) -> float:
        return 1e6 * self.redis_cpu_s / max(1, self.requests)

    def as_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "config": self.config,
            "requests_per_s": self.requests_per_s,
            "requests": self.requests,
            "duration_s": self.duration_s,
            "latency_ms": self.latency_ms,
            "non_2xx": self.non_2xx,
            "socket_errors": self.socket_errors,
            "server_cpu_s": self.server_cpu_s,
            "server_cpu_us_per_request": self.server_cpu_us_per_request,
            "redis_cpu_s": self.redis_cpu_s,
            "redis_cpu_us_per_request": self.redis_cpu_us_per_request,
            "wrk_cpu_s": self.wrk_cpu_s,
            "load_average": self.load_average,
        }


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unknown wrk duration {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/sec, request count and duration, latency percentiles, errors from `wrk --latency`."""
    rps = re.search(r"^Requests/sec:\s*([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", output, re.MULTILINE)
    if not rps or not total:
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    latency = {
        f"p{pct}": _to_ms(value)
        for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", output, re.MULTILINE)
    }
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    kinds = ("connect", "read", "write", "timeout")
    errors = dict(zip(kinds, map(int, sockets.groups()), strict=True)) if sockets else dict.fromkeys(kinds, 0)
    return {
        "requests_per_s": float(rps.group(1)),
        "requests": int(total.group(1)),
        "duration_s": _to_ms(total.group(2)) / 1e3,
        "latency_ms": latency,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors,
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class RedisCpu:
    """Redis's own CPU seconds (`INFO cpu`, the whole server: other users of it count too)."""

    def __init__(self) -> None:
        import redis

        self.client = redis.Redis.from_url(REDIS_URL)

    def __call__(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def close(self) -> None:
        self.client.close()


class InvalidRun(RuntimeError):
    """A run with any non-2xx response or socket error: its requests/s would mean nothing."""


# --------------------------------------------------------------------------------------------------
# The servers under test


@dataclass
class Credentials:
    user_id: str
    access_token: str
    api_key: str

    def header(self, variant: str) -> str | None:
        if variant in JWT_VARIANTS:
            return f"Bearer {self.access_token}"
        if variant == "api_key":
            return f"Bearer {self.api_key}"
        return None


@dataclass
class Environment:
    """A fresh schema, Redis prefix and data folder; `env` is what the server and the CLI get."""

    schema: str
    prefix: str
    workdir: Path
    env: dict[str, str]

    @classmethod
    def create(cls) -> Environment:
        tag = uuid.uuid4().hex[:12]
        workdir = Path(tempfile.mkdtemp(prefix="fimum-auth-bench-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FIMUM_", "IMAGE_"))}
        env.update(
            {
                "FIMUM_CONFIG": str(c.REPO_ROOT / "config" / "models.yaml"),
                "FIMUM_MODE": "distributed",
                "FIMUM_DATABASE_URL": POSTGRES_URL,
                "FIMUM_DATABASE_SCHEMA": f"bench_{tag}",
                "FIMUM_REDIS_URL": REDIS_URL,
                "FIMUM_REDIS_PREFIX": f"fimum-bench-{tag}:",
                "FIMUM_JWT_SECRET": JWT_SECRET,
                "FIMUM_LOG_LEVEL": "WARNING",
                "FIMUM_TIERS__FREE__REQUESTS_PER_MINUTE": str(RATE_LIMIT),
                "FIMUM_DATA_DIR": str(workdir / "data"),
                "FIMUM_DEMO_MODEL_PATH": str(workdir / "no-demo"),
                "IMAGE_MODEL_BASE_PATH": str(workdir / "no-sdxl-base"),
                "IMAGE_MODEL_REFINER_PATH": str(workdir / "no-sdxl-refiner"),
                "IMAGE_MODEL_UPSCALER_PATH": str(workdir / "no-sdxl-upscaler"),
                "IMAGE_DEVICE": "cpu",
            }
        )
        return cls(env["FIMUM_DATABASE_SCHEMA"], env["FIMUM_REDIS_PREFIX"], workdir, env)

    def apply_here(self) -> None:
        """The same settings in this process (minting the token, the attribution)."""
        for name in [n for n in os.environ if n.startswith(("FIMUM_", "IMAGE_"))]:
            del os.environ[name]
        os.environ.update({k: v for k, v in self.env.items() if k.startswith(("FIMUM_", "IMAGE_"))})

    def cleanup(self) -> None:
        import redis
        from sqlalchemy import create_engine, text

        engine = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.begin() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        finally:
            engine.dispose()
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"*{self.prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def fimum(env: Environment, *arguments: str) -> str:
    command = [str(Path(sys.executable).parent / "fimum"), *arguments]
    done = subprocess.run(command, env=env.env, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:])} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def make_credentials(env: Environment) -> Credentials:
    """The user and its API key through the operator CLI; the access token from the sessions
    service (what a sign-in ends with), in this process with the same settings."""
    fimum(env, "users", "create", EMAIL)
    users = json.loads(fimum(env, "users", "list", "--json"))
    user_id = next(u["id"] for u in users if u["email"] == EMAIL)
    key_output = fimum(env, "users", "api-key", "create", EMAIL, "--name", "bench")
    api_key = next(line.strip() for line in key_output.splitlines() if line.strip().startswith("fim_"))

    async def mint() -> str:
        import logging

        from fimum_ai.accounts.service import Accounts
        from fimum_ai.db import Database
        from fimum_ai.settings import load_settings

        logging.getLogger("fimum_ai").setLevel(logging.ERROR)  # the console-delivery warning
        settings = load_settings()
        database = Database(settings)
        accounts = Accounts(settings, database)
        try:
            return (await accounts.sessions.start(user_id, user_agent="auth_bench")).access_token
        finally:
            await accounts.stop()
            database.dispose()

    env.apply_here()
    return Credentials(user_id, asyncio.run(mint()), api_key)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A server in its own process, stdout and stderr (the logs) into a file; ready at /healthz."""

    def __init__(self, name: str, command: Sequence[str], env: dict[str, str], workdir: Path) -> None:
        import psutil

        self.name = name
        self.port = free_port()
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [*command, str(self.port)], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.ps = psutil.Process(self.process.pid)
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()
        c.log(f"{name}: pid {self.process.pid} on {self.url}")

    @classmethod
    def fimum(cls, env: Environment, log_level: str) -> Server:
        command = [str(Path(sys.executable).parent / "fimum"), "serve", "--port"]
        return cls(
            f"fimum-{log_level.lower()}", command, {**env.env, "FIMUM_LOG_LEVEL": log_level}, env.workdir
        )

    @classmethod
    def what_if(cls, env: Environment) -> Server:
        """`fimum serve` as shipped but for the what-ifs of `serve_what_if` (this file)."""
        command = [sys.executable, str(Path(__file__).resolve()), "--serve-what-if"]
        return cls("what-if", command, {**env.env, "FIMUM_LOG_LEVEL": "WARNING"}, env.workdir)

    @classmethod
    def trivial(cls, env: Environment) -> Server:
        return cls("trivial", [sys.executable, "-c", TRIVIAL_APP], env.env, env.workdir)

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}); see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer /healthz within {timeout_s:.0f} s")

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def get(self, path: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.url + path)
        if authorization:
            request.add_header("Authorization", authorization)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()

    def log_lines(self) -> int:
        self._log.flush()
        with self.log_path.open("rb") as handle:
            return sum(1 for _ in handle)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@dataclass
class Bench:
    """Where each variant is served, with what credentials, and how wrk is run."""

    servers: dict[str, Server]
    credentials: Credentials
    redis_cpu: RedisCpu

    def check(self, variant: str) -> None:
        """One request outside wrk: 200; for /me also the bench user's body and the rate limiter's
        headers at the raised limit (proof that the limiter runs on this path)."""
        status, headers, body = self.servers[variant].get(PATHS[variant], self.credentials.header(variant))
        if status != 200:
            raise InvalidRun(f"{variant}: {PATHS[variant]} answered {status}: {body[:300]!r}")
        if variant not in (*JWT_VARIANTS, "api_key"):
            return
        data = json.loads(body)
        expected_via = "jwt" if variant in JWT_VARIANTS else "api_key"
        if data["user"]["email"] != EMAIL or data["auth"]["via"] != expected_via:
            raise InvalidRun(f"{variant}: unexpected body {data}")
        if headers.get("x-ratelimit-limit") != str(RATE_LIMIT):
            raise InvalidRun(f"{variant}: the rate limiter did not run (headers {headers})")

    def wrk(self, variant: str, config: str, duration_s: float) -> WrkRun:
        server = self.servers[variant]
        threads, connections = config.split("x")
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", "--latency"]
        header = self.credentials.header(variant)
        if header:
            command += ["-H", f"Authorization: {header}"]
        command.append(server.url + PATHS[variant])
        load = c.load_average()
        before = server.cpu_s(), self.redis_cpu(), _children_cpu()
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=duration_s + 60)
        after = server.cpu_s(), self.redis_cpu(), _children_cpu()
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
        server_cpu, redis_cpu, wrk_cpu = (a - b for a, b in zip(after, before, strict=True))
        run = WrkRun(
            variant,
            config,
            **parse_wrk(done.stdout),
            server_cpu_s=server_cpu,
            redis_cpu_s=redis_cpu,
            wrk_cpu_s=wrk_cpu,
            load_average=load,
        )
        if run.non_2xx or sum(run.socket_errors.values()):
            raise InvalidRun(
                f"{variant} ({config}, {duration_s:g} s): {run.non_2xx} non-2xx responses and socket "
                f"errors {run.socket_errors} in {run.requests} requests\n{done.stdout}"
            )
        c.log(
            f"{variant:8s} {config:5s} {run.requests_per_s:7.0f} req/s  p50 {run.latency_ms['p50']:.2f} ms  "
            f"CPU µs/req server {run.server_cpu_us_per_request:.0f} redis {run.redis_cpu_us_per_request:.0f}"
            f"  load {load[0]:.2f}"
        )
        return run


# --------------------------------------------------------------------------------------------------
# Measurement plan


@dataclass
class Measurement:
    log_level: str
    config: str
    runs: dict[str, list[WrkRun]] = field(default_factory=dict)
    log_lines_per_request: float | None = None

    def rps(self, variant: str) -> list[float]:
        return [run.requests_per_s for run in self.runs.get(variant, [])]

    def ratio_of_medians(self, variant: str, baseline: str = "bare") -> float:
        return statistics.median(self.rps(variant)) / statistics.median(self.rps(baseline))

    def paired(self, variant: str, baseline: str = "bare") -> c.Summary:
        return c.paired_ratios(self.rps(variant), self.rps(baseline))

    def as_dict(self) -> dict[str, Any]:
        variants: dict[str, Any] = {}
        for variant, runs in self.runs.items():
            entry: dict[str, Any] = {
                "label": LABELS[variant],
                "requests_per_s": c.summarize(self.rps(variant)).as_dict(),
                "server_cpu_us_per_request": c.summarize(
                    [r.server_cpu_us_per_request for r in runs]
                ).as_dict(),
                "redis_cpu_us_per_request": c.summarize([r.redis_cpu_us_per_request for r in runs]).as_dict(),
                "latency_ms_median_of_runs": {
                    key: statistics.median(run.latency_ms[key] for run in runs) for key in runs[0].latency_ms
                },
                "runs": [run.as_dict() for run in runs],
            }
            if variant != "bare":
                entry["ratio_of_medians_to_bare"] = self.ratio_of_medians(variant)
                entry["paired_ratio_to_bare"] = self.paired(variant).as_dict()
            variants[variant] = entry
        return {
            "log_level": self.log_level,
            "wrk": self.config,
            "log_lines_per_request": self.log_lines_per_request,
            "variants": variants,
        }


def interleaved(
    bench: Bench, variants: Sequence[str], config: str, rounds: int, duration_s: float, log_level: str
) -> Measurement:
    measurement = Measurement(log_level, config, {v: [] for v in variants})
    for index in range(rounds):
        for variant in variants if index % 2 == 0 else list(reversed(variants)):
            measurement.runs[variant].append(bench.wrk(variant, config, duration_s))
    for variant in variants:
        bench.check(variant)
    return measurement


def warm_up(bench: Bench, variants: Sequence[str], config: str, duration_s: float) -> None:
    for variant in variants:
        bench.check(variant)
        bench.wrk(variant, config, duration_s)


def tune(bench: Bench, configs: Sequence[str], duration_s: float) -> tuple[str, dict[str, list[float]]]:
    """Bare throughput per wrk setting, two passes in opposite orders; the best median wins."""
    results: dict[str, list[float]] = {config: [] for config in configs}
    for order in (list(configs), list(reversed(configs))):
        for config in order:
            results[config].append(bench.wrk("bare", config, duration_s).requests_per_s)
    return max(configs, key=lambda config: statistics.median(results[config])), results


# --------------------------------------------------------------------------------------------------
# In-process attribution of the authenticated path (--profile, or when the goal is missed)


async def _per_call(fn: Callable[[], Awaitable[object]], n: int) -> dict[str, float]:
    """µs of wall time and of this process's CPU time per call, n sequential calls after 100."""
    for _ in range(min(100, n)):
        await fn()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        await fn()
    return {
        "wall_us": 1e6 * (time.perf_counter() - wall) / n,
        "cpu_us": 1e6 * (time.process_time() - cpu) / n,
    }


class _Asgi:
    """Calls the ASGI app directly (no HTTP parsing, no socket): what the app itself costs."""

    def __init__(self, app: Any, path: str, authorization: str | None) -> None:
        self.app = app
        headers = [(b"host", b"bench"), (b"user-agent", b"auth_bench")]
        if authorization:
            headers.append((b"authorization", authorization.encode()))
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
        }
        self.status = 0

    async def _receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]

    async def __call__(self) -> None:
        self.status = 0
        await self.app({**self.scope, "state": {}}, self._receive, self._send)
        if self.status != 200:
            raise InvalidRun(f"in-process {self.scope['path']} answered {self.status}")


@contextmanager
def _patched(target: object, name: str, replacement: object) -> Iterator[None]:
    """An instance attribute shadowing the class's method for the block."""
    setattr(target, name, replacement)
    try:
        yield
    finally:
        delattr(target, name)


def _dependants(routes: Sequence[Any]) -> Iterator[Any]:
    """The resolved dependency trees of every route, included routers too (FastAPI ≥ 0.16x keeps
    an included router's routes as effective contexts with their own trees)."""
    for route in routes:
        if hasattr(route, "effective_candidates"):
            yield from _dependants(route.effective_candidates())
        if getattr(route, "dependant", None) is not None:
            yield route.dependant


@contextmanager
def _async_dependencies(app: Any) -> Iterator[None]:
    """What-if: auth.py's sync `get_accounts` and `current_principal` (FastAPI runs a sync
    dependency in its thread pool: one thread hop each per request) run as `async def` on the event
    loop, doing the same thing. Swapped in the routes' resolved dependency trees, in this process
    only (`app.dependency_overrides` would not do: FastAPI re-analyses an override's signature on
    every request, which costs more than the hop)."""
    from fimum_ai.accounts import auth

    def as_async(function: Callable[..., Any]) -> Callable[..., Any]:
        async def call(**values: Any) -> Any:
            return function(**values)

        return call

    replacements = {auth.get_accounts: as_async(auth.get_accounts)}
    replacements[auth.current_principal] = as_async(auth.current_principal)
    swapped: list[tuple[Any, Any]] = []

    def walk(dependant: Any) -> None:
        if dependant.call in replacements:
            swapped.append((dependant, dependant.call))
            dependant.call = replacements[dependant.call]
        for child in dependant.dependencies:
            walk(child)

    for dependant in _dependants(app.routes):
        walk(dependant)
    if not swapped:
        raise RuntimeError("no route depends on get_accounts/current_principal (FastAPI internals moved?)")
    try:
        yield
    finally:
        for dependant, original in swapped:
            dependant.call = original


def _quota_report_one_mget(accounts: Any) -> Callable[[str, str], Awaitable[Any]]:
    """What-if: QuotaService.report (limits.py) with one MGET for every kind instead of a GET per
    kind; the same result."""
    from fimum_ai.limits import QUOTA_KINDS, QuotaReport

    quotas = accounts.quotas
    store = quotas.store

    async def report(user_id: str, tier: str) -> dict[str, QuotaReport]:
        day = datetime.now(UTC).date()
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        values = await store.client.mget([store._key(user_id, kind, day) for kind in QUOTA_KINDS])
        reports = {}
        for kind, value in zip(QUOTA_KINDS, values, strict=True):
            limit, used = quotas.limit_for(tier, kind), int(value or 0)
            reports[kind] = QuotaReport(
                limit=None if limit < 0 else limit,
                used=used,
                remaining=None if limit < 0 else max(0, limit - used),
                resets_at=midnight,
            )
        return reports

    return report


def serve_what_if(port: int) -> int:
    """`fimum serve` (same settings, logging and uvicorn defaults) with the cheap fixes applied to
    this process's app object, src/ untouched: auth.py's sync dependencies as async, the quota
    report in one MGET, and /healthz's function also served by an async route."""
    from contextlib import ExitStack

    import uvicorn

    from fimum_ai.app import create_app
    from fimum_ai.logs import configure_logging, uvicorn_log_config
    from fimum_ai.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    _add_async_healthz(app)
    with ExitStack() as stack:
        stack.enter_context(_async_dependencies(app))
        stack.enter_context(
            _patched(app.state.accounts.quotas, "report", _quota_report_one_mget(app.state.accounts))
        )
        uvicorn.run(app, host="127.0.0.1", port=port, log_config=uvicorn_log_config())
    return 0


def _ablations(app: Any, accounts: Any) -> tuple[dict[str, Callable[[], Any]], dict[str, Any]]:
    """Ways to run `/me` in-process: as shipped, and with one piece removed or changed; and the
    dict where the caller puts the fixed quota report that "without the quota report" returns."""
    from contextlib import ExitStack, nullcontext

    from fimum_ai.limits import RateState

    async def not_revoked(**_: Any) -> bool:
        return False

    async def allowed(key: str, rate: Any, cost: int = 1) -> RateState:
        return RateState(True, RATE_LIMIT, RATE_LIMIT - 1, time.time() + 60)

    fixed: dict[str, Any] = {}

    async def fixed_report(user_id: str, tier: str) -> Any:
        return fixed["report"]

    report_one_mget = _quota_report_one_mget(accounts)

    def no_revocation() -> Any:
        return _patched(accounts.revocation, "is_revoked", not_revoked)

    def no_limit() -> Any:
        return _patched(accounts.limiter, "hit", allowed)

    def no_quota() -> Any:
        return _patched(accounts.quotas, "report", fixed_report)

    def async_deps() -> Any:
        return _async_dependencies(app)

    def everything() -> Any:
        stack = ExitStack()
        for part in (no_revocation, no_limit, no_quota, async_deps):
            stack.enter_context(part())
        return stack

    return {
        "/me as shipped": nullcontext,
        "/me without the revocation MGET": no_revocation,
        "/me without the rate-limit hit": no_limit,
        "/me without the quota report (2 GETs)": no_quota,
        "/me, quota report as one MGET (what-if)": lambda: _patched(
            accounts.quotas, "report", report_one_mget
        ),
        "/me, async get_accounts + current_principal (what-if)": async_deps,
        "/me without the 4 Redis calls, async dependencies": everything,
    }, fixed


async def _attribute(credentials: Credentials, n: int, reps: int) -> dict[str, Any]:
    from fimum_ai.app import create_app
    from fimum_ai.settings import load_settings

    app = create_app(load_settings())
    accounts = app.state.accounts
    token = credentials.access_token
    async with app.router.lifespan_context(app):
        claims = accounts.codec.decode(token, "access")
        principal = await accounts.authenticate(token)
        item = accounts.limiter.per_minute(RATE_LIMIT)
        pieces: dict[str, Callable[[], Awaitable[object]]] = {
            "JWT decode + verify, uncached (PyJWT HS256)": _sync(
                lambda: accounts.codec.decode(token, "access")
            ),
            "JWT from the decoded-token cache": _sync(lambda: accounts._decode_access(token)),
            "revocation check (Redis MGET)": lambda: accounts.revocation.is_revoked(
                jti=claims.jti, family_id=claims.family_id, user_id=claims.user_id, issued_at=claims.issued_at
            ),
            "user from the in-process cache": lambda: accounts.user(claims.user_id),
            "Accounts.authenticate (the 4 above)": lambda: accounts.authenticate(token),
            "rate-limit hit (Redis EVALSHA)": lambda: accounts.limiter.hit("user:" + principal.user_id, item),
            "quota report (/me only: 2 Redis GETs)": lambda: accounts.quotas.report(
                principal.user_id, principal.tier
            ),
            "Redis PING (one round trip, redis-py asyncio)": accounts.revocation._redis.ping,
        }
        timings = {name: await _per_call(fn, n) for name, fn in pieces.items()}

        ablations, fixed = _ablations(app, accounts)
        fixed["report"] = await accounts.quotas.report(principal.user_id, principal.tier)
        me = _Asgi(app, "/api/v1/me", credentials.header("auth"))
        plain = {
            "/healthz": _Asgi(app, "/healthz", None),
            "/healthz as async def (what-if)": _Asgi(app, _add_async_healthz(app), None),
            "trivial FastAPI app, async endpoint (reference)": _Asgi(_trivial_app(), "/healthz", None),
        }
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in [*plain, *ablations]}
        for _ in range(reps):  # interleaved
            for name, call in plain.items():
                samples[name].append(await _per_call(call, n))
            for name, variant in ablations.items():
                with variant():
                    samples[name].append(await _per_call(me, n))
        app_rows = {
            name: {
                "cpu_us": statistics.median(s["cpu_us"] for s in runs),
                "wall_us": statistics.median(s["wall_us"] for s in runs),
                "cpu_us_runs": [s["cpu_us"] for s in runs],
            }
            for name, runs in samples.items()
        }
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(n):
            await me()
        profiler.disable()
    return {
        "calls": n,
        "reps": reps,
        "pieces": timings,
        "app": app_rows,
        "profile": _profile_rows(profiler, n),
    }


async def _trivial_endpoint() -> dict[str, str]:
    return {"status": "ok"}


def _trivial_app() -> Any:
    """The reference server's app, in this process."""
    from fastapi import FastAPI

    app = FastAPI()
    app.add_api_route("/healthz", _trivial_endpoint, methods=["GET"])
    return app


def _add_async_healthz(app: Any) -> str:
    """What-if: the app's own /healthz function served by an `async def` route (a sync endpoint
    costs two thread-pool hops: the function, then FastAPI's validation of its response model).
    Added to this process's app object only, after every other route."""
    endpoint = next(route.endpoint for route in app.routes if getattr(route, "path", None) == "/healthz")

    async def healthz_async() -> dict[str, Any]:
        result: dict[str, Any] = endpoint()
        return result

    app.add_api_route(WHAT_IF_HEALTHZ, healthz_async, methods=["GET"])
    return WHAT_IF_HEALTHZ


def _sync(fn: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    async def call() -> object:
        return fn()

    return call


def _profile_rows(profiler: cProfile.Profile, n: int) -> list[dict[str, Any]]:
    """Per-request own and cumulative time of every function (cProfile's overhead inflates them
    all; compare them with each other). A coroutine counts one call per resumption."""
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = filename
        for marker in ("site-packages/", "/src/", "lib/python3"):
            if marker in filename:
                where = filename.split(marker, 1)[1]
                break
        rows.append(
            {
                "function": f"{where}:{line}({name})",
                "calls_per_request": calls / n,
                "own_us": 1e6 * tottime / n,
                "cumulative_us": 1e6 * cumtime / n,
            }
        )
    return rows


def attribute(credentials: Credentials, n: int, reps: int) -> dict[str, Any]:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_attribute(credentials, n, reps))


# --------------------------------------------------------------------------------------------------
# Output


def _fmt_ratio(summary: c.Summary) -> str:
    return f"{summary.median:.3f} [{summary.min:.3f}–{summary.max:.3f}]"


def measurement_rows(m: Measurement) -> list[list[str]]:
    rows = []
    for variant, runs in m.runs.items():
        rps = c.summarize(m.rps(variant))
        loads = [run.load_average[0] for run in runs]
        rows.append(
            [
                f"{LABELS[variant]}, log {m.log_level}"
                if variant in ("bare", "auth", "api_key")
                else LABELS[variant],
                f"{rps.median:,.0f}",
                f"{rps.min:,.0f}–{rps.max:,.0f}",
                "–" if variant == "bare" else f"{m.ratio_of_medians(variant):.3f}",
                "–" if variant == "bare" else _fmt_ratio(m.paired(variant)),
                f"{statistics.median(r.server_cpu_us_per_request for r in runs):.0f}",
                f"{statistics.median(r.redis_cpu_us_per_request for r in runs):.0f}",
                f"{statistics.median(r.latency_ms['p50'] for r in runs):.2f} / "
                f"{statistics.median(r.latency_ms['p99'] for r in runs):.2f}",
                f"{min(loads):.1f}–{max(loads):.1f}",
            ]
        )
    return rows


def verdict(main: Measurement) -> dict[str, Any]:
    rps = statistics.median(main.rps("auth"))
    ratio = main.ratio_of_medians("auth")
    result = {
        "auth_requests_per_s": rps,
        "bare_requests_per_s": statistics.median(main.rps("bare")),
        "ratio_of_medians": ratio,
        "paired_ratio": main.paired("auth").as_dict(),
        "goal_ratio": GOAL_RATIO,
        "goal_requests_per_s": GOAL_RPS,
        "ratio_met": ratio >= GOAL_RATIO,
        "rps_met": rps >= GOAL_RPS,
        "met": ratio >= GOAL_RATIO and rps >= GOAL_RPS,
    }
    if main.rps("trivial"):
        result["auth_over_trivial"] = main.ratio_of_medians("auth", "trivial")
        result["bare_over_trivial"] = main.ratio_of_medians("bare", "trivial")
    if main.rps("whatif_auth"):
        result["whatif_auth_requests_per_s"] = statistics.median(main.rps("whatif_auth"))
        result["whatif_auth_over_bare"] = main.ratio_of_medians("whatif_auth")
        result["whatif_auth_over_auth"] = main.ratio_of_medians("whatif_auth", "auth")
    if main.rps("whatif_bare") and main.rps("whatif_auth"):
        result["whatif_auth_over_whatif_bare"] = main.ratio_of_medians("whatif_auth", "whatif_bare")
    return result


def print_attribution(data: dict[str, Any]) -> None:
    c.print_table(
        f"In-process pieces, {data['calls']} sequential calls each on uvloop "
        "(CPU = this process only; Redis's own CPU is not in it)",
        ["piece", "wall µs/call", "CPU µs/call"],
        [[name, f"{t['wall_us']:.1f}", f"{t['cpu_us']:.1f}"] for name, t in data["pieces"].items()],
    )

    def delta(name: str) -> str:
        if name in ("/healthz", "/me as shipped") or "reference" in name:
            return "–"
        base = "/me as shipped" if name.startswith("/me") else "/healthz"
        return f"{data['app'][name]['cpu_us'] - data['app'][base]['cpu_us']:+.0f}"

    c.print_table(
        f"The ASGI app called directly, {data['calls']} sequential requests × {data['reps']} interleaved "
        "repeats (median); Δ = against /healthz or /me as shipped",
        ["request", "CPU µs/req", "Δ CPU µs", "wall µs/req", "CPU µs runs"],
        [
            [
                name,
                f"{row['cpu_us']:.0f}",
                delta(name),
                f"{row['wall_us']:.0f}",
                ", ".join(f"{v:.0f}" for v in row["cpu_us_runs"]),
            ]
            for name, row in data["app"].items()
        ],
    )
    for key, title in (("cumulative_us", "cumulative"), ("own_us", "own")):
        top = sorted(data["profile"], key=lambda row: row[key], reverse=True)[:15]
        c.print_table(
            f"cProfile of GET /api/v1/me in-process: largest {title} time per request "
            "(inflated by the profiler; coroutines count a call per resumption)",
            ["function", "calls/req", "own µs", "cumulative µs"],
            [
                [
                    row["function"],
                    f"{row['calls_per_request']:.1f}",
                    f"{row['own_us']:.1f}",
                    f"{row['cumulative_us']:.1f}",
                ]
                for row in top
            ],
        )


# --------------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs: 3 s, 3 rounds, wrk 1x32 only (~2 min)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; --quick 3)")
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds per wrk run (default 8; --quick 3)"
    )
    parser.add_argument(
        "--warmup", type=float, default=None, help="seconds of warm-up per variant (default 3)"
    )
    parser.add_argument(
        "--wrk",
        default=None,
        help="wrk THREADSxCONNECTIONS settings to try on /healthz; the best is kept "
        "(default 1x16,1x32,1x64,2x64; --quick 1x32)",
    )
    parser.add_argument(
        "--info-rounds",
        type=int,
        default=None,
        help="rounds at log level INFO (default 2; --quick 1; 0 skips)",
    )
    parser.add_argument(
        "--no-extras",
        action="store_true",
        help="only /healthz and /me with a JWT (no API key, trivial, what-if)",
    )
    parser.add_argument("--no-what-if", action="store_true", help="without the what-if server's variants")
    parser.add_argument("--serve-what-if", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile", action="store_true", help="attribute the authenticated path even when the goal is met"
    )
    parser.add_argument(
        "--no-profile", action="store_true", help="never attribute (also when the goal is missed)"
    )
    parser.add_argument("--json", default="auth_bench", help="name of the JSON file in bench/out/")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_what_if:
        return serve_what_if(args.serve_what_if)
    rounds = args.rounds or (3 if args.quick else 5)
    duration = args.duration or (3.0 if args.quick else 8.0)
    warmup = args.warmup or (2.0 if args.quick else 3.0)
    configs = (args.wrk or ("1x32" if args.quick else "1x16,1x32,1x64,2x64")).split(",")
    info_rounds = args.info_rounds if args.info_rounds is not None else (1 if args.quick else 2)
    profile_calls, profile_reps = (500, 2) if args.quick else (1500, 3)
    variants = ["bare", "auth"] if args.no_extras else list(VARIANTS)
    if args.no_what_if:
        variants = [v for v in variants if not v.startswith("whatif_")]
    if shutil.which("wrk") is None:
        c.log("wrk is not installed (apt-get install wrk)")
        return 2

    payload: dict[str, Any] = {
        "machine": c.machine_info(),
        "server_versions": _versions(),
        "sources_sha256": {name: c._file_digest(c.REPO_ROOT / "src" / "fimum_ai" / name) for name in SOURCES},
        "settings": {
            "rounds": rounds,
            "duration_s": duration,
            "warmup_s": warmup,
            "wrk_tried": configs,
            "info_rounds": info_rounds,
            "rate_limit_per_minute": RATE_LIMIT,
        },
        "goal": {"ratio": GOAL_RATIO, "requests_per_s": GOAL_RPS},
    }
    env = Environment.create()
    redis_cpu = RedisCpu()
    servers: list[Server] = []
    status = 1
    c.log(f"schema {env.schema}, Redis prefix {env.prefix}")
    try:
        credentials = make_credentials(env)
        main_server = Server.fimum(env, "WARNING")
        servers.append(main_server)
        serving = {variant: main_server for variant in ("bare", "auth", "api_key")}
        if "trivial" in variants:
            serving["trivial"] = Server.trivial(env)
            servers.append(serving["trivial"])
        if any(v.startswith("whatif_") for v in variants):
            what_if = Server.what_if(env)
            servers.append(what_if)
            serving.update({"whatif_bare": what_if, "whatif_auth": what_if})
        bench = Bench(serving, credentials, redis_cpu)
        warm_up(bench, variants, configs[0], warmup)
        config = configs[0]
        if len(configs) > 1:
            config, tuning = tune(bench, configs, max(2.0, duration / 2))
            payload["tuning_bare_requests_per_s"] = tuning
            c.print_table(
                "wrk settings tried on GET /healthz (two runs each; the best median is used)",
                ["threads × connections", "req/s runs", "median"],
                [
                    [k, ", ".join(f"{v:,.0f}" for v in vs), f"{statistics.median(vs):,.0f}"]
                    for k, vs in tuning.items()
                ],
            )
        c.log(f"wrk {config}: {rounds} interleaved rounds of {duration:g} s, log level WARNING")
        measurements = [interleaved(bench, variants, config, rounds, duration, "WARNING")]
        main_server.stop()
        if info_rounds > 0:
            info_server = Server.fimum(env, "INFO")
            servers.append(info_server)
            bench.servers.update({"bare": info_server, "auth": info_server})
            warm_up(bench, ["bare", "auth"], config, warmup)
            lines = info_server.log_lines()
            info = interleaved(bench, ["bare", "auth"], config, info_rounds, duration, "INFO")
            served = sum(run.requests for runs in info.runs.values() for run in runs)
            info.log_lines_per_request = (info_server.log_lines() - lines) / max(1, served)
            info_server.stop()
            measurements.append(info)
        for server in servers:
            server.stop()

        c.print_table(
            f"One uvicorn worker, wrk {config} (threads × connections), {duration:g} s runs, {rounds} "
            f"interleaved rounds (INFO: {info_rounds}); ratios against /healthz of the same server and run",
            [
                "endpoint",
                "req/s median",
                "req/s range",
                "ratio of medians",
                "paired ratio [min–max]",
                "server CPU µs/req",
                "Redis CPU µs/req",
                "p50 / p99 ms",
                "load 1m",
            ],
            [row for m in measurements for row in measurement_rows(m)],
        )
        result = verdict(measurements[0])
        goal_rows = [
            [
                "auth / bare (ratio of medians)",
                f"{result['ratio_of_medians']:.3f} (paired {_fmt_ratio(measurements[0].paired('auth'))})",
                f"≥ {GOAL_RATIO:.2f}",
                "met" if result["ratio_met"] else "missed",
            ],
            [
                "auth requests/s (median)",
                f"{result['auth_requests_per_s']:,.0f}",
                f"≥ {GOAL_RPS:,.0f}",
                "met" if result["rps_met"] else "missed",
            ],
        ]
        if "auth_over_trivial" in result:
            goal_rows.append(
                ["auth / trivial endpoint (info)", f"{result['auth_over_trivial']:.3f}", "–", "–"]
            )
        if "whatif_auth_requests_per_s" in result:
            goal_rows.append(
                [
                    "what-if auth req/s (async auth deps + quota MGET)",
                    f"{result['whatif_auth_requests_per_s']:,.0f} "
                    f"({result['whatif_auth_over_auth']:.2f}× auth; "
                    f"{result['whatif_auth_over_bare']:.3f} of bare)",
                    f"≥ {GOAL_RPS:,.0f}",
                    "would meet" if result["whatif_auth_requests_per_s"] >= GOAL_RPS else "would miss",
                ]
            )
        if "whatif_auth_over_whatif_bare" in result:
            goal_rows.append(
                [
                    "what-if auth / what-if async /healthz",
                    f"{result['whatif_auth_over_whatif_bare']:.3f}",
                    f"≥ {GOAL_RATIO:.2f}",
                    "would meet" if result["whatif_auth_over_whatif_bare"] >= GOAL_RATIO else "would miss",
                ]
            )
        c.print_table(
            "Goal (issue): authenticated ≥ 40 % of bare and ≥ 5,000 req/s (log level WARNING)",
            ["measure", "value", "goal", "verdict"],
            goal_rows,
        )
        payload.update(
            {
                "wrk": config,
                "measurements": [m.as_dict() for m in measurements],
                "verdict": result,
                "load_average_end": c.load_average(),
            }
        )
        if not args.no_profile and (args.profile or not result["met"]):
            c.log("attributing the authenticated path in-process")
            attribution = attribute(credentials, profile_calls, profile_reps)
            print_attribution(attribution)
            payload["attribution"] = attribution
        status = 0
    except InvalidRun as exc:
        c.log(f"INVALID RUN, no result: {exc}")
        payload["invalid"] = str(exc)
    finally:
        for server in servers:
            server.stop()
        redis_cpu.close()
        env.cleanup()
        c.log(f"dropped schema {env.schema}, deleted Redis keys {env.prefix}*")
    c.log(f"wrote {c.write_json(args.json, payload)}")
    return status


def _versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for name in SERVER_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    text = (wrk.stdout or wrk.stderr).strip()
    versions["wrk"] = text.splitlines()[0] if text else "?"
    return versions


if __name__ == "__main__":
    sys.exit(main())
