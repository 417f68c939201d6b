"""What the API and the agent use: the configured backend behind input checks and a bound on how
many runs go at once."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fimum_ai.chat.sandbox.base import (
    RunResult,
    Sandbox,
    SandboxLimits,
    SandboxUnavailable,
    UnsupportedLanguage,
)
from fimum_ai.chat.sandbox.bubblewrap import BubblewrapSandbox
from fimum_ai.chat.sandbox.docker import DockerSandbox
from fimum_ai.chat.sandbox.languages import Language, resolve_language_id
from fimum_ai.chat.sandbox.seccomp import seccomp_program
from fimum_ai.errors import FimumError, InvalidInput
from fimum_ai.settings import SandboxConfig, Settings

log = logging.getLogger(__name__)


class SandboxBusy(FimumError):
    code = "sandbox_busy"
    status = 429

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"you already have {limit} programs running; wait for one to finish",
            details={"limit": limit},
            headers={"Retry-After": "1"},
        )


def limits_from(config: SandboxConfig) -> SandboxLimits:
    return SandboxLimits(
        timeout_s=config.timeout_s,
        cpu_s=config.cpu_s,
        memory_bytes=config.memory_bytes,
        address_space_bytes=config.address_space_bytes,
        big_address_space_bytes=config.big_address_space_bytes,
        max_processes=config.max_processes,
        max_output_bytes=config.max_output_bytes,
        max_file_bytes=config.max_file_bytes,
        work_dir_bytes=config.work_dir_bytes,
    )


def build_sandbox(config: SandboxConfig) -> Sandbox:
    """The backend the configuration names."""
    limits = limits_from(config)
    if config.backend == "docker":
        languages = config.docker_languages
        if config.languages is not None:
            languages = [name for name in languages if name in config.languages]
        return DockerSandbox(
            limits,
            image=config.docker_image,
            languages=languages,
            docker=config.docker_path,
            cpus=config.docker_cpus,
        )
    return BubblewrapSandbox(
        limits,
        bwrap=config.bwrap_path,
        host_uid=config.host_uid,
        allow=config.languages,
        seccomp=config.seccomp,
    )


class SandboxService:
    def __init__(self, config: SandboxConfig, sandbox: Sandbox | None = None) -> None:
        self.config = config
        self.backend = sandbox or build_sandbox(config)
        self._slots = asyncio.Semaphore(config.max_concurrent)
        # Runs going or waiting per user: one user cannot fill every slot while others wait.
        self._per_user: dict[str, int] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxService:
        return cls(settings.sandbox)

    async def languages(self) -> dict[str, Any]:
        """What GET /api/v1/sandbox/languages shows (detection runs each runtime once, off the loop)."""
        ok, why = await asyncio.to_thread(self.backend.available)
        found: list[Language] = await asyncio.to_thread(self.backend.languages) if ok else []
        return {
            "backend": self.backend.name,
            "available": ok,
            "reason": why or None,
            "languages": [language.describe() for language in found],
            "limits": {
                "timeout_s": self.config.timeout_s,
                "max_timeout_s": self.config.max_timeout_s,
                "cpu_s": self.config.cpu_s,
                "memory_bytes": self.config.memory_bytes,
                "max_processes": self.config.max_processes,
                "max_output_bytes": self.config.max_output_bytes,
                "max_code_bytes": self.config.max_code_bytes,
                "max_concurrent_per_user": self.config.max_concurrent_per_user,
                "network": False,
                "seccomp": self.backend.name == "docker"
                or (self.config.seccomp and seccomp_program() is not None),
            },
        }

    async def run(
        self,
        language: str,
        code: str,
        *,
        stdin: str = "",
        timeout_s: float | None = None,
        user_id: str | None = None,
    ) -> RunResult:
        """Check the input, wait for a free slot, run. Raises InvalidInput / UnsupportedLanguage
        (400), SandboxBusy (429: this user already has `max_concurrent_per_user` runs going) or
        SandboxUnavailable (503)."""
        language_id = resolve_language_id(language)
        if language_id is None:
            raise UnsupportedLanguage(
                f"unknown language {language!r}", details={"field": "language", "language": language}
            )
        if not code.strip():
            raise InvalidInput("code: there is no code to run", details={"field": "code"})
        if len(code.encode()) > self.config.max_code_bytes:
            raise InvalidInput(
                f"code: larger than {self.config.max_code_bytes} bytes",
                details={"field": "code", "limit": self.config.max_code_bytes},
            )
        if len(stdin.encode()) > self.config.max_stdin_bytes:
            raise InvalidInput(
                f"stdin: larger than {self.config.max_stdin_bytes} bytes",
                details={"field": "stdin", "limit": self.config.max_stdin_bytes},
            )
        if timeout_s is not None and not 0 < timeout_s <= self.config.max_timeout_s:
            raise InvalidInput(
                f"timeout_s: must be more than 0 and at most {self.config.max_timeout_s}",
                details={"field": "timeout_s", "limit": self.config.max_timeout_s},
            )
        ok, why = await asyncio.to_thread(self.backend.available)
        if not ok:
            raise SandboxUnavailable(why, details={"backend": self.backend.name})
        if user_id is not None:
            if self._per_user.get(user_id, 0) >= self.config.max_concurrent_per_user:
                raise SandboxBusy(self.config.max_concurrent_per_user)
            self._per_user[user_id] = self._per_user.get(user_id, 0) + 1
        waited = time.monotonic()
        try:
            async with self._slots:
                result = await self.backend.run(language_id, code, stdin=stdin, timeout_s=timeout_s)
        finally:
            if user_id is not None:
                left = self._per_user.pop(user_id) - 1
                if left:
                    self._per_user[user_id] = left
        log.info(
            "sandbox run",
            extra={
                "language": result.language,
                "status": result.status,
                "duration_s": round(result.duration_s, 3),
                "queued_s": round(time.monotonic() - waited - result.duration_s, 3),
                "backend": result.backend,
            },
        )
        return result


__all__ = [
    "SandboxBusy",
    "SandboxService",
    "SandboxUnavailable",
    "UnsupportedLanguage",
    "build_sandbox",
    "limits_from",
]
