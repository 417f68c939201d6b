from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fimum_ai.settings import ConfigError, explain, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_config_file_carries_the_spec_section_5_1_defaults() -> None:
    data = yaml.safe_load((REPO / "config" / "models.yaml").read_text())["image_generation"]
    assert data["model"]["safety_checker"] is True
    assert data["generation"] == data["generation"] | {
        "default_scheduler": "DPMSolverMultistep",
        "default_steps": 50,
        "default_guidance_scale": 7.5,
        "max_resolution": 4096,
        "batch_size": 4,
        "precision": "fp16",
        "enable_torch_compile": True,
    }
    assert data["hardware"]["device"] == "cuda"
    assert data["hardware"]["offload_to_cpu"] is True
    assert data["hardware"]["sequential_cpu_offload"] is False
    assert data["caching"] == {"enabled": True, "redis_ttl": 86400, "filesystem_ttl": 604800}
    assert data["safety"] == {"nsfw_filter": True, "block_threshold": 0.23}
    assert data["rate_limits"] == {"free": 5, "pro": 100, "enterprise": -1}
    assert set(data["style_presets"]) == {
        "photorealistic",
        "anime",
        "artistic",
        "technical-diagram",
        "logo",
        "sketch",
        "cinematic",
    }


def test_file_values_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMAGE_DEVICE")
    settings = load_settings()
    gen = settings.image_generation
    assert gen.hardware.device == "cuda"
    assert gen.generation.default_steps == 50
    assert gen.style_presets["logo"].steps == 30


def test_spec_image_env_vars_override_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGE_PRECISION", "bf16")
    monkeypatch.setenv("IMAGE_MAX_BATCH_SIZE", "2")
    monkeypatch.setenv("IMAGE_CPU_OFFLOAD", "false")
    monkeypatch.setenv("IMAGE_DEVICE", "cuda:1")
    gen = load_settings().image_generation
    assert gen.generation.precision == "bf16"
    assert gen.generation.batch_size == 2
    assert gen.hardware.offload_to_cpu is False
    assert gen.hardware.device == "cuda:1"


def test_fimum_env_vars_reach_nested_keys_and_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIMUM_IMAGE_GENERATION__HARDWARE__UPSCALE_TILE", "128")
    monkeypatch.setenv("FIMUM_PORT", "9001")
    settings = load_settings()
    assert settings.image_generation.hardware.upscale_tile == 128
    assert settings.port == 9001
    # the rest of the file's hardware section is still there
    assert settings.image_generation.hardware.enable_vae_tiling is True


@pytest.mark.parametrize(
    ("var", "value", "key", "allowed"),
    [
        ("IMAGE_DEVICE", "tpu", "image_generation.hardware.device", "cpu, cuda, cuda:N, mps"),
        ("IMAGE_PRECISION", "fp8", "image_generation.generation.precision", "'fp16', 'bf16' or 'fp32'"),
        ("FIMUM_IMAGE_GENERATION__CACHING__REDIS_TTL", "-1", "image_generation.caching.redis_ttl", ">= 0"),
        ("IMAGE_MAX_BATCH_SIZE", "9", "image_generation.generation.batch_size", "8"),
        ("FIMUM_MODE", "cluster", "mode", "'embedded' or 'distributed'"),
    ],
)
def test_bad_values_fail_with_one_line_naming_key(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, key: str, allowed: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    assert key in message
    assert var in message
    assert allowed.replace(">= ", "") in message.replace("greater than or equal to ", "")


def test_bad_value_in_the_file_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "models.yaml"
    config.write_text("image_generation:\n  safety:\n    block_threshold: 3\n")
    monkeypatch.setenv("FIMUM_CONFIG", str(config))
    with pytest.raises(ConfigError, match=r"image_generation.safety.block_threshold \(from .*models.yaml\)"):
        load_settings()


def test_unknown_key_in_the_file_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "models.yaml"
    config.write_text("image_generation:\n  hardware:\n    devcie: cpu\n")
    monkeypatch.setenv("FIMUM_CONFIG", str(config))
    with pytest.raises(ConfigError, match=r"image_generation\.hardware\.devcie"):
        load_settings()


def test_strict_mode_requires_installed_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIMUM_STRICT_MODELS", "true")
    with pytest.raises(ConfigError, match=r"image_generation.model.base_path: no diffusers model"):
        load_settings()


def test_explain_reports_every_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIMUM_PORT", "9001")
    rows = {key: (value, source) for key, value, source in explain(load_settings())}
    assert rows["port"] == (9001, "env FIMUM_PORT")
    assert rows["image_generation.hardware.device"] == ("cpu", "env IMAGE_DEVICE")
    assert rows["image_generation.generation.default_steps"][1].endswith("models.yaml")
    assert rows["host"] == ("127.0.0.1", "default")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"smtp_user": "mailer"}, "FIMUM_SMTP_PASSWORD is needed too"),
        ({"smtp_from": "Fimum"}, "smtp_from"),
        ({"signup": "sometimes"}, "signup"),
        ({"database_schema": "Robert'); DROP TABLE"}, "database_schema"),
        ({"auth": {"otp_requests_per_identifier": "three a day"}}, "a rate like"),
    ],
)
def test_bad_accounts_settings_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(**overrides)


def test_signup_policy_depends_on_the_mode() -> None:
    assert load_settings().signup_policy == "open"
    distributed = load_settings(mode="distributed", redis_url="redis://x", jwt_secret="s" * 32)
    assert distributed.signup_policy == "invite"
    assert load_settings(signup="closed").signup_policy == "closed"
    assert load_settings(database_url="postgresql://u@h/db").sqlalchemy_url == "postgresql+psycopg://u@h/db"
