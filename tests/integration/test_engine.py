"""The image engine on the tiny SDXL-architecture models: real pipelines, real weights files, no mocks.

Sizes and steps stay within the real request bounds (>= 512 px, >= 20 steps). One engine is shared
by the module; tests that need another configuration build their own.
"""

from __future__ import annotations

import io
import itertools
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fimum_ai.errors import GenerationCancelled, ModelNotInstalled
from fimum_ai.images._runtime import cpu_supports_bf16
from fimum_ai.images.engine import SCHEDULERS, ImageEngine
from fimum_ai.images.model_store import ModelSet, model_version
from fimum_ai.images.progress import CancelToken, ProgressEvent
from fimum_ai.images.requests import EditParams, GenerateParams, OutpaintParams, UpscaleParams
from fimum_ai.settings import ImageGenerationConfig, read_config_file

REPO = Path(__file__).resolve().parents[2]


def engine_config(generation: dict[str, Any] | None = None, **hardware: Any) -> ImageGenerationConfig:
    presets = read_config_file(REPO / "config" / "models.yaml")["image_generation"]["style_presets"]
    return ImageGenerationConfig.model_validate(
        {
            "generation": {"precision": "fp32", "preview_every": 5, **(generation or {})},
            "hardware": {"device": "cpu", **hardware},
            "style_presets": presets,
        }
    )


