"""GPU benchmark of the engine: sizes × batch sizes × torch.compile off/on, fp16, peak VRAM.

Runs unattended on a CUDA machine with the full-size random SDXL base (built once into
bench/out/full-sdxl-random/ by make_full_random when missing: ~1 min, ~6.5 GB): for each compile
mode a fresh engine (no CPU offload: the VRAM goal is without it), then for each case one warm-up
run (it carries torch.compile's compilation; reported as "first s") and --repeats timed runs.
Every case is written to the JSON file as soon as it finishes, and a failing case (e.g. out of
memory) is recorded and skipped, so a long run that is cut short still leaves its results.

What runs at each size is what the engine does: sizes above SDXL's native area (1024²) are
generated at the native bucket and upscaled (x4 upscaler when one is given with --upscaler, else
Lanczos); the table's "generated" column shows it. The engine runs the images of a batch one by
one (engine.py explains why); for batch > 1 at native size or below, one plain diffusers call with
`num_images_per_prompt` on the same pipeline ("bare batched") shows what batching would give.

Goals (issue): 1024², 30 steps ≤ 1.2 s on an H100; peak VRAM ≤ 8 GiB at 1024² without offload
(spec: < 12 GB); batch 4 < 2× batch 1.

Smoke test of the same code on any machine: `--device cpu --tiny` (512², batch 1 and 2, 20 steps).
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _common as c

GOAL_1024_S = 1.2
GOAL_VRAM_BYTES = 8 * 2**30
SPEC_VRAM_BYTES = 12 * 10**9
GOAL_BATCH4_FACTOR = 2.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (smoke test)")
    parser.add_argument("--tiny", action="store_true", help="the tiny model: a smoke test of this script")
    parser.add_argument(
        "--model", type=Path, default=c.FULL_MODEL_DIR, help="SDXL base folder (built if absent)"
    )
    parser.add_argument("--upscaler", type=Path, default=None, help="x4 upscaler folder for the hires sizes")
    parser.add_argument("--sizes", default=None, help="comma list (default 512,1024,2048,4096; tiny: 512)")
    parser.add_argument("--batches", default=None, help="comma list (default 1,4,8; tiny: 1,2)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 30; tiny: 20)")
    parser.add_argument("--compile", default="off,on", help="torch.compile modes to run: off, on or off,on")
    parser.add_argument("--precision", default="fp16", choices=("fp16", "bf16", "fp32"))
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case after the warm-up")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare batched diffusers baseline")
    parser.add_argument("--json", default="gpu_bench", help="name of the JSON file in bench/out/")
    args = parser.parse_args(argv)
    args.sizes = _ints(args.sizes or ("512" if args.tiny else "512,1024,2048,4096"))
    args.batches = _ints(args.batches or ("1,2" if args.tiny else "1,4,8"))
    args.steps = args.steps or (20 if args.tiny else 30)
    args.compile = [mode == "on" for mode in args.compile.split(",")]
    return args


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


# --------------------------------------------------------------------------------------------------
# Environment


def device_info(device: str) -> dict[str, Any]:
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return {"kind": "cpu", "name": c.cpu_model()}
    index = torch.device(device).index or 0
    props = torch.cuda.get_device_properties(index)
    return {
        "kind": "cuda",
        "name": props.name,
        "memory_bytes": int(props.total_memory),
        "capability": f"{props.major}.{props.minor}",
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),  # type: ignore[no-untyped-call]
    }


def model_set(args: argparse.Namespace) -> Any:
    from fimum_ai.images.model_store import ModelSet

    if args.tiny:
        return ModelSet(base=c.tiny_models().base, refiner=None, upscaler=args.upscaler, demo=True)
    base = c.full_models(args.model).base
    return ModelSet(base=base, refiner=None, upscaler=args.upscaler, demo=False)


def engine_for(models: Any, args: argparse.Namespace, compile_on: bool) -> Any:
    config = c.image_config(
        generation={"precision": args.precision, "enable_torch_compile": compile_on},
        hardware={
            "device": args.device,
            "offload_to_cpu": False,
            "sequential_cpu_offload": False,
            "compile_on_cpu": compile_on,
        },
    )
    return c.load_engine(models, config, device=args.device)


def free(engine: Any) -> None:
    import torch

    engine.unload()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    torch._dynamo.reset()


# --------------------------------------------------------------------------------------------------
# One case


def run_engine(engine: Any, params: Any) -> dict[str, Any]:
    clock = c.StepClock()
    with c.timed() as elapsed:
        clock.restart()
        result = engine.text_to_image(params, progress=clock)
    meta = result.metadata[0]
    return {
        "wall_s": elapsed.wall,
        "step_s": c.summarize(clock.step_times()).median,
        "peak_vram_bytes": meta.peak_vram_bytes,
        "peak_rss_bytes": meta.peak_rss_bytes,
        "generated_size": meta.parameters.get("generated_size", [params.width, params.height]),
        "hires_method": meta.parameters.get("hires_method"),
        "memory_fallback": bool(meta.parameters.get("memory_fallback")),
    }


def run_bare_batched(engine: Any, params: Any) -> float:
    pipe = c.base_pipeline(engine)
    scheduler = c.make_scheduler(pipe, "DPMSolverMultistep")
    _sync()
    with c.timed() as elapsed:
        c.bare_text_to_image(pipe, scheduler, params, batched=True)
        _sync()
    return elapsed.wall


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure_case(engine: Any, size: int, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    params = c.generate_params(size, batch, args.steps)
    first = run_engine(engine, params)
    runs = [run_engine(engine, params) for _ in range(args.repeats)]
    walls = [run["wall_s"] for run in runs]
    case: dict[str, Any] = {
        "size": size,
        "batch": batch,
        "steps": args.steps,
        "first_s": first["wall_s"],
        "wall_s": c.summarize(walls).as_dict(),
        "samples_s": walls,
        "step_s": c.summarize([run["step_s"] for run in runs]).median,
        "peak_vram_bytes": _max_or_none([run["peak_vram_bytes"] for run in [first, *runs]]),
        "peak_rss_bytes": _max_or_none([run["peak_rss_bytes"] for run in [first, *runs]]),
        "generated_size": runs[0]["generated_size"],
        "hires_method": runs[0]["hires_method"],
        "memory_fallback": any(run["memory_fallback"] for run in [first, *runs]),
        "load_average": c.load_average(),
    }
    native = size * size <= engine_native_pixels(engine)
    if batch > 1 and native and not args.no_bare:
        run_bare_batched(engine, params)  # warm-up (and compilation for the batched shape)
        bare = [run_bare_batched(engine, params) for _ in range(args.repeats)]
        case["bare_batched_s"] = c.summarize(bare).as_dict()
    return case


def engine_native_pixels(engine: Any) -> int:
    return int(engine._config.generation.native_pixels)


def _max_or_none(values: Sequence[int | None]) -> int | None:
    present = [value for value in values if value is not None]
    return max(present) if present else None


def safe_case(engine: Any, size: int, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    c.log(f"case {size}² ×{batch}, {args.steps} steps")
    try:
        return measure_case(engine, size, batch, args)
    except Exception as exc:  # unattended: record it and go on with the next case
        c.log(f"case {size}² ×{batch} failed: {type(exc).__name__}: {exc}")
        return {"size": size, "batch": batch, "steps": args.steps, "error": f"{type(exc).__name__}: {exc}"}


# --------------------------------------------------------------------------------------------------
# Goals and report


def goals(cases: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The issue's three GPU goals, judged on the 1024² cases (None where not measured)."""

    def find(batch: int, compiled: bool) -> dict[str, Any] | None:
        for case in cases:
            if (case["size"], case["batch"], case["compile"]) == (1024, batch, compiled) and "wall_s" in case:
                return case
        return None

    single = [case for case in (find(1, True), find(1, False)) if case]
    best = min((case["wall_s"]["median"] for case in single), default=None)
    vram = [case["peak_vram_bytes"] for case in single if case.get("peak_vram_bytes") is not None]
    factors = [
        quad["wall_s"]["median"] / one["wall_s"]["median"]
        for compiled in (False, True)
        if (one := find(1, compiled)) and (quad := find(4, compiled))
    ]
    bare_factors = [
        quad["bare_batched_s"]["median"] / one["wall_s"]["median"]
        for compiled in (False, True)
        if (one := find(1, compiled)) and (quad := find(4, compiled)) and "bare_batched_s" in quad
    ]
    return {
        "1024_single_best_s": best,
        "1024_single_goal_met": None if best is None else best <= GOAL_1024_S,
        "1024_peak_vram_bytes": max(vram) if vram else None,
        "1024_vram_goal_met": None if not vram else max(vram) <= GOAL_VRAM_BYTES,
        "1024_vram_spec_met": None if not vram else max(vram) < SPEC_VRAM_BYTES,
        "batch4_over_single": factors,
        "batch4_goal_met": None if not factors else all(f < GOAL_BATCH4_FACTOR for f in factors),
        # What one batched diffusers call on the same pipeline gives (the engine runs images one by one).
        "bare_batched4_over_single": bare_factors,
    }


