"""POST /api/v1/research: deep research as Server-Sent Events (see chat/research.py for the stream).
Each request counts against the user's research/day quota; one that ends without an answer is
given back."""

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
from fimum_ai.chat.events import Done, Error, sse_frame
from fimum_ai.chat.research import DeepResearch, ResearchFailed
from fimum_ai.chat.service import ChatNotConfigured
from fimum_ai.errors import (
    MALFORMED_BODY,
    NOT_SIGNED_IN,
    RATE_LIMITED,
    VALIDATION_FAILED,
    ErrorDoc,
    FimumError,
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


_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events: progress, each model's text (`source` = model id), the "
        "synthesis, sources, done.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
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
    quotas = state.accounts.quotas
    reservation = await quotas.reserve(principal, "research")

    async def frames() -> AsyncIterator[bytes]:
        answered = False
        try:
            async for event in service.run(body.question):
                answered = answered or (isinstance(event, Done) and event.source is None)
                yield sse_frame(event)
        except FimumError as exc:
            yield sse_frame(Error(code=exc.code, message=exc.message))
        finally:
            if not answered:  # failed, or the client left before the answer: it does not count
                with contextlib.suppress(Exception):
                    await asyncio.shield(quotas.refund(principal.user_id, reservation))

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
