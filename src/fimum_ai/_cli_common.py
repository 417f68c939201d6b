"""What every `fimum` sub-command shares: consoles, one-line failures, settings or exit 2."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from fimum_ai.settings import ConfigError, Settings, load_settings

err = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc), code=2)


def configure_logs(settings: Settings) -> None:
    from fimum_ai.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
