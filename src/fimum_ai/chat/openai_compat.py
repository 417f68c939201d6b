"""OpenAI-compatible `POST /v1/chat/completions` and `GET /v1/models`, so existing OpenAI clients
(the `openai` SDK, Open WebUI, LibreChat, editors) use Fimum's catalogue and router: point them at
`http://HOST/v1` with a personal API key (`fim_...`). `fimum/auto` routes (general role; images go
to vision models), `fimum/coding`, `fimum/vision` and `fimum/research` route by that role, and any
catalogue id asks for that model first (falling back within its role when it fails). The reply's
`model` is the model that actually answered."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from fimum_ai.accounts.auth import CurrentUser
from fimum_ai.chat.catalogue import AUTO, UnknownModel
from fimum_ai.chat.events import SSE_EVENT_SCHEMA, Delta, Done, Event, ModelSwitch, ToolCall, Usage
from fimum_ai.chat.router import ChatRequest, ModelsUnavailable
from fimum_ai.chat.routes import NOT_CONFIGURED, chat_service
from fimum_ai.errors import (
    MALFORMED_BODY,
    NOT_SIGNED_IN,
    RATE_LIMITED,
    VALIDATION_FAILED,
    ErrorDoc,
    FimumError,
    InvalidInput,
    error_responses,
)
from fimum_ai.images.uploads import decode_base64_image, sniff
from fimum_ai.settings import TextRole

router = APIRouter(
    prefix="/v1", tags=["openai-compatible"], responses=error_responses(*NOT_SIGNED_IN, RATE_LIMITED)
)
ROLE_ALIASES: dict[str, TextRole] = {
    AUTO: "general",
    "fimum/general": "general",
    "fimum/coding": "coding",
    "fimum/vision": "vision",
    "fimum/research": "research",
}
_PASSED_THROUGH = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
)


class ChatCompletionRequest(BaseModel):
    """OpenAI's body. Fields Fimum does not use (`user`, `logprobs`, ...) are accepted and ignored."""

    model_config = ConfigDict(
        extra="allow",
        strict=True,  # as the schema says: `"top_p": false` is refused, not read as 0
        json_schema_extra={
            "examples": [
                {"model": AUTO, "messages": [{"role": "user", "content": "Hello!"}]},
                {
                    "model": "fimum/coding",
                    "messages": [{"role": "user", "content": "FizzBuzz in Go"}],
                    "stream": True,
                },
            ]
        },
    )

    model: str = Field(
        AUTO, min_length=1, max_length=200, description=f"{AUTO!r}, fimum/<role> or a catalogue id."
    )
    messages: list[dict[str, Any]] = Field(
        min_length=1, max_length=1000, description="OpenAI chat messages (text and image_url parts)."
    )
    stream: bool = Field(False, description="Server-Sent Events of chat.completion.chunk objects.")
    stream_options: dict[str, Any] | None = Field(None, description='{"include_usage": true} adds usage.')
    tools: list[dict[str, Any]] | None = Field(None, max_length=128, description="OpenAI tools format.")
    n: int = Field(1, ge=1, le=1, description="Only 1.")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="Sampling temperature, 0-2.")
    top_p: float | None = Field(None, ge=0.0, le=1.0, description="Nucleus sampling, 0-1.")
    max_tokens: int | None = Field(None, ge=1, description="Longest answer, in tokens.")
    max_completion_tokens: int | None = Field(None, ge=1, description="Same as max_tokens (newer name).")


_ROLES = {"system", "developer", "user", "assistant", "tool"}


def _check_messages(messages: list[dict[str, Any]]) -> None:
    """Validate at the edge: roles, content shapes, and inline images (type by magic bytes, size)."""
    for index, message in enumerate(messages):
        field = f"messages.{index}"
        if message.get("role") not in _ROLES:
            raise InvalidInput(
                f"{field}.role: must be one of {sorted(_ROLES)}", details={"field": f"{field}.role"}
            )
        content = message.get("content")
        if content is None or isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise InvalidInput(
                f"{field}.content: a string or a list of parts", details={"field": f"{field}.content"}
            )
        for number, part in enumerate(content):
            where = f"{field}.content.{number}"
            if not isinstance(part, dict) or part.get("type") not in ("text", "image_url"):
                raise InvalidInput(f"{where}: parts are text or image_url", details={"field": where})
            if part["type"] == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, dict) else None
                if not isinstance(url, str) or not url.startswith(("data:", "https://", "http://")):
                    raise InvalidInput(
                        f"{where}.image_url.url: a data: URL or http(s) URL", details={"field": where}
                    )
                if url.startswith("data:"):
                    sniff(decode_base64_image(url, where), where)


