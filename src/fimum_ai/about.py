"""GET /api/v1/about: version, the active image models and the licences that govern them (FR-LEGAL-001)."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from fimum_ai import __version__
from fimum_ai.errors import RATE_LIMITED, error_responses
from fimum_ai.images.provider import EngineProvider

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["about"], responses=error_responses(RATE_LIMITED))

SDXL_LICENCE = "creativeml-openrail-pp-m"
FIMUM_LICENCE = "apache-2.0"
NUDENET_LICENCE = "agpl-3.0"


@functools.cache
def _licence_file(name: str) -> str | None:
    """A file from LICENSES/ (or the top-level LICENSE): the source checkout's, else the installed wheel's."""
    checkout = Path(__file__).resolve().parents[2] / name
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8")
    try:
        return importlib.metadata.distribution("fimum-ai").read_text(f"licenses/{name}")
    except importlib.metadata.PackageNotFoundError:
        return None


class ModelInfo(BaseModel):
    role: Literal["base", "refiner", "upscaler"]
    name: str = Field(examples=["stable-diffusion-xl-base-1.0"])
    demo: bool = Field(description="The random-weight demo model: its images are noise.")
    licence: str = Field(description="An id from `licences`.", examples=[SDXL_LICENCE])


class LicenceInfo(BaseModel):
    id: str = Field(examples=[SDXL_LICENCE])
    name: str = Field(examples=["CreativeML Open RAIL++-M"])
    applies_to: str
    text: str | None = Field(description="The full licence text; null when the file is not installed.")


class About(BaseModel):
    name: Literal["Fimum AI"]
    version: str
    mode: Literal["embedded", "distributed"]
    models: list[ModelInfo] = Field(description="The installed image models (empty: none installed).")
    licences: list[LicenceInfo]
    notes: str | None = Field(description="LICENSES/README.md: which licence covers what.")
    docs: dict[str, str] = Field(description="Where the API is documented.")


def _models(provider: EngineProvider) -> list[dict[str, Any]]:
    models = provider.models()
    if models is None:
        return []
    licence = FIMUM_LICENCE if models.demo else SDXL_LICENCE
    found: list[tuple[Literal["base", "refiner", "upscaler"], Path | None]] = [
        ("base", models.base),
        ("refiner", models.refiner),
        ("upscaler", models.upscaler),
    ]
    return [
        # The demo's folders are just base/refiner/upscaler: name the model they belong to.
        {
            "role": role,
            "name": f"{path.parent.name}/{path.name}" if models.demo else path.name,
            "demo": models.demo,
            "licence": licence,
        }
        for role, path in found
        if path is not None
    ]


def _licences(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # The SDXL licence is always shown: it governs the models `fimum models download` installs.
    licences = [
        {
            "id": SDXL_LICENCE,
            "name": "CreativeML Open RAIL++-M",
            "applies_to": "Stable Diffusion XL 1.0 base and refiner, and the Stable Diffusion x4 upscaler "
            "(Stability AI), and the use of their outputs",
            "text": _licence_file("LICENSES/CreativeML-OpenRAIL-PlusPlus-M-SDXL-1.0.txt"),
        },
        {
            "id": FIMUM_LICENCE,
            "name": "Apache License 2.0",
            "applies_to": "Fimum AI's own code"
            + (" and the locally generated demo model" if any(m["demo"] for m in models) else ""),
            "text": _licence_file("LICENSE"),
        },
    ]
    if importlib.util.find_spec("nudenet") is not None:
        licences.append(
            {
                "id": NUDENET_LICENCE,
                "name": "GNU Affero General Public License 3.0",
                "applies_to": "NudeNet, the image safety check (the `safety` extra); see the notes",
                "text": None,
            }
        )
    return licences


@router.get(
    "/about",
    summary="Version, active image models and their licences (no sign-in needed)",
    response_model=None,
    responses={200: {"model": About, "description": "Success"}},
)
async def about(request: Request) -> dict[str, Any]:
    provider: EngineProvider = request.app.state.engine_provider
    models = _models(provider)
    return {
        "name": "Fimum AI",
        "version": __version__,
        "mode": request.app.state.settings.mode,
        "models": models,
        "licences": _licences(models),
        "notes": _licence_file("LICENSES/README.md"),
        "docs": {"swagger": "/docs", "redoc": "/redoc", "openapi": "/openapi.json"},
    }
