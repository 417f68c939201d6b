"""Helpers shared by the benchmark scripts: environment, machine facts, statistics, memory, output.

Import this module before torch: `prepare_env()` runs at import and sets the OpenMP/hub variables
that must be in place before torch and diffusers load.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from fimum_ai.images.engine import ImageEngine
    from fimum_ai.images.model_store import ModelSet
    from fimum_ai.images.progress import ProgressEvent
    from fimum_ai.images.requests import GenerateParams
    from fimum_ai.settings import ImageGenerationConfig

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
FULL_MODEL_DIR = OUT_DIR / "full-sdxl-random"
TINY_MODEL_DIR = OUT_DIR / "tiny-sdxl"
PROMPT = "a lighthouse on a cliff at dawn, oil painting"
NEGATIVE_PROMPT = "blurry, low quality"
SEED = 1234
VERSIONED_PACKAGES = ("torch", "diffusers", "transformers", "accelerate", "numpy", "pillow")


def prepare_env() -> None:
    """Passive OpenMP waiting (busy-waiting threads slow shared 2-core machines), no hub, quiet logs."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("FIMUM_CONFIG", str(REPO_ROOT / "config" / "models.yaml"))
    src = str(REPO_ROOT / "src")
    if src not in sys.path:  # runnable without an editable install
        sys.path.insert(0, src)


prepare_env()


# --------------------------------------------------------------------------------------------------
# Machine facts


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor() or "unknown"
    match = re.search(r"^Model name:\s*(.+)$", out, re.MULTILINE)
    return match.group(1).strip() if match else platform.processor() or "unknown"


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return set()
    match = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def cpu_supports_bf16() -> bool:
    """Native bf16 arithmetic: AVX512-BF16 or AMX-BF16."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine_info() -> dict[str, Any]:
    flags = cpu_flags()
    return {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_bf16": sorted(flags & {"avx512_bf16", "amx_bf16", "amx_tile"}),
        "memory_gib": round(_total_memory_bytes() / 2**30, 1),
        "load_average": load_average(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "versions": package_versions(),
        "engine_py_sha256": _file_digest(REPO_ROOT / "src" / "fimum_ai" / "images" / "engine.py"),
    }


def _file_digest(path: Path) -> str | None:
    """First 12 hex digits of the file's SHA-256: which engine.py a result was measured with."""
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        return None


def _total_memory_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


# --------------------------------------------------------------------------------------------------
# Statistics


@dataclass(frozen=True, slots=True)
class Summary:
    """Order statistics of repeated timings (seconds)."""

    n: int
    min: float
    q1: float
    median: float
    q3: float
    max: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    def as_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "iqr": self.iqr}


def summarize(samples: Sequence[float]) -> Summary:
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    if len(ordered) == 1:
        q1 = q3 = ordered[0]
    else:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return Summary(len(ordered), ordered[0], q1, statistics.median(ordered), q3, ordered[-1])


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> Summary:
    """Ratios of paired runs (run i of A over run i of B): cancels slow drifts in machine load."""
    return summarize([a / b for a, b in zip(numerators, denominators, strict=True)])


def fmt_s(seconds: float) -> str:
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def fmt_gib(size_bytes: int | None) -> str:
    return "-" if size_bytes is None else f"{size_bytes / 2**30:.2f}"


# --------------------------------------------------------------------------------------------------
# Memory


