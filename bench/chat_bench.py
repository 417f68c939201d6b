"""Chat benchmark (issue 7): time to first token through Fimum against the same stand-in server
directly, in the same run; and 100 concurrent streamed chats on one uvicorn worker.

Processes: the OpenRouter stand-in (`python -m tests.peers.openrouter`, a real HTTP server; every
answer N words, optionally paced) and one `fimum serve` worker (embedded mode, SQLite) pointed at
it; this process is the client (httpx, one connection pool). Paths measured, interleaved in rounds:

- `direct`: POST the stand-in's /api/v1/chat/completions (stream) — the baseline;
- `openai`: Fimum's POST /v1/chat/completions (stream): auth, rate limit, router, client, re-framing;
- `conversation`: Fimum's POST /api/v1/chat/new/messages (SSE): the above plus a new conversation
  and the user's message written to the database before the first token (the answer after it).

TTFT = from sending the request to the first chunk carrying answer text. Overhead = Fimum's median
minus the direct median (goal ≤ 20 ms). Then `--concurrency` chats at once through the
conversation route with paced answers (all streaming at the same time), and the same directly.
Writes bench/out/chat_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _common as c
import httpx

MODEL = "bench/model"
EMAIL = "chat-bench@example.com"
GOAL_OVERHEAD_MS = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.2)


class Stack:
    """The stand-in and one Fimum worker, with the bench user's API key."""

    def __init__(self, words: int, chunk_delay: float) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="fimum-chat-bench-"))
        self.logs = (self.workdir / "standin.log").open("wb"), (self.workdir / "fimum.log").open("wb")
        stand_port, fimum_port = free_port(), free_port()
        self.stand_url = f"http://127.0.0.1:{stand_port}/api/v1"
        self.fimum_url = f"http://127.0.0.1:{fimum_port}"
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("FIMUM_", "IMAGE_"))}
        base_env["PYTHONPATH"] = os.pathsep.join([str(c.REPO_ROOT / "src"), str(c.REPO_ROOT)])
        self.standin = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.peers.openrouter",
                "--port",
                str(stand_port),
                "--words",
                str(words),
                "--chunk-delay",
                str(chunk_delay),
            ],
            cwd=c.REPO_ROOT,
            env=base_env,
            stdout=self.logs[0],
            stderr=self.logs[0],
        )
        model = {
            "id": MODEL,
            "roles": ["general"],
            "priority": 0,
            "context_length": 32768,
            "requests_per_minute": -1,
        }
        self.env = base_env | {
            "FIMUM_CONFIG": str(c.REPO_ROOT / "config" / "models.yaml"),
            "FIMUM_DATA_DIR": str(self.workdir / "data"),
            "FIMUM_LOG_LEVEL": "WARNING",
            "FIMUM_OPENROUTER_BASE_URL": self.stand_url,
            "OPENROUTER_API_KEY": "sk-bench",
            "FIMUM_TEXT_MODELS": json.dumps([model]),
            "FIMUM_TIERS__FREE__REQUESTS_PER_MINUTE": "-1",
            "FIMUM_DEMO_MODEL_PATH": str(self.workdir / "no-demo"),
            "IMAGE_MODEL_BASE_PATH": str(self.workdir / "no-sdxl"),
            "IMAGE_DEVICE": "cpu",
        }
        fimum = str(Path(sys.executable).parent / "fimum")
        self.fimum = subprocess.Popen(
            [fimum, "serve", "--port", str(fimum_port)],
            env=self.env,
            stdout=self.logs[1],
            stderr=self.logs[1],
        )
        wait_http(self.stand_url + "/models", self.standin, "the stand-in")
        wait_http(self.fimum_url + "/healthz", self.fimum, "fimum serve")
        self._cli("users", "create", EMAIL)
        output = self._cli("users", "api-key", "create", EMAIL, "--name", "chat-bench")
        key = next(line.strip() for line in output.splitlines() if line.strip().startswith("fim_"))
        self.headers = {"Authorization": f"Bearer {key}"}

    def _cli(self, *arguments: str) -> str:
        command = [str(Path(sys.executable).parent / "fimum"), *arguments]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"fimum {' '.join(arguments)}: {done.stderr.strip()}")
        return done.stdout

    def stop(self) -> None:
        for process in (self.fimum, self.standin):
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self.logs:
            log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _text_in(line: str, path: str) -> bool:
    """Does this SSE line carry answer text?"""
    if not line.startswith("data: ") or line == "data: [DONE]":
        return False
    data = json.loads(line[6:])
    if path == "conversation":
        return bool(data.get("type") == "delta" and data.get("text"))
    choices = data.get("choices") or []
    return bool(choices and (choices[0].get("delta") or {}).get("content"))


async def one_chat(client: httpx.AsyncClient, stack: Stack, path: str) -> tuple[float, float, bool]:
    """(TTFT s, total s, ok) of one streamed chat."""
    messages = [{"role": "user", "content": "Say something."}]
    if path == "direct":
        url, body, headers = (
            stack.stand_url + "/chat/completions",
            {"model": MODEL, "messages": messages, "stream": True},
            {},
        )
    elif path == "openai":
        url, body, headers = (
            stack.fimum_url + "/v1/chat/completions",
            {"model": MODEL, "messages": messages, "stream": True},
            stack.headers,
        )
    else:
        url, body, headers = (
            stack.fimum_url + "/api/v1/chat/new/messages",
            {"content": "Say something."},
            stack.headers,
        )
    started = time.perf_counter()
    first = 0.0
    ended_well = False
    async with client.stream("POST", url, json=body, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            return 0.0, time.perf_counter() - started, False
        async for line in response.aiter_lines():
            if not first and _text_in(line, path):
                first = time.perf_counter() - started
            if line == "data: [DONE]" or line.startswith('data: {"type":"done"'):
                ended_well = True
    return first, time.perf_counter() - started, ended_well and first > 0


def summary(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=20) if len(ordered) >= 2 else [ordered[0]] * 19
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p95_ms": q[18] * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
        "n": len(ordered),
    }


