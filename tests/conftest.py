"""Shared fixtures: a clean configuration per test, and the tiny SDXL-architecture models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No FIMUM_*/IMAGE_* leaks in from the developer's shell; data goes to a temp dir."""
    for name in list(os.environ):
        if name.startswith(("FIMUM_", "IMAGE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FIMUM_CONFIG", str(REPO / "config" / "models.yaml"))
    monkeypatch.setenv("FIMUM_DATA_DIR", str(tmp_path / "data"))
    # Nothing installed unless a test says so.
    monkeypatch.setenv("IMAGE_MODEL_BASE_PATH", str(tmp_path / "no-sdxl-base"))
    monkeypatch.setenv("IMAGE_MODEL_REFINER_PATH", str(tmp_path / "no-sdxl-refiner"))
    monkeypatch.setenv("IMAGE_MODEL_UPSCALER_PATH", str(tmp_path / "no-sdxl-upscaler"))
    monkeypatch.setenv("FIMUM_DEMO_MODEL_PATH", str(tmp_path / "no-demo"))
    monkeypatch.setenv("IMAGE_DEVICE", "cpu")
    # huggingface_hub caches what it fetches (even from loopback test hubs) under HF_HOME.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny demo models, built once per test session through the real `make_tiny`."""
    from fimum_ai.images.model_factory import make_tiny

    target = tmp_path_factory.mktemp("models") / "tiny-sdxl"
    make_tiny(target)
    return target


@pytest.fixture
def with_tiny_models(tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Configure the demo model path so the platform finds the tiny models."""
    monkeypatch.setenv("FIMUM_DEMO_MODEL_PATH", str(tiny_models_dir))
    return tiny_models_dir
