"""One exception hierarchy for every user-facing failure.

Each error carries a stable `code`, an HTTP `status` and optional `details`; the API turns it into
`{"error": {"code", "message", "details"}}` and the CLI into one line on stderr.
"""

from __future__ import annotations

from typing import Any, ClassVar


class FimumError(Exception):
    code = "internal_error"
    status = 500
    default_headers: ClassVar[dict[str, str]] = {}

    def __init__(
        self, message: str, *, details: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        # Extra response headers (Retry-After, WWW-Authenticate).
        self.headers: dict[str, str] = {**self.default_headers, **(headers or {})}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidInput(FimumError):
    code = "invalid_input"
    status = 400


class ModelNotInstalled(FimumError):
    code = "model_not_installed"
    status = 503


class ModelDownloadFailed(FimumError):
    code = "model_download_failed"
    status = 503


class GpuOutOfMemory(FimumError):
    code = "gpu_out_of_memory"
    status = 503


class GenerationCancelled(FimumError):
    code = "cancelled"
    status = 409


class NotAuthenticated(FimumError):
    code = "not_authenticated"
    status = 401
    default_headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}


class InvalidToken(NotAuthenticated):
    code = "invalid_token"


class Forbidden(FimumError):
    code = "forbidden"
    status = 403


class NotFound(FimumError):
    code = "not_found"
    status = 404


class Conflict(FimumError):
    code = "conflict"
    status = 409