def _target(chat_model: str, catalogue_has: Any) -> tuple[TextRole, str | None]:
    if chat_model in ROLE_ALIASES:
        return ROLE_ALIASES[chat_model], None
    model = catalogue_has(chat_model)
    return (model.roles[0], model.id)


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


@router.post(
    "/chat/completions",
    summary="OpenAI-compatible chat completions (streaming and not)",
    response_model=None,
    responses={
        200: {
            "description": "A chat.completion object, or with `stream: true` Server-Sent Events of "
            "chat.completion.chunk objects ending in `data: [DONE]`.",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/event-stream": {"schema": SSE_EVENT_SCHEMA},
            },
        },
        **error_responses(
            MALFORMED_BODY,
            VALIDATION_FAILED,
            ErrorDoc.of(InvalidInput, "messages.0.role: must be one of ..."),
            ErrorDoc.of(UnknownModel, "model: 'x' is not in the catalogue"),
            NOT_CONFIGURED,
            ErrorDoc.of(ModelsUnavailable, "no model could answer right now; try again shortly"),
        ),
    },
)
async def chat_completions(request: Request, principal: CurrentUser, body: ChatCompletionRequest) -> Response:
    chat = chat_service(request)
    chat.require_configured()
    _check_messages(body.messages)
    role, model = _target(body.model, chat.catalogue.require)
    extra = body.model_extra or {}
    fields = {**extra, **body.model_dump(exclude_none=True)}
    params = {key: fields[key] for key in _PASSED_THROUGH if key in fields}
    chat_request = ChatRequest(list(body.messages), role=role, model=model, tools=body.tools, params=params)
    events = chat.router.stream(chat_request)
    created = int(time.time())
    completion_id = _completion_id()
    if not body.stream:
        return JSONResponse(await _whole(events, completion_id, created))
    # Wait for the answer to start (fallbacks happen before), so "no model could answer" is still a
    # proper HTTP error rather than an error inside a 200 stream.
    primed: list[Event] = []
    try:
        while not primed or isinstance(primed[-1], ModelSwitch):
            primed.append(await anext(events))
    except StopAsyncIteration:
        raise ModelsUnavailable("the model sent nothing") from None
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    return StreamingResponse(
        _chunks(primed, events, completion_id, created, body.model, include_usage),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _whole(events: AsyncIterator[Event], completion_id: str, created: int) -> dict[str, Any]:
    text: list[str] = []
    calls: list[ToolCall] = []
    usage: Usage | None = None
    done: Done | None = None
    async for event in events:
        if isinstance(event, Delta):
            text.append(event.text)
        elif isinstance(event, ToolCall):
            calls.append(event)
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, Done):
            done = event
    assert done is not None
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": done.model,
        "choices": [{"index": 0, "message": message, "finish_reason": done.finish_reason, "logprobs": None}],
        "usage": _usage(usage),
    }


def _usage(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


async def _chunks(
    primed: list[Event],
    events: AsyncIterator[Event],
    completion_id: str,
    created: int,
    asked_model: str,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    model = asked_model

    def frame(delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"

    async def all_events() -> AsyncIterator[Event]:
        for event in primed:
            yield event
        async for event in events:
            yield event

    yield frame({"role": "assistant", "content": ""})
    usage: Usage | None = None
    calls = 0
    try:
        async for event in all_events():
            if isinstance(event, Delta):
                yield frame({"content": event.text})
            elif isinstance(event, ToolCall):
                call = {
                    "index": calls,
                    "id": event.id,
                    "type": "function",
                    "function": {"name": event.name, "arguments": event.arguments},
                }
                calls += 1
                yield frame({"tool_calls": [call]})
            elif isinstance(event, Usage):
                usage = event
            elif isinstance(event, Done):
                model = event.model
                yield frame({}, event.finish_reason)
    except FimumError as exc:
        error = {"error": {"code": exc.code, "message": exc.message, "type": "server_error"}}
        yield b"data: " + json.dumps(error).encode() + b"\n\n"
    if include_usage:
        tail = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        yield b"data: " + json.dumps({**tail, "choices": [], "usage": _usage(usage)}).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


class ModelEntry(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelEntry]


@router.get(
    "/models",
    summary="OpenAI-compatible model list (routing aliases and the catalogue)",
    response_model=ModelList,
)
async def openai_models(request: Request, principal: CurrentUser) -> dict[str, Any]:
    chat = chat_service(request)
    data = [{"id": alias, "object": "model", "created": 0, "owned_by": "fimum"} for alias in ROLE_ALIASES]
    data += [
        {"id": m.id, "object": "model", "created": 0, "owned_by": m.id.split("/", 1)[0]}
        for m in chat.catalogue.models
    ]
    return {"object": "list", "data": data}
