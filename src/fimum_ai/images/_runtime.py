"""Run-time support for the engine: device and precision choice, progress/cancel bookkeeping,
peak-memory measurement, and log filters for diffusers. Imports torch: worker side only."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from fimum_ai.images._preview import SDXL_FACTORS, X4_UPSCALER_FACTORS, current_sigma, latents_to_jpeg
from fimum_ai.images.progress import CancelToken, ProgressCallback, ProgressEvent
from fimum_ai.settings import ConfigError

log = logging.getLogger("fimum_ai.images.engine")


class Cancelled(Exception):
    """Raised inside a diffusers step callback to stop the run right after that step."""


class DropMessages(logging.Filter):
    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self._fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in self._fragments)


# diffusers logs the cut-off part of over-long prompts, and prompts never go to our logs.
for _module in (
    "diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl",
    "diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl_img2img",
    "diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl_inpaint",
    "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_upscale",
):
    logging.getLogger(_module).addFilter(DropMessages("truncated because"))
# "Loading pipeline components" bars would interleave with our JSON logs and the CLI's own bar.
diffusers_logging.disable_progress_bar()
transformers_logging.disable_progress_bar()
# Emitted on every VAE upcast of SDXL img2img/inpaint even when no module needs fp32: noise.
logging.getLogger("diffusers.models.modeling_utils").addFilter(DropMessages("should be kept in float32: []"))


# --------------------------------------------------------------------------------------------------
# Device and precision


def resolve_device(requested: str) -> torch.device:
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            log.warning("device %s requested but CUDA is not available: running on the CPU (slow)", requested)
            return torch.device("cpu")
        device = torch.device(requested)
        index = device.index if device.index is not None else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"invalid configuration: image_generation.hardware.device = {requested!r}: only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible"
            )
        return torch.device("cuda", index)
    if requested == "mps":
        if not torch.backends.mps.is_available():
            log.warning("device mps requested but not available: running on the CPU (slow)")
            return torch.device("cpu")
        return torch.device("mps")
    return torch.device("cpu")


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 (AVX512-BF16 or AMX): bf16 is then 2-4x faster than fp32
    (2.2x measured on AVX512-BF16 without AMX, bench/RESULTS.md)."""
    capability = str(torch.backends.cpu.get_cpu_capability())
    if "AMX" in capability or "BF16" in capability:
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        pass
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(requested: str, device: torch.device) -> tuple[torch.dtype, str]:
    if requested == "fp32":
        return torch.float32, "fp32"
    if device.type == "cpu":
        # fp16 has no fast CPU kernels; bf16 does where the CPU supports it.
        if cpu_supports_bf16():
            if requested == "fp16":
                log.info("fp16 is not supported well on the CPU: using bf16")
            return torch.bfloat16, "bf16"
        log.warning("this CPU has no native bf16: using fp32 instead of %s", requested)
        return torch.float32, "fp32"
    if device.type == "cuda" and requested == "bf16" and not torch.cuda.is_bf16_supported():
        log.warning("this GPU does not support bf16: using fp16")
        return torch.float16, "fp16"
    return (torch.bfloat16, "bf16") if requested == "bf16" else (torch.float16, "fp16")


# --------------------------------------------------------------------------------------------------
# Progress, cancellation, memory


class _StepCallbacks:
    """The diffusers callbacks, for anything with `advance(stage, latents, scheduler, factors)`."""

    def advance(self, stage: str, latents: Any, scheduler: Any, factors: Any) -> None:
        raise NotImplementedError

    def on_step_end(self, stage: str) -> Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]:
        """A diffusers `callback_on_step_end` for the SDXL pipelines."""

        def callback(pipe: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            self.advance(stage, tensors.get("latents"), pipe.scheduler, SDXL_FACTORS)
            return {}

        return callback


class Progress(_StepCallbacks):
    """Step counting over a whole run, progress events, previews and the cancel check."""

    def __init__(
        self, total: int, callback: ProgressCallback | None, cancel: CancelToken | None, preview_every: int
    ) -> None:
        self.total = total
        self.step = 0
        self._callback = callback
        self._cancel = cancel
        self._preview_every = preview_every
        self._started = time.perf_counter()

    def check(self) -> None:
        if self._cancel is not None and self._cancel.cancelled:
            raise Cancelled

    def advance(self, stage: str, latents: Any, scheduler: Any, factors: Any) -> None:
        self.step += 1
        if self._callback is not None:
            total = max(self.total, self.step)
            elapsed = time.perf_counter() - self._started
            preview = None
            if isinstance(latents, torch.Tensor) and (
                self.step % self._preview_every == 0 or self.step == total
            ):
                preview = latents_to_jpeg(latents, factors, current_sigma(scheduler))
            eta = elapsed / self.step * (total - self.step)
            self._callback(ProgressEvent(stage, self.step, total, elapsed, eta, preview))
        self.check()

    def legacy_callback(self, stage: str, pipe: Any) -> Callable[[int, Any, Any], None]:
        """The x4 upscale pipeline only has the older `callback(step, t, latents)`."""

        def callback(step: int, t: Any, latents: Any) -> None:
            self.advance(stage, latents, pipe.scheduler, X4_UPSCALER_FACTORS)

        return callback


class BatchProgress(_StepCallbacks):
    """Several jobs run as one batch: each job gets its own progress events (with a preview of its
    own first image) and its own cancel. A cancelled job is dropped from the reporting at once and
    its images are thrown away at the end; the batch itself stops only when every job is cancelled."""

    def __init__(self, runs: list[Progress], parts: list[slice]) -> None:
        self.runs = runs
        self.parts = parts
        self.cancelled = [False] * len(runs)
        self.total = max(run.total for run in runs)
        self._step = 0

    @property
    def step(self) -> int:
        return self._step

    @step.setter
    def step(self, value: int) -> None:  # an out-of-memory retry rewinds every job
        self._step = value
        for run in self.runs:
            run.step = value

    def check(self) -> None:
        for index, run in enumerate(self.runs):
            if not self.cancelled[index]:
                try:
                    run.check()
                except Cancelled:
                    self.cancelled[index] = True
        if all(self.cancelled):
            raise Cancelled

    def advance(self, stage: str, latents: Any, scheduler: Any, factors: Any) -> None:
        self._step += 1
        for index, run in enumerate(self.runs):
            if self.cancelled[index]:
                continue
            own = latents[self.parts[index]] if isinstance(latents, torch.Tensor) else latents
            try:
                run.advance(stage, own, scheduler, factors)
            except Cancelled:
                self.cancelled[index] = True
        if all(self.cancelled):
            raise Cancelled


@dataclass
class Peak:
    vram: int | None = None
    rss: int | None = None


def peak_rss_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux
    except (ImportError, OSError):
        return None


def reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM), so each run reports its own peak.
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5", encoding="utf-8")
