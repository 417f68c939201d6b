"""Full-size SDXL on the CPU: 512², 20 steps, bf16, through the engine; then tuning experiments.

1. End to end: the full-size SDXL base architecture with random weights (same FLOPs and memory as
   the real model; built once into bench/out/full-sdxl-random/) runs text-to-image through
   `ImageEngine` configured as production would be on a CPU box (IMAGE_DEVICE=cpu,
   IMAGE_PRECISION=bf16). Reports wall time, seconds per denoising step (from the progress
   callback), the time outside the steps (text encoders, VAE decode) and peak RSS.
2. Tuning: one UNet step as the pipeline runs it at 512² (batch 2 for classifier-free guidance,
   64×64 latents) on the engine's own loaded UNet, for each variant in turn, interleaved round by
   round after a warm-up round, so every variant sees the same machine load:
   baseline (the engine as configured), threads=1, the UNet in the other memory format
   (channels_last or contiguous, whichever the engine does not use), classic (non-SDPA)
   attention; a roofline (the step's FLOPs against this CPU's bf16 matmul rate: the fastest a
   step can be); the VAE decode in the engine's memory format against the other one; then fp32
   weights with bf16 autocast and plain fp32 (the UNet converted in place and back, bracketed by
   baseline steps); opt-in: torch.compile with and without weight freezing. Ratios are medians of per-round
   variant/baseline ratios. The projected 20-step time is the end-to-end run's time outside the
   steps plus 20 times the variant's step.
The 1-minute load average is recorded with every number: other processes share these cores.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import _common as c

SIZE = 512
STEPS = 20
GOAL_S = 90.0
SPEC_LIMIT_S = 300.0
DEFAULT_EXPERIMENTS = ("threads", "channels_last", "attention", "roofline", "vae", "fp32")
ALL_EXPERIMENTS = (*DEFAULT_EXPERIMENTS, "compile", "compile-plain")

Model = Callable[..., Any]


@dataclass
class Variant:
    """A way to run a model (UNet or VAE): `enter` applies it and returns what to call, `leave`
    undoes it."""

    name: str
    enter: Callable[[], Model]
    leave: Callable[[], None]
    autocast: bool = False


# --------------------------------------------------------------------------------------------------
# 1. End to end through the engine


def end_to_end(engine: Any, seed: int) -> dict[str, Any]:
    params = c.generate_params(SIZE, 1, STEPS, seed=seed)
    clock = c.StepClock()
    load_before = c.load_average()
    with c.RssPeak() as rss, c.timed() as elapsed:
        clock.restart()
        result = engine.text_to_image(params, progress=clock)
        finished = clock.now()
    steps = clock.step_times()
    step = c.summarize(steps)
    metadata = result.metadata[0]
    return {
        "wall_s": elapsed.wall,
        "cpu_s": elapsed.cpu,
        "steps": len(steps),
        "step_s": step.as_dict(),
        "step_samples_s": steps,
        # Step 1 also carries the text encoders; after the last step comes the VAE decode.
        "first_step_s": steps[0],
        "after_last_step_s": finished - clock.ends[-1],
        "outside_steps_s": elapsed.wall - step.median * len(steps),
        "generation_time_s": metadata.generation_time_s,
        "peak_rss_bytes_engine": metadata.peak_rss_bytes,
        "peak_rss_bytes_sampled": rss.peak_bytes,
        "precision": metadata.precision,
        "load_average_before": load_before,
        "load_average_after": c.load_average(),
        "goal_s": GOAL_S,
        "meets_goal": elapsed.wall <= GOAL_S,
        "within_spec": elapsed.wall <= SPEC_LIMIT_S,
    }


# --------------------------------------------------------------------------------------------------
# 2. UNet step experiments


def unet_inputs(unet: Any, dtype: Any) -> dict[str, Any]:
    """Inputs of one UNet call of the SDXL pipeline at 512² with classifier-free guidance."""
    import torch

    generator = torch.Generator("cpu").manual_seed(c.SEED)
    latent = SIZE // 8
    config = unet.config
    time_dim = config.addition_time_embed_dim

    def randn(*shape: int) -> Any:
        return torch.randn(*shape, generator=generator).to(dtype)

    time_ids = torch.tensor([[SIZE, SIZE, 0, 0, SIZE, SIZE]] * 2, dtype=dtype)
    return {
        "sample": randn(2, config.in_channels, latent, latent),
        "timestep": torch.tensor(500.0),
        "encoder_hidden_states": randn(2, 77, config.cross_attention_dim),
        "added_cond_kwargs": {
            "text_embeds": randn(2, config.projection_class_embeddings_input_dim - 6 * time_dim),
            "time_ids": time_ids,
        },
    }


def unet_step(model: Model, inputs: dict[str, Any], *, autocast: bool) -> c.Timing:
    import torch

    with torch.no_grad(), _autocast(autocast), c.timed() as elapsed:
        model(**inputs, return_dict=False)
    return elapsed


@contextmanager
def _autocast(enabled: bool) -> Iterator[None]:
    import torch

    if not enabled:
        yield
        return
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yield


def _noop() -> None:
    return None


def variants(unet: Any, experiments: Sequence[str]) -> list[Variant]:
    """Baseline plus the cheap-to-switch variants, in the order they are interleaved."""
    import torch
    from diffusers.models.attention_processor import AttnProcessor

    threads = torch.get_num_threads()
    processors = unet.attn_processors
    found = [Variant("baseline", lambda: unet, _noop)]
    if "threads" in experiments:
        other = 1 if threads > 1 else 2
        found.append(
            Variant(
                f"threads={other} (default {threads})",
                lambda: _set_threads(other, unet),
                lambda: torch.set_num_threads(threads),
            )
        )
    if "channels_last" in experiments:
        found.append(other_memory_format(unet, "UNet"))
    if "attention" in experiments:
        found.append(
            Variant(
                "classic attention (no SDPA)",
                lambda: _set_processor(unet, AttnProcessor()),
                lambda: unet.set_attn_processor(dict(processors)),  # it pops from the dict
            )
        )
    return found


def memory_format(module: Any) -> Any:
    """channels_last or contiguous_format: how the module's first k×k convolution weight is laid out."""
    import torch

    for param in module.parameters():
        if param.dim() == 4 and param.shape[-1] > 1:
            channels_last = param.is_contiguous(memory_format=torch.channels_last)
            return torch.channels_last if channels_last else torch.contiguous_format
    return torch.contiguous_format


