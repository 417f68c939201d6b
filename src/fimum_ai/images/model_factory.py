"""Build SDXL-architecture pipelines with random weights, without any model hub.

- `make_tiny`: the demo/test set (base, refiner, x4 upscaler), tens of MB, seconds to build.
- `make_full_random`: the full-size SDXL base architecture for benchmarks (same FLOPs and
  memory as the real model, ~7 GB in bf16).

Both write ordinary diffusers folders with `save_pretrained` (safetensors), so they load through
the same `from_pretrained(path, local_files_only=True)` call as real SDXL. The tokenizers are the
real CLIP BPE tokenizer, built from the vocabulary that ships inside the `open_clip_torch` wheel.
Imports torch/diffusers/transformers: only the worker side (engine, CLI) imports this module.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    EulerDiscreteScheduler,
    StableDiffusionUpscalePipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from fimum_ai.errors import ModelNotInstalled
from fimum_ai.images.model_store import ModelSet

SEED = 0
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
CLIP_VOCAB_SIZE = 49408
CLIP_MAX_LENGTH = 77
OPEN_CLIP_VOCAB = "bpe_simple_vocab_16e6.txt.gz"
OPEN_CLIP_INSTALL = "pip install --no-deps open_clip_torch==3.3.0"

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# ------------------------------------------------------------------------------------------------
# Real configs of stabilityai/stable-diffusion-xl-base-1.0 (unet/, vae/, text_encoder*/, scheduler/
# config.json), as literal dicts: make_full_random builds exactly this architecture.

SDXL_BASE_UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "center_input_sample": False,
    "class_embed_type": None,
    "class_embeddings_concat": False,
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
    "cross_attention_dim": 2048,
    "cross_attention_norm": None,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "encoder_hid_dim": None,
    "encoder_hid_dim_type": None,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_only_cross_attention": None,
    "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_attention_heads": None,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816,
    "resnet_out_scale_factor": 1.0,
    "resnet_skip_time_act": False,
    "resnet_time_scale_shift": "default",
    "sample_size": 128,
    "time_cond_proj_dim": None,
    "time_embedding_act_fn": None,
    "time_embedding_dim": None,
    "time_embedding_type": "positional",
    "timestep_post_act": None,
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "upcast_attention": None,
    "use_linear_projection": True,
}

SDXL_VAE_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "force_upcast": True,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 1024,
    "scaling_factor": 0.13025,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

# CLIP ViT-L/14 text tower (openai/clip-vit-large-patch14).
SDXL_TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "architectures": ["CLIPTextModel"],
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "model_type": "clip_text_model",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "projection_dim": 768,
    "vocab_size": 49408,
}

# OpenCLIP ViT-bigG/14 text tower with projection (laion/CLIP-ViT-bigG-14-laion2B-39B-b160k).
SDXL_TEXT_ENCODER_2_CONFIG: dict[str, Any] = {
    "architectures": ["CLIPTextModelWithProjection"],
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "gelu",
    "hidden_size": 1280,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 5120,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "model_type": "clip_text_model",
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "pad_token_id": 1,
    "projection_dim": 1280,
    "vocab_size": 49408,
}

SDXL_SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
    "use_karras_sigmas": False,
}

# stabilityai/stable-diffusion-x4-upscaler scheduler/ and low_res_scheduler/.
UPSCALER_SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_end": 0.02,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.0001,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "trained_betas": None,
}
UPSCALER_LOW_RES_SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_end": 0.02,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.0001,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "trained_betas": None,
    "variance_type": "fixed_small",
}

# ------------------------------------------------------------------------------------------------
# Tiny configs: the real architectures' structure (blocks, conditioning, scale factors) with
# widths cut to a few dozen channels, after diffusers' own fast pipeline tests.

TINY_TEXT_WIDTH = 32
TINY_TIME_EMBED_DIM = 8


def _tiny_text_config(hidden_act: str) -> dict[str, Any]:
    return {
        "bos_token_id": 0,
        "eos_token_id": 2,
        "hidden_size": TINY_TEXT_WIDTH,
        "intermediate_size": 37,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": CLIP_MAX_LENGTH,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "pad_token_id": 1,
        "projection_dim": TINY_TEXT_WIDTH,
        "vocab_size": CLIP_VOCAB_SIZE,  # the real vocabulary: real token ids reach the embedding
        "hidden_act": hidden_act,
    }


def _tiny_xl_unet_config(*, refiner: bool) -> dict[str, Any]:
    # Base: cross-attention on both text encoders (2 x 32), 6 time ids + pooled text_encoder_2.
    # Refiner: text_encoder_2 only, 5 time ids (original size, crop, aesthetic score) + pooled.
    time_ids = 5 if refiner else 6
    return {
        "block_out_channels": [32, 32, 64],
        "layers_per_block": 2,
        "sample_size": 128,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "attention_head_dim": [2, 2, 4],
        "transformer_layers_per_block": [1, 1, 2],
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": TINY_TIME_EMBED_DIM,
        "projection_class_embeddings_input_dim": time_ids * TINY_TIME_EMBED_DIM + TINY_TEXT_WIDTH,
        "cross_attention_dim": TINY_TEXT_WIDTH if refiner else 2 * TINY_TEXT_WIDTH,
    }


# Four blocks: latents are 1/8 of the image, as with SDXL's VAE.
TINY_XL_VAE_CONFIG: dict[str, Any] = {
    **SDXL_VAE_CONFIG,
    "block_out_channels": [32, 32, 64, 64],
    "layers_per_block": 1,
}

# The upscaler's latents are at the input's full resolution, so attention above the lowest level
# (and in the VAE's mid block) dominates its cost; the tiny one keeps attention only at the bottom.
TINY_UPSCALER_UNET_CONFIG: dict[str, Any] = {
    "block_out_channels": [32, 32, 64],
    "layers_per_block": 1,
    "sample_size": 128,
    "in_channels": 7,  # 4 latent channels + the 3-channel low-resolution image
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
    "cross_attention_dim": TINY_TEXT_WIDTH,
    "attention_head_dim": 8,
    "use_linear_projection": True,
    "num_class_embeds": 1000,  # noise-level embedding, as the real upscaler
}

# Three blocks: the x4 upscaler's VAE has a scale factor of 4.
TINY_UPSCALER_VAE_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [32, 32, 64],
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 1,
    "norm_num_groups": 32,
    "sample_size": 256,
    "scaling_factor": 0.08333,
    "mid_block_add_attention": False,
}

# ------------------------------------------------------------------------------------------------
# CLIP tokenizer from open_clip's vocabulary


def open_clip_vocab_path() -> Path:
    """The BPE merges file inside the installed open_clip package, found without importing it
    (importing open_clip needs torchvision, which we do not install)."""
    spec = importlib.util.find_spec("open_clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / OPEN_CLIP_VOCAB
        if candidate.is_file():
            return candidate
    raise ModelNotInstalled(
        f"the CLIP vocabulary ({OPEN_CLIP_VOCAB}) was not found: run `{OPEN_CLIP_INSTALL}`"
    )


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-to-printable-character table (as open_clip's SimpleTokenizer)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


@lru_cache(maxsize=1)
def clip_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """vocab.json and merges.txt contents, built exactly as open_clip's SimpleTokenizer builds its
    vocabulary (the same ids as OpenAI CLIP: <|startoftext|> 49406, <|endoftext|> 49407)."""
    lines = gzip.decompress(open_clip_vocab_path().read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    byte_chars = list(_bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    tokens += ["".join(merge.split()) for merge in merges]
    tokens += [BOS, EOS]
    if len(tokens) != CLIP_VOCAB_SIZE:
        raise ModelNotInstalled(
            f"{OPEN_CLIP_VOCAB} gave {len(tokens)} tokens, expected {CLIP_VOCAB_SIZE}: "
            f"reinstall it with `{OPEN_CLIP_INSTALL}`"
        )
    return {token: index for index, token in enumerate(tokens)}, merges


def _special(content: str) -> dict[str, Any]:
    return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


def write_clip_tokenizer(folder: Path, *, pad_token: str) -> None:
    """The four files of a real SDXL tokenizer folder (openai/clip-vit-large-patch14's layout).

    pad_token: "<|endoftext|>" for SDXL's `tokenizer`, "!" for `tokenizer_2` (OpenCLIP bigG)
    and for the SD 2.x-family x4 upscaler.
    """
    vocab, merges = clip_vocab_and_merges()
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / "vocab.json", vocab, indent=None)
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    pad: str | dict[str, Any] = pad_token if pad_token == EOS else _special(pad_token)
    _write_json(
        folder / "special_tokens_map.json",
        {
            "bos_token": _special(BOS),
            "eos_token": _special(EOS),
            "pad_token": pad,
            "unk_token": _special(EOS),
        },
    )
    _write_json(
        folder / "tokenizer_config.json",
        {
            "add_prefix_space": False,
            "bos_token": {"__type": "AddedToken", **_special(BOS)},
            "clean_up_tokenization_spaces": True,
            "do_lower_case": True,
            "eos_token": {"__type": "AddedToken", **_special(EOS)},
            "errors": "replace",
            "model_max_length": CLIP_MAX_LENGTH,
            "pad_token": pad_token,
            "tokenizer_class": "CLIPTokenizer",
            "unk_token": {"__type": "AddedToken", **_special(EOS)},
        },
    )


def load_clip_tokenizer(pad_token: str, scratch: Path) -> Any:
    folder = scratch / f"tokenizer-pad-{len(pad_token)}"
    write_clip_tokenizer(folder, pad_token=pad_token)
    return CLIPTokenizer.from_pretrained(folder, local_files_only=True)


def _write_json(path: Path, data: Any, indent: int | None = 2) -> None:
    path.write_text(json.dumps(data, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------------
# Building blocks


def _seeded(build: Callable[[], Any]) -> Any:
    # Each component from its own fixed seed: the weights do not depend on build order.
    torch.manual_seed(SEED)
    return build()


def _unet(config: dict[str, Any]) -> Any:
    return _seeded(lambda: UNet2DConditionModel(**copy.deepcopy(config)))


def _vae(config: dict[str, Any]) -> Any:
    return _seeded(lambda: AutoencoderKL(**copy.deepcopy(config)))


def _text_encoder(config: dict[str, Any], *, projection: bool) -> Any:
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return _seeded(lambda: cls(CLIPTextConfig(**config)).eval())


def _save(pipeline: Any, folder: Path, tokenizers: dict[str, str]) -> None:
    """save_pretrained, then give each tokenizer folder the real repos' file layout."""
    with _no_progress_bars():
        pipeline.save_pretrained(folder, safe_serialization=True)
    for name, pad_token in tokenizers.items():
        shutil.rmtree(folder / name)
        write_clip_tokenizer(folder / name, pad_token=pad_token)


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """No "Writing model shards" bars for files that take milliseconds to write."""
    from transformers.utils import logging as transformers_logging

    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()


@contextlib.contextmanager
def _building(target: Path) -> Iterator[Path]:
    """Yield a scratch sibling folder; on success it atomically becomes `target`.

    An interrupted build leaves only the hidden scratch folder, never a half model at `target`.
    """
    target = target.absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.building-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        yield scratch
        _swap_into_place(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _swap_into_place(built: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(built, target)
    shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# Tiny set


def make_tiny(target: Path) -> ModelSet:
    """Tiny random-weight SDXL base + refiner + x4 upscaler under target/{base,refiner,upscaler}.

    Deterministic: the same bytes on every build (fixed seeds; no timestamps in any file).
    """
    with _building(target) as out, tempfile.TemporaryDirectory() as tmp:
        _build_tiny_base(out / "base", Path(tmp))
        _build_tiny_refiner(out / "refiner", Path(tmp))
        _build_tiny_upscaler(out / "upscaler", Path(tmp))
    final = target.absolute()
    return ModelSet(base=final / "base", refiner=final / "refiner", upscaler=final / "upscaler", demo=True)


def _build_tiny_base(folder: Path, scratch: Path) -> None:
    pipeline = StableDiffusionXLPipeline(
        vae=_vae(TINY_XL_VAE_CONFIG),
        text_encoder=_text_encoder(_tiny_text_config("quick_gelu"), projection=False),
        text_encoder_2=_text_encoder(_tiny_text_config("gelu"), projection=True),
        tokenizer=load_clip_tokenizer(EOS, scratch),
        tokenizer_2=load_clip_tokenizer("!", scratch),
        unet=_unet(_tiny_xl_unet_config(refiner=False)),
        scheduler=EulerDiscreteScheduler.from_config(SDXL_SCHEDULER_CONFIG),
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    _save(pipeline, folder, {"tokenizer": EOS, "tokenizer_2": "!"})


def _build_tiny_refiner(folder: Path, scratch: Path) -> None:
    # As stabilityai/stable-diffusion-xl-refiner-1.0: no first text encoder, aesthetic-score
    # conditioning, and an empty negative prompt is encoded rather than zeroed.
    pipeline = StableDiffusionXLImg2ImgPipeline(
        vae=_vae(TINY_XL_VAE_CONFIG),
        text_encoder=None,
        text_encoder_2=_text_encoder(_tiny_text_config("gelu"), projection=True),
        tokenizer=None,
        tokenizer_2=load_clip_tokenizer("!", scratch),
        unet=_unet(_tiny_xl_unet_config(refiner=True)),
        scheduler=EulerDiscreteScheduler.from_config(SDXL_SCHEDULER_CONFIG),
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False,
        add_watermarker=False,
    )
    _save(pipeline, folder, {"tokenizer_2": "!"})


def _build_tiny_upscaler(folder: Path, scratch: Path) -> None:
    pipeline = StableDiffusionUpscalePipeline(
        vae=_vae(TINY_UPSCALER_VAE_CONFIG),
        text_encoder=_text_encoder(_tiny_text_config("gelu"), projection=False),
        tokenizer=load_clip_tokenizer("!", scratch),
        unet=_unet(TINY_UPSCALER_UNET_CONFIG),
        low_res_scheduler=DDPMScheduler.from_config(UPSCALER_LOW_RES_SCHEDULER_CONFIG),
        scheduler=DDIMScheduler.from_config(UPSCALER_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        watermarker=None,
        max_noise_level=350,
    )
    _save(pipeline, folder, {"tokenizer": "!"})


# ------------------------------------------------------------------------------------------------
# Full-size random SDXL base (benchmarks)


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def make_full_random(target: Path, dtype: str = "bf16") -> Path:
    """The full SDXL base architecture (UNet 2.567 B parameters) with random weights at `target`.

    Parameters are created directly in `dtype` (bf16 by default) so building needs about half
    the memory of an fp32 build; ~7 GB on disk in bf16.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    torch_dtype = DTYPES[dtype]
    with _building(target) as out, tempfile.TemporaryDirectory() as tmp, _default_dtype(torch_dtype):
        pipeline = StableDiffusionXLPipeline(
            vae=_vae(SDXL_VAE_CONFIG),
            text_encoder=_text_encoder(SDXL_TEXT_ENCODER_CONFIG, projection=False),
            text_encoder_2=_text_encoder(SDXL_TEXT_ENCODER_2_CONFIG, projection=True),
            tokenizer=load_clip_tokenizer(EOS, Path(tmp)),
            tokenizer_2=load_clip_tokenizer("!", Path(tmp)),
            unet=_unet(SDXL_BASE_UNET_CONFIG),
            scheduler=EulerDiscreteScheduler.from_config(SDXL_SCHEDULER_CONFIG),
            force_zeros_for_empty_prompt=True,
            add_watermarker=False,
        )
        _save(pipeline.to(torch_dtype), out, {"tokenizer": EOS, "tokenizer_2": "!"})
    return target.absolute()
