"""The image engine: Stable Diffusion XL through diffusers. The only module that runs torch.

Models: SDXL base, optional refiner, optional x4 upscaler, each a local diffusers folder loaded
with `from_pretrained(local_files_only=True)`. Image-to-image and inpainting pipelines are built
from the base's components with `from_pipe` (no weights load twice); the refiner shares the
base's `text_encoder_2` and VAE whenever their configs match (as the diffusers SDXL docs do).

Modes
- text-to-image: the base, then optionally the refiner as an "ensemble of experts" (the base
  denoises the first `refiner_fraction` of the schedule and hands latents to the refiner).
- image-to-image (strength 0..1; strength 0 returns the input untouched without running a model),
  inpainting (white = edit), outpainting (inpaint over an edge-stretched, blurred canvas), and
  the x4 upscaler. Edited images keep the input's size; inpainting and outpainting paste the
  original back outside the mask, so those pixels are byte-identical.

Sizes above SDXL's native area (`generation.native_pixels`, ~1 megapixel) — "hires": the image
is generated at the native "bucket" with the same aspect ratio (sides multiples of 64, area <=
native_pixels), upscaled with the x4 upscaler (tiled, see below) when it is installed, and
resized with Lanczos to the exact requested size; without the upscaler, Lanczos alone does the
upscale. `parameters["hires_method"]` records which ("x4-upscaler+lanczos" or "lanczos").
Edits of inputs larger than native are processed at the native bucket and resized back.

Tiled upscaling: the input is cut into `hardware.upscale_tile`-pixel tiles overlapping by
`upscale_tile_overlap` pixels; each tile is upscaled on its own (seeded from the seed and the
tile's index) and blended into the result with linear cross-fades over the overlaps. Tiles are
accumulated into a float32 band one tile row tall, so memory depends on the tile size and the
output width, never on the number of tiles.

Reproducibility: image i of a batch uses seed + i through its own CPU `torch.Generator`, and every
image runs through the UNet on its own. Batched matrix products with a handful of rows (the UNet's
time embeddings) pick different kernels for different batch sizes and change the last bits of the
result, so batching several images through one UNet call would make an image differ from its
replay with batch_size=1. Running images one by one makes every image of a batch pixel-identical
to its replay on the same device and precision, whatever the request's `batch_size` is.

Dynamic batching (FR-IMG-003) is the one exception, and it is explicit: `text_to_image_batch` runs
several compatible jobs (`images/batching.py`) through one pipeline call, up to
`generation.batch_size` images, each with its own prompt and generator, for GPU throughput. Its
images carry `parameters["dynamic_batch"]` and may differ from a solo replay in those last bits;
`IMAGE_MAX_BATCH_SIZE=1` turns dynamic batching off.

Progress: a `ProgressEvent` after every denoising step of every stage (base, refiner, upscale
tiles) with the step counted over the whole run, and every `preview_every` steps a small JPEG
projected linearly from the latents (no VAE call). Cancellation is checked after every step.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LMSDiscreteScheduler,
    StableDiffusionUpscalePipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
    UniPCMultistepScheduler,
)
from PIL import Image

from fimum_ai.errors import GenerationCancelled, GpuOutOfMemory, InvalidInput, ModelNotInstalled
from fimum_ai.images import _imaging as im
from fimum_ai.images._runtime import (
    BatchProgress,
    Cancelled,
    Peak,
    Progress,
    peak_rss_bytes,
    reset_peak_rss,
    resolve_device,
    resolve_precision,
)
from fimum_ai.images._tiling import BandBlender, TileGrid, ramp_weights
from fimum_ai.images.batching import BatchItem, batch_key
from fimum_ai.images.model_store import ModelSet, is_model_dir, model_version
from fimum_ai.images.progress import CancelToken, ProgressCallback
from fimum_ai.images.requests import (
    EditParams,
    GenerateParams,
    Mode,
    OutpaintParams,
    Resolved,
    UpscaleParams,
    random_seed,
    resolve,
)
from fimum_ai.images.results import GenerationResult, ImageMetadata
from fimum_ai.settings import ImageGenerationConfig

log = logging.getLogger(__name__)

# The spec's scheduler names -> diffusers classes and the options we run them with.
SCHEDULERS: dict[str, tuple[Any, dict[str, Any]]] = {
    "DPMSolverMultistep": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
    "Euler": (EulerDiscreteScheduler, {}),
    "EulerAncestral": (EulerAncestralDiscreteScheduler, {}),
    "LMS": (LMSDiscreteScheduler, {}),
    "DDIM": (DDIMScheduler, {}),
    "UniPC": (UniPCMultistepScheduler, {}),
}

# Below this strength not even one step of a 1000-step schedule would run: treated as 0.
MIN_STRENGTH = 1 / 1000
# Outpainting denoises the new area from a blurred edge-stretched prior: strong enough to invent
# content, weak enough to keep the prior's colours continuous with the original.
OUTPAINT_STRENGTH = 0.9
# The x4 stage of hires text-to-image runs with UpscaleParams' defaults.
HIRES_UPSCALE_STEPS = UpscaleParams.model_fields["steps"].default
HIRES_NOISE_LEVEL = UpscaleParams.model_fields["noise_level"].default

UPSCALER_MISSING = (
    "the x4 upscaler is not installed (expected a diffusers folder at {path}); install it with "
    "`fimum models download upscaler`"
)

_CUDA_OOM_HINT = (
    "lower the size or the batch size, or turn on IMAGE_CPU_OFFLOAD=true "
    "(or IMAGE_SEQUENTIAL_CPU_OFFLOAD=true on GPUs with less than 8 GB)"
)


@dataclass
class _Pipes:
    base: Any
    img2img: Any
    inpaint: Any
    refiner: Any | None
    upscaler: Any | None
    scheduler_configs: dict[str, dict[str, Any]] = field(default_factory=dict)


def _display_name(path: Path, demo: bool) -> str:
    return f"{path.parent.name}/{path.name}" if demo else path.name


def _component_config(folder: Path, component: str) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / component / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    volatile = {"transformers_version", "torch_dtype", "dtype"}
    return {k: v for k, v in data.items() if not k.startswith("_") and k not in volatile}


def _steps_for_strength(steps: int, strength: float) -> int:
    """num_inference_steps so that diffusers runs >= 1 step: it runs int(steps * strength)."""
    n = max(steps, math.ceil(1 / strength))
    while int(n * strength) < 1:
        n += 1
    return n


def _tile_seed(seed: int, index: int) -> int:
    return (seed * 1_000_003 + index) & 0x7FFF_FFFF_FFFF_FFFF


def _ceil8(value: int) -> int:
    return -(-value // 8) * 8


# --------------------------------------------------------------------------------------------------
# The engine


class ImageEngine:
    """SDXL text-to-image, image-to-image, inpainting, outpainting and x4 upscaling on one device.

    One run at a time (a lock); the job queue runs one engine per GPU. Images in, images out: no
    file I/O. Every mode returns a GenerationResult with one ImageMetadata per image.
    """

    def __init__(self, models: ModelSet, config: ImageGenerationConfig, device: str | None = None) -> None:
        self._models = models
        self._config = config
        self._lock = threading.RLock()
        self._device = resolve_device(device or config.hardware.device)
        self._dtype, self._precision = resolve_precision(config.generation.precision, self._device)
        hw = config.hardware
        on_cuda = self._device.type == "cuda"
        self._offload = (
            "sequential"
            if on_cuda and hw.sequential_cpu_offload
            else "model"
            if on_cuda and hw.offload_to_cpu
            else None
        )
        self._pipes: _Pipes | None = None
        self._active: Any = None  # the pipeline whose offload hooks are installed
        self._versions: dict[str, str] = {}
        self._notes: dict[str, Any] = {}  # per-run facts for the metadata (e.g. an OOM fallback)

    # ---------------------------------------------------------------------------------- properties

    @property
    def device(self) -> str:
        return str(self._device)

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def model_name(self) -> str:
        return _display_name(self._models.base, self._models.demo)

    @property
    def model_version(self) -> str:
        return self._version("base")

    @property
    def loaded(self) -> bool:
        return self._pipes is not None

    def _version(self, kind: str) -> str:
        if kind not in self._versions:
            path = {
                "base": self._models.base,
                "refiner": self._models.refiner,
                "upscaler": self._models.upscaler,
            }[kind]
            if path is None:
                raise ModelNotInstalled(f"no {kind} model is installed")
            self._versions[kind] = model_version(path)
        return self._versions[kind]

    # ------------------------------------------------------------------------------ load / unload

    def load(self) -> None:
        """Load every installed model (idempotent). The modes call it on first use."""
        with self._lock:
            if self._pipes is not None:
                return
            started = time.perf_counter()
            models = self._models
            base = self._from_pretrained(StableDiffusionXLPipeline, models.base, "base")
            # from_pipe casts to its `dtype` argument (default fp32): pass ours, or the shared
            # modules would be converted under the base's feet.
            img2img = StableDiffusionXLImg2ImgPipeline.from_pipe(base, dtype=self._dtype)
            inpaint = StableDiffusionXLInpaintPipeline.from_pipe(base, dtype=self._dtype)
            refiner = None
            if models.refiner is not None:
                shared = {
                    name: getattr(base, name)
                    for name in ("text_encoder_2", "vae")
                    if _component_config(models.base, name) is not None
                    and _component_config(models.base, name) == _component_config(models.refiner, name)
                }
                refiner = self._from_pretrained(
                    StableDiffusionXLImg2ImgPipeline, models.refiner, "refiner", **shared
                )
            upscaler = None
            if models.upscaler is not None:
                upscaler = self._from_pretrained(StableDiffusionUpscalePipeline, models.upscaler, "upscaler")
            pipes = _Pipes(base, img2img, inpaint, refiner, upscaler)
            pipes.scheduler_configs["base"] = dict(base.scheduler.config)
            if refiner is not None:
                pipes.scheduler_configs["refiner"] = dict(refiner.scheduler.config)
            for pipe in (base, img2img, inpaint, refiner, upscaler):
                if pipe is not None:
                    pipe.set_progress_bar_config(disable=True)
            self._configure(pipes)
            self._pipes = pipes
            for kind in ("base", "refiner", "upscaler"):
                if getattr(models, kind) is not None:
                    self._version(kind)
            log.info(
                "image models loaded",
                extra={
                    "device": self.device,
                    "precision": self._precision,
                    "refiner": refiner is not None,
                    "upscaler": upscaler is not None,
                    "offload": self._offload,
                    "seconds": round(time.perf_counter() - started, 2),
                },
            )

    def unload(self) -> None:
        """Drop the pipelines and give their memory back."""
        with self._lock:
            if self._pipes is None:
                return
            self._pipes = None
            self._active = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _from_pretrained(self, cls: Any, path: Path, kind: str, **components: Any) -> Any:
        hint = f"install it with `fimum models download {kind}`"
        if not is_model_dir(path):
            raise ModelNotInstalled(
                f"no diffusers model at {path} (model_index.json is missing); {hint}",
                details={"path": str(path)},
            )
        try:
            return cls.from_pretrained(str(path), local_files_only=True, dtype=self._dtype, **components)
        except (OSError, ValueError) as exc:
            reason = " ".join(str(exc).split())[:300]
            raise ModelNotInstalled(
                f"cannot load the model at {path}: {reason}; {hint}", details={"path": str(path)}
            ) from exc

    def _configure(self, pipes: _Pipes) -> None:
        hw, gen = self._config.hardware, self._config.generation
        owners = [p for p in (pipes.base, pipes.refiner, pipes.upscaler) if p is not None]
        for vae in {id(p.vae): p.vae for p in owners}.values():
            if hw.enable_vae_slicing:
                vae.enable_slicing()
            if hw.enable_vae_tiling:
                vae.enable_tiling()
            if self._device.type == "cpu":
                # oneDNN convolutions run faster in NHWC: -13 to -16 % per VAE decode (bench/RESULTS.md).
                vae.to(memory_format=torch.channels_last)
        if self._use_xformers():
            for pipe in owners:
                pipe.enable_xformers_memory_efficient_attention()
        # Otherwise diffusers already uses PyTorch's scaled_dot_product_attention (SDPA).
        compile_unet = gen.enable_torch_compile and (
            self._device.type == "cuda" or (self._device.type == "cpu" and hw.compile_on_cpu)
        )
        if compile_unet:
            for pipe in owners:
                pipe.unet.compile()  # in place: the from_pipe pipelines share the compiled module
        if self._offload is None and self._device.type != "cpu":
            for pipe in owners:
                pipe.to(self._device)

    def _use_xformers(self) -> bool:
        if self._config.hardware.attention != "xformers":
            return False
        if self._device.type != "cuda":
            return False
        try:
            import xformers  # noqa: F401
        except ImportError:
            log.warning("attention 'xformers' configured but xformers is not installed: using SDPA")
            return False
        return True

    def _loaded(self) -> _Pipes:
        self.load()
        assert self._pipes is not None
        return self._pipes

    # ---------------------------------------------------------------------------------- running

    def _activate(self, pipe: Any) -> None:
        # Offload hooks chain the modules of one pipeline; pipelines share modules, so the hooks
        # are moved to the pipeline about to run.
        if self._offload is None or pipe is self._active:
            return
        if self._offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=self._device)
        else:
            pipe.enable_model_cpu_offload(device=self._device)
        self._active = pipe

    def _scheduler(self, config: dict[str, Any], name: str) -> Any:
        cls, options = SCHEDULERS[name]
        return cls.from_config(config, **options)

    def _count_steps(
        self,
        config: dict[str, Any],
        name: str,
        steps: int,
        *,
        strength: float | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> int:
        """How many denoising steps (callbacks) a pipeline call will make: diffusers' own rules."""
        scheduler = self._scheduler(config, name)
        scheduler.set_timesteps(steps)
        timesteps = scheduler.timesteps
        train = int(scheduler.config.num_train_timesteps)
        if end is not None:
            return int((timesteps >= round(train - end * train)).sum())
        if start is not None:
            count = int((timesteps < round(train - start * train)).sum())
            return count + 1 if scheduler.order == 2 and count % 2 == 0 else count
        if strength is not None:
            t_start = max(steps - min(int(steps * strength), steps), 0)
            return len(timesteps[t_start * scheduler.order :])
        return len(timesteps)

    def _upscale_steps_per_tile(self, pipe: Any, steps: int) -> int:
        scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
        scheduler.set_timesteps(steps)
        n, order = len(scheduler.timesteps), int(scheduler.order)
        warmup = n - steps * order
        return sum(1 for i in range(n) if i == n - 1 or ((i + 1) > warmup and (i + 1) % order == 0))

    def _call(
        self,
        pipe: Any,
        run: Progress | BatchProgress,
        generator: torch.Generator | list[torch.Generator],
        **kwargs: Any,
    ) -> Any:
        """One pipeline call; on CUDA out-of-memory, retry once with VAE tiling + attention slicing."""
        self._activate(pipe)
        generators = generator if isinstance(generator, list) else [generator]
        states, step = [g.get_state() for g in generators], run.step
        try:
            return pipe(generator=generator, **kwargs)
        except torch.OutOfMemoryError:
            if self._device.type != "cuda":
                raise
        # Outside the except block: the failed attempt's tensors are unreachable now.
        log.warning("CUDA out of memory: retrying with VAE tiling and attention slicing")
        self._empty_cache()
        for g, state in zip(generators, states, strict=True):
            g.set_state(state)
        run.step = step
        self._notes["memory_fallback"] = True
        with self._low_memory(pipe):
            try:
                return pipe(generator=generator, **kwargs)
            except torch.OutOfMemoryError:
                pass
        self._empty_cache()
        free = torch.cuda.mem_get_info(self._device)[0] if torch.cuda.is_available() else None
        raise GpuOutOfMemory(
            f"the GPU ({self.device}) ran out of memory, even with VAE tiling and attention slicing: "
            + _CUDA_OOM_HINT,
            details={"device": self.device, "free_bytes": free},
        )

    @contextmanager
    def _low_memory(self, pipe: Any) -> Iterator[None]:
        pipe.enable_attention_slicing()
        pipe.vae.enable_tiling()
        try:
            yield
        finally:
            pipe.disable_attention_slicing()  # back to the default (SDPA) processors
            if self._use_xformers():
                pipe.enable_xformers_memory_efficient_attention()
            if not self._config.hardware.enable_vae_tiling:
                pipe.vae.disable_tiling()

    def _empty_cache(self) -> None:
        gc.collect()
        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    @contextmanager
    def _session(self, run: Progress | BatchProgress) -> Iterator[Peak]:
        """Lock, peak-memory measurement and cancellation for one public call."""
        with self._lock:
            self._notes = {}
            peak = Peak()
            if self._device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self._device)
            else:
                reset_peak_rss()
            try:
                run.check()
                yield peak
            except Cancelled:
                raise GenerationCancelled(
                    f"generation cancelled after {run.step} of {run.total} steps",
                    details={"step": run.step, "total": run.total},
                ) from None
            finally:
                if self._device.type == "cuda":
                    peak.vram = int(torch.cuda.max_memory_allocated(self._device))
                else:
                    peak.rss = peak_rss_bytes()

    def _metadata(
        self,
        mode: Mode,
        seed: int,
        image: Image.Image,
        parameters: dict[str, Any],
        scheduler: str,
        elapsed: float,
        peak: Peak,
        *,
        model: str = "base",
        refined: bool = False,
    ) -> ImageMetadata:
        path = self._models.upscaler if model == "upscaler" else self._models.base
        assert path is not None
        return ImageMetadata(
            mode=mode,
            seed=seed,
            width=image.width,
            height=image.height,
            parameters={**parameters, **self._notes},
            scheduler=scheduler,
            generation_time_s=round(elapsed, 4),
            model_name=_display_name(path, self._models.demo),
            model_version=self._version(model),
            refiner_version=self._version("refiner") if refined else None,
            device=self.device,
            precision=self._precision,
            peak_vram_bytes=peak.vram,
            peak_rss_bytes=peak.rss,
            demo_model=self._models.demo,
            created_at=datetime.now(UTC).isoformat(),
        )

    def _batch_result(
        self,
        mode: Mode,
        images: list[Image.Image],
        resolved: Resolved,
        parameters: dict[str, Any],
        elapsed: float,
        peak: Peak,
        *,
        refined: bool = False,
    ) -> GenerationResult:
        """One metadata record per image of a batch: image i has seed + i and batch_index i."""
        return GenerationResult(
            images=images,
            metadata=[
                self._metadata(
                    mode,
                    resolved.seed + i,
                    image,
                    {**parameters, "batch_index": i},
                    resolved.scheduler,
                    elapsed,
                    peak,
                    refined=refined,
                )
                for i, image in enumerate(images)
            ],
        )

    def _new_progress(
        self, total: int, progress: ProgressCallback | None, cancel: CancelToken | None
    ) -> Progress:
        return Progress(total, progress, cancel, self._config.generation.preview_every)

    # --------------------------------------------------------------------------- text to image

    def text_to_image(
        self,
        params: GenerateParams,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> GenerationResult:
        resolved = resolve(params, self._config)
        with self._lock:
            pipes = self._loaded()
            gen = self._config.generation
            width, height = params.width, params.height
            refine = pipes.refiner is not None and params.refine is not False
            run_w, run_h = (width, height)
            if width * height > gen.native_pixels:
                run_w, run_h = im.native_bucket(width, height, gen.native_pixels)
            hires = (run_w, run_h) != (width, height)
            use_x4 = hires and pipes.upscaler is not None

            per_image = self._text_steps(pipes, resolved, refine)
            if use_x4:
                assert pipes.upscaler is not None
                per_image += self._tile_grid(run_w, run_h).count * self._upscale_steps_per_tile(
                    pipes.upscaler, HIRES_UPSCALE_STEPS
                )
            run = self._new_progress(per_image * resolved.batch_size, progress, cancel)
            started = time.perf_counter()
            images: list[Image.Image] = []
            with self._session(run) as peak:
                for index in range(resolved.batch_size):
                    run.check()
                    generator = torch.Generator("cpu").manual_seed(resolved.seed + index)
                    image = self._base_and_refiner(pipes, resolved, generator, run_w, run_h, refine, run)[0]
                    if use_x4:
                        image = self._upscale_tiled(
                            image,
                            prompt=resolved.prompt,
                            negative=resolved.negative_prompt,
                            steps=HIRES_UPSCALE_STEPS,
                            guidance=resolved.guidance_scale,
                            noise_level=HIRES_NOISE_LEVEL,
                            seed=resolved.seed + index,
                            out_scale=4,
                            run=run,
                            stage="hires upscale",
                        )
                    images.append(im.resize(image, (width, height)))
            elapsed = time.perf_counter() - started

            parameters = self._text_parameters(pipes, resolved, width, height, refine)
            if hires:
                parameters["generated_size"] = [run_w, run_h]
                parameters["hires_method"] = "x4-upscaler+lanczos" if use_x4 else "lanczos"
                if use_x4:
                    parameters["upscaler_version"] = self._version("upscaler")
            self._log_run("text-to-image", len(images), elapsed)
            return self._batch_result(
                "text-to-image", images, resolved, parameters, elapsed, peak, refined=refine
            )

    def text_to_image_batch(self, items: list[BatchItem]) -> list[GenerationResult | GenerationCancelled]:
        """Several compatible text-to-image jobs as one pipeline call (dynamic batching): one outcome
        per item, in order: its result, or GenerationCancelled when that item was cancelled (the
        others go on). Raises GenerationCancelled when all were, InvalidInput when the items are
        not compatible or hold more than `generation.batch_size` images."""
        keys = {batch_key(item.params, self._config) for item in items}
        if not items or len(keys) != 1 or None in keys:
            raise InvalidInput("these jobs cannot run as one batch (different size, steps or settings)")
        resolved = [resolve(item.params, self._config) for item in items]
        count = sum(r.batch_size for r in resolved)
        if count > self._config.generation.batch_size:
            raise InvalidInput(
                f"a batch holds at most {self._config.generation.batch_size} images (IMAGE_MAX_BATCH_SIZE)"
            )
        params = items[0].params
        with self._lock:
            pipes = self._loaded()
            refine = pipes.refiner is not None and params.refine is not False
            steps = self._text_steps(pipes, resolved[0], refine)
            parts, start = [], 0
            for r in resolved:
                parts.append(slice(start, start + r.batch_size))
                start += r.batch_size
            run = BatchProgress(
                [self._new_progress(steps, item.progress, item.cancel) for item in items], parts
            )
            prompts = [r.prompt for r in resolved for _ in range(r.batch_size)]
            negatives = [r.negative_prompt for r in resolved for _ in range(r.batch_size)]
            generators = [
                torch.Generator("cpu").manual_seed(r.seed + i) for r in resolved for i in range(r.batch_size)
            ]
            started = time.perf_counter()
            with self._session(run) as peak:
                images = self._base_and_refiner(
                    pipes,
                    resolved[0],
                    generators,
                    params.width,
                    params.height,
                    refine,
                    run,
                    prompts=(prompts, negatives if resolved[0].negative_prompt else None),
                )
            elapsed = time.perf_counter() - started
            self._log_run("text-to-image batch", len(images), elapsed)
            outcomes: list[GenerationResult | GenerationCancelled] = []
            for index, (r, part) in enumerate(zip(resolved, parts, strict=True)):
                if run.cancelled[index]:
                    outcomes.append(
                        GenerationCancelled(
                            f"generation cancelled after {run.runs[index].step} of {steps} steps",
                            details={"step": run.runs[index].step, "total": steps},
                        )
                    )
                    continue
                parameters = self._text_parameters(pipes, r, params.width, params.height, refine)
                parameters["dynamic_batch"] = {"jobs": len(items), "images": count}
                outcomes.append(
                    self._batch_result(
                        "text-to-image", images[part], r, parameters, elapsed, peak, refined=refine
                    )
                )
            return outcomes

    def _text_steps(self, pipes: _Pipes, resolved: Resolved, refine: bool) -> int:
        """Denoising steps of one text-to-image pass: the base, and the refiner's share."""
        fraction = self._config.generation.refiner_fraction
        configs = pipes.scheduler_configs
        steps = self._count_steps(
            configs["base"], resolved.scheduler, resolved.steps, end=fraction if refine else None
        )
        if refine:
            steps += self._count_steps(configs["refiner"], resolved.scheduler, resolved.steps, start=fraction)
        return steps

    def _text_parameters(
        self, pipes: _Pipes, resolved: Resolved, width: int, height: int, refine: bool
    ) -> dict[str, Any]:
        """The parameters a text-to-image result records (before hires or batching notes)."""
        parameters: dict[str, Any] = {
            **resolved.as_dict(),
            "width": width,
            "height": height,
            "refine": refine,
        }
        if refine:
            parameters["refiner_fraction"] = self._config.generation.refiner_fraction
        elif pipes.refiner is None:
            parameters["refine_skipped"] = "no refiner installed"
        return parameters

    def _base_and_refiner(
        self,
        pipes: _Pipes,
        resolved: Resolved,
        generator: torch.Generator | list[torch.Generator],
        width: int,
        height: int,
        refine: bool,
        run: Progress | BatchProgress,
        *,
        prompts: tuple[list[str], list[str] | None] | None = None,
    ) -> list[Image.Image]:
        """The base (and the refiner) for one image, or for a batch given `prompts` (prompts and
        negative prompts, one per image) and one generator per image."""
        base = pipes.base
        base.scheduler = self._scheduler(pipes.scheduler_configs["base"], resolved.scheduler)
        prompt, negative = (
            prompts if prompts is not None else (resolved.prompt, resolved.negative_prompt or None)
        )
        common: dict[str, Any] = {
            "prompt": prompt,
            "negative_prompt": negative,
            "num_inference_steps": resolved.steps,
            "guidance_scale": resolved.guidance_scale,
            "callback_on_step_end_tensor_inputs": ["latents"],
        }
        fraction = self._config.generation.refiner_fraction
        out = self._call(
            base,
            run,
            generator,
            **common,
            width=width,
            height=height,
            callback_on_step_end=run.on_step_end("base"),
            **({"denoising_end": fraction, "output_type": "latent"} if refine else {"output_type": "pil"}),
        )
        if not refine:
            return [_rgb(image) for image in out.images]
        refiner = pipes.refiner
        assert refiner is not None
        refiner.scheduler = self._scheduler(pipes.scheduler_configs["refiner"], resolved.scheduler)
        out = self._call(
            refiner,
            run,
            generator,
            **common,
            image=out.images,
            denoising_start=fraction,
            callback_on_step_end=run.on_step_end("refiner"),
            output_type="pil",
        )
        return [_rgb(image) for image in out.images]

    # ------------------------------------------------------------------------------ edit modes

    def image_to_image(
        self,
        image: Image.Image,
        params: EditParams,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> GenerationResult:
        resolved = resolve(params, self._config)
        source = im.to_rgb(image)
        return self._edit("image-to-image", source, None, resolved, params.strength, {}, progress, cancel)

    def inpaint(
        self,
        image: Image.Image,
        mask: Image.Image,
        params: EditParams,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> GenerationResult:
        resolved = resolve(params, self._config)
        source = im.to_rgb(image)
        binary = im.binarize_mask(mask, source.size)
        masked = int(np.count_nonzero(np.asarray(binary)))
        extra = {"mask_fraction": round(masked / (source.width * source.height), 6)}
        strength = params.strength if masked else 0.0  # an empty mask edits nothing
        return self._edit("inpaint", source, binary, resolved, strength, extra, progress, cancel)

    def outpaint(
        self,
        image: Image.Image,
        params: OutpaintParams,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> GenerationResult:
        resolved = resolve(params, self._config)
        source = im.to_rgb(image)
        width = source.width + params.left + params.right
        height = source.height + params.top + params.bottom
        limit = 2 * self._config.generation.max_resolution
        if max(width, height) > limit:
            raise InvalidInput(
                f"the outpainted canvas would be {width}x{height}; at most {limit} pixels per side",
                details={"field": "left/right/top/bottom"},
            )
        canvas, mask = im.outpaint_canvas(source, params.left, params.right, params.top, params.bottom)
        extra = {
            "left": params.left,
            "right": params.right,
            "top": params.top,
            "bottom": params.bottom,
            "input_size": [source.width, source.height],
        }
        return self._edit("outpaint", canvas, mask, resolved, OUTPAINT_STRENGTH, extra, progress, cancel)

    def _edit(
        self,
        mode: Mode,
        source: Image.Image,
        mask: Image.Image | None,
        resolved: Resolved,
        strength: float,
        extra: dict[str, Any],
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
    ) -> GenerationResult:
        """img2img (mask None) or inpaint over `source`; the result has `source`'s size."""
        width, height = source.size
        parameters: dict[str, Any] = {
            **resolved.as_dict(),
            "width": width,
            "height": height,
            "strength": strength,
            **extra,
        }
        if strength < MIN_STRENGTH:
            return self._unchanged(mode, source, resolved, parameters, progress, cancel)
        with self._lock:
            pipes = self._loaded()
            work_size = im.working_size(width, height, self._config.generation.native_pixels)
            work_image = im.resize(source, work_size)
            work_mask = None
            if mask is not None:
                work_mask = im.binarize_mask(mask.resize(work_size, Image.Resampling.BILINEAR), work_size)
            steps = _steps_for_strength(resolved.steps, strength)
            per_image = self._count_steps(
                pipes.scheduler_configs["base"], resolved.scheduler, steps, strength=strength
            )
            pipe = pipes.img2img if mask is None else pipes.inpaint
            run = self._new_progress(per_image * resolved.batch_size, progress, cancel)
            started = time.perf_counter()
            images: list[Image.Image] = []
            with self._session(run) as peak:
                for index in range(resolved.batch_size):
                    run.check()
                    generator = torch.Generator("cpu").manual_seed(resolved.seed + index)
                    pipe.scheduler = self._scheduler(pipes.scheduler_configs["base"], resolved.scheduler)
                    inputs: dict[str, Any] = {"image": work_image}
                    if work_mask is not None:
                        inputs |= {"mask_image": work_mask, "width": work_size[0], "height": work_size[1]}
                    out = self._call(
                        pipe,
                        run,
                        generator,
                        prompt=resolved.prompt,
                        negative_prompt=resolved.negative_prompt or None,
                        num_inference_steps=steps,
                        strength=strength,
                        guidance_scale=resolved.guidance_scale,
                        callback_on_step_end=run.on_step_end("base"),
                        callback_on_step_end_tensor_inputs=["latents"],
                        output_type="pil",
                        **inputs,
                    )
                    result = im.resize(_rgb(out.images[0]), (width, height))
                    if mask is not None:
                        result = im.paste_back(source, result, mask, im.feather_radius(width, height))
                    images.append(result)
            elapsed = time.perf_counter() - started
            parameters |= {
                "processing_size": list(work_size),
                "num_inference_steps": steps,
                "denoising_steps": per_image,
            }
            self._log_run(mode, len(images), elapsed)
            return self._batch_result(mode, images, resolved, parameters, elapsed, peak)

    def _unchanged(
        self,
        mode: Mode,
        source: Image.Image,
        resolved: Resolved,
        parameters: dict[str, Any],
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
    ) -> GenerationResult:
        """Strength 0 (or an empty mask): the input as it is, without running a model."""
        with self._lock:
            run = self._new_progress(0, progress, cancel)
            started = time.perf_counter()
            with self._session(run) as peak:
                images = [source.copy() for _ in range(resolved.batch_size)]
            elapsed = time.perf_counter() - started
            parameters = {**parameters, "denoising_steps": 0}
            return self._batch_result(mode, images, resolved, parameters, elapsed, peak)

    # ---------------------------------------------------------------------------------- upscale

    def upscale(
        self,
        image: Image.Image,
        params: UpscaleParams,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> GenerationResult:
        if self._models.upscaler is None:
            raise ModelNotInstalled(UPSCALER_MISSING.format(path=self._config.model.upscaler_path))
        source = im.to_rgb(image)
        width, height = source.width * params.scale, source.height * params.scale
        limit = 2 * self._config.generation.max_resolution
        if max(width, height) > limit:
            raise InvalidInput(
                f"the upscaled image would be {width}x{height}; at most {limit} pixels per side "
                "(use scale 2 or a smaller input)",
                details={"field": "scale"},
            )
        seed = params.seed if params.seed is not None else random_seed()
        with self._lock:
            pipes = self._loaded()
            upscaler = pipes.upscaler
            assert upscaler is not None
            grid = self._tile_grid(source.width, source.height)
            run = self._new_progress(
                grid.count * self._upscale_steps_per_tile(upscaler, params.steps), progress, cancel
            )
            started = time.perf_counter()
            with self._session(run) as peak:
                result = self._upscale_tiled(
                    source,
                    prompt=params.prompt,
                    negative=params.negative_prompt,
                    steps=params.steps,
                    guidance=params.guidance_scale,
                    noise_level=params.noise_level,
                    seed=seed,
                    out_scale=params.scale,
                    run=run,
                    stage="upscale",
                )
            elapsed = time.perf_counter() - started
            scheduler = type(upscaler.scheduler).__name__
            hw = self._config.hardware
            parameters = {
                **params.model_dump(),
                "seed": seed,
                "width": width,
                "height": height,
                "input_size": [source.width, source.height],
                "tile": hw.upscale_tile,
                "tile_overlap": hw.upscale_tile_overlap,
                "tiles": grid.count,
            }
            self._log_run("upscale", 1, elapsed)
            return GenerationResult(
                images=[result],
                metadata=[
                    self._metadata(
                        "upscale", seed, result, parameters, scheduler, elapsed, peak, model="upscaler"
                    )
                ],
            )

    def _tile_grid(self, width: int, height: int) -> TileGrid:
        tile, overlap = self._config.hardware.upscale_tile, self._config.hardware.upscale_tile_overlap
        padded_w = max(width, min(tile, _ceil8(width)))
        padded_h = max(height, min(tile, _ceil8(height)))
        return TileGrid.build(padded_w, padded_h, tile, overlap)

    def _upscale_tiled(
        self,
        source: Image.Image,
        *,
        prompt: str,
        negative: str,
        steps: int,
        guidance: float,
        noise_level: int,
        seed: int,
        out_scale: int,
        run: Progress,
        stage: str,
    ) -> Image.Image:
        """x4-upscale `source` tile by tile (x2: each tile's x4 output Lanczos-halved), blended."""
        pipes = self._loaded()
        upscaler = pipes.upscaler
        assert upscaler is not None
        grid = self._tile_grid(source.width, source.height)
        padded = source
        if (grid.width, grid.height) != source.size:  # tiny inputs: edge-pad to one whole tile
            pixels = np.asarray(source)
            pad = ((0, grid.height - source.height), (0, grid.width - source.width), (0, 0))
            padded = Image.fromarray(np.pad(pixels, pad, mode="edge"))
        scale = out_scale
        tile_out = (grid.tile_w * scale, grid.tile_h * scale)
        blender = BandBlender(grid.width * scale, grid.height * scale, grid.tile_h * scale)
        index = 0
        for yi, y in enumerate(grid.ys):
            weight_y = ramp_weights(grid.ys, yi, grid.tile_h, scale)
            for xi, x in enumerate(grid.xs):
                run.check()
                generator = torch.Generator("cpu").manual_seed(_tile_seed(seed, index))
                index += 1
                tile = padded.crop((x, y, x + grid.tile_w, y + grid.tile_h))
                out = self._call(
                    upscaler,
                    run,
                    generator,
                    prompt=prompt,
                    negative_prompt=negative or None,
                    image=tile,
                    num_inference_steps=steps,
                    guidance_scale=guidance,
                    noise_level=noise_level,
                    output_type="np",
                    callback=run.legacy_callback(f"{stage} tile {index}/{grid.count}", upscaler),
                    callback_steps=1,
                )
                pixels = np.asarray(out.images[0], dtype=np.float32)
                if scale != 4:
                    tile_image = Image.fromarray(np.rint(np.clip(pixels, 0, 1) * 255).astype(np.uint8))
                    pixels = np.asarray(tile_image.resize(tile_out, im.LANCZOS), dtype=np.float32) / 255.0
                weight = np.outer(weight_y, ramp_weights(grid.xs, xi, grid.tile_w, scale))
                blender.add(y * scale, x * scale, pixels, weight)
        result = blender.finish()
        return Image.fromarray(result[: source.height * scale, : source.width * scale])

    def _log_run(self, mode: str, images: int, elapsed: float) -> None:
        log.info(
            "image run done",
            extra={"mode": mode, "images": images, "seconds": round(elapsed, 3), "device": self.device},
        )


def _rgb(image: Any) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image from the pipeline, got {type(image).__name__}")
    return image if image.mode == "RGB" else image.convert("RGB")
