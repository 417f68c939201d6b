"""The upstream client: the `openai` SDK pointed at FIMUM_OPENROUTER_BASE_URL (OpenRouter by
default, or any OpenAI-compatible server: llama.cpp, Ollama, vLLM) with OPENROUTER_API_KEY and
OpenRouter's attribution headers. No retries here: the router decides what a failure means."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import openai
from openai import AsyncOpenAI

from fimum_ai.settings import Settings

FailureKind = Literal["rate_limited", "server_error", "timeout", "empty", "connection", "rejected", "auth"]


@dataclass
class UpstreamFailure(Exception):
    """One model's attempt failed. `kind` decides the fallback; `retry_after` (seconds) comes
    from a 429's Retry-After."""

    kind: FailureKind
    message: str
    status: int | None = None
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


def classify(exc: BaseException) -> UpstreamFailure:
    """An SDK exception as an UpstreamFailure (a bug of ours propagates as it is)."""
    if isinstance(exc, UpstreamFailure):
        return exc
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return UpstreamFailure("timeout", "the model did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamFailure("connection", "the model endpoint could not be reached")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = _upstream_message(exc)
        if status == 429:
            return UpstreamFailure("rate_limited", message, status, _retry_after(exc.response.headers))
        if status in (401, 403):
            return UpstreamFailure("auth", message, status)
        if status >= 500:
            return UpstreamFailure("server_error", message, status)
        return UpstreamFailure("rejected", message, status)
    if isinstance(exc, openai.APIError):
        # An error object inside a stream (OpenRouter reports mid-stream failures so).
        return UpstreamFailure("server_error", str(exc.message)[:300])
    raise exc


def _upstream_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return f"HTTP {exc.status_code}"


class ChunkStream:
    """The `chat.completion.chunk` objects of a streamed answer, as dicts, until `data: [DONE]`.
    An error object inside the stream (how OpenRouter reports a failure after the headers)
    raises UpstreamFailure. `aclose()` closes the HTTP response: the upstream request ends."""

    def __init__(self, manager: Any, response: Any) -> None:
        self._manager = manager
        self._response = response
        self._lines: AsyncIterator[str] = response.iter_lines()

    def __aiter__(self) -> ChunkStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            async for line in self._lines:
                if not line.startswith("data:"):
                    continue  # blank separators, `: OPENROUTER PROCESSING` keep-alive comments, event names
                data = line[5:].strip()
                if data == "[DONE]":
                    await self._finish_body()
                    break
                chunk = json.loads(data)
                if not isinstance(chunk, dict):
                    continue
                if "error" in chunk:
                    error = (
                        chunk["error"] if isinstance(chunk["error"], dict) else {"message": chunk["error"]}
                    )
                    raise UpstreamFailure("server_error", str(error.get("message", "error"))[:300])
                return chunk
        except (UpstreamFailure, StopAsyncIteration):
            raise
        except ValueError:
            raise UpstreamFailure("server_error", "the model endpoint sent malformed stream data") from None
        except Exception as exc:
            raise classify(exc) from exc
        raise StopAsyncIteration

    async def _finish_body(self) -> None:
        """Read what follows [DONE] (the body's end), so the connection goes back to the pool
        instead of being closed; a server that keeps talking is cut off after a second."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                async for _ in self._lines:
                    pass

    async def aclose(self) -> None:
        await self._manager.__aexit__(None, None, None)


class ChatClient:
    def __init__(self, settings: Settings) -> None:
        chat = settings.chat
        key = settings.openrouter_api_key.get_secret_value() if settings.openrouter_api_key else ""
        self.base_url = settings.openrouter_base_url.rstrip("/")
        self.is_openrouter = "openrouter.ai" in self.base_url
        self._sdk = AsyncOpenAI(
            # Local servers need no key, but the SDK wants one.
            api_key=key or "no-key",
            base_url=self.base_url,
            max_retries=0,
            timeout=openai.Timeout(chat.read_timeout_s, connect=chat.connect_timeout_s),
            default_headers={"HTTP-Referer": chat.app_url, "X-Title": chat.app_title},
        )

    async def open_stream(
        self, model: str, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> ChunkStream:
        """Start a streamed completion (returns once the response headers are in; an error status
        raises UpstreamFailure). `params` are the other body fields as the OpenAI/OpenRouter API
        names them (tools, temperature, models)."""
        # Speed, measured (bench/chat_bench.py): the SDK builds and sends the request and turns
        # error statuses into exceptions, but its typed-dict transform of `messages` and a pydantic
        # model per streamed chunk cost more CPU than the rest of a chat turn. The messages are
        # already plain OpenAI-format dicts, so they go in the body as they are (`extra_body` wins
        # over the empty list), and chunks are read as JSON lines (ChunkStream).
        manager = self._sdk.chat.completions.with_streaming_response.create(
            model=model,
            messages=[],
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"messages": messages, **params},
        )
        try:
            response = await manager.__aenter__()
        except Exception as exc:
            raise classify(exc) from exc
        return ChunkStream(manager, response)

    async def aclose(self) -> None:
        await self._sdk.close()
