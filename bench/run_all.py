"""`make bench`: the engine-overhead, authenticated-API, image-service and web benchmarks always, the
full-size CPU benchmark unless --quick.

Each benchmark runs in its own process (its own memory peak, thread settings and torch state),
prints its tables and writes bench/out/<name>.json; this script then prints a summary against the
issue's goals and writes bench/out/summary.json. gpu_bench.py is not run here: it needs a CUDA
machine (see bench/README.md). Missed goals are reported, not failures; a crashed benchmark is
(auth_bench.py also fails when any authenticated response was not a 200).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import _common as c

QUICK_CASES = "512x1,512x4,1024x1"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="engine overhead (2 repeats, without 1024² ×4), auth_bench --quick and image_service_bench "
        "--quick; no cpu_full (~10 min)",
    )
    parser.add_argument(
        "--no-auth", action="store_true", help="skip auth_bench.py (needs wrk, PostgreSQL, Redis)"
    )
    parser.add_argument("--no-image-service", action="store_true", help="skip image_service_bench.py")
    parser.add_argument("--no-sandbox", action="store_true", help="skip sandbox_bench.py (needs bubblewrap)")
    parser.add_argument(
        "--no-chat", action="store_true", help="skip chat_bench.py (TTFT and 100 concurrent chats)"
    )
    parser.add_argument(
        "--no-web", action="store_true", help="skip web_bench.py (needs npm and /usr/bin/chromium)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="engine overhead repeats (default 4)")
    parser.add_argument(
        "--cpu-experiments",
        default=None,
        help="cpu_full.py --experiments value (default: its own; add 'compile' for torch.compile)",
    )
    return parser.parse_args(argv)


def run_script(name: str, arguments: Sequence[str]) -> bool:
    command = [sys.executable, str(c.BENCH_DIR / f"{name}.py"), *arguments]
    c.log(f"running {' '.join(command[1:])}")
    return subprocess.run(command, check=False).returncode == 0


def read_json(name: str) -> dict[str, Any] | None:
    path = c.OUT_DIR / f"{name}.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def ratio_verdict(ratio: dict[str, float], goal: float) -> str:
    """met; within noise (the median is over the goal but the lower quartile is not); missed."""
    if ratio["median"] <= goal:
        return "met"
    return "within noise (IQR spans the goal)" if ratio["q1"] <= goal else "missed"


def overhead_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    goal = data["goal_ratio"]
    for case in data["cases"]:
        wall = case["ratio_engine_over"]["bare"]
        cpu = case["cpu_ratio_engine_over"]["bare"]
        rows.append(
            [
                f"engine overhead {case['case']}",
                f"{wall['median']:.3f} [{wall['q1']:.3f}–{wall['q3']:.3f}] (CPU time {cpu['median']:.3f})",
                f"≤ {goal:.2f}",
                ratio_verdict(wall, goal),
            ]
        )
        batched = case["ratio_engine_over"].get("bare_batched")
        if batched:
            rows.append(
                [
                    f"engine (one by one) vs one batched diffusers call {case['case']}",
                    f"{batched['median']:.3f} [{batched['q1']:.3f}–{batched['q3']:.3f}]",
                    "info",
                    "batched faster" if batched["q1"] > 1 else "no clear difference",
                ]
            )
    return rows


def cpu_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    run = data.get("end_to_end")
    if run:
        rows.append(
            [
                f"CPU full-size SDXL {data['size']}², {data['steps']} steps, {run['precision']}",
                f"{run['wall_s']:.1f} s (load {run['load_average_before'][0]:.1f})",
                f"≤ {run['goal_s']:.0f} s",
                "met" if run["meets_goal"] else "missed",
            ]
        )
    experiments = data.get("experiments", {})
    roof = experiments.get("roofline")
    if roof:
        rows.append(
            [
                "CPU floor: 20 UNet steps at this CPU's bf16 matmul rate",
                f"{roof['steps_floor_s']:.0f} s ({roof['unet_step_gflop']:.0f} GFLOP/step at "
                f"{roof['matmul_bf16_gflops']:.0f} GFLOP/s)",
                "≤ 90 s",
                "reachable" if roof["steps_floor_s"] <= 90 else "not reachable on this CPU",
            ]
        )
    for name, group in experiments.items():
        if name == "roofline":
            continue
        what = "VAE decode time" if name == "vae" else "UNet step time"
        for row in group:
            if row["variant"] != "baseline":
                rows.append(
                    [
                        f"CPU tuning: {row['variant']}",
                        f"{row['ratio_to_baseline']['median']:.3f}× baseline {what}",
                        "< 1 helps",
                        "helps" if row["ratio_to_baseline"]["median"] < 0.97 else "no gain",
                    ]
                )
    return rows


def auth_rows(data: dict[str, Any]) -> list[list[str]]:
    result = data["verdict"]
    paired = result["paired_ratio"]
    rows = [
        [
            "authenticated GET /api/v1/me / bare GET /healthz (req/s, one worker)",
            f"{result['ratio_of_medians']:.3f} (paired {paired['median']:.3f} "
            f"[{paired['min']:.3f}–{paired['max']:.3f}]; wrk {data['wrk']})",
            f"≥ {result['goal_ratio']:.2f}",
            "met" if result["ratio_met"] else "missed",
        ],
        [
            "authenticated GET /api/v1/me requests/s (one worker)",
            f"{result['auth_requests_per_s']:,.0f} (bare {result['bare_requests_per_s']:,.0f})",
            f"≥ {result['goal_requests_per_s']:,.0f}",
            "met" if result["rps_met"] else "missed",
        ],
    ]
    if "auth_over_trivial" in result:
        rows.append(
            [
                "authenticated /me / a trivial async FastAPI endpoint",
                f"{result['auth_over_trivial']:.3f} (/healthz: {result['bare_over_trivial']:.3f})",
                "info",
                "–",
            ]
        )
    return rows


def image_service_rows(data: dict[str, Any]) -> list[list[str]]:
    """image_service_bench.py judges its own goals: its rows are copied as they are."""
    return [[row["measure"], row["value"], row["goal"], row["verdict"]] for row in data.get("goals", [])]


def chat_rows(data: dict[str, Any]) -> list[list[str]]:
    goal = data["goal_overhead_ms"]
    rows = []
    for path in ("openai", "conversation"):
        row = data["ttft"][path]
        rows.append(
            [
                f"chat TTFT overhead ({path} route) vs the stand-in directly",
                f"{row['overhead_ms']:.1f} ms median (Fimum CPU {row['fimum_cpu_ms_per_chat']:.1f} ms/chat)",
                f"≤ {goal:.0f} ms",
                "met" if row["overhead_ms"] <= goal else "missed",
            ]
        )
    run = data["concurrent"]["fimum"]
    rows.append(
        [
            f"{run['chats']} concurrent streamed chats, one worker",
            f"{run['ok']} ok, {run['errors']} errors, {run['wall_s']:.1f} s",
            "no errors",
            "met" if run["errors"] == 0 else "missed",
        ]
    )
    return rows


def web_rows(data: dict[str, Any]) -> list[list[str]]:
    """web_bench.py judges its own goals too."""
    return image_service_rows(data)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 4)
    overhead_args = ["--repeats", str(repeats), *(["--cases", QUICK_CASES] if args.quick else [])]
    ok = {"engine_overhead": run_script("engine_overhead", overhead_args)}
    if not args.no_auth:
        ok["auth_bench"] = run_script("auth_bench", ["--quick"] if args.quick else [])
    if not args.no_image_service:
        ok["image_service_bench"] = run_script("image_service_bench", ["--quick"] if args.quick else [])
    if not args.no_sandbox:
        ok["sandbox_bench"] = run_script("sandbox_bench", ["--quick"] if args.quick else [])
    if not args.no_chat:
        ok["chat_bench"] = run_script("chat_bench", ["--quick"] if args.quick else [])
    if not args.no_web:
        ok["web_bench"] = run_script("web_bench", ["--quick"] if args.quick else [])
    if not args.quick:
        extra = ["--experiments", args.cpu_experiments] if args.cpu_experiments else []
        ok["cpu_full"] = run_script("cpu_full", extra)
    rows: list[list[str]] = []
    overhead = read_json("engine_overhead")
    if ok["engine_overhead"] and overhead:
        rows += overhead_rows(overhead)
    auth = read_json("auth_bench")
    if ok.get("auth_bench") and auth and "verdict" in auth:
        rows += auth_rows(auth)
    service = read_json("image_service_bench")
    if ok.get("image_service_bench") and service:
        rows += image_service_rows(service)
    chat = read_json("chat_bench")
    if ok.get("chat_bench") is not None and chat:
        rows += chat_rows(chat)
    web = read_json("web_bench")
    if ok.get("web_bench") and web:
        rows += web_rows(web)
    cpu = read_json("cpu_full")
    if ok.get("cpu_full") and cpu:
        rows += cpu_rows(cpu)
    c.print_table("Summary against the issue's goals", ["measure", "value", "goal", "verdict"], rows)
    summary = {"machine": c.machine_info(), "completed": ok, "rows": rows}
    c.log(f"wrote {c.write_json('summary', summary)}")
    failed = [name for name, success in ok.items() if not success]
    if failed:
        c.log(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
