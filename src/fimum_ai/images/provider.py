"""The process's image engine, built on first use so that torch is imported only when needed.

An API-only process that never serves an image request never imports torch (DESIGN.md).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from fimum_ai.errors import ModelNotInstalled
from fimum_ai.images.model_store import ModelSet, find_models
from fimum_ai.settings import ImageGenerationConfig, Settings

if TYPE_CHECKING:
    from fimum_ai.images.engine import ImageEngine

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "no image model is installed: run `fimum models download all` to install Stable Diffusion XL "
    "(or copy its diffusers folders to the configured paths), or `fimum models make-tiny "
    "models/tiny-sdxl` for the noise-only demo model"
)

DEMO_WARNING = (
    "DEMO MODEL ACTIVE: images are random noise from a tiny random-weight SDXL-architecture model. "
    "Install Stable Diffusion XL with `fimum models download all` (or copy its folders to "
    "./models/stable-diffusion-xl-*) and restart."
)


class EngineProvider:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._engine: ImageEngine | None = None
        self._lock = threading.Lock()

    @property
    def config(self) -> ImageGenerationConfig:
        return self._settings.image_generation

    def models(self) -> ModelSet | None:
        return find_models(self._settings)

    def get(self) -> ImageEngine:
        with self._lock:
            if self._engine is None:
                models = self.models()
                if models is None:
                    raise ModelNotInstalled(INSTALL_HINT)
                from fimum_ai.images.engine import ImageEngine  # torch is imported here, once

                if models.demo:
                    log.warning(DEMO_WARNING)
                self._engine = ImageEngine(models, self._settings.image_generation)
            return self._engine

    def status(self) -> dict[str, Any]:
        models = self.models()
        return {
            "installed": models is not None,
            "demo": bool(models and models.demo),
            "base": str(models.base) if models else None,
            "refiner": str(models.refiner) if models and models.refiner else None,
            "upscaler": str(models.upscaler) if models and models.upscaler else None,
            "loaded": self._engine is not None,
        }

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.unload()
                self._engine = None