def other_memory_format(module: Any, label: str) -> Variant:
    """The module in the memory format the engine does not use; `leave` restores the engine's."""
    import torch

    current = memory_format(module)
    other = torch.contiguous_format if current == torch.channels_last else torch.channels_last
    name = "channels_last" if other == torch.channels_last else "contiguous (NCHW)"
    return Variant(
        f"{name} {label}",
        lambda: module.to(memory_format=other),
        lambda: module.to(memory_format=current),
    )


def _set_threads(count: int, unet: Any) -> Any:
    import torch

    torch.set_num_threads(count)
    return unet


def _set_processor(unet: Any, processor: Any) -> Any:
    unet.set_attn_processor(processor)
    return unet


Step = Callable[[Variant, Model], c.Timing]


def unet_steps(inputs: dict[str, Any]) -> Step:
    return lambda variant, model: unet_step(model, inputs, autocast=variant.autocast)


def interleave(variants_: Sequence[Variant], step: Step, rounds: int) -> dict[str, list[float]]:
    """One warm-up round, then `rounds` rounds of one step per variant; wall seconds per variant."""
    steps: dict[str, list[float]] = {variant.name: [] for variant in variants_}
    for round_ in range(rounds + 1):
        order = variants_ if round_ % 2 == 0 else list(reversed(variants_))
        for variant in order:
            model = variant.enter()
            timing = step(variant, model)
            variant.leave()
            if round_ > 0:
                steps[variant.name].append(timing.wall)
            c.log(f"round {round_}/{rounds} {variant.name}: {timing.wall:.2f} s (load {_load1()})")
    return steps


def _load1() -> str:
    return f"{c.load_average()[0]:.2f}"


