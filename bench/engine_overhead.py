"""Engine overhead: `ImageEngine.text_to_image` against a bare diffusers call on the same pipeline.

The tiny random-weight SDXL model (fast, same code path as the real one; fp32 by default, which
keeps the pipeline fast and so the test of the overhead strict) at 512² and 1024², batch 1 and 4,
20 steps, DPMSolverMultistep, fixed seed. Three ways of producing the same images, run
interleaved (A B C, C B A, ...) after one warm-up each, on the very same loaded pipeline object:

- engine:       `engine.text_to_image(params)`
- bare:         `pipe(...)` once per image with the engine's arguments (seed + i per image), which is
                how the engine runs a batch: its images must be pixel-identical to the engine's.
- bare batched: one `pipe(..., num_images_per_prompt=batch)` call (batch > 1 only): what a plain
                diffusers user writes. The engine does not batch (see engine.py), so this column
                shows what that choice costs or saves on this device.

Ratios are medians of paired ratios (run i of the engine over the neighbouring run i of the
baseline), which cancels slow drifts of a shared machine's load; IQR gives their spread; the same
ratio of process CPU time is reported beside it. When a case is clearly over the goal (3 %) or
with --profile, cProfile runs one engine and one bare run and attributes the engine's time: inside
diffusers' pipeline call, outside it, and per engine function. That attribution does not depend
on machine load.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import _common as c

CASES: tuple[tuple[int, int], ...] = ((512, 1), (512, 4), (1024, 1), (1024, 4))
STEPS = 20
GOAL_RATIO = 1.03
PROFILE_RUNS = 1  # the attribution below does not depend on load: one run of each path is enough
PROFILE_TOP = 12

Runner = Callable[[], tuple[c.Timing, list[Any]]]


@dataclass
class CaseResult:
    size: int
    batch: int
    times: dict[str, list[float]]  # wall seconds per run
    cpu_times: dict[str, list[float]]  # process CPU seconds per run
    max_diff_bare: int
    max_diff_batched: int | None
    load_average: tuple[float, float, float]
    profile: dict[str, Any] | None = field(default=None)

    @property
    def label(self) -> str:
        return f"{self.size}² ×{self.batch}"

    def ratio(self, baseline: str, *, cpu: bool = False) -> c.Summary | None:
        times = self.cpu_times if cpu else self.times
        if baseline not in times:
            return None
        return c.paired_ratios(times["engine"], times[baseline])

    def over_goal(self) -> bool:
        """Clearly over the goal: even the lower quartile of the wall-time ratios, or the median
        CPU-time ratio, exceeds it (a median alone can cross it by noise on a loaded machine)."""
        wall, cpu = self.ratio("bare"), self.ratio("bare", cpu=True)
        assert wall is not None and cpu is not None
        return wall.q1 > GOAL_RATIO or cpu.median > GOAL_RATIO

    def as_dict(self) -> dict[str, Any]:
        ratios = {name: self.ratio(name) for name in ("bare", "bare_batched")}
        cpu_ratios = {name: self.ratio(name, cpu=True) for name in ("bare", "bare_batched")}
        return {
            "case": self.label,
            "size": self.size,
            "batch": self.batch,
            "steps": STEPS,
            "seconds": {name: c.summarize(samples).as_dict() for name, samples in self.times.items()},
            "cpu_seconds": {name: c.summarize(samples).as_dict() for name, samples in self.cpu_times.items()},
            "samples": self.times,
            "cpu_samples": self.cpu_times,
            "ratio_engine_over": {name: r.as_dict() for name, r in ratios.items() if r is not None},
            "cpu_ratio_engine_over": {name: r.as_dict() for name, r in cpu_ratios.items() if r is not None},
            "pixel_identical_to_bare": self.max_diff_bare == 0,
            "max_pixel_diff_bare": self.max_diff_bare,
            "max_pixel_diff_bare_batched": self.max_diff_batched,
            "load_average": self.load_average,
            "profile": self.profile,
        }


def runners(engine: Any, pipe: Any, scheduler: Any, params: Any) -> dict[str, Runner]:
    def run_engine() -> tuple[c.Timing, list[Any]]:
        with c.timed() as elapsed:
            images = engine.text_to_image(params).images
        return elapsed, images

    def run_bare(batched: bool) -> Runner:
        def run() -> tuple[c.Timing, list[Any]]:
            with c.timed() as elapsed:
                images = c.bare_text_to_image(pipe, scheduler, params, batched=batched)
            return elapsed, images

        return run

    found: dict[str, Runner] = {"engine": run_engine, "bare": run_bare(False)}
    if params.batch_size > 1:
        found["bare_batched"] = run_bare(True)
    return found


def measure_case(engine: Any, pipe: Any, scheduler: Any, size: int, batch: int, repeats: int) -> CaseResult:
    params = c.generate_params(size, batch, STEPS)
    run = runners(engine, pipe, scheduler, params)
    images = {name: runner()[1] for name, runner in run.items()}  # warm-up; kept for the pixel check
    times: dict[str, list[float]] = {name: [] for name in run}
    cpu_times: dict[str, list[float]] = {name: [] for name in run}
    order = list(run)
    for repeat in range(repeats):
        for name in order if repeat % 2 == 0 else reversed(order):
            timing, _ = run[name]()
            times[name].append(timing.wall)
            cpu_times[name].append(timing.cpu)
        c.log(f"{size}² ×{batch} repeat {repeat + 1}/{repeats}: " + _latest(times))
    batched = images.get("bare_batched")
    return CaseResult(
        size=size,
        batch=batch,
        times=times,
        cpu_times=cpu_times,
        max_diff_bare=c.max_pixel_difference(images["engine"], images["bare"]),
        max_diff_batched=None if batched is None else c.max_pixel_difference(images["engine"], batched),
        load_average=c.load_average(),
    )


def _latest(times: dict[str, list[float]]) -> str:
    return ", ".join(f"{name} {samples[-1]:.3f} s" for name, samples in times.items())


# --------------------------------------------------------------------------------------------------
# Profiling

PIPELINE_CALL = ("pipeline_stable_diffusion_xl.py", "__call__")
UNET_FORWARD = ("unet_2d_condition.py", "forward")
# The engine functions that merely wrap the pipeline call (their cumulative time includes it).
WRAPPERS = frozenset({"text_to_image", "_base_and_refiner", "_call"})


def _matching(stats: Any, file_suffix: str, name: str) -> tuple[float, int]:
    """(cumulative seconds, calls) summed over the profiled functions `name` in `file_suffix`."""
    cumulative, calls = 0.0, 0
    for (path, _, func), values in stats.stats.items():
        if path.endswith(file_suffix) and func == name:
            calls += values[0]
            cumulative += values[3]
    return cumulative, calls


def _short_path(path: str) -> str:
    for marker in ("site-packages/", "src/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _attribution(profile: cProfile.Profile, runs: int) -> dict[str, Any]:
    """Per run: total, time inside diffusers' pipeline __call__, time outside it, UNet calls."""
    stats: Any = pstats.Stats(profile)
    total = float(stats.total_tt)  # every profiled second: the runs themselves
    in_pipe, pipe_calls = _matching(stats, *PIPELINE_CALL)
    _, unet_calls = _matching(stats, *UNET_FORWARD)
    ours = sorted(
        (
            (f"{func} ({_short_path(path)}:{line})", values[3] / runs)
            for (path, line, func), values in stats.stats.items()
            if "fimum_ai" in path and func not in WRAPPERS
        ),
        key=lambda item: -item[1],
    )
    return {
        "total_s": total / runs,
        "in_pipeline_call_s": in_pipe / runs,
        "outside_pipeline_call_s": (total - in_pipe) / runs,
        "pipeline_calls": pipe_calls // runs,
        "unet_calls": unet_calls // runs,
        "fimum_ai_cumulative_s": [{"function": name, "cumulative_s": s} for name, s in ours[:PROFILE_TOP]],
    }


