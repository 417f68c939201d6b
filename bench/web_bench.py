"""Web app performance (issue 6): initial JavaScript size, and main-thread long tasks in the image
studio while 8 jobs stream live previews.

- size: the JavaScript that the built app's index.html loads before any route chunk (its module
  script and modulepreloads), raw and gzipped at level 9 (what the server sends, src/fimum_ai/web.py);
  goal <= 250 kB gzipped. Also what Chromium actually fetched to show the studio (initial + the
  studio's lazy chunks), from Resource Timing (`encodedBodySize`: the bytes on the wire).
- longtasks: a real embedded-mode server (`fimum serve` in its own process, fresh data folder, the
  tiny demo model, a latent preview on every step: FIMUM_IMAGE_GENERATION__GENERATION__PREVIEW_EVERY)
  and Debian's Chromium driven by Playwright. The bench user (enterprise tier: no quota) signs in
  through the real OTP API (the code is read from the server's console delivery). In the studio a
  PerformanceObserver('longtask') and a requestAnimationFrame counter run from the first script.
  Baseline, same run: the idle studio for a few seconds. Then a batch of 8 (512², 20 steps) is
  generated with the UI's own controls and measured from the click until the queue says "8 done":
  long tasks (> 50 ms, goal: none), total blocking time, frame gaps, WebSocket messages received
  (and how many carried a preview).

The browser and the server share this machine's cores: a long task here can be the renderer waiting
for a CPU that the diffusion model holds. The load average is recorded with every run.

Usage: .venv/bin/python bench/web_bench.py [--quick] [--runs N] [--no-build] [--only size,longtasks]
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import _common as c

NAME = "web_bench"
GOAL_INITIAL_GZ_KB = 250.0
LONG_TASK_MS = 50.0
WEB_DIR = c.REPO_ROOT / "web"
STATIC_DIR = c.REPO_ROOT / "src" / "fimum_ai" / "static"
CHROMIUM = os.environ.get("FIMUM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EMAIL = "web-bench@example.com"
BATCH = 8
SIZE = 512
STEPS = 20
IDLE_S = 4.0
MEASUREMENTS = ("size", "longtasks")

# Runs before the app: every long task and every animation frame, with page-relative times.
OBSERVER_SCRIPT = """
window.__bench = { longtasks: [], frames: [] };
try {
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      window.__bench.longtasks.push({ start: entry.startTime, duration: entry.duration });
    }
  }).observe({ type: 'longtask', buffered: true });
} catch (error) {
  window.__bench.unsupported = String(error);
}
const tick = (time) => { window.__bench.frames.push(time); requestAnimationFrame(tick); };
requestAnimationFrame(tick);
"""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one streaming run (default 3)")
    parser.add_argument("--runs", type=int, default=None, help="streaming runs of 8 jobs")
    parser.add_argument(
        "--no-build", action="store_true", help="measure the existing build in src/fimum_ai/static"
    )
    parser.add_argument("--only", default=",".join(MEASUREMENTS), help=f"subset of {','.join(MEASUREMENTS)}")
    parser.add_argument("--preview-every", type=int, default=1, help="server: a latent preview every N steps")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------------------------------
# Build and size


def build_web() -> None:
    """`npm ci` when node_modules is missing, then the production build (as `make run` does)."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is not installed: cannot build web/ (or pass --no-build)")
    if not (WEB_DIR / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB_DIR, check=True)
    subprocess.run([npm, "run", "build"], cwd=WEB_DIR, check=True, stdout=subprocess.DEVNULL)


class _InitialAssets(HTMLParser):
    """The module scripts and modulepreloads of index.html: what loads before any route chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("src"):
            self.scripts.append(str(values["src"]))
        if tag == "link" and values.get("rel") == "modulepreload" and values.get("href"):
            self.scripts.append(str(values["href"]))


def initial_js() -> dict[str, Any]:
    index = STATIC_DIR / "index.html"
    if not index.is_file():
        raise SystemExit(f"no build at {STATIC_DIR}: run without --no-build")
    parser = _InitialAssets()
    parser.feed(index.read_text(encoding="utf-8"))
    files = []
    for src in dict.fromkeys(parser.scripts):  # unique, in order
        body = (STATIC_DIR / src.lstrip("/")).read_bytes()
        files.append(
            {
                "file": src,
                "raw_bytes": len(body),
                "gzip_bytes": len(gzip.compress(body, compresslevel=9, mtime=0)),
            }
        )
    chunks = sorted(STATIC_DIR.glob("assets/*.js"))
    return {
        "files": files,
        "raw_bytes": sum(f["raw_bytes"] for f in files),
        "gzip_bytes": sum(f["gzip_bytes"] for f in files),
        "all_chunks": len(chunks),
        "all_js_gzip_bytes": sum(
            len(gzip.compress(p.read_bytes(), compresslevel=9, mtime=0)) for p in chunks
        ),
    }


# --------------------------------------------------------------------------------------------------
# Server and browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fimum_command() -> list[str]:
    """The `fimum` CLI of this interpreter's environment."""
    script = Path(sys.executable).with_name("fimum")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from fimum_ai.cli import app; app()"]


