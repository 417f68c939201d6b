"""The tiny SDXL-architecture models: built offline, deterministic, loaded and run like real SDXL."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderKL,
    StableDiffusionUpscalePipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from fimum_ai.images import model_factory
from fimum_ai.images.model_factory import make_tiny
from fimum_ai.images.model_store import (
    VERSION_CACHE_NAME,
    ModelSet,
    find_models,
    is_model_dir,
    model_version,
)
from fimum_ai.settings import load_settings

A_PHOTO_OF_A_CAT = [49406, 320, 1125, 539, 320, 2368, 49407]  # OpenAI CLIP's ids


def file_hashes(root: Path) -> dict[str, str]:
    """Every file the build wrote (not the version cache other tests may have added since)."""
    return {
        f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(root.rglob("*"))
        if f.is_file() and f.name != VERSION_CACHE_NAME
    }


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def generator(seed: int = 7) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def base_pipeline(tiny_models_dir: Path) -> Any:
    return StableDiffusionXLPipeline.from_pretrained(tiny_models_dir / "base", local_files_only=True)


# --------------------------------------------------------------------------------------------------
# Files


def test_tiny_set_is_three_small_diffusers_folders(tiny_models_dir: Path) -> None:
    for kind in ("base", "refiner", "upscaler"):
        assert is_model_dir(tiny_models_dir / kind)
    total = sum(f.stat().st_size for f in tiny_models_dir.rglob("*") if f.is_file())
    assert 10_000_000 < total < 100_000_000
    assert not list(tiny_models_dir.parent.glob(".*building*"))  # no scratch left beside it
    weights = [f for f in tiny_models_dir.rglob("*") if f.suffix in {".safetensors", ".bin"}]
    assert weights and all(f.suffix == ".safetensors" for f in weights)


def test_tiny_configs_mirror_the_real_pipelines(tiny_models_dir: Path) -> None:
    base = read_json(tiny_models_dir / "base/model_index.json")
    assert base["_class_name"] == "StableDiffusionXLPipeline"
    assert base["text_encoder_2"] == ["transformers", "CLIPTextModelWithProjection"]
    assert base["force_zeros_for_empty_prompt"] is True
    base_unet = read_json(tiny_models_dir / "base/unet/config.json")
    assert base_unet["addition_embed_type"] == "text_time"
    # Cross-attention over both text encoders; 6 time ids + pooled text_encoder_2 output.
    assert base_unet["cross_attention_dim"] == 2 * model_factory.TINY_TEXT_WIDTH
    assert base_unet["projection_class_embeddings_input_dim"] == 6 * 8 + model_factory.TINY_TEXT_WIDTH
    assert len(read_json(tiny_models_dir / "base/vae/config.json")["block_out_channels"]) == 4  # 1/8 latents

    refiner = read_json(tiny_models_dir / "refiner/model_index.json")
    assert refiner["_class_name"] == "StableDiffusionXLImg2ImgPipeline"
    assert refiner["text_encoder"] == [None, None] and refiner["tokenizer"] == [None, None]
    assert refiner["requires_aesthetics_score"] is True
    assert refiner["force_zeros_for_empty_prompt"] is False
    refiner_unet = read_json(tiny_models_dir / "refiner/unet/config.json")
    assert refiner_unet["cross_attention_dim"] == model_factory.TINY_TEXT_WIDTH
    assert refiner_unet["projection_class_embeddings_input_dim"] == 5 * 8 + model_factory.TINY_TEXT_WIDTH

    upscaler = read_json(tiny_models_dir / "upscaler/model_index.json")
    assert upscaler["_class_name"] == "StableDiffusionUpscalePipeline"
    assert upscaler["max_noise_level"] == 350
    assert upscaler["low_res_scheduler"] == ["diffusers", "DDPMScheduler"]
    assert upscaler["scheduler"] == ["diffusers", "DDIMScheduler"]
    assert read_json(tiny_models_dir / "upscaler/unet/config.json")["in_channels"] == 7
    assert len(read_json(tiny_models_dir / "upscaler/vae/config.json")["block_out_channels"]) == 3


@pytest.mark.slow
def test_make_tiny_is_byte_identical_and_replaces_target(tiny_models_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "again"
    target.mkdir()
    (target / "stale.txt").write_text("from an older build")
    built = make_tiny(target)
    assert built == ModelSet(
        base=target / "base", refiner=target / "refiner", upscaler=target / "upscaler", demo=True
    )
    hashes = file_hashes(target)
    assert len(hashes) == 43 and "base/unet/diffusion_pytorch_model.safetensors" in hashes
    assert hashes == file_hashes(tiny_models_dir)
    assert model_version(target / "base") == model_version(tiny_models_dir / "base")
    assert not list(tmp_path.glob(".*"))  # scratch and old copies cleaned up


def test_interrupted_build_leaves_no_model_at_target(tmp_path: Path) -> None:
    target = tmp_path / "tiny"
    with pytest.raises(RuntimeError), model_factory._building(target) as scratch:
        (scratch / "model_index.json").write_text("{}")
        raise RuntimeError("killed mid-build")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_find_models_uses_the_tiny_set(with_tiny_models: Path) -> None:
    found = find_models(load_settings())
    assert found == ModelSet(
        base=with_tiny_models / "base",
        refiner=with_tiny_models / "refiner",
        upscaler=with_tiny_models / "upscaler",
        demo=True,
    )


# --------------------------------------------------------------------------------------------------
# Tokenizers


@pytest.mark.parametrize(
    ("folder", "pad_token", "pad_id"),
    [
        ("base/tokenizer", "<|endoftext|>", 49407),
        ("base/tokenizer_2", "!", 0),
        ("refiner/tokenizer_2", "!", 0),
        ("upscaler/tokenizer", "!", 0),
    ],
)
def test_tokenizers_are_real_clip_bpe(
    tiny_models_dir: Path, folder: str, pad_token: str, pad_id: int
) -> None:
    path = tiny_models_dir / folder
    assert sorted(p.name for p in path.iterdir()) == [
        "merges.txt",
        "special_tokens_map.json",
        "tokenizer_config.json",
        "vocab.json",
    ]
    tokenizer = CLIPTokenizer.from_pretrained(path, local_files_only=True)
    assert tokenizer("a photo of a cat").input_ids == A_PHOTO_OF_A_CAT
    assert tokenizer("A  PHOTO of a Cat").input_ids == A_PHOTO_OF_A_CAT  # lower-cased, spaces folded
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == 77
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == (pad_token, pad_id)
    padded = tokenizer("a cat", padding="max_length", max_length=77, truncation=True).input_ids
    assert padded[:4] == [49406, 320, 2368, 49407] and padded[4:] == [pad_id] * 73
    long_prompt = tokenizer(" ".join(["cat"] * 200), max_length=77, truncation=True).input_ids
    assert len(long_prompt) == 77 and long_prompt[-1] == 49407


def test_vocab_matches_open_clip_layout() -> None:
    vocab, merges = model_factory.clip_vocab_and_merges()
    assert len(vocab) == 49408 and len(merges) == 49408 - 512 - 2
    assert vocab["!"] == 0 and vocab["!</w>"] == 256
    assert vocab["".join(merges[0].split())] == 512
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407


# --------------------------------------------------------------------------------------------------
# Pipelines load with from_pretrained and run


def test_base_generates_and_same_seed_repeats(base_pipeline: Any) -> None:
    base_pipeline.set_progress_bar_config(disable=True)
    assert base_pipeline.vae_scale_factor == 8
    args = {"prompt": "a photo of a cat", "height": 64, "width": 64, "num_inference_steps": 2}
    first = base_pipeline(**args, generator=generator()).images[0]
    again = base_pipeline(**args, generator=generator()).images[0]
    other = base_pipeline(**args, generator=generator(8)).images[0]
    assert first.size == (64, 64)
    assert np.array_equal(pixels(first), pixels(again))
    assert not np.array_equal(pixels(first), pixels(other))
    wide = base_pipeline(**args | {"width": 96, "num_images_per_prompt": 2}, generator=generator())
    assert [image.size for image in wide.images] == [(96, 64), (96, 64)]


def test_base_loads_in_bf16(tiny_models_dir: Path) -> None:
    pipe = StableDiffusionXLPipeline.from_pretrained(
        tiny_models_dir / "base", local_files_only=True, dtype=torch.bfloat16
    )
    pipe.set_progress_bar_config(disable=True)
    assert pipe.unet.dtype == torch.bfloat16
    image = pipe(
        "a photo of a cat", height=64, width=64, num_inference_steps=1, generator=generator()
    ).images[0]
    assert image.size == (64, 64)


def test_refiner_runs_img2img_with_aesthetic_conditioning(tiny_models_dir: Path, base_pipeline: Any) -> None:
    refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(
        tiny_models_dir / "refiner", local_files_only=True
    )
    refiner.set_progress_bar_config(disable=True)
    assert refiner.text_encoder is None and refiner.config.requires_aesthetics_score
    image = Image.new("RGB", (64, 64), (200, 120, 40))
    result = refiner(
        "a photo of a cat", image=image, strength=0.5, num_inference_steps=4, generator=generator()
    ).images[0]
    assert result.size == (64, 64)
    assert not np.array_equal(pixels(result), pixels(image))

    # Ensemble of experts: the base denoises the first 80 % and hands its latents to the refiner.
    latents = base_pipeline(
        "a photo of a cat",
        height=64,
        width=64,
        num_inference_steps=5,
        denoising_end=0.8,
        output_type="latent",
        generator=generator(),
    ).images
    assert latents.shape == (1, 4, 8, 8)
    refined = refiner(
        "a photo of a cat", image=latents, num_inference_steps=5, denoising_start=0.8, generator=generator()
    ).images[0]
    assert refined.size == (64, 64)


def test_upscaler_multiplies_size_by_four(tiny_models_dir: Path) -> None:
    upscaler = StableDiffusionUpscalePipeline.from_pretrained(
        tiny_models_dir / "upscaler", local_files_only=True
    )
    upscaler.set_progress_bar_config(disable=True)
    low_res = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8))
    result = upscaler(
        "a photo of a cat", image=low_res, num_inference_steps=2, noise_level=20, generator=generator()
    ).images[0]
    assert result.size == (48 * 4, 32 * 4)


# --------------------------------------------------------------------------------------------------
# Full-size architecture (built on the meta device: shapes only, no memory)


def meta_params(build: Any) -> int:
    with torch.device("meta"):
        model = build()
    return sum(p.numel() for p in model.parameters())


def test_full_size_configs_are_sdxl_base() -> None:
    unet = meta_params(lambda: UNet2DConditionModel(**model_factory.SDXL_BASE_UNET_CONFIG))
    vae = meta_params(lambda: AutoencoderKL(**model_factory.SDXL_VAE_CONFIG))
    clip_l = meta_params(lambda: CLIPTextModel(CLIPTextConfig(**model_factory.SDXL_TEXT_ENCODER_CONFIG)))
    clip_g = meta_params(
        lambda: CLIPTextModelWithProjection(CLIPTextConfig(**model_factory.SDXL_TEXT_ENCODER_2_CONFIG))
    )
    # Published sizes of stabilityai/stable-diffusion-xl-base-1.0's components.
    assert unet == 2_567_463_684
    assert vae == 83_653_863
    assert clip_l == 123_060_480
    assert clip_g == 694_659_840