def profile_case(engine: Any, pipe: Any, scheduler: Any, size: int, batch: int) -> dict[str, Any]:
    """Where the engine's time goes beyond diffusers: cProfile of interleaved engine and bare runs.

    Load-independent attribution: the time the engine spends outside diffusers' pipeline call,
    and its own functions (step callbacks run inside the call) with their cumulative times.
    """
    params = c.generate_params(size, batch, STEPS)
    run = runners(engine, pipe, scheduler, params)
    profiles = {"engine": cProfile.Profile(), "bare": cProfile.Profile()}
    for _ in range(PROFILE_RUNS):
        for name, profile in profiles.items():
            profile.enable()
            run[name]()
            profile.disable()
    return {
        "case": f"{size}² ×{batch}",
        "runs": PROFILE_RUNS,
        **{name: _attribution(profile, PROFILE_RUNS) for name, profile in profiles.items()},
    }


# --------------------------------------------------------------------------------------------------
# Report


def print_results(results: Sequence[CaseResult]) -> None:
    rows = []
    for result in results:
        med = {name: c.summarize(samples).median for name, samples in result.times.items()}
        bare, batched = result.ratio("bare"), result.ratio("bare_batched")
        bare_cpu = result.ratio("bare", cpu=True)
        assert bare is not None and bare_cpu is not None
        rows.append(
            [
                result.label,
                c.fmt_s(med["engine"]),
                c.fmt_s(med["bare"]),
                _ratio_cell(bare),
                _ratio_cell(bare_cpu),
                "yes" if result.max_diff_bare == 0 else f"no (max diff {result.max_diff_bare})",
                c.fmt_s(med["bare_batched"]) if "bare_batched" in med else "-",
                _ratio_cell(batched) if batched else "-",
                f"{result.load_average[0]:.2f}",
            ]
        )
    c.print_table(
        f"Engine overhead, tiny SDXL, {STEPS} steps (medians in s; ratio = median of paired engine/"
        f"baseline [IQR], goal ≤ {GOAL_RATIO:.2f})",
        [
            "case",
            "engine",
            "bare",
            "engine/bare",
            "engine/bare CPU time",
            "pixel-identical",
            "bare batched",
            "engine/batched",
            "load 1m",
        ],
        rows,
    )
    for result in results:
        if result.profile:
            print_profile(result.profile)


