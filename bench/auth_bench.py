"""Authenticated API throughput: `GET /api/v1/me` with a bearer JWT against bare `GET /healthz`.

One `fimum serve` process (one uvicorn worker, distributed mode on the local PostgreSQL and Redis,
fresh schema and Redis prefix, removed at the end), loaded by `wrk`. `/me` does what every
authenticated call does (JWT and revocation check, user from the in-process cache, per-user rate
limit: the free tier's limit is raised so that it runs on every request and never trips) plus its
own work (today's quota counters, a JSON body). For information: `/me` with an API key, a trivial
async FastAPI endpoint in its own uvicorn process, and the same server at log level INFO.

The best wrk setting of --wrk on `/healthz` is kept; then the variants run interleaved (A B C D,
D C B A, ...). Any non-2xx response or socket error fails the benchmark. Goal (issue): authenticated
≥ 40 % of bare and ≥ 5,000 req/s. When it is missed, or with --profile, a third server (`fimum
serve`'s own function under cProfile, on only while wrk runs) is loaded on `/healthz` and on `/me`,
and its main thread's time is grouped: uvicorn/HTTP, Starlette/FastAPI, our middlewares, endpoint,
JSON. See bench/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import cProfile
import json
import os
import pstats
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import _common as c

GOAL_RATIO, GOAL_RPS = 0.40, 5000.0
POSTGRES_URL = os.environ.get("FIMUM_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FIMUM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
EMAIL = "bench@example.com"
RATE_LIMIT = 100_000_000  # the free tier's requests per minute: exercised on every request, never trips
LABELS = {
    "bare": "GET /healthz (no credentials)",
    "auth": "GET /api/v1/me (bearer JWT)",
    "api_key": "GET /api/v1/me (API key; info)",
    "trivial": "trivial async FastAPI endpoint (own process; info)",
}
PATHS = {"bare": "/healthz", "auth": "/api/v1/me", "api_key": "/api/v1/me", "trivial": "/healthz"}
PACKAGES = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "redis", "hiredis", "limits", "pyjwt")
SOURCES = ("app.py", "limits.py", "images/uploads.py", "accounts/auth.py", "accounts/service.py")
SOURCES += ("accounts/revocation.py", "accounts/routes.py", "accounts/tokens.py")
TRIVIAL_APP = """
import sys, uvicorn
from fastapi import FastAPI
app = FastAPI()
@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


class InvalidRun(RuntimeError):
    """A run with any non-2xx response or socket error: its requests/s would mean nothing."""


# --------------------------------------------------------------------------------------------------
# Environment and servers