def cpu_s(process: subprocess.Popen[bytes]) -> float:
    import psutil

    times = psutil.Process(process.pid).cpu_times()
    return float(times.user + times.system)


async def sequential(stack: Stack, rounds: int, per_round: int) -> dict[str, Any]:
    """Interleaved rounds; besides wall-clock TTFT, the CPU time the Fimum and stand-in processes
    spent per chat (what the overhead would be on an idle machine, whatever the load now)."""
    paths = ("direct", "openai", "conversation")
    ttft: dict[str, list[float]] = {p: [] for p in paths}
    errors = dict.fromkeys(paths, 0)
    cpu = {p: {"fimum": 0.0, "standin": 0.0} for p in paths}
    async with httpx.AsyncClient(timeout=60) as client:
        for path in paths:  # warm-up: connections, first-request imports
            for _ in range(5):
                await one_chat(client, stack, path)
        for _ in range(rounds):
            for path in paths:
                fimum_before, standin_before = cpu_s(stack.fimum), cpu_s(stack.standin)
                for _ in range(per_round):
                    first, _, ok = await one_chat(client, stack, path)
                    if ok:
                        ttft[path].append(first)
                    else:
                        errors[path] += 1
                cpu[path]["fimum"] += cpu_s(stack.fimum) - fimum_before
                cpu[path]["standin"] += cpu_s(stack.standin) - standin_before
    chats = rounds * per_round
    result: dict[str, Any] = {
        p: summary(ttft[p])
        | {
            "errors": errors[p],
            "fimum_cpu_ms_per_chat": cpu[p]["fimum"] * 1000 / chats,
            "standin_cpu_ms_per_chat": cpu[p]["standin"] * 1000 / chats,
        }
        for p in paths
    }
    for path in ("openai", "conversation"):
        result[path]["overhead_ms"] = result[path]["median_ms"] - result["direct"]["median_ms"]
    return result


async def concurrent(stack: Stack, n: int, path: str) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(one_chat(client, stack, path) for _ in range(n)), return_exceptions=True
        )
        wall = time.perf_counter() - started
    good = [r for r in results if isinstance(r, tuple) and r[2]]
    failures = [repr(r)[:200] for r in results if not (isinstance(r, tuple) and r[2])]
    return {
        "path": path,
        "chats": n,
        "ok": len(good),
        "errors": len(failures),
        "error_samples": failures[:3],
        "wall_s": wall,
        "ttft": summary([r[0] for r in good]) if good else None,
        "total": summary([r[1] for r in good]) if good else None,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (2 x 10 per path)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--words", type=int, default=20)
    parser.add_argument(
        "--paced-delay", type=float, default=0.02, help="seconds between words in the concurrent run"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rounds, per_round = (2, 10) if args.quick else (args.rounds, args.per_round)
    c.OUT_DIR.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    stack = Stack(args.words, 0.0)
    try:
        c.log(f"TTFT: {rounds} rounds x {per_round} chats per path, interleaved")
        ttft = asyncio.run(sequential(stack, rounds, per_round))
    finally:
        stack.stop()
    stack = Stack(args.words, args.paced_delay)
    try:
        c.log(f"{args.concurrency} concurrent streamed chats ({args.words} words, {args.paced_delay}s apart)")
        through = asyncio.run(concurrent(stack, args.concurrency, "conversation"))
        direct = asyncio.run(concurrent(stack, args.concurrency, "direct"))
    finally:
        stack.stop()
    result = {
        "goal_overhead_ms": GOAL_OVERHEAD_MS,
        "ttft": ttft,
        "concurrent": {"fimum": through, "direct": direct},
        "load_1m": [load_before, os.getloadavg()[0]],
        "machine": c.machine_info(),
    }
    (c.OUT_DIR / "chat_bench.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print("\nTime to first token (streamed, sequential, interleaved)")
    print(
        f"{'path':<14}{'median ms':>11}{'p95 ms':>10}{'overhead ms':>13}{'Fimum CPU ms':>14}"
        f"{'stand-in CPU ms':>17}{'n':>6}{'errors':>8}"
    )
    for path in ("direct", "openai", "conversation"):
        row = ttft[path]
        overhead = f"{row['overhead_ms']:.2f}" if "overhead_ms" in row else "–"
        print(
            f"{path:<14}{row['median_ms']:>11.2f}{row['p95_ms']:>10.2f}{overhead:>13}"
            f"{row['fimum_cpu_ms_per_chat']:>14.2f}{row['standin_cpu_ms_per_chat']:>17.2f}"
            f"{row['n']:>6}{row['errors']:>8}"
        )
    print(f"\n{args.concurrency} concurrent streamed chats")
    for name, run in (("fimum", through), ("direct", direct)):
        ttft_run = run["ttft"] or {"median_ms": float("nan"), "p95_ms": float("nan")}
        print(
            f"{name:<8} ok {run['ok']:>4}  errors {run['errors']:>3}  wall {run['wall_s']:.2f} s  "
            f"TTFT median {ttft_run['median_ms']:.1f} ms p95 {ttft_run['p95_ms']:.1f} ms"
        )
    met = ttft["openai"]["overhead_ms"] <= GOAL_OVERHEAD_MS and through["errors"] == 0
    print(
        f"\ngoal (≤ {GOAL_OVERHEAD_MS:.0f} ms TTFT overhead, 100 chats without errors): "
        + ("met" if met else "missed")
    )
    return 0 if through["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
