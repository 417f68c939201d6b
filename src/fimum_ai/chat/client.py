"""The upstream client: the `openai` SDK pointed at FIMUM_OPENROUTER_BASE_URL (OpenRouter by
default, or any OpenAI-compatible server: llama.cpp, Ollama, vLLM) with OPENROUTER_API_KEY and
OpenRouter's attribution headers. No retries here: the router decides what a failure means."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, cast

import openai
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletionChunk

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
    ) -> AsyncStream[ChatCompletionChunk]:
        """Start a streamed completion (returns once the response headers are in). `params` are
        the other body fields as the OpenAI/OpenRouter API names them (tools, temperature, models)."""
        try:
            stream: AsyncStream[ChatCompletionChunk] = await self._sdk.chat.completions.create(
                model=model,
                messages=cast(Any, messages),  # plain OpenAI-format dicts, passed through
                stream=True,
                stream_options={"include_usage": True},
                extra_body=params or None,
            )
        except Exception as exc:
            raise classify(exc) from exc
        return stream

    async def aclose(self) -> None:
        await self._sdk.close()