class RssPeak:
    """Peak resident set size of this process while the block runs, sampled every `interval_s`.

    ru_maxrss is a lifetime peak, useless for the second experiment in one process; sampling
    misses spikes shorter than the interval, which the large, long-lived tensors here are not.
    """

    def __init__(self, interval_s: float = 0.05) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak_bytes = 0

    def _sample(self) -> None:
        while True:
            self.peak_bytes = max(self.peak_bytes, int(self._process.memory_info().rss))
            if self._stop.wait(self._interval_s):
                return

    def __enter__(self) -> RssPeak:
        self.peak_bytes = int(self._process.memory_info().rss)
        self._thread = threading.Thread(target=self._sample, name="rss-peak", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_bytes = max(self.peak_bytes, int(self._process.memory_info().rss))


@dataclass
class Timing:
    """Wall-clock and process CPU seconds (all threads) of a block."""

    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def timed() -> Iterator[Timing]:
    """`with timed() as t: ...` then t.wall and t.cpu are the block's seconds.

    CPU time counts only this process's work, so it moves less than wall time when other
    processes compete for the cores; wall time is what a user waits.
    """
    timing = Timing()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield timing
    finally:
        timing.wall = time.perf_counter() - wall
        timing.cpu = time.process_time() - cpu


# --------------------------------------------------------------------------------------------------
# Output


def write_json(name: str, payload: dict[str, Any]) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    Console(width=200).print(table)


def log(message: str) -> None:
    """Progress lines on stderr, so stdout keeps only the tables."""
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Models, engine and the bare diffusers baseline (these import torch and diffusers when called)


def tiny_models(target: Path = TINY_MODEL_DIR) -> ModelSet:
    """Build the tiny random-weight set afresh (seconds) and return it with the base model only."""
    from fimum_ai.images.model_factory import make_tiny
    from fimum_ai.images.model_store import ModelSet

    built = make_tiny(target)
    return ModelSet(base=built.base, refiner=None, upscaler=None, demo=True)


def full_models(target: Path = FULL_MODEL_DIR, dtype: str = "bf16") -> ModelSet:
    """The full-size random SDXL base at `target`, built once (~1 min, ~6.5 GB) and reused."""
    from fimum_ai.images.model_factory import make_full_random
    from fimum_ai.images.model_store import ModelSet, is_model_dir

    if not is_model_dir(target):
        log(f"building the full-size random SDXL base at {target} ({dtype}; about a minute)")
        make_full_random(target, dtype=dtype)
    return ModelSet(base=target, refiner=None, upscaler=None, demo=False)


def image_config(
    *, generation: dict[str, Any] | None = None, hardware: dict[str, Any] | None = None
) -> ImageGenerationConfig:
    """The configured `image_generation` section (config file + IMAGE_* env) with overrides."""
    from fimum_ai.settings import load_settings

    config = load_settings().image_generation
    return config.model_copy(
        update={
            "generation": config.generation.model_copy(update=generation or {}),
            "hardware": config.hardware.model_copy(update=hardware or {}),
        }
    )


def load_engine(models: ModelSet, config: ImageGenerationConfig, device: str | None = None) -> ImageEngine:
    from fimum_ai.images.engine import ImageEngine

    engine = ImageEngine(models, config, device=device)
    with timed() as elapsed:
        engine.load()
    log(f"engine loaded on {engine.device} ({engine.precision}) in {elapsed.wall:.1f} s")
    return engine


def base_pipeline(engine: ImageEngine) -> Any:
    """The engine's loaded SDXL base pipeline: the bare baseline runs on the very same object.

    The engine keeps it in a private field (`_pipes.base`; it has no public accessor).
    """
    pipes = engine._pipes
    if pipes is None:
        raise RuntimeError("the engine is not loaded")
    return pipes.base


def generate_params(size: int, batch: int, steps: int, seed: int = SEED) -> GenerateParams:
    from fimum_ai.images.requests import GenerateParams

    return GenerateParams(
        prompt=PROMPT,
        negative_prompt=NEGATIVE_PROMPT,
        width=size,
        height=size,
        steps=steps,
        guidance_scale=7.5,
        scheduler="DPMSolverMultistep",
        seed=seed,
        batch_size=batch,
        refine=False,
    )


def make_scheduler(pipe: Any, name: str) -> Any:
    """The scheduler the engine runs for `name` (its own table), built from the model's config."""
    from fimum_ai.images.engine import SCHEDULERS

    cls, options = SCHEDULERS[name]
    return cls.from_config(pipe.scheduler.config, **options)


def bare_text_to_image(
    pipe: Any, scheduler: Any, params: GenerateParams, *, batched: bool
) -> list[Image.Image]:
    """Plain diffusers text-to-image with the engine's arguments: image i from seed + i.

    batched=False: one pipeline call per image, as the engine runs them (pixel-identical to it).
    batched=True: one call for the whole batch (`num_images_per_prompt`), what a diffusers user
    would write; same seeds, but the batched UNet may differ from the engine in the last bits.
    """
    import torch

    assert params.steps is not None and params.seed is not None
    pipe.scheduler = scheduler
    common: dict[str, Any] = {
        "prompt": params.prompt,
        "negative_prompt": params.negative_prompt or None,
        "width": params.width,
        "height": params.height,
        "num_inference_steps": params.steps,
        "guidance_scale": params.guidance_scale,
        "output_type": "pil",
    }
    seeds = [params.seed + i for i in range(params.batch_size)]
    if batched:
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        return list(pipe(**common, num_images_per_prompt=len(seeds), generator=generators).images)
    return [pipe(**common, generator=torch.Generator("cpu").manual_seed(seed)).images[0] for seed in seeds]


def max_pixel_difference(first: Sequence[Image.Image], second: Sequence[Image.Image]) -> int:
    """Largest absolute difference of any channel of any pixel (0 = identical); 256 if shapes differ."""
    import numpy as np

    if len(first) != len(second):
        return 256
    worst = 0
    for a, b in zip(first, second, strict=True):
        left = np.asarray(a.convert("RGB"), dtype=np.int16)
        right = np.asarray(b.convert("RGB"), dtype=np.int16)
        if left.shape != right.shape:
            return 256
        worst = max(worst, int(np.abs(left - right).max()))
    return worst


class StepClock:
    """A progress callback that records when each denoising step ended (for seconds per step)."""

    def __init__(self) -> None:
        self.start = self.now()
        self.ends: list[float] = []

    @staticmethod
    def now() -> float:
        return time.perf_counter()

    def restart(self) -> None:
        self.start = self.now()
        self.ends = []

    def __call__(self, event: ProgressEvent) -> None:
        self.ends.append(self.now())

    def step_times(self) -> list[float]:
        marks = [self.start, *self.ends]
        return [b - a for a, b in itertools.pairwise(marks)]
