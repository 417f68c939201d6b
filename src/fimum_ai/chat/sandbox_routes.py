"""/api/v1/sandbox/*: the languages the code sandbox runs, and running a program (the chat UI's
Run button, the agent's `run_code` tool goes through the same service)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from fimum_ai.accounts.auth import CurrentUser
from fimum_ai.chat.sandbox import SandboxService, SandboxUnavailable, UnsupportedLanguage
from fimum_ai.chat.sandbox.service import SandboxBusy
from fimum_ai.errors import (
    MALFORMED_BODY,
    NOT_SIGNED_IN,
    RATE_LIMITED,
    VALIDATION_FAILED,
    ErrorDoc,
    InvalidInput,
    error_responses,
)

router = APIRouter(
    prefix="/api/v1/sandbox", tags=["sandbox"], responses=error_responses(*NOT_SIGNED_IN, RATE_LIMITED)
)


def get_sandbox(request: Request) -> SandboxService:
    """The app's sandbox service (made on first use if the app did not make one)."""
    service: SandboxService | None = getattr(request.app.state, "sandbox", None)
    if service is None:
        service = SandboxService.from_settings(request.app.state.settings)
        request.app.state.sandbox = service
    return service


SandboxDep = Annotated[SandboxService, Depends(get_sandbox)]


class LanguageInfo(BaseModel):
    id: str = Field(examples=["python"])
    name: str = Field(examples=["Python"])
    version: str = Field(examples=["Python 3.11.2"])
    aliases: list[str] = Field(examples=[["py", "python3"]])
    source_file: str = Field(examples=["main.py"])
    compiled: bool


class LanguagesResponse(BaseModel):
    backend: Literal["bubblewrap", "docker"]
    available: bool = Field(description="False when the backend cannot run here; `reason` says why.")
    reason: str | None
    languages: list[LanguageInfo]
    limits: dict[str, Any] = Field(description="The limits every run gets.")


class RunRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"language": "python", "code": "print(sum(range(10)))"}]},
    )

    language: str = Field(min_length=1, max_length=32, description="An id or alias from /languages.")
    code: str = Field(min_length=1, description="The program (at most `max_code_bytes`).")
    stdin: str = Field("", description="Given to the program on standard input.")
    timeout_s: float | None = Field(None, gt=0, description="Wall clock; at most `max_timeout_s`.")


class RunResponse(BaseModel):
    language: str
    status: Literal["ok", "error", "compile_error", "timeout", "killed", "output_limit"]
    exit_code: int | None
    signal: str | None
    stdout: str
    stderr: str
    truncated: bool = Field(description="The output was cut at `max_output_bytes`.")
    duration_s: float
    backend: str
    build_output: str = Field(description="The compiler's messages (compiled languages).")


_RUN_OK: dict[int | str, dict[str, Any]] = {
    200: {"model": RunResponse, "description": "How the program ended and what it printed"}
}


@router.get(
    "/languages",
    summary="Languages the code sandbox runs",
    response_model=None,
    responses={200: {"model": LanguagesResponse, "description": "Backend, languages and limits"}},
)
async def languages(_: CurrentUser, sandbox: SandboxDep) -> dict[str, Any]:
    return await sandbox.languages()


@router.post(
    "/run",
    summary="Run a program in the sandbox",
    description=(
        "No network, a read-only system, a private temporary work dir, limits on CPU time, memory, "
        "processes and output; killed at the wall-clock timeout. A program that fails still answers "
        "200: `status` says how it ended."
    ),
    response_model=None,
    responses=_RUN_OK
    | error_responses(
        MALFORMED_BODY,
        VALIDATION_FAILED,
        ErrorDoc.of(UnsupportedLanguage, "language 'cobol' is not available in this sandbox"),
        ErrorDoc.of(InvalidInput, "code: larger than 262144 bytes", {"field": "code"}),
        ErrorDoc.of(SandboxUnavailable, "docker engine unavailable: Cannot connect to the Docker daemon"),
        ErrorDoc.example(SandboxBusy(2)),
    ),
)
async def run(body: RunRequest, principal: CurrentUser, sandbox: SandboxDep) -> dict[str, Any]:
    result = await sandbox.run(
        body.language, body.code, stdin=body.stdin, timeout_s=body.timeout_s, user_id=principal.user_id
    )
    return result.to_dict()