@dataclass
class Environment:
    """A fresh schema, Redis prefix and data folder; `env` is what the servers and the CLI get."""

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
            FIMUM_CONFIG=str(c.REPO_ROOT / "config" / "models.yaml"),
            FIMUM_MODE="distributed",
            FIMUM_DATABASE_URL=POSTGRES_URL,
            FIMUM_DATABASE_SCHEMA=f"bench_{tag}",
            FIMUM_REDIS_URL=REDIS_URL,
            FIMUM_REDIS_PREFIX=f"fimum-bench-{tag}:",
            FIMUM_JWT_SECRET="bench-only-jwt-secret-0123456789abcdefghijklmnop",
            FIMUM_LOG_LEVEL="WARNING",
            FIMUM_TIERS__FREE__REQUESTS_PER_MINUTE=str(RATE_LIMIT),
            FIMUM_DATA_DIR=str(workdir / "data"),
            FIMUM_DEMO_MODEL_PATH=str(workdir / "no-demo"),
            IMAGE_MODEL_BASE_PATH=str(workdir / "no-sdxl-base"),
            IMAGE_MODEL_REFINER_PATH=str(workdir / "no-sdxl-refiner"),
            IMAGE_MODEL_UPSCALER_PATH=str(workdir / "no-sdxl-upscaler"),
            IMAGE_DEVICE="cpu",
        )
        return cls(env["FIMUM_DATABASE_SCHEMA"], env["FIMUM_REDIS_PREFIX"], workdir, env)

    def fimum(self, *arguments: str) -> str:
        command = [str(Path(sys.executable).parent / "fimum"), *arguments]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(arguments)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def authorizations(self) -> dict[str, str]:
        """The bench user and its API key through the operator CLI; an access token from the sessions
        service (what a sign-in ends with), in this process with the same settings."""
        self.fimum("users", "create", EMAIL)
        users = json.loads(self.fimum("users", "list", "--json"))
        user_id = next(user["id"] for user in users if user["email"] == EMAIL)
        output = self.fimum("users", "api-key", "create", EMAIL, "--name", "bench")
        api_key = next(line.strip() for line in output.splitlines() if line.strip().startswith("fim_"))
        for name in [n for n in os.environ if n.startswith(("FIMUM_", "IMAGE_"))]:
            del os.environ[name]
        os.environ.update({k: v for k, v in self.env.items() if k.startswith(("FIMUM_", "IMAGE_"))})

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

        return {"auth": f"Bearer {asyncio.run(mint())}", "api_key": f"Bearer {api_key}"}

    def cleanup(self) -> None:
        import redis
        from sqlalchemy import create_engine, text

        engine = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.begin() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        finally:
            engine.dispose()
        with redis.Redis.from_url(REDIS_URL) as client:
            keys = list(client.scan_iter(match=f"*{self.prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        shutil.rmtree(self.workdir, ignore_errors=True)


class Server:
    """A server process on a free port (the port is its last argument), its output into a file."""

    def __init__(
        self, env: Environment, name: str, command: Sequence[str], log_level: str = "WARNING"
    ) -> None:
        import psutil

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        self.name, self.workdir, self.url = name, env.workdir, f"http://127.0.0.1:{port}"
        self.log_path = env.workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        server_env = {**env.env, "FIMUM_LOG_LEVEL": log_level}
        self.process = subprocess.Popen(
            [*command, str(port)], env=server_env, stdout=self._log, stderr=self._log
        )
        self.ps = psutil.Process(self.process.pid)
        deadline = time.monotonic() + 60
        while self.get("/healthz")[0] != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start; see {self.log_path}")
            time.sleep(0.2)
        c.log(f"{name}: pid {self.process.pid} on {self.url}")

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def get(self, path: str, authorization: str | None = None) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.url + path)
        if authorization:
            request.add_header("Authorization", authorization)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
        except OSError:
            return 0, {}, b""

    def log_lines(self) -> int:
        self._log.flush()
        return len(self.log_path.read_bytes().splitlines())

    def profile_window(self, index: int, work: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], Path]:
        """Profiler on (SIGUSR1), `work`, profiler off and saved (SIGUSR2): see `serve_profiled`."""
        base = self.workdir / f"profile-{index}"

        def signal_and_wait(signum: int, suffix: str) -> None:
            self.process.send_signal(signum)
            deadline = time.monotonic() + 30
            while not base.with_suffix(suffix).exists():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the profiled server wrote no {base.with_suffix(suffix)}")
                time.sleep(0.02)

        signal_and_wait(signal.SIGUSR1, ".started")
        run = work()
        signal_and_wait(signal.SIGUSR2, ".json")
        return run | json.loads(base.with_suffix(".json").read_text()), base.with_suffix(".prof")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def fimum_server(env: Environment, log_level: str) -> Server:
    command = [str(Path(sys.executable).parent / "fimum"), "serve", "--port"]
    return Server(env, f"fimum-{log_level.lower()}", command, log_level)