@contextmanager
def server(preview_every: int) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """A real `fimum serve` on a fresh data folder with the tiny model; yields (url, log, env)."""
    models = c.tiny_models()
    workdir = Path(tempfile.mkdtemp(prefix="fimum-web-bench-"))
    port = free_port()
    env = {
        **os.environ,
        "FIMUM_DATA_DIR": str(workdir / "data"),
        "FIMUM_DEMO_MODEL_PATH": str(models.base.parent),
        "FIMUM_IMAGE_GENERATION__GENERATION__PREVIEW_EVERY": str(preview_every),
        "PYTHONPATH": str(c.REPO_ROOT / "src"),
    }
    log_path = workdir / "server.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [*fimum_command(), "serve", "--port", str(port)],
            cwd=c.REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start:\n{log_path.read_text()[-3000:]}") from None
                time.sleep(0.3)
        yield url, log_path, env
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def otp_code(log_path: Path, offset: int, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = re.findall(r"One-time code for .*?: (\d{6})", log_path.read_text(errors="replace")[offset:])
        if found:
            return str(found[-1])
        time.sleep(0.2)
    raise SystemExit("no sign-in code appeared in the server's console delivery")


def sign_in(page: Any, url: str, log_path: Path, env: dict[str, str]) -> None:
    """Through the real OTP API from the page (so the browser holds the session cookies)."""
    page.goto(f"{url}/about")
    for attempt in range(2):
        offset = len(log_path.read_text(errors="replace"))
        status = page.evaluate(
            """async (email) => (await fetch('/api/v1/auth/otp/request', {method: 'POST',
                 headers: {'Content-Type': 'application/json'},
                 body: JSON.stringify({identifier: email})})).status""",
            EMAIL,
        )
        if status != 200 and status != 202:
            raise SystemExit(f"OTP request answered {status}")
        code = otp_code(log_path, offset)
        status = page.evaluate(
            """async ([email, code]) => (await fetch('/api/v1/auth/otp/verify', {method: 'POST',
                 headers: {'Content-Type': 'application/json'},
                 body: JSON.stringify({identifier: email, code})})).status""",
            [EMAIL, code],
        )
        if status != 200:
            raise SystemExit(f"OTP verify answered {status}")
        if attempt == 0:
            # The user exists now: no quota for the bench, then sign in again for a token with that tier.
            subprocess.run(
                [*fimum_command(), "users", "set-tier", EMAIL, "enterprise"],
                cwd=c.REPO_ROOT,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )


def api_token(url: str, log_path: Path) -> str:
    """A second session for the bench itself (httpx), to queue the baseline's jobs."""
    import httpx

    offset = len(log_path.read_text(errors="replace"))
    httpx.post(f"{url}/api/v1/auth/otp/request", json={"identifier": EMAIL}, timeout=30).raise_for_status()
    code = otp_code(log_path, offset)
    answer = httpx.post(f"{url}/api/v1/auth/otp/verify", json={"identifier": EMAIL, "code": code}, timeout=30)
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


def generate_elsewhere(url: str, token: str) -> None:
    """The same 8 jobs as the studio run, queued through the API (not by the page), until all end."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    body = {"prompt": "a lighthouse on a cliff at dusk", "width": SIZE, "height": SIZE, "steps": STEPS}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        ids = []
        for _ in range(BATCH):
            answer = client.post("/api/v1/image/generate", json={**body, "async": True})
            answer.raise_for_status()
            ids.append(answer.json()["id"])
        deadline = time.monotonic() + 1200
        while time.monotonic() < deadline:
            jobs = {j["id"]: j["status"] for j in client.get("/api/v1/image/jobs").json()["items"]}
            if all(jobs.get(i) in ("completed", "failed", "cancelled") for i in ids):
                return
            time.sleep(0.5)
    raise SystemExit("the baseline's jobs did not finish in 20 minutes")


def streaming_run(page: Any, url: str, token: str) -> dict[str, Any]:
    """Baselines (the idle studio; the studio idle while the server generates the same 8 jobs for
    another client), then 8 jobs from the studio's own controls until the queue says they are done."""
    messages = {"total": 0, "previews": 0}

    def on_socket(ws: Any) -> None:
        def on_frame(payload: str | bytes) -> None:
            messages["total"] += 1
            if isinstance(payload, str) and '"preview"' in payload:
                messages["previews"] += 1

        ws.on("framereceived", on_frame)

    page.on("websocket", on_socket)
    page.goto(f"{url}/images")
    page.get_by_role("heading", name="Image studio").wait_for()
    page.get_by_role("radio", name=re.compile("Photorealistic")).wait_for()  # presets loaded
    page.wait_for_timeout(500)
    idle_start = page.evaluate("performance.now()")
    page.wait_for_timeout(IDLE_S * 1000)
    idle_end = page.evaluate("performance.now()")
    # Same server work, nothing streamed to this page: what the CPU contention alone costs it.
    contended_start = page.evaluate("performance.now()")
    generate_elsewhere(url, token)
    contended_end = page.evaluate("performance.now()")

    page.get_by_label("Prompt", exact=True).fill("a lighthouse on a cliff at dusk")
    page.get_by_label("Width (px)").fill(str(SIZE))
    page.get_by_label("Height (px)").fill(str(SIZE))
    page.get_by_role("slider", name="Steps").fill(str(STEPS))
    page.get_by_role("slider", name="Images").fill(str(BATCH))
    start = page.evaluate("performance.now()")
    page.get_by_role("button", name=f"Generate {BATCH} images").click()
    page.get_by_text(f"{BATCH} done").wait_for(timeout=600_000)
    end = page.evaluate("performance.now()")
    data = page.evaluate("window.__bench")
    page.remove_listener("websocket", on_socket)
    if data.get("unsupported"):
        raise SystemExit(f"this Chromium has no longtask entries: {data['unsupported']}")

    def window(t0: float, t1: float) -> dict[str, Any]:
        tasks = [t["duration"] for t in data["longtasks"] if t0 <= t["start"] < t1]
        frames = [f for f in data["frames"] if t0 <= f < t1]
        gaps = [b - a for a, b in itertools.pairwise(frames)]
        return {
            "seconds": round((t1 - t0) / 1000, 2),
            "long_tasks": len(tasks),
            "long_task_max_ms": round(max(tasks), 1) if tasks else 0.0,
            "total_blocking_ms": round(sum(d - LONG_TASK_MS for d in tasks), 1),
            "frames": len(frames),
            "fps": round(len(frames) / ((t1 - t0) / 1000), 1) if t1 > t0 else 0.0,
            "frame_gap_max_ms": round(max(gaps), 1) if gaps else 0.0,
            "frame_gap_p95_ms": round(statistics.quantiles(gaps, n=20)[-1], 1) if len(gaps) >= 20 else None,
        }

    return {
        "idle": window(idle_start, idle_end),
        "contended": window(contended_start, contended_end),
        "streaming": window(start, end),
        "ws_messages": messages["total"],
        "ws_previews": messages["previews"],
        "load_average": c.load_average(),
    }


def longtasks(runs: int, preview_every: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    results = []
    with server(preview_every) as (url, log_path, env), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_init_script(OBSERVER_SCRIPT)
            page = context.new_page()
            sign_in(page, url, log_path, env)
            token = api_token(url, log_path)
            fetched = studio_fetch(page, url)
            for index in range(runs):
                c.log(f"streaming run {index + 1}/{runs}")
                results.append(streaming_run(page, url, token))
                page.evaluate("sessionStorage.clear()")
        finally:
            browser.close()
    return {"runs": results, "studio_fetch": fetched, "preview_every": preview_every}


def studio_fetch(page: Any, url: str) -> dict[str, Any]:
    """What Chromium fetched to show the studio (a fresh load): JS bytes on the wire and decoded."""
    page.goto(f"{url}/images")
    page.get_by_role("heading", name="Image studio").wait_for()
    entries = page.evaluate(
        """performance.getEntriesByType('resource').filter((e) => e.name.endsWith('.js'))
             .map((e) => ({name: new URL(e.name).pathname, encoded: e.encodedBodySize,
                           decoded: e.decodedBodySize}))"""
    )
    return {
        "scripts": len(entries),
        "encoded_bytes": sum(e["encoded"] for e in entries),
        "decoded_bytes": sum(e["decoded"] for e in entries),
    }


# --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = only - set(MEASUREMENTS)
    if unknown:
        raise SystemExit(f"unknown measurement(s): {', '.join(sorted(unknown))}")
    runs = args.runs or (1 if args.quick else 3)
    if not args.no_build:
        c.log("building web/ (npm run build)")
        build_web()
    payload: dict[str, Any] = {"machine": c.machine_info(), "goals": []}
    goals: list[dict[str, str]] = payload["goals"]
    if "size" in only:
        size = initial_js()
        payload["initial_js"] = size
        gz_kb = size["gzip_bytes"] / 1000
        c.print_table(
            "Initial JavaScript (before any route chunk)",
            ["file", "raw kB", "gzip kB"],
            [
                [f["file"], f"{f['raw_bytes'] / 1000:.1f}", f"{f['gzip_bytes'] / 1000:.1f}"]
                for f in size["files"]
            ]
            + [["total", f"{size['raw_bytes'] / 1000:.1f}", f"{gz_kb:.1f}"]],
        )
        goals.append(
            {
                "measure": "initial JS, gzipped (index.html's module script + modulepreloads)",
                "value": f"{gz_kb:.1f} kB ({size['raw_bytes'] / 1000:.1f} kB raw; "
                f"all {size['all_chunks']} chunks {size['all_js_gzip_bytes'] / 1000:.1f} kB gz)",
                "goal": f"≤ {GOAL_INITIAL_GZ_KB:.0f} kB",
                "verdict": "met" if gz_kb <= GOAL_INITIAL_GZ_KB else "missed",
            }
        )
    if "longtasks" in only:
        result = longtasks(runs, args.preview_every)
        payload["longtasks"] = result
        rows = []
        for index, run in enumerate(result["runs"], 1):
            for phase in ("idle", "contended", "streaming"):
                w = run[phase]
                rows.append(
                    [
                        f"{index} {phase}",
                        f"{w['seconds']:.1f}",
                        w["long_tasks"],
                        f"{w['long_task_max_ms']:.0f}",
                        f"{w['total_blocking_ms']:.0f}",
                        f"{w['fps']:.0f}",
                        f"{w['frame_gap_max_ms']:.0f}",
                        run["ws_messages"] if phase == "streaming" else "",
                        run["ws_previews"] if phase == "streaming" else "",
                        f"{run['load_average'][0]:.1f}",
                    ]
                )
        c.print_table(
            f"Studio main thread: idle, then {BATCH} jobs of {SIZE}², {STEPS} steps streaming "
            f"(a preview every {result['preview_every']} step(s))",
            [
                "run",
                "s",
                "long tasks",
                "max ms",
                "TBT ms",
                "fps",
                "max gap ms",
                "ws msgs",
                "previews",
                "load",
            ],
            rows,
        )
        streaming = [run["streaming"] for run in result["runs"]]
        total = sum(w["long_tasks"] for w in streaming)
        worst = max((w["long_task_max_ms"] for w in streaming), default=0.0)
        idle_total = sum(run["idle"]["long_tasks"] for run in result["runs"])
        contended = [run["contended"] for run in result["runs"]]
        contended_total = sum(w["long_tasks"] for w in contended)
        contended_worst = max((w["long_task_max_ms"] for w in contended), default=0.0)
        goals.append(
            {
                "measure": f"long tasks > 50 ms while {BATCH} jobs stream previews (studio, Chromium)",
                "value": f"{total} in {len(streaming)} run(s), longest {worst:.0f} ms, "
                f"{sum(r['ws_previews'] for r in result['runs'])} previews; baselines: idle studio "
                f"{idle_total}, idle studio while the server makes the same jobs for another client "
                f"{contended_total} (longest {contended_worst:.0f} ms)",
                "goal": "0",
                "verdict": "met" if total == 0 else "missed",
            }
        )
        fetched = result["studio_fetch"]
        goals.append(
            {
                "measure": "JS fetched to show the studio (initial + lazy chunks, on the wire)",
                "value": f"{fetched['encoded_bytes'] / 1000:.1f} kB in {fetched['scripts']} files "
                f"({fetched['decoded_bytes'] / 1000:.1f} kB decoded)",
                "goal": "info",
                "verdict": "–",
            }
        )
    c.print_table("Web goals", ["measure", "value", "goal", "verdict"], [list(g.values()) for g in goals])
    c.log(f"wrote {c.write_json(NAME, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
