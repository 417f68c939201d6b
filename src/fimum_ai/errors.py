"""One exception hierarchy for every user-facing failure.

Each error carries a stable `code`, an HTTP `status` and optional `details`; the API turns it into
`{"error": {"code", "message", "details"}}` and the CLI into one line on stderr.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

from pydantic import BaseModel, Field


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


# --- OpenAPI: the error body and the error responses routes document -------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(
        description="Stable, machine-readable error code; each response lists the codes it can carry.",
        examples=["not_found"],
    )
    message: str = Field(description="What went wrong, for people.", examples=["no such image"])
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="Facts about the failure: the field, the limit, when a quota resets...",
        examples=[{"field": "prompt"}],
    )


class ErrorResponse(BaseModel):
    """The body of every error answer: `{"error": {"code", "message", "details"}}`."""

    error: ErrorDetail


@dataclass(frozen=True, slots=True)
class ErrorDoc:
    """One documented failure of a route: its status, its code and an example message."""

    status: int
    code: str
    message: str
    details: dict[str, Any] | None = None

    @classmethod
    def of(cls, error: type[FimumError], message: str, details: dict[str, Any] | None = None) -> ErrorDoc:
        """Documented from the exception class itself, so the status and code are the real ones."""
        return cls(error.status, error.code, message, details)

    @classmethod
    def example(cls, error: FimumError) -> ErrorDoc:
        """Documented from a real instance: its message and details too."""
        return cls(error.status, error.code, error.message, error.details)


_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}},
    },
    429: {
        "Retry-After": {"description": "Seconds until the limit resets.", "schema": {"type": "string"}},
    },
}


def error_responses(*docs: ErrorDoc) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` for these failures: per status the shared error model, a description
    naming every code, an example body for each code and the headers that come with it."""
    by_status: dict[int, dict[str, ErrorDoc]] = {}
    for doc in docs:
        by_status.setdefault(doc.status, {}).setdefault(doc.code, doc)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, by_code in sorted(by_status.items()):
        codes = ", ".join(f"`{code}`" for code in by_code)
        examples = {
            code: {
                "summary": code,
                "value": {"error": {"code": code, "message": doc.message, "details": doc.details or {}}},
            }
            for code, doc in by_code.items()
        }
        entry: dict[str, Any] = {
            "model": ErrorResponse,
            "description": f"{HTTPStatus(status).phrase}: {codes}",
            "content": {"application/json": {"examples": examples}},
        }
        if status in _ERROR_HEADERS:
            entry["headers"] = _ERROR_HEADERS[status]
        responses[status] = entry
    return responses


# Failures many routes share.
MALFORMED_BODY = ErrorDoc(400, InvalidInput.code, "There was an error parsing the body")
VALIDATION_FAILED = ErrorDoc(
    422,
    "validation_error",
    "prompt: String should have at least 1 character",
    {"errors": [{"field": "prompt", "message": "String should have at least 1 character"}]},
)
NOT_SIGNED_IN = (
    ErrorDoc.of(
        NotAuthenticated, "sign in first: send an access token or API key as 'Authorization: Bearer ...'"
    ),
    ErrorDoc.of(InvalidToken, "the token has expired", {"reason": "expired"}),
)
# fimum_ai.limits.RateLimited (that module imports this one): every /api/ and /v1/ route, per user or IP.
RATE_LIMITED = ErrorDoc(
    429,
    "rate_limited",
    "Too many requests: the limit is 100 per minute. Try again later.",
    {"limit": 100, "window": "minute", "remaining": 0, "resets_at": "2025-01-01T12:01:00Z"},
)