def serve_profiled(port: int) -> int:
    """The hidden `--serve-profiled PORT` mode: `fimum serve` (the CLI's own function: same settings,
    logging and uvicorn defaults) with a cProfile window of the main thread per SIGUSR1 … SIGUSR2;
    window n is written to $FIMUM_DATA_DIR/../profile-<n>.prof, its CPU and wall seconds to .json."""
    from fimum_ai.cli import serve

    directory = Path(os.environ["FIMUM_DATA_DIR"]).parent
    window: dict[str, Any] = {"n": 0}

    def clocks() -> tuple[float, float, float]:
        return time.thread_time(), time.process_time(), time.perf_counter()

    def start(*_: object) -> None:
        window.update(profiler=cProfile.Profile(), clocks=clocks())
        window["profiler"].enable()
        (directory / f"profile-{window['n']}.started").touch()

    def stop(*_: object) -> None:
        window["profiler"].disable()
        spent = [now - then for now, then in zip(clocks(), window["clocks"], strict=True)]
        base = directory / f"profile-{window['n']}"
        window["profiler"].dump_stats(str(base.with_suffix(".prof")))
        keys = ("main_thread_cpu_s", "process_cpu_s", "wall_s")
        base.with_suffix(".tmp").write_text(json.dumps(dict(zip(keys, spent, strict=True))))
        base.with_suffix(".tmp").replace(base.with_suffix(".json"))
        window["n"] += 1

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    serve(host="127.0.0.1", port=port)
    return 0