def fp32_block(unet: Any, rounds: int) -> dict[str, list[float]]:
    """fp32 weights (+ bf16 autocast) against bf16 weights: the UNet converted in place and back.

    bf16 -> fp32 -> bf16 is exact, so the engine's weights are unchanged afterwards. Baseline steps
    bracket the fp32 ones (A B C ... A) so that a change of load shows.
    """
    import torch

    bf16_inputs, fp32_inputs = unet_inputs(unet, torch.bfloat16), unet_inputs(unet, torch.float32)
    steps: dict[str, list[float]] = {"baseline": [], "fp32 weights + bf16 autocast": [], "fp32": []}
    steps["baseline"].append(unet_step(unet, bf16_inputs, autocast=False).wall)
    unet.to(torch.float32)
    try:
        for round_ in range(rounds + 1):
            for name, autocast in (("fp32 weights + bf16 autocast", True), ("fp32", False)):
                timing = unet_step(unet, fp32_inputs, autocast=autocast)
                if round_ > 0:
                    steps[name].append(timing.wall)
                c.log(f"fp32 round {round_}/{rounds} {name}: {timing.wall:.2f} s (load {_load1()})")
    finally:
        unet.to(torch.bfloat16)
    steps["baseline"].append(unet_step(unet, bf16_inputs, autocast=False).wall)
    return steps


def compile_block(unet: Any, rounds: int, *, freezing: bool) -> tuple[dict[str, list[float]], float]:
    """torch.compile (inductor) of the UNet: compile time, then steps interleaved with eager.

    freezing=True constant-folds the weights and prepacks them for oneDNN (inductor's CPU
    inference setting); freezing=False is what the engine's `unet.compile()` does by default.
    A cold compile takes several minutes on 2 cores; inductor's on-disk cache shortens later ones.
    """
    import torch
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()  # no reuse of an earlier experiment's compiled graph
    inputs = unet_inputs(unet, torch.bfloat16)
    compiled = torch.compile(unet)
    name = f"torch.compile, {'with' if freezing else 'without'} weight freezing"
    c.log(f"{name}: compiling the UNet (minutes on 2 cores)")
    with inductor_config.patch(freezing=freezing):
        first = unet_step(compiled, inputs, autocast=False).wall
    c.log(f"{name}: first call (compile + step) {first:.1f} s")
    pair = [Variant("baseline", lambda: unet, _noop), Variant(name, lambda: compiled, _noop)]
    return interleave(pair, unet_steps(inputs), rounds), first