def picture(width: int, height: int) -> Image.Image:
    """A deterministic picture with gradients and shapes (not noise, not flat)."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], axis=-1)
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, width // 2, height // 2), fill=(240, 200, 40))
    draw.rectangle((width // 2, height // 2, width - 40, height - 40), fill=(30, 60, 200))
    return image


@pytest.fixture(scope="module")
def tiny_set(tiny_models_dir: Path) -> ModelSet:
    return ModelSet(
        base=tiny_models_dir / "base",
        refiner=tiny_models_dir / "refiner",
        upscaler=tiny_models_dir / "upscaler",
        demo=True,
    )


@pytest.fixture(scope="module")
def engine(tiny_set: ModelSet) -> Iterator[ImageEngine]:
    engine = ImageEngine(tiny_set, engine_config(upscale_tile=64, upscale_tile_overlap=16))
    engine.load()
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def bare_engine(tiny_set: ModelSet) -> Iterator[ImageEngine]:
    """Base model only: no refiner, no upscaler installed."""
    models = ModelSet(base=tiny_set.base, refiner=None, upscaler=None, demo=True)
    engine = ImageEngine(models, engine_config())
    yield engine
    engine.unload()


def pixels(image: Image.Image) -> np.ndarray[Any, Any]:
    return np.asarray(image.convert("RGB"))


def generate(**overrides: Any) -> GenerateParams:
    values: dict[str, Any] = {"prompt": "a lighthouse on a cliff", "width": 512, "height": 512, "steps": 20}
    return GenerateParams(**{**values, **overrides})


# ------------------------------------------------------------------------------------------ loading


def test_loads_from_folders_and_shares_components(engine: ImageEngine, tiny_set: ModelSet) -> None:
    from diffusers import (
        StableDiffusionUpscalePipeline,
        StableDiffusionXLImg2ImgPipeline,
        StableDiffusionXLInpaintPipeline,
        StableDiffusionXLPipeline,
    )

    pipes = engine._pipes
    assert pipes is not None
    assert type(pipes.base) is StableDiffusionXLPipeline
    assert type(pipes.img2img) is StableDiffusionXLImg2ImgPipeline
    assert type(pipes.inpaint) is StableDiffusionXLInpaintPipeline
    assert type(pipes.refiner) is StableDiffusionXLImg2ImgPipeline
    assert type(pipes.upscaler) is StableDiffusionUpscalePipeline
    # from_pipe: the edit pipelines are the base's modules, not copies.
    for name in ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"):
        assert getattr(pipes.img2img, name) is getattr(pipes.base, name), name
        assert getattr(pipes.inpaint, name) is getattr(pipes.base, name), name
    # The refiner shares text_encoder_2 and the VAE with the base; its UNet is its own.
    assert pipes.refiner.text_encoder_2 is pipes.base.text_encoder_2
    assert pipes.refiner.vae is pipes.base.vae
    assert pipes.refiner.unet is not pipes.base.unet
    assert pipes.refiner.text_encoder is None
    assert pipes.base.unet.dtype == pipes.refiner.unet.dtype == engine._dtype

    engine.load()  # idempotent
    assert engine._pipes is pipes
    assert engine.device == "cpu"
    assert engine.precision == "fp32"
    assert engine.model_name == f"{tiny_set.base.parent.name}/base"
    assert engine.model_version == model_version(tiny_set.base)


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    engine = ImageEngine(ModelSet(tmp_path / "nothing", None, None, demo=False), engine_config())
    with pytest.raises(ModelNotInstalled, match="fimum models download"):
        engine.load()


# ----------------------------------------------------------------------------------- text to image


def test_batch_images_replay_alone_and_chunking_does_not_matter(
    engine: ImageEngine, tiny_set: ModelSet
) -> None:
    batch = engine.text_to_image(generate(seed=100, batch_size=3, refine=False))
    assert len(batch.images) == len(batch.metadata) == 3
    assert all(image.size == (512, 512) and image.mode == "RGB" for image in batch.images)
    assert [m.seed for m in batch.metadata] == [100, 101, 102]
    assert not np.array_equal(pixels(batch.images[0]), pixels(batch.images[1]))

    # Image 2 replayed alone with seed + 2: the same pixels (and the same run twice: reproducible).
    alone = engine.text_to_image(generate(seed=102, refine=False))
    assert np.array_equal(pixels(alone.images[0]), pixels(batch.images[2]))

    # IMAGE_MAX_BATCH_SIZE smaller than the batch: chunked runs give the same pixels.
    chunked = ImageEngine(tiny_set, engine_config({"batch_size": 1}))
    try:
        again = chunked.text_to_image(generate(seed=100, batch_size=2, refine=False))
    finally:
        chunked.unload()
    for i in range(2):
        assert np.array_equal(pixels(again.images[i]), pixels(batch.images[i])), i

    meta = batch.metadata[1]
    assert meta.mode == "text-to-image"
    assert (meta.width, meta.height) == (512, 512)
    assert meta.parameters["seed"] == 100 and meta.parameters["batch_index"] == 1
    assert meta.parameters["steps"] == 20 and meta.parameters["refine"] is False
    assert meta.scheduler == "DPMSolverMultistep"
    assert meta.model_version == model_version(tiny_set.base)
    assert meta.refiner_version is None
    assert meta.device == "cpu" and meta.precision == "fp32"
    assert meta.demo_model is True
    assert meta.peak_rss_bytes is not None and meta.peak_rss_bytes > 0
    assert meta.peak_vram_bytes is None
    assert meta.generation_time_s > 0
    assert meta.created_at.endswith("+00:00")


def test_progress_every_step_with_previews_and_the_refiner_stage(
    engine: ImageEngine, tiny_set: ModelSet
) -> None:
    events: list[ProgressEvent] = []
    result = engine.text_to_image(generate(seed=7), progress=events.append)  # refine=None: installed -> on

    meta = result.metadata[0]
    assert meta.parameters["refine"] is True and meta.parameters["refiner_fraction"] == 0.8
    assert meta.refiner_version == model_version(tiny_set.refiner)  # type: ignore[arg-type]

    assert [e.step for e in events] == list(range(1, 21))
    assert {e.total for e in events} == {20}
    stages = [e.stage for e in events]
    # The base denoises down to timestep 200 (fraction 0.8), the refiner the rest: how many steps
    # each gets depends on the scheduler's spacing (Karras sigmas crowd the low-noise end).
    on_base = stages.count("base")
    assert 0 < on_base < 20 and stages == ["base"] * on_base + ["refiner"] * (20 - on_base)
    assert all(b.elapsed_s >= a.elapsed_s for a, b in itertools.pairwise(events))
    assert events[-1].eta_s == 0
    with_preview = [e.step for e in events if e.preview_jpeg is not None]
    assert with_preview == [5, 10, 15, 20]
    for event in events:
        if event.preview_jpeg is not None:
            preview = Image.open(io.BytesIO(event.preview_jpeg))
            assert preview.format == "JPEG"
            assert preview.size == (64, 64)  # the 512x512 image's latents, 1/8 scale
            preview.load()


def test_cancel_stops_within_one_step(engine: ImageEngine) -> None:
    token = CancelToken()
    events: list[ProgressEvent] = []

    def on_progress(event: ProgressEvent) -> None:
        events.append(event)
        if event.step == 3:
            token.cancel()

    with pytest.raises(GenerationCancelled) as caught:
        engine.text_to_image(generate(seed=1, batch_size=2), progress=on_progress, cancel=token)
    assert [e.step for e in events] == [1, 2, 3]
    assert caught.value.details == {"step": 3, "total": 40}

    # Cancelled before it starts: nothing runs.
    events.clear()
    with pytest.raises(GenerationCancelled):
        engine.text_to_image(generate(seed=1), progress=events.append, cancel=token)
    assert events == []


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_every_scheduler_runs_with_the_refiner(engine: ImageEngine, scheduler: str) -> None:
    events: list[ProgressEvent] = []
    result = engine.text_to_image(
        generate(seed=5, scheduler=scheduler, guidance_scale=1.0, refine=True), progress=events.append
    )
    meta = result.metadata[0]
    assert meta.scheduler == scheduler and meta.parameters["scheduler"] == scheduler
    # The precomputed total matches the steps diffusers actually ran, across both stages.
    assert [e.step for e in events] == list(range(1, events[-1].total + 1))
    assert {e.stage for e in events} == {"base", "refiner"}
    assert pixels(result.images[0]).std() > 1.0


def test_style_preset_shapes_prompt_negative_and_scheduler(engine: ImageEngine) -> None:
    preset = engine_config().style_presets["sketch"]
    result = engine.text_to_image(
        generate(prompt="a cat", negative_prompt="blurry", style_preset="sketch", seed=3, refine=False)
    )
    parameters = result.metadata[0].parameters
    assert parameters["prompt"] == preset.prompt.replace("{prompt}", "a cat")
    assert parameters["negative_prompt"] == f"blurry, {preset.negative}"
    assert parameters["style_preset"] == "sketch"
    assert parameters["steps"] == 20  # the request's steps win over the preset's
    assert preset.scheduler == "Euler" and result.metadata[0].scheduler == "Euler"


def test_without_refiner_refine_is_off_and_recorded(bare_engine: ImageEngine) -> None:
    result = bare_engine.text_to_image(generate(seed=9, refine=True))
    meta = result.metadata[0]
    assert meta.parameters["refine"] is False
    assert meta.parameters["refine_skipped"] == "no refiner installed"
    assert meta.refiner_version is None


def test_cuda_on_a_cpu_machine_falls_back_with_a_warning(
    tiny_set: ModelSet, caplog: pytest.LogCaptureFixture
) -> None:
    config = engine_config({"precision": "fp16"}, device="cuda")
    with caplog.at_level(logging.WARNING, logger="fimum_ai.images.engine"):
        engine = ImageEngine(tiny_set, config)
    assert "CUDA is not available" in caplog.text
    assert engine.device == "cpu"
    assert engine.precision == ("bf16" if cpu_supports_bf16() else "fp32")
    result = engine.text_to_image(generate(seed=2, refine=False))
    assert result.images[0].size == (512, 512)
    assert result.metadata[0].precision == engine.precision
    assert engine._pipes is not None and engine._pipes.base.unet.dtype == engine._dtype
    engine.unload()


def test_one_run_at_a_time(engine: ImageEngine) -> None:
    """Two threads share the engine: the second run starts only after the first has finished."""
    order: list[tuple[str, int]] = []
    results: dict[str, Image.Image] = {}
    started = threading.Event()

    def run(name: str, seed: int) -> None:
        def on_progress(event: ProgressEvent) -> None:
            order.append((name, event.step))
            started.set()

        params = generate(seed=seed, guidance_scale=1.0, refine=False)
        results[name] = engine.text_to_image(params, progress=on_progress).images[0]

    first = threading.Thread(target=run, args=("first", 31))
    second = threading.Thread(target=run, args=("second", 32))
    first.start()
    assert started.wait(60)
    second.start()
    first.join(120)
    second.join(120)
    assert [name for name, _ in order] == ["first"] * 20 + ["second"] * 20
    alone = engine.text_to_image(generate(seed=32, guidance_scale=1.0, refine=False)).images[0]
    assert np.array_equal(pixels(results["second"]), pixels(alone))


# -------------------------------------------------------------------------------------- edit modes


def test_image_to_image_strength(engine: ImageEngine) -> None:
    source = picture(576, 512)
    events: list[ProgressEvent] = []
    half = engine.image_to_image(
        source, EditParams(prompt="oil painting", strength=0.5, steps=20, seed=11), progress=events.append
    )
    assert half.images[0].size == (576, 512)
    assert half.metadata[0].parameters["strength"] == 0.5
    assert half.metadata[0].parameters["denoising_steps"] == 10  # int(20 * 0.5)
    assert [e.step for e in events] == list(range(1, 11))
    assert not np.array_equal(pixels(half.images[0]), pixels(source))
    replay = engine.image_to_image(source, EditParams(prompt="oil painting", strength=0.5, steps=20, seed=11))
    assert np.array_equal(pixels(replay.images[0]), pixels(half.images[0]))

    # Strength 0: the input, untouched, without running a model.
    events.clear()
    same = engine.image_to_image(
        source, EditParams(prompt="x", strength=0.0, seed=1, batch_size=2), progress=events.append
    )
    assert len(same.images) == 2 and all(np.array_equal(pixels(i), pixels(source)) for i in same.images)
    assert events == [] and same.metadata[0].parameters["denoising_steps"] == 0

    # steps * strength < 1 would give diffusers an empty schedule: one step runs instead.
    tiny = engine.image_to_image(source, EditParams(prompt="x", strength=0.01, steps=20, seed=1))
    assert tiny.metadata[0].parameters["denoising_steps"] == 1
    assert tiny.images[0].size == (576, 512)


def test_inpaint_leaves_unmasked_pixels_identical(engine: ImageEngine) -> None:
    source = picture(600, 520)  # not a multiple of 64: processed resized, pasted back at 600x520
    mask = Image.new("RGBA", source.size, (0, 0, 0, 0))  # transparent layer, white brush strokes
    ImageDraw.Draw(mask).ellipse((150, 120, 420, 380), fill=(255, 255, 255, 255))
    result = engine.inpaint(source, mask, EditParams(prompt="a red balloon", strength=0.9, steps=20, seed=4))

    out, original = pixels(result.images[0]), pixels(source)
    assert result.images[0].size == source.size
    edit = np.asarray(mask.getchannel("A")) >= 128
    assert np.array_equal(out[~edit], original[~edit])
    assert (out[edit] != original[edit]).any(axis=-1).mean() > 0.5
    assert 0.1 < result.metadata[0].parameters["mask_fraction"] < 0.5

    # A black mask edits nothing: the input comes back without running a model.
    empty = engine.inpaint(source, Image.new("L", source.size, 0), EditParams(prompt="x", seed=4))
    assert np.array_equal(pixels(empty.images[0]), original)


def test_outpaint_extends_canvas_and_keeps_the_original(engine: ImageEngine) -> None:
    source = picture(512, 512)
    params = OutpaintParams(prompt="more of the landscape", left=64, bottom=64, steps=20, seed=8)
    result = engine.outpaint(source, params)
    out = pixels(result.images[0])
    assert result.images[0].size == (512 + 64, 512 + 64)
    assert np.array_equal(out[0:512, 64:576], pixels(source))
    new_area = np.concatenate([out[:, :64].reshape(-1, 3), out[512:, 64:].reshape(-1, 3)])
    assert new_area.std() > 1.0  # filled, not left flat
    assert result.metadata[0].parameters["left"] == 64 and result.metadata[0].mode == "outpaint"


# ------------------------------------------------------------------------------------------ upscale


def test_upscale_x2_is_deterministic(engine: ImageEngine, tiny_set: ModelSet) -> None:
    source = picture(512, 512).resize((64, 48))  # smaller than a tile: padded, then cropped back
    params = UpscaleParams(scale=2, seed=21, guidance_scale=1.0)
    first = engine.upscale(source, params)
    assert first.images[0].size == (128, 96)
    meta = first.metadata[0]
    assert meta.mode == "upscale" and meta.parameters["tiles"] == 1
    assert meta.model_name == f"{tiny_set.base.parent.name}/upscaler"
    assert meta.model_version == model_version(tiny_set.upscaler)  # type: ignore[arg-type]
    second = engine.upscale(source, params)
    assert np.array_equal(pixels(first.images[0]), pixels(second.images[0]))


def test_upscale_without_the_model_says_how_to_install(bare_engine: ImageEngine) -> None:
    with pytest.raises(ModelNotInstalled, match="fimum models download upscaler"):
        bare_engine.upscale(picture(128, 128), UpscaleParams())