# --------------------------------------------------------------------------------------------------
# wrk runs


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}[unit]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/s, requests, latency percentiles and errors from `wrk --latency`."""
    rps = re.search(r"^Requests/sec:\s*([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", output, re.MULTILINE)
    if not rps or not total:
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    latency = re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", output, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "requests_per_s": float(rps.group(1)),
        "requests": int(total.group(1)),
        "duration_s": _ms(total.group(2)) / 1e3,
        "latency_ms": {f"p{p}": _ms(value) for p, value in latency},
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(map(int, sockets.groups())) if sockets else 0,
    }


@dataclass
class Bench:
    """Where each variant is served, with which Authorization header; runs wrk and checks answers."""

    servers: dict[str, Server]
    authorization: dict[str, str]

    def __post_init__(self) -> None:
        import redis

        self.redis = redis.Redis.from_url(REDIS_URL)

    def check(self, variant: str) -> None:
        """One request outside wrk: 200; for /me also the bench user's body and the rate limiter's
        headers at the raised limit (proof that the limiter runs on this path)."""
        status, headers, body = self.servers[variant].get(PATHS[variant], self.authorization.get(variant))
        if status != 200:
            raise InvalidRun(f"{variant}: {PATHS[variant]} answered {status}: {body[:300]!r}")
        if variant in ("auth", "api_key"):
            data = json.loads(body)
            if data["user"]["email"] != EMAIL or data["auth"]["via"] != variant.replace("auth", "jwt"):
                raise InvalidRun(f"{variant}: unexpected body {data}")
            if headers.get("x-ratelimit-limit") != str(RATE_LIMIT):
                raise InvalidRun(f"{variant}: the rate limiter did not run (headers {headers})")

    def _counters(self, server: Server) -> dict[str, Any]:
        """Server CPU, wrk's CPU (this process's children), Redis's CPU and calls per command (the
        whole Redis server: anything else using it counts too)."""
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = self.redis.info("cpu")
        calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in self.redis.info("commandstats").items()}
        return {
            "server_cpu_s": server.cpu_s(),
            "wrk_cpu_s": children.ru_utime + children.ru_stime,
            "redis_cpu_s": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
            "redis_calls": calls,
        }

    def wrk(self, variant: str, config: str, duration_s: float) -> dict[str, Any]:
        server, (threads, connections) = self.servers[variant], config.split("x")
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", "--latency"]
        if variant in self.authorization:
            command += ["-H", f"Authorization: {self.authorization[variant]}"]
        load, before = c.load_average(), self._counters(server)
        command.append(server.url + PATHS[variant])
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60)
        after = self._counters(server)
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
        run = parse_wrk(done.stdout) | {"variant": variant, "wrk": config, "load_average": load}
        n = max(1, run["requests"])
        for key in ("server_cpu_s", "wrk_cpu_s", "redis_cpu_s"):
            run[key] = after[key] - before[key]
        calls = {k: v - before["redis_calls"].get(k, 0) for k, v in after["redis_calls"].items()}
        run["redis_calls"] = {k: v for k, v in calls.items() if v}
        run["server_cpu_us"] = 1e6 * run["server_cpu_s"] / n
        run["redis_cpu_us"] = 1e6 * run["redis_cpu_s"] / n
        run["redis_calls_per_request"] = sum(calls.values()) / n
        if run["non_2xx"] or run["socket_errors"]:
            errors = f"{run['non_2xx']} non-2xx responses, {run['socket_errors']} socket errors"
            raise InvalidRun(f"{variant} ({config}): {errors} in {run['requests']} requests\n{done.stdout}")
        c.log(
            f"{variant:8s} {config:5s} {run['requests_per_s']:7.0f} req/s"
            f"  p50 {run['latency_ms']['p50']:.2f} ms"
            f"  CPU µs/req server {run['server_cpu_us']:.0f} redis {run['redis_cpu_us']:.0f}"
            f"  redis calls/req {run['redis_calls_per_request']:.3f}  load {load[0]:.2f}"
        )
        return run

    def warm_up(self, variants: Sequence[str], config: str, duration_s: float) -> None:
        for variant in variants:
            self.check(variant)
            self.wrk(variant, config, duration_s)

    def interleaved(self, variants: Sequence[str], config: str, rounds: int, duration_s: float) -> Runs:
        runs = Runs({variant: [] for variant in variants})
        for index in range(rounds):
            for variant in variants if index % 2 == 0 else variants[::-1]:
                runs[variant].append(self.wrk(variant, config, duration_s))
        for variant in variants:
            self.check(variant)
        return runs


class Runs(dict[str, list[dict[str, Any]]]):
    """Runs per variant, in round order."""

    def median(self, variant: str, key: str = "requests_per_s") -> float:
        return statistics.median(run[key] for run in self[variant])

    def ratio(self, variant: str, baseline: str = "bare") -> float:
        return self.median(variant) / self.median(baseline)

    def paired(self, variant: str, baseline: str = "bare") -> c.Summary:
        """Round i of `variant` over round i of `baseline`: neighbours in time, so load drifts cancel."""
        return c.paired_ratios(*([run["requests_per_s"] for run in self[v]] for v in (variant, baseline)))

    def summary(self) -> dict[str, Any]:
        result = {}
        for variant, runs in self.items():
            result[variant] = {
                "label": LABELS[variant],
                "requests_per_s": c.summarize([run["requests_per_s"] for run in runs]).as_dict(),
                **{f"{key}_median": self.median(variant, key) for key in ("server_cpu_us", "redis_cpu_us")},
                "redis_calls_per_request_median": self.median(variant, "redis_calls_per_request"),
                "latency_ms_median": {
                    p: statistics.median(r["latency_ms"][p] for r in runs) for p in ("p50", "p99")
                },
            }
            if variant != "bare":
                result[variant]["ratio_of_medians"] = self.ratio(variant)
                result[variant]["paired_ratio"] = self.paired(variant).as_dict()
        return result


# --------------------------------------------------------------------------------------------------
# Profile: the server's main thread under wrk, grouped

UVICORN, FRAMEWORK, BODY_LIMIT, AUTH, RATE, ENDPOINT, JSON, OTHER = GROUPS = (
    "uvicorn / HTTP / event loop",
    "Starlette / FastAPI routing + dependencies",
    "middleware: body size limit",
    "middleware: auth",
    "middleware: rate limit",
    "endpoint function",
    "JSON: response validation + serialization",
    "other",
)
Function = tuple[str, int, str]  # cProfile's key: file, first line, name ("~", 0, name for builtins)
LANDMARKS = {  # cumulative times worth knowing (they overlap: a call tree, not a partition)
    "fastapi/routing.py:APIRouter.app": "Starlette/FastAPI below the middlewares: routing + the route",
    "fastapi/routing.py:_IncludedRouter.matches": "route matching through the included routers",
    "fastapi/dependencies/utils.py:solve_dependencies": "dependency solving",
    "fastapi/routing.py:run_endpoint_function": "endpoint function",
    "fimum_ai/images/provider.py:EngineProvider.status": "/healthz: image model status (files on disk)",
    "fimum_ai/limits.py:QuotaService.report": "/me: quota report",
    "fastapi/routing.py:serialize_response": "response validation + serialization",
    "starlette/responses.py:Response.__call__": "sending the response (ASGI send -> uvicorn)",
    "fimum_ai/accounts/service.py:Accounts.authenticate": "auth: Accounts.authenticate",
    "fimum_ai/limits.py:RateLimiter.hit_request": "rate limit: RateLimiter.hit_request",
}


@cache
def _qualnames(filename: str) -> dict[int, str]:
    """First line (of the def and of each decorator) -> qualified name, for a source file's functions."""
    try:
        tree = ast.parse(Path(filename).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return {}
    names: dict[int, str] = {}

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                lines = [child.lineno, *(decorator.lineno for decorator in child.decorator_list)]
                names.update(dict.fromkeys(lines, prefix + child.name))
                walk(child, f"{prefix}{child.name}.")
            else:
                walk(child, prefix)

    walk(tree, "")
    return names


def _label(function: Function) -> tuple[str, str]:
    """(path below site-packages/, src/ or the standard library, qualified name); builtins: ("", name)."""
    filename, line, name = function
    if filename == "~":
        return "", name
    markers = [m for m in ("site-packages/", "/src/", "/python3.11/") if m in filename]
    return filename.split(markers[0], 1)[1] if markers else filename, _qualnames(filename).get(line, name)


def own_group(function: Function) -> str | None:
    """The group of a function's own time; None: its callers' groups (builtins, and libraries or
    helpers serving several groups: redis-py, pydantic, logging, typing, `Accounts.user`, ...)."""
    path, name = _label(function)
    if path.startswith(("uvicorn/", "httptools/", "h11/", "uvloop/", "asyncio/", "selectors")):
        return UVICORN
    if path.startswith(("json/", "fastapi/encoders")) or name in (
        "serialize_response",
        "JSONResponse.render",
    ):
        return JSON
    if path.startswith(("starlette/", "anyio/", "fastapi/")) and not path.startswith("fastapi/_compat"):
        return FRAMEWORK
    if path == "fimum_ai/images/uploads.py":
        return BODY_LIMIT
    if path == "fimum_ai/accounts/auth.py":  # the middleware; the rest are FastAPI dependencies
        return AUTH if name.startswith(("AuthMiddleware", "_bearer")) else FRAMEWORK
    if path in ("fimum_ai/accounts/revocation.py", "fimum_ai/accounts/tokens.py"):
        return AUTH
    if path == "fimum_ai/limits.py":
        return (
            ENDPOINT if name.startswith(("QuotaService", "RedisQuotaStore", "_today", "_midnight")) else RATE
        )
    if path in ("fimum_ai/accounts/routes.py", "fimum_ai/app.py"):
        return ENDPOINT
    return None


def group_profile(stats: dict[Function, Any]) -> dict[str, float]:
    """Seconds of own time per group. A function without a group of its own hands its own time on to
    its callers' groups, in proportion to the own time it spent under each caller."""
    shares: dict[Function, dict[str, float]] = {}

    def share(function: Function, seen: frozenset[Function]) -> dict[str, float]:
        if function not in shares:
            own = own_group(function)
            result = {own: 1.0} if own else {}
            callers = (
                {} if own else {f: t for f, t in stats[function][4].items() if f in stats and f not in seen}
            )
            total = sum(timing[2] for timing in callers.values())
            for caller, timing in callers.items():
                weight = timing[2] / total if total else 1 / len(callers)
                for group, part in share(caller, seen | {function}).items():
                    result[group] = result.get(group, 0.0) + part * weight
            shares[function] = result or {OTHER: 1.0}
        return shares[function]

    groups = dict.fromkeys(GROUPS, 0.0)
    for function, entry in stats.items():
        for group, part in share(function, frozenset()).items():
            groups[group] += entry[2] * part
    return groups


def analyse_profile(path: Path, run: dict[str, Any], unprofiled_us: float) -> dict[str, Any]:
    """Per request: each group's own time under the profiler, its share of the profiled total, and
    that share of the unprofiled server CPU (an estimate: the profiler's cost per call inflates
    call-heavy Python code most, and the event loop's C code between Python calls is not seen)."""
    stats: dict[Function, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    groups, n = group_profile(stats), run["requests"]
    total = sum(groups.values())
    functions = []
    for function, (_cc, calls, own, cumulative, _callers) in stats.items():
        where, name = _label(function)
        functions.append(
            {
                "function": f"{where}:{name}" if where else name,
                "group": own_group(function) or "(its callers')",
                "calls_per_request": calls / n,
                "own_us": 1e6 * own / n,
                "cumulative_us": 1e6 * cumulative / n,
            }
        )
    return {
        "run": run,
        "per_request_us": {
            "profiled_total": 1e6 * total / n,
            "main_thread_cpu_profiled": 1e6 * run["main_thread_cpu_s"] / n,
            "server_cpu_profiled": run["server_cpu_us"],
            "server_cpu_unprofiled": unprofiled_us,
        },
        "groups": {
            name: {"profiled_us": 1e6 * s / n, "share": s / total, "estimate_us": unprofiled_us * s / total}
            for name, s in groups.items()
        },
        "landmarks": {
            name: {"profiled_us": us, "estimate_us": unprofiled_us * us / (1e6 * total / n)}
            for name in LANDMARKS
            for us in [sum(row["cumulative_us"] for row in functions if row["function"] == name)]
        },
        "top_own": sorted(functions, key=lambda row: row["own_us"], reverse=True)[:30],
        "top_cumulative": sorted(functions, key=lambda row: row["cumulative_us"], reverse=True)[:30],
    }


def profile(env: Environment, bench: Bench, config: str, duration_s: float, main: Runs) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-profiled"]
    server = Server(env, "fimum-profiled", command)
    try:
        bench.servers.update(bare=server, auth=server)
        bench.warm_up(["bare", "auth"], config, 3.0)
        result = {}
        for index, variant in enumerate(("bare", "auth")):
            bench.check(variant)
            run, path = server.profile_window(index, lambda v=variant: bench.wrk(v, config, duration_s))
            shutil.copyfile(path, c.OUT_DIR / f"auth_bench-{variant}.prof")
            result[variant] = analyse_profile(path, run, main.median(variant, "server_cpu_us"))
        return result
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------------
# Output and main


def _ratio(summary: c.Summary) -> str:
    return f"{summary.median:.3f} [{summary.min:.3f}–{summary.max:.3f}]"


def print_runs(blocks: dict[str, Runs], title: str) -> None:
    headers = ["endpoint", "req/s median", "req/s range", "ratio of medians", "paired ratio [min–max]"]
    headers += ["server CPU µs/req", "Redis CPU µs/req", "Redis calls/req", "p50 / p99 ms", "load 1m"]
    rows = []
    for level, runs in blocks.items():
        for variant, done in runs.items():
            rps, loads = [r["requests_per_s"] for r in done], [r["load_average"][0] for r in done]
            latency = [statistics.median(r["latency_ms"][p] for r in done) for p in ("p50", "p99")]
            rows.append(
                [
                    LABELS[variant] + ("" if variant == "trivial" else f", log {level}"),
                    f"{statistics.median(rps):,.0f}",
                    f"{min(rps):,.0f}–{max(rps):,.0f}",
                    "–" if variant == "bare" else f"{runs.ratio(variant):.3f}",
                    "–" if variant == "bare" else _ratio(runs.paired(variant)),
                    f"{runs.median(variant, 'server_cpu_us'):.0f}",
                    f"{runs.median(variant, 'redis_cpu_us'):.0f}",
                    f"{runs.median(variant, 'redis_calls_per_request'):.3f}",
                    f"{latency[0]:.2f} / {latency[1]:.2f}",
                    f"{min(loads):.1f}–{max(loads):.1f}",
                ]
            )
    c.print_table(title, headers, rows)


def verdict(runs: Runs) -> dict[str, Any]:
    rps, ratio = runs.median("auth"), runs.ratio("auth")
    result = {
        "auth_requests_per_s": rps,
        "bare_requests_per_s": runs.median("bare"),
        "ratio_of_medians": ratio,
        "paired_ratio": runs.paired("auth").as_dict(),
        "goal_ratio": GOAL_RATIO,
        "goal_requests_per_s": GOAL_RPS,
        "ratio_met": ratio >= GOAL_RATIO,
        "rps_met": rps >= GOAL_RPS,
        "met": ratio >= GOAL_RATIO and rps >= GOAL_RPS,
    }
    if "trivial" in runs:
        result["auth_over_trivial"] = runs.ratio("auth", "trivial")
        result["bare_over_trivial"] = runs.ratio("bare", "trivial")
    rows = [
        ["auth / bare (ratio of medians; paired)", f"{ratio:.3f} ({_ratio(runs.paired('auth'))})"],
        ["auth requests/s (median)", f"{rps:,.0f}"],
    ]
    rows[0] += [f"≥ {GOAL_RATIO:.2f}", "met" if result["ratio_met"] else "missed"]
    rows[1] += [f"≥ {GOAL_RPS:,.0f}", "met" if result["rps_met"] else "missed"]
    c.print_table("Goal (issue), log level WARNING", ["measure", "value", "goal", "verdict"], rows)
    return result


def print_profile(result: dict[str, Any]) -> None:
    bare, auth = result["bare"], result["auth"]
    rows = []
    for name in GROUPS:
        b, a = bare["groups"][name], auth["groups"][name]
        rows.append([name, f"{b['profiled_us']:.0f}", f"{a['profiled_us']:.0f}", f"{100 * a['share']:.1f} %"])
        rows[-1] += [
            f"{b['estimate_us']:.0f}",
            f"{a['estimate_us']:.0f}",
            f"{a['estimate_us'] - b['estimate_us']:+.0f}",
        ]
    rows += [
        [k.replace("_", " "), f"{bare['per_request_us'][k]:.0f}", f"{auth['per_request_us'][k]:.0f}"]
        for k in bare["per_request_us"]
    ]
    headers = [
        "group",
        "/healthz profiled",
        "/me profiled",
        "/me share",
        "/healthz est.",
        "/me est.",
        "/me − /healthz",
    ]
    c.print_table(
        "cProfile of the server's main thread under wrk, µs/request; est. = share × unprofiled CPU",
        headers,
        rows,
    )
    rows = []
    for name, what in LANDMARKS.items():
        rows.append([name, what] + [f"{p['landmarks'][name]['profiled_us']:.0f}" for p in (bare, auth)])
        rows[-1] += [f"{p['landmarks'][name]['estimate_us']:.0f}" for p in (bare, auth)]
    headers = ["function", "what", "/healthz profiled", "/me profiled", "/healthz est.", "/me est."]
    c.print_table(
        "Cumulative time of landmark functions, µs per request (a call tree: rows overlap)", headers, rows
    )
    for key in ("top_own", "top_cumulative"):
        c.print_table(
            f"GET /api/v1/me under cProfile, {key.replace('_', ' ')}: µs per request (profiler-inflated)",
            ["function", "group", "calls/req", "own µs", "cumulative µs"],
            [[r["function"], r["group"], *(f"{r[k]:.2f}" for k in list(r)[2:])] for r in auth[key][:20]],
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="3 s runs, 3 rounds, wrk 1x32 only, 1 INFO round (~1.5 min)")
    add("--rounds", type=int, help="interleaved rounds (default 5; --quick 3)")
    add("--duration", type=float, help="seconds per wrk run (default 8; --quick 3)")
    add("--wrk", help="THREADSxCONNECTIONS tried on /healthz; the best is kept (default 1x16,1x32,1x64,2x64)")
    add("--info-rounds", type=int, help="rounds at log level INFO (default 2; --quick 1; 0 skips)")
    add("--profile", action="store_true", help="profile the server even when the goal is met")
    add("--no-profile", action="store_true", help="never profile")
    add("--serve-profiled", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _digests() -> dict[str, str | None]:
    return {name: c._file_digest(c.REPO_ROOT / "src" / "fimum_ai" / name) for name in SOURCES}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_profiled:
        return serve_profiled(args.serve_profiled)
    if shutil.which("wrk") is None:
        c.log("wrk is not installed (apt-get install wrk)")
        return 2
    rounds, duration = args.rounds or (3 if args.quick else 5), args.duration or (3.0 if args.quick else 8.0)
    configs = (args.wrk or ("1x32" if args.quick else "1x16,1x32,1x64,2x64")).split(",")
    info_rounds = args.info_rounds if args.info_rounds is not None else (1 if args.quick else 2)
    warmup = 2.0 if args.quick else 3.0
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    wrk_version = (wrk.stdout or wrk.stderr or "?").splitlines()[0]
    payload: dict[str, Any] = {
        "machine": c.machine_info(),
        "versions": {name: _version(name) for name in PACKAGES} | {"wrk": wrk_version},
        "sources_sha256": _digests(),
        "settings": {"rounds": rounds, "duration_s": duration, "warmup_s": warmup, "wrk_tried": configs}
        | {"info_rounds": info_rounds, "rate_limit_per_minute": RATE_LIMIT},
    }
    env, status = Environment.create(), 1
    servers: list[Server] = []
    c.log(f"schema {env.schema}, Redis prefix {env.prefix}")
    try:
        authorization = env.authorizations()
        servers += [fimum_server(env, "WARNING"), Server(env, "trivial", [sys.executable, "-c", TRIVIAL_APP])]
        bench = Bench({v: servers[1] if v == "trivial" else servers[0] for v in LABELS}, authorization)
        bench.warm_up(list(LABELS), configs[0], warmup)
        config = configs[0]
        if len(configs) > 1:  # two passes in opposite orders; the best median wins
            tuning: dict[str, list[float]] = {config: [] for config in configs}
            for config in [*configs, *configs[::-1]]:
                tuning[config].append(bench.wrk("bare", config, max(2.0, duration / 2))["requests_per_s"])
            config = max(configs, key=lambda setting: statistics.median(tuning[setting]))
            payload["wrk_tuning_bare_requests_per_s"] = tuning
            c.log(f"wrk settings on /healthz, req/s: {tuning}; using {config}")
        c.log(f"wrk {config}: {rounds} interleaved rounds of {duration:g} s, log level WARNING")
        blocks = {"WARNING": bench.interleaved(list(LABELS), config, rounds, duration)}
        for server in servers:
            server.stop()
        if info_rounds > 0:  # the default log level: one JSON access-log line per request, into a file
            servers.append(info := fimum_server(env, "INFO"))
            bench.servers.update(bare=info, auth=info)
            bench.warm_up(["bare", "auth"], config, warmup)
            lines = info.log_lines()
            blocks["INFO"] = bench.interleaved(["bare", "auth"], config, info_rounds, duration)
            served = sum(run["requests"] for runs in blocks["INFO"].values() for run in runs)
            payload["info_log_lines_per_request"] = (info.log_lines() - lines) / served
            info.stop()
        print_runs(
            blocks, f"One uvicorn worker, wrk {config}, {duration:g} s runs, {rounds} interleaved rounds"
        )
        result = verdict(blocks["WARNING"])
        payload |= {"wrk": config, "verdict": result}
        payload["summary"] = {level: runs.summary() for level, runs in blocks.items()}
        payload["runs"] = blocks
        if not args.no_profile and (args.profile or not result["met"]):
            c.log("profiling the server under wrk")
            payload["profile"] = profile(env, bench, config, duration, blocks["WARNING"])
            print_profile(payload["profile"])
        payload["load_average_end"] = c.load_average()
        if _digests() != payload["sources_sha256"]:  # others may edit src/ while this runs
            payload["sources_sha256_end"] = _digests()
            c.log(f"WARNING: src/ changed during the run: {payload['sources_sha256']} -> {_digests()}")
        status = 0
    except InvalidRun as exc:
        c.log(f"INVALID RUN, no result: {exc}")
        payload["invalid"] = str(exc)
    finally:
        for server in servers:
            server.stop()
        env.cleanup()
        c.log(f"dropped schema {env.schema}, deleted Redis keys {env.prefix}*")
    c.log(f"wrote {c.write_json('auth_bench', payload)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
