"""Progress events and cancellation shared by the engine, the CLI and (later) the job queue."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    stage: str  # "base", "refiner", "upscale", "upscale tile 3/9", ...
    step: int  # 1-based step just finished, across all stages of the run
    total: int  # total steps of the run
    elapsed_s: float
    eta_s: float
    preview_jpeg: bytes | None = None  # small JPEG decoded cheaply from the latents, every N steps


ProgressCallback = Callable[[ProgressEvent], None]


class CancelToken:
    """Set from any thread; the engine checks it after every denoising step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()