def vae_block(vae: Any, rounds: int) -> dict[str, list[float]]:
    """The VAE decode of a 512² image (what follows the last step), contiguous vs channels_last."""
    import torch

    generator = torch.Generator("cpu").manual_seed(c.SEED)
    latents = torch.randn(1, vae.config.latent_channels, SIZE // 8, SIZE // 8, generator=generator)
    latents = latents.to(vae.dtype)

    def decode(variant: Variant, model: Any) -> c.Timing:
        with torch.no_grad(), c.timed() as elapsed:
            model.decode(latents / vae.config.scaling_factor, return_dict=False)
        return elapsed

    pair = [Variant("baseline", lambda: vae, _noop), other_memory_format(vae, "VAE")]
    return interleave(pair, decode, rounds)


def unet_flops(unet: Any, inputs: dict[str, Any]) -> int:
    """FLOPs of one UNet step, counted by torch's FlopCounterMode.

    Counted with diffusers' classic attention processor: the counter has no formula for the CPU
    flash-attention kernel SDPA dispatches to, but counts the classic path's batched matmuls,
    which do the same arithmetic.
    """
    from diffusers.models.attention_processor import AttnProcessor
    from torch.utils.flop_counter import FlopCounterMode

    processors = unet.attn_processors
    unet.set_attn_processor(AttnProcessor())
    try:
        with FlopCounterMode(display=False) as counter:
            unet_step(unet, inputs, autocast=False)
    finally:
        unet.set_attn_processor(dict(processors))
    return int(counter.get_total_flops())


def matmul_gflops(seconds: float = 3.0, n: int = 4096) -> float:
    """This machine's bf16 matrix-multiply rate right now (GFLOP/s): the ceiling for a UNet step."""
    import torch

    a = torch.randn(n, n).to(torch.bfloat16)
    b = torch.randn(n, n).to(torch.bfloat16)
    a @ b  # warm-up
    count, start = 0, time.perf_counter()
    while True:
        a @ b
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return 2 * n**3 * count / elapsed / 1e9


def roofline(unet: Any, inputs: dict[str, Any], step_s: float | None) -> dict[str, Any]:
    """FLOPs per step against the machine's matmul rate: the fastest a step could possibly be."""
    flops = unet_flops(unet, inputs)
    gflops = matmul_gflops()
    floor_s = flops / (gflops * 1e9)
    return {
        "unet_step_gflop": flops / 1e9,
        "matmul_bf16_gflops": gflops,
        "step_floor_s": floor_s,
        "steps_floor_s": STEPS * floor_s,
        "measured_step_s": step_s,
        "achieved_gflops": None if step_s is None else flops / step_s / 1e9,
        "load_average": c.load_average(),
    }


def print_roofline(data: dict[str, Any]) -> None:
    step = data["measured_step_s"]
    c.print_table(
        "Roofline: UNet step FLOPs against this CPU's bf16 matmul rate (measured now)",
        [
            "GFLOP/step",
            "matmul GFLOP/s",
            "step floor s",
            f"{STEPS}-step floor s",
            "measured step s",
            "achieved GFLOP/s",
        ],
        [
            [
                f"{data['unet_step_gflop']:.0f}",
                f"{data['matmul_bf16_gflops']:.0f}",
                f"{data['step_floor_s']:.2f}",
                f"{data['steps_floor_s']:.0f}",
                "-" if step is None else f"{step:.2f}",
                "-" if data["achieved_gflops"] is None else f"{data['achieved_gflops']:.0f}",
            ]
        ],
    )


# --------------------------------------------------------------------------------------------------
# Report


def summarize_experiment(
    steps: dict[str, list[float]], outside_s: float | None, load: tuple[float, float, float]
) -> list[dict[str, Any]]:
    baseline = steps["baseline"]
    rows = []
    for name, samples in steps.items():
        summary = c.summarize(samples)
        paired = len(samples) == len(baseline)
        ratio = (
            c.paired_ratios(samples, baseline)
            if paired
            else c.summarize([s / c.summarize(baseline).median for s in samples])
        )
        rows.append(
            {
                "variant": name,
                "step_s": summary.as_dict(),
                "samples_s": samples,
                "ratio_to_baseline": ratio.as_dict(),
                "projected_20_steps_s": None if outside_s is None else outside_s + STEPS * summary.median,
                "load_average": load,
            }
        )
    return rows


def print_end_to_end(run: dict[str, Any], model: str) -> None:
    c.print_table(
        f"{model} on the CPU through the engine: {SIZE}², {STEPS} steps, "
        f"{run['precision']} (goal ≤ {GOAL_S:.0f} s, spec ≤ {SPEC_LIMIT_S:.0f} s)",
        [
            "wall s",
            "s/step (median)",
            "IQR",
            "outside steps s",
            "peak RSS GiB",
            "load 1m before/after",
            "goal",
        ],
        [
            [
                c.fmt_s(run["wall_s"]),
                f"{run['step_s']['median']:.2f}",
                f"{run['step_s']['iqr']:.2f}",
                f"{run['outside_steps_s']:.1f}",
                c.fmt_gib(run["peak_rss_bytes_engine"] or run["peak_rss_bytes_sampled"]),
                f"{run['load_average_before'][0]:.2f} / {run['load_average_after'][0]:.2f}",
                "met" if run["meets_goal"] else ("missed (within spec)" if run["within_spec"] else "missed"),
            ]
        ],
    )


def print_experiments(title: str, rows: Sequence[dict[str, Any]], unit: str = "s/step") -> None:
    c.print_table(
        title,
        [
            "variant",
            f"{unit} (median)",
            "min–max",
            "ratio to baseline [IQR]",
            "projected 20 steps s",
            "load 1m",
        ],
        [
            [
                row["variant"],
                f"{row['step_s']['median']:.2f}",
                f"{row['step_s']['min']:.2f}–{row['step_s']['max']:.2f}",
                f"{row['ratio_to_baseline']['median']:.3f} "
                f"[{row['ratio_to_baseline']['q1']:.3f}–{row['ratio_to_baseline']['q3']:.3f}]",
                "-" if row["projected_20_steps_s"] is None else f"{row['projected_20_steps_s']:.0f}",
                f"{row['load_average'][0]:.2f}",
            ]
            for row in rows
        ],
    )


# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--experiments",
        default=",".join(DEFAULT_EXPERIMENTS),
        help=f"comma list from {', '.join(ALL_EXPERIMENTS)}, or 'none' (compile costs ~6 min)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per experiment")
    parser.add_argument("--skip-end-to-end", action="store_true", help="only the UNet step experiments")
    parser.add_argument("--tiny", action="store_true", help="smoke test on the tiny model (seconds)")
    parser.add_argument("--json", default="cpu_full", help="name of the JSON file in bench/out/")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    experiments = [] if args.experiments == "none" else args.experiments.split(",")
    unknown = set(experiments) - set(ALL_EXPERIMENTS)
    if unknown:
        raise SystemExit(f"unknown experiments: {', '.join(sorted(unknown))}")
    os.environ.setdefault("IMAGE_DEVICE", "cpu")
    os.environ.setdefault("IMAGE_PRECISION", "bf16")
    machine = c.machine_info()
    models = c.tiny_models() if args.tiny else c.full_models()
    engine = c.load_engine(models, c.image_config())
    payload: dict[str, Any] = {
        "benchmark": "cpu_full",
        "machine": machine,
        "model": "tiny SDXL (smoke test)"
        if args.tiny
        else "full-size SDXL base architecture, random weights (make_full_random, bf16)",
        "size": SIZE,
        "steps": STEPS,
        "device": engine.device,
        "precision": engine.precision,
        "torch_threads": _torch_threads(),
    }
    outside_s = None
    if not args.skip_end_to_end:
        c.log(f"end to end: {SIZE}², {STEPS} steps through the engine")
        run = end_to_end(engine, c.SEED)
        payload["end_to_end"] = run
        outside_s = run["outside_steps_s"]
        print_end_to_end(run, "tiny SDXL (smoke test)" if args.tiny else "Full-size SDXL (random weights)")
    payload["experiments"] = run_experiments(engine, experiments, args.rounds, outside_s)
    payload["load_average_end"] = c.load_average()
    c.log(f"wrote {c.write_json(args.json, payload)}")
    return payload


