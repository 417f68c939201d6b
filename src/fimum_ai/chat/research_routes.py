"""POST /api/v1/research: deep research as Server-Sent Events (see chat/research.py for the stream).
Each request counts against the user's research/day quota; one that ends without an answer is
given back. With a `conversation_id` the question and the answer (each model's part, the synthesis,
its sources) are stored in that conversation, like a chat turn."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from fimum_ai.accounts.auth import CurrentUser
from fimum_ai.chat.catalogue import UnknownModel
from fimum_ai.chat.events import SSE_EVENT_SCHEMA, Error, Started, sse_frame
from fimum_ai.chat.research import DeepResearch, ResearchFailed
from fimum_ai.chat.research_transcript import ResearchTranscript
from fimum_ai.chat.service import ChatNotConfigured
from fimum_ai.errors import (
    MALFORMED_BODY,
    NOT_SIGNED_IN,
    RATE_LIMITED,
    VALIDATION_FAILED,
    ErrorDoc,
    FimumError,
    NotFound,
    error_responses,
)
from fimum_ai.limits import QuotaExceeded

router = APIRouter(
    prefix="/api/v1", tags=["research"], responses=error_responses(*NOT_SIGNED_IN, RATE_LIMITED)
)


class ResearchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"question": "How do SQLite and PostgreSQL differ in locking?"}]},
    )

    question: str = Field(min_length=1, max_length=4000, description="What to research.")
    models: list[str] | None = Field(
        None,
        min_length=1,
        max_length=8,
        description="Catalogue ids to run instead of the configured research models.",
    )
    conversation_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description='Store the question and the answer in this conversation ("new" starts one, whose id '
        "comes in the `X-Conversation-Id` header and the `started` event). Without it nothing is stored.",
    )


_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events: progress, each model's text (`source` = model id), the "
        "synthesis, sources, done.",
        "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
    }
}


@router.post(
    "/research",
    summary="Deep research: several models in parallel, then one synthesis with sources",
    response_model=None,
    responses=_STREAM
    | error_responses(
        MALFORMED_BODY,
        VALIDATION_FAILED,
        ErrorDoc.of(UnknownModel, "model: 'x' is not in the catalogue", {"field": "model", "model": "x"}),
        ErrorDoc.of(NotFound, "no such conversation", {"conversation_id": "0b6f..."}),
        RATE_LIMITED,  # the route's 429 entry replaces the router's: name both codes
        ErrorDoc.of(
            QuotaExceeded, "Daily research quota reached: 10 of 10 used, 1 requested.", {"kind": "research"}
        ),
        ErrorDoc.of(ResearchFailed, "no research models are configured"),
        ErrorDoc.example(ChatNotConfigured()),
    ),
)
async def research(body: ResearchRequest, principal: CurrentUser, request: Request) -> StreamingResponse:
    state = request.app.state
    chat = state.chat
    chat.require_configured()
    config = state.settings.research
    if body.models is not None:
        for model_id in body.models:
            chat.catalogue.require(model_id)
        config = config.model_copy(update={"models": body.models})
    service = DeepResearch(chat.router, config, getattr(state, "search", None))
    user_id = principal.user_id
    conversation_id: str | None = None
    if body.conversation_id not in (None, "new"):
        conversation_id = (await chat.call(chat.store.get, user_id, body.conversation_id))["id"]
    quotas = state.accounts.quotas
    reservation = await quotas.reserve(principal, "research")
    if body.conversation_id == "new":
        conversation_id = (await chat.call(chat.store.create, user_id, "", "fimum/research"))["id"]
    if conversation_id is not None:
        await chat.call(
            chat.store.add_message, user_id, conversation_id, "user", body.question, meta={"mode": "research"}
        )

    async def finish(transcript: ResearchTranscript) -> None:
        if conversation_id is not None:
            with contextlib.suppress(Exception):
                message = transcript.message()
                await chat.call(chat.store.add_message, user_id, conversation_id, "assistant", **message)
        if not transcript.answered:  # failed, or the client left before the answer: it does not count
            with contextlib.suppress(Exception):
                await quotas.refund(user_id, reservation)

    async def frames() -> AsyncIterator[bytes]:
        transcript = ResearchTranscript()
        try:
            if conversation_id is not None:
                yield sse_frame(Started(conversation_id=conversation_id))
            # aclosing: when the client leaves, the research's own clean-up (stopping every model)
            # runs now, not when the event loop collects the abandoned generator.
            async with contextlib.aclosing(service.run(body.question)) as events:
                async for event in events:
                    transcript.take(event)
                    yield sse_frame(event)
        except FimumError as exc:
            error = Error(code=exc.code, message=exc.message)
            transcript.take(error)
            yield sse_frame(error)
        finally:
            # Shielded: when the client left mid-stream this task is being cancelled, and the await
            # raises at once, but the answer is still stored and the quota given back.
            await asyncio.shield(finish(transcript))

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if conversation_id is not None:
        headers["X-Conversation-Id"] = conversation_id
    return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)