def _ratio_cell(summary: c.Summary) -> str:
    return f"{summary.median:.3f} [{summary.q1:.3f}–{summary.q3:.3f}]"


def print_profile(profile: dict[str, Any]) -> None:
    rows = []
    for name in ("engine", "bare"):
        part = profile[name]
        rows.append(
            [
                name,
                f"{part['total_s'] * 1000:.0f}",
                f"{part['in_pipeline_call_s'] * 1000:.0f}",
                f"{part['outside_pipeline_call_s'] * 1000:.1f}",
                f"{part['outside_pipeline_call_s'] / part['total_s'] * 100:.2f} %",
                part["pipeline_calls"],
                part["unet_calls"],
            ]
        )
    c.print_table(
        f"cProfile {profile['case']} ({profile['runs']} interleaved runs each; ms per run)",
        ["path", "total", "in pipe()", "outside pipe()", "outside share", "pipe() calls", "UNet calls"],
        rows,
    )
    c.print_table(
        f"cProfile {profile['case']}: engine functions besides the call wrappers, cumulative",
        ["function", "ms/run"],
        [
            [row["function"], f"{row['cumulative_s'] * 1000:.2f}"]
            for row in profile["engine"]["fimum_ai_cumulative_s"]
        ],
    )


# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per variant and case")
    parser.add_argument(
        "--cases", default=",".join(f"{s}x{b}" for s, b in CASES), help="SIZExBATCH list, e.g. 512x1,1024x4"
    )
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="engine precision")
    parser.add_argument("--profile", action="store_true", help="profile every case, not only slow ones")
    parser.add_argument("--json", default="engine_overhead", help="name of the JSON file in bench/out/")
    return parser.parse_args(argv)


def parse_cases(text: str) -> list[tuple[int, int]]:
    cases = []
    for item in text.split(","):
        size, batch = item.lower().split("x")
        cases.append((int(size), int(batch)))
    return cases


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    machine = c.machine_info()
    models = c.tiny_models()
    config = c.image_config(generation={"precision": args.precision}, hardware={"device": "cpu"})
    engine = c.load_engine(models, config)
    pipe = c.base_pipeline(engine)
    scheduler = c.make_scheduler(pipe, "DPMSolverMultistep")
    results = []
    for size, batch in parse_cases(args.cases):
        result = measure_case(engine, pipe, scheduler, size, batch, args.repeats)
        if args.profile or result.over_goal():
            c.log(f"{result.label}: profiling engine and bare runs")
            result.profile = profile_case(engine, pipe, scheduler, size, batch)
        results.append(result)
    print_results(results)
    payload = {
        "benchmark": "engine_overhead",
        "machine": machine,
        "model": "tiny random-weight SDXL (make_tiny), base only",
        "device": engine.device,
        "precision": engine.precision,
        "steps": STEPS,
        "scheduler": "DPMSolverMultistep",
        "repeats": args.repeats,
        "goal_ratio": GOAL_RATIO,
        "cases": [result.as_dict() for result in results],
        "load_average_end": c.load_average(),
    }
    c.log(f"wrote {c.write_json(args.json, payload)}")
    return payload


if __name__ == "__main__":
    main()