def run_experiments(
    engine: Any, experiments: Sequence[str], rounds: int, outside_s: float | None
) -> dict[str, Any]:
    import torch

    pipe = c.base_pipeline(engine)
    unet = pipe.unet
    results: dict[str, Any] = {}
    inputs = unet_inputs(unet, torch.bfloat16)
    switchable = variants(unet, experiments)
    step_s = None
    if len(switchable) > 1:
        steps = interleave(switchable, unet_steps(inputs), rounds)
        step_s = c.summarize(steps["baseline"]).median
        results["interleaved"] = summarize_experiment(steps, outside_s, c.load_average())
        print_experiments("UNet step at 512² (CFG batch 2), variants interleaved", results["interleaved"])
    if "roofline" in experiments:
        results["roofline"] = roofline(unet, inputs, step_s)
        print_roofline(results["roofline"])
    if "vae" in experiments:
        steps = vae_block(pipe.vae, rounds)
        results["vae"] = summarize_experiment(steps, None, c.load_average())
        print_experiments("VAE decode at 512² (after the last step), interleaved", results["vae"], "s/decode")
    if "fp32" in experiments:
        steps = fp32_block(unet, max(1, rounds - 1))
        results["precision"] = summarize_experiment(steps, outside_s, c.load_average())
        print_experiments("UNet step: bf16 weights vs fp32 weights (+ bf16 autocast)", results["precision"])
    for experiment, freezing in (("compile", True), ("compile-plain", False)):
        if experiment in experiments:
            steps, first = compile_block(unet, rounds, freezing=freezing)
            rows = summarize_experiment(steps, outside_s, c.load_average())
            for row in rows:
                row["first_call_s"] = None if row["variant"] == "baseline" else first
            results[experiment] = rows
            print_experiments(f"UNet step: torch.compile (first call incl. compile {first:.0f} s)", rows)
    return results


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


if __name__ == "__main__":
    main()
