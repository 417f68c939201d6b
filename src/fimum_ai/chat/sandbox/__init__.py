"""Code sandbox (FR-CODE-004): one interface, a bubblewrap backend for a single machine and a Docker
backend for production, chosen by `sandbox.backend`. See docs/agent.md."""

from fimum_ai.chat.sandbox.base import (
    RunResult,
    RunStatus,
    Sandbox,
    SandboxLimits,
    SandboxUnavailable,
    UnsupportedLanguage,
)
from fimum_ai.chat.sandbox.bubblewrap import BubblewrapSandbox
from fimum_ai.chat.sandbox.docker import DockerSandbox
from fimum_ai.chat.sandbox.languages import LANGUAGES, Language, LanguageSpec, resolve_language_id
from fimum_ai.chat.sandbox.service import SandboxService, build_sandbox, limits_from

__all__ = [
    "LANGUAGES",
    "BubblewrapSandbox",
    "DockerSandbox",
    "Language",
    "LanguageSpec",
    "RunResult",
    "RunStatus",
    "Sandbox",
    "SandboxLimits",
    "SandboxService",
    "SandboxUnavailable",
    "UnsupportedLanguage",
    "build_sandbox",
    "limits_from",
    "resolve_language_id",
]