def print_cases(cases: Sequence[dict[str, Any]], title: str) -> None:
    rows = []
    for case in cases:
        label = [f"{case['size']}²", case["batch"], "on" if case["compile"] else "off"]
        if "error" in case:
            rows.append([*label, "error", case["error"][:60], "", "", "", "", ""])
            continue
        bare = case.get("bare_batched_s")
        generated = "×".join(str(side) for side in case["generated_size"])
        rows.append(
            [
                *label,
                c.fmt_s(case["wall_s"]["median"]),
                f"{case['wall_s']['min']:.3f}–{case['wall_s']['max']:.3f}",
                f"{case['step_s'] * 1000:.0f}",
                c.fmt_s(case["first_s"]),
                c.fmt_gib(case["peak_vram_bytes"] or case["peak_rss_bytes"]),
                generated + (f" +{case['hires_method']}" if case["hires_method"] else ""),
                c.fmt_s(bare["median"]) if bare else "-",
            ]
        )
    c.print_table(
        title,
        [
            "size",
            "batch",
            "compile",
            "median s",
            "min–max",
            "ms/step",
            "first s",
            "peak VRAM GiB (CPU: RSS)",
            "generated",
            "bare batched s",
        ],
        rows,
    )


def print_goals(result: dict[str, Any]) -> None:
    def verdict(met: bool | None) -> str:
        return "not measured" if met is None else ("met" if met else "MISSED")

    best, vram, factors = (
        result["1024_single_best_s"],
        result["1024_peak_vram_bytes"],
        result["batch4_over_single"],
    )
    c.print_table(
        "Goals",
        ["goal", "measured", "verdict"],
        [
            [
                f"1024² ×1 ≤ {GOAL_1024_S} s",
                "-" if best is None else f"{best:.3f} s",
                verdict(result["1024_single_goal_met"]),
            ],
            [
                "peak VRAM at 1024² ≤ 8 GiB (spec < 12 GB)",
                f"{c.fmt_gib(vram)} GiB",
                verdict(result["1024_vram_goal_met"]),
            ],
            [
                "1024² batch 4 < 2× batch 1",
                ", ".join(f"{f:.2f}×" for f in factors) or "-",
                verdict(result["batch4_goal_met"]),
            ],
            [
                "  for comparison: one batched diffusers call",
                ", ".join(f"{f:.2f}×" for f in result["bare_batched4_over_single"]) or "-",
                "",
            ],
        ],
    )


# --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    payload: dict[str, Any] = {
        "benchmark": "gpu_bench",
        "machine": c.machine_info(),
        "device": device_info(args.device),
        "model": "tiny SDXL (smoke test)" if args.tiny else f"full-size random SDXL base at {args.model}",
        "upscaler": str(args.upscaler) if args.upscaler else None,
        "precision": args.precision,
        "steps": args.steps,
        "offload": False,
        "cases": [],
    }
    models = model_set(args)
    for compile_on in args.compile:
        engine = engine_for(models, args, compile_on)
        payload["engine_precision"] = engine.precision
        for size in args.sizes:
            for batch in args.batches:
                case = {**safe_case(engine, size, batch, args), "compile": compile_on}
                payload["cases"].append(case)
                c.write_json(args.json, payload)  # after every case: a cut-short run keeps its results
        free(engine)
    payload["goals"] = goals(payload["cases"])
    print_cases(
        payload["cases"], f"Engine on {payload['device']['name']} ({args.precision}, {args.steps} steps)"
    )
    print_goals(payload["goals"])
    c.log(f"wrote {c.write_json(args.json, payload)}")
    return payload


if __name__ == "__main__":
    main()
