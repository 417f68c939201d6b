"""Structured logging: one JSON object per line on stderr (DESIGN.md).

Never pass prompts or one-time codes to a logger; log ids, sizes and timings instead.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

_FIELDS = "%(levelname)s %(name)s %(message)s"
# uvicorn adds an ANSI-coloured copy of every message; it has no place in JSON.
_DROPPED = [*RESERVED_ATTRS, "color_message"]


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                _FIELDS, rename_fields={"levelname": "level"}, timestamp="time", reserved_attrs=_DROPPED
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn installs its own handlers; route its records through ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # Libraries that are chatty at INFO.
    for name in ("httpx", "huggingface_hub", "diffusers", "transformers"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def uvicorn_log_config() -> dict[str, Any]:
    """Tell uvicorn to leave logging as configure_logging() set it."""
    return {"version": 1, "disable_existing_loggers": False}
