"""Chat routes: `GET /api/v1/models`, conversations (list, search, rename, delete one or all,
export), attachments, and `POST /api/v1/chat/{conversation}/messages`, which streams the answer as
Server-Sent Events (see chat/events.py for the frames) and stops with `POST .../stop` or when the
client disconnects. Thin: parse, authorise, call `app.state.chat` (ChatService)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile

from fimum_ai.accounts.auth import CurrentUser
from fimum_ai.chat.attachments import read_and_ingest
from fimum_ai.chat.catalogue import AUTO, UnknownModel
from fimum_ai.chat.conversations import export_json, export_markdown
from fimum_ai.chat.events import SSE_EVENT_SCHEMA, sse_frame
from fimum_ai.chat.router import ModelsUnavailable
from fimum_ai.chat.service import NOT_CONFIGURED_MESSAGE, ChatNotConfigured, ChatService, Turn
from fimum_ai.errors import (
    MALFORMED_BODY,
    NOT_SIGNED_IN,
    RATE_LIMITED,
    VALIDATION_FAILED,
    Conflict,
    ErrorDoc,
    InvalidInput,
    NotFound,
    error_responses,
)
from fimum_ai.images.uploads import UnsupportedMediaType, UploadTooLarge
from fimum_ai.settings import TextRole

_SIGNED_IN = error_responses(*NOT_SIGNED_IN, RATE_LIMITED)
models_router = APIRouter(prefix="/api/v1", tags=["chat"], responses=_SIGNED_IN)
router = APIRouter(prefix="/api/v1/chat", tags=["chat"], responses=_SIGNED_IN)

NO_CONVERSATION = ErrorDoc.of(NotFound, "no such conversation", {"conversation_id": "0b6f..."})
NOT_CONFIGURED = ErrorDoc(503, ChatNotConfigured.code, NOT_CONFIGURED_MESSAGE)


def chat_service(request: Request) -> ChatService:
    service: ChatService = request.app.state.chat
    return service


# --- models ---------------------------------------------------------------------------------------


class ModelHealthOut(BaseModel):
    state: Literal["closed", "open", "half_open"] = Field(description="The model's circuit breaker.")
    available: bool
    consecutive_failures: int
    retry_in_s: float
    requests: int
    failures: int
    last_error: str | None
    last_error_at: float | None
    last_success_at: float | None
    ttft_ms: float | None = Field(description="Time to first token (moving average), milliseconds.")


class ModelOut(BaseModel):
    id: str
    name: str
    roles: list[TextRole]
    priority: int = Field(description="Lower is tried first.")
    weight: float = Field(description="Share among models of equal priority.")
    context_length: int
    vision: bool
    tools: bool
    requests_per_minute: int
    description: str
    health: ModelHealthOut


class ModelsOut(BaseModel):
    configured: bool = Field(description="Whether a model endpoint is set up (else chat answers 503).")
    endpoint: str
    hint: str | None = Field(description="How to set up an endpoint, when none is.")
    auto: str = Field(AUTO, description="The model id that lets Fimum choose.")
    routing: str
    models: list[ModelOut]


@models_router.get("/models", summary="The chat model catalogue with live health", response_model=ModelsOut)
async def list_models(request: Request, principal: CurrentUser) -> dict[str, Any]:
    chat = chat_service(request)
    health = chat.router.health()
    return {
        "configured": chat.configured,
        "endpoint": chat.client.base_url,
        "hint": None if chat.configured else NOT_CONFIGURED_MESSAGE,
        "auto": AUTO,
        "routing": "by role, then priority (lower first), then weight among equal priorities; "
        "fallback to the next on 429, 5xx, timeout or an empty answer",
        "models": [
            {**model.model_dump(mode="json"), "health": health[model.id]} for model in chat.catalogue.models
        ],
    }


# --- conversations -------------------------------------------------------------------------------


class ConversationOut(BaseModel):
    id: str
    title: str
    model: str
    created_at: str
    updated_at: str


class MessageOut(BaseModel):
    id: str
    role: str
    content: str
    model: str | None = Field(description="The model that actually replied (assistant messages).")
    finish_reason: str | None
    usage: dict[str, int] | None
    attachments: list[dict[str, Any]]
    meta: dict[str, Any] = Field(
        description="Tool calls and results, model switches, generated images, notes."
    )
    created_at: str


class ConversationWithMessages(ConversationOut):
    messages: list[MessageOut]


class ConversationList(BaseModel):
    conversations: list[ConversationOut]


class NewConversation(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"title": "Trip plans"}, {}]}
    )
    title: str = Field("", max_length=200, description="Empty: the first message names it.")
    model: str = Field(AUTO, max_length=200, description=f"A catalogue id or {AUTO!r}.")


class Rename(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"title": "Trip to Lisbon"}]}
    )
    title: str = Field(min_length=1, max_length=200, description="The new title (1-200 characters).")


@router.get(
    "/conversations",
    summary="List or search conversations",
    response_model=ConversationList,
    responses=error_responses(VALIDATION_FAILED),
)
async def list_conversations(
    request: Request,
    principal: CurrentUser,
    q: Annotated[str, Query(max_length=200, description="Matches titles and message text.")] = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> dict[str, Any]:
    chat = chat_service(request)
    found = await chat.call(chat.store.search, principal.user_id, q.strip(), limit, offset)
    return {"conversations": found}


@router.post(
    "/conversations",
    summary="Start a conversation",
    status_code=201,
    response_model=ConversationOut,
    responses=error_responses(MALFORMED_BODY, VALIDATION_FAILED, ErrorDoc.of(UnknownModel, "model: unknown")),
)
async def create_conversation(
    request: Request, principal: CurrentUser, body: NewConversation
) -> dict[str, Any]:
    chat = chat_service(request)
    if body.model != AUTO:
        chat.catalogue.require(body.model)
    created: dict[str, Any] = await chat.call(chat.store.create, principal.user_id, body.title, body.model)
    return created


@router.get(
    "/conversations/{conversation_id}",
    summary="A conversation with its messages",
    response_model=ConversationWithMessages,
    responses=error_responses(NO_CONVERSATION, VALIDATION_FAILED),
)
async def get_conversation(request: Request, principal: CurrentUser, conversation_id: str) -> dict[str, Any]:
    chat = chat_service(request)
    found: dict[str, Any] = await chat.call(chat.store.get, principal.user_id, conversation_id)
    return found


@router.patch(
    "/conversations/{conversation_id}",
    summary="Rename a conversation",
    response_model=ConversationOut,
    responses=error_responses(NO_CONVERSATION, MALFORMED_BODY, VALIDATION_FAILED),
)
async def rename_conversation(
    request: Request, principal: CurrentUser, conversation_id: str, body: Rename
) -> dict[str, Any]:
    chat = chat_service(request)
    renamed: dict[str, Any] = await chat.call(
        chat.store.rename, principal.user_id, conversation_id, body.title
    )
    return renamed


@router.delete(
    "/conversations/{conversation_id}",
    summary="Delete a conversation",
    status_code=204,
    responses=error_responses(NO_CONVERSATION, VALIDATION_FAILED),
)
async def delete_conversation(request: Request, principal: CurrentUser, conversation_id: str) -> Response:
    chat = chat_service(request)
    await chat.stop_generation(principal.user_id, conversation_id)
    await chat.call(chat.store.delete, principal.user_id, conversation_id)
    return Response(status_code=204)


class Erased(BaseModel):
    conversations: int
    messages: int
    attachments: int


@router.delete(
    "/conversations",
    summary="Delete every conversation and attachment (GDPR erasure)",
    response_model=Erased,
    responses=error_responses(
        ErrorDoc.of(InvalidInput, "confirm: pass confirm=true to delete everything"), VALIDATION_FAILED
    ),
)
async def delete_all_conversations(
    request: Request,
    principal: CurrentUser,
    confirm: Annotated[bool, Query(description="Must be true: there is no undo.")] = False,
) -> dict[str, Any]:
    if not confirm:
        raise InvalidInput("confirm: pass confirm=true to delete everything", details={"field": "confirm"})
    return await chat_service(request).delete_all(principal.user_id)


def _export(conversations: list[dict[str, Any]], fmt: str, name: str) -> Response:
    if fmt == "json":
        body, media, suffix = export_json(conversations), "application/json", "json"
    else:
        body, media, suffix = export_markdown(conversations), "text/markdown; charset=utf-8", "md"
    return Response(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}.{suffix}"'}
    )


_EXPORT_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The export file (Markdown or JSON)",
        "content": {
            "text/markdown": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


@router.get(
    "/conversations/{conversation_id}/export",
    summary="Export one conversation as Markdown or JSON",
    response_class=Response,
    responses={**_EXPORT_CONTENT, **error_responses(NO_CONVERSATION, VALIDATION_FAILED)},
)
async def export_conversation(
    request: Request,
    principal: CurrentUser,
    conversation_id: str,
    format: Annotated[Literal["markdown", "json"], Query()] = "markdown",
) -> Response:
    chat = chat_service(request)
    conversations = await chat.call(chat.store.export, principal.user_id, conversation_id)
    return _export(conversations, format, f"conversation-{conversation_id[:8]}")


@router.get(
    "/export",
    summary="Export every conversation (GDPR data export) as Markdown or JSON",
    response_class=Response,
    responses={**_EXPORT_CONTENT, **error_responses(VALIDATION_FAILED)},
)
async def export_all(
    request: Request,
    principal: CurrentUser,
    format: Annotated[Literal["markdown", "json"], Query()] = "json",
) -> Response:
    chat = chat_service(request)
    conversations = await chat.call(chat.store.export, principal.user_id, None)
    return _export(conversations, format, "fimum-conversations")


# --- attachments ---------------------------------------------------------------------------------


class AttachmentOut(BaseModel):
    id: str
    kind: Literal["image", "document"]
    filename: str
    media_type: str
    size_bytes: int
    chars: int | None = Field(description="Characters of text extracted from a document.")
    created_at: str


@router.post(
    "/attachments",
    summary="Upload an image or document for a message",
    description="multipart/form-data with one `file`: PNG, JPEG or WebP images, or PDF, DOCX, TXT, MD "
    "documents, up to 10 MB. Send the returned id in a message's `attachments`.",
    status_code=201,
    response_model=AttachmentOut,
    responses=error_responses(
        ErrorDoc.of(UploadTooLarge, "file: the upload is larger than the 10 MiB limit"),
        ErrorDoc.of(UnsupportedMediaType, "file: 'a.exe' is neither an image nor a document"),
        ErrorDoc(400, "unreadable_document", "file: 'a.pdf' is not a readable PDF"),
        ErrorDoc.of(InvalidInput, "file: send one file as multipart/form-data"),
        VALIDATION_FAILED,
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "PNG, JPEG, WebP, PDF, DOCX, TXT or MD; up to 10 MB.",
                            }
                        },
                    },
                    "examples": {"text": {"summary": "a text file", "value": {"file": "notes.txt"}}},
                }
            },
        }
    },
)
async def upload_attachment(request: Request, principal: CurrentUser) -> dict[str, Any]:
    chat = chat_service(request)
    limit = chat.settings.chat.max_document_bytes
    try:
        form = await request.form(max_files=1, max_fields=4, max_part_size=limit + 1)
    except Exception:
        raise InvalidInput("file: send one file as multipart/form-data", details={"field": "file"}) from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("file: send one file as multipart/form-data", details={"field": "file"})
        ingested = await read_and_ingest(upload, limit)
        return await chat.save_attachment(principal.user_id, upload.filename or "upload", ingested)
    finally:
        await form.close()


@router.get(
    "/attachments/{attachment_id}/file",
    summary="An uploaded attachment: the image as stored (PNG), a document as its extracted text",
    description="Only the user who uploaded it can read it. Images come back as the sanitised PNG that "
    "was sent to the model; documents as the UTF-8 text that was given to the model (the original file "
    "is not kept).",
    response_class=Response,
    responses={
        200: {
            "description": "The stored image or the document's text.",
            "content": {
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "text/plain": {"schema": {"type": "string"}},
            },
        },
        **error_responses(
            ErrorDoc.of(NotFound, "no such attachment", {"attachment_ids": ["0b6f..."]}),
            VALIDATION_FAILED,
        ),
    },
)
async def attachment_file(request: Request, attachment_id: str, principal: CurrentUser) -> Response:
    chat = chat_service(request)
    (attachment,) = await chat.call(chat.store.attachments, principal.user_id, [attachment_id])
    headers = {"Cache-Control": "private, max-age=86400"}
    if attachment.kind == "image" and attachment.path is not None:
        headers["Content-Disposition"] = f'inline; filename="{attachment.id}.png"'
        return FileResponse(chat.settings.data_dir / attachment.path, media_type="image/png", headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="{attachment.id}.txt"'
    return Response(attachment.text or "", media_type="text/plain; charset=utf-8", headers=headers)


# --- a turn --------------------------------------------------------------------------------------


class SendMessage(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # as the schema says: `"temperature": false` is refused, not read as 0
        json_schema_extra={
            "examples": [
                {"content": "Explain Python's GIL in two sentences."},
                {"content": "What is in this picture?", "attachments": ["<attachment id>"]},
                {"content": "Write a landing page for a bakery", "mode": "agent", "include_logo": True},
            ]
        },
    )

    content: str = Field("", max_length=100_000, description="The message (Markdown).")
    model: str = Field(AUTO, max_length=200, description=f"{AUTO!r} (routing) or a catalogue id.")
    attachments: list[str] = Field(
        default_factory=list, max_length=8, description="Ids from POST /attachments."
    )
    mode: Literal["chat", "agent"] = Field("chat", description="agent: the coding agent with tools.")
    role: TextRole | None = Field(
        None, description="Routing role for auto; default general (coding for agent)."
    )
    include_logo: bool = Field(False, description="Agent: generate a logo with the image engine.")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="Sampling temperature, 0-2.")
    max_tokens: int | None = Field(None, ge=1, le=200_000, description="Longest answer, in tokens.")


_SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events: `started`, then `delta` (text), `model_switch`, `tool_call`, "
        "`tool_result`, `progress`, `usage`, and finally `done` (the model that replied) or `error`.",
        "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
    }
}


@router.post(
    "/{conversation_id}/messages",
    summary="Send a message; the answer streams as Server-Sent Events",
    description="`conversation_id` may be `new` to start a conversation. Stop with "
    "`POST /api/v1/chat/{conversation_id}/stop` or by closing the connection: the upstream request "
    "is cancelled and the partial answer is kept with finish_reason `cancelled`.",
    response_class=StreamingResponse,
    responses={
        **_SSE_DOC,
        **error_responses(
            NO_CONVERSATION,
            MALFORMED_BODY,
            VALIDATION_FAILED,
            ErrorDoc.of(UnknownModel, "model: 'x' is not in the catalogue"),
            ErrorDoc.of(Conflict, "an answer is still being generated in this conversation; stop it first"),
            NOT_CONFIGURED,
            ErrorDoc.of(ModelsUnavailable, "x does not accept images; choose a vision model"),
        ),
    },
)
async def send_message(
    request: Request, principal: CurrentUser, conversation_id: str, body: SendMessage
) -> StreamingResponse:
    chat = chat_service(request)
    chat.require_configured()
    params: dict[str, Any] = {}
    if body.temperature is not None:
        params["temperature"] = body.temperature
    if body.max_tokens is not None:
        params["max_tokens"] = body.max_tokens
    turn = Turn(
        content=body.content,
        model=body.model,
        attachments=body.attachments,
        mode=body.mode,
        role=body.role,
        include_logo=body.include_logo,
        params=params,
    )
    generation = await chat.begin_turn(principal, None if conversation_id == "new" else conversation_id, turn)

    async def frames() -> AsyncIterator[bytes]:
        async for event in chat.events(generation):
            yield sse_frame(event)

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "X-Conversation-Id": generation.conversation_id,
        },
    )


class Stopped(BaseModel):
    stopped: bool = Field(description="False when no answer was being generated.")


@router.post(
    "/{conversation_id}/stop",
    summary="Stop the answer being generated",
    response_model=Stopped,
    responses=error_responses(VALIDATION_FAILED),
)
async def stop(request: Request, principal: CurrentUser, conversation_id: str) -> JSONResponse:
    stopped = await chat_service(request).stop_generation(principal.user_id, conversation_id)
    return JSONResponse({"stopped": stopped})
