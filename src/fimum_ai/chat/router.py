"""The model router (FR-CODE-001 "dynamic routing and fallback").

Order: the request's role gives the candidate models (filtered by what the request needs: image
parts go to vision models only; tools prefer models that call tools). They are tried by
`priority`, LOWER FIRST (0, then 1, then 2). Among models of equal priority, requests are spread
in proportion to `weight` by smooth weighted round robin (deterministic: weights 1.3 and 1.2 give
13 and 12 first picks in every 25 requests); the rest of the group follows by weight, highest
first. A model the caller names explicitly goes first, the role's order after it.

Fallback: on 429, 5xx, a timeout (no first token within `first_token_timeout_s`), a refused
connection or an empty answer, the next model is tried (up to `max_attempts`), announced by a
`ModelSwitch` event. Once text has streamed, a failure ends the answer with an error instead (the
user already saw the start). Where the endpoint is OpenRouter, the next models also go upstream
as OpenRouter's own `models` fallback list; the answer names the model that actually replied.

Each model has a circuit breaker (in this process): `breaker_failures` consecutive failures open
it; after `breaker_reset_s` one request probes it (half-open); a success closes it, a failure
opens it again. A 429's Retry-After also rests the model that long. The upstream's own per-model
rate limit (`requests_per_minute`, 20 on OpenRouter's free models) is kept client-side through
the platform's rate limiter (shared through Redis in distributed mode), so Fimum skips a model
before the upstream would refuse it.

Why our own router and not LiteLLM's: see docs/chat.md (same semantics; ~60 fewer packages, no
3 s import, and this is ~300 lines we test end to end through the stand-in server).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fimum_ai.chat.catalogue import AUTO, Catalogue
from fimum_ai.chat.client import ChatClient, ChunkStream, FailureKind, UpstreamFailure, classify
from fimum_ai.chat.events import Delta, Done, Event, ModelSwitch, ToolCall, Usage
from fimum_ai.errors import FimumError
from fimum_ai.limits import RateLimiter
from fimum_ai.settings import ChatConfig, TextModel, TextRole

log = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "half_open"]


class ModelsUnavailable(FimumError):
    """No model could answer: every candidate failed, is resting or is over its upstream limit."""

    code = "models_unavailable"
    status = 503


class AnswerBroken(FimumError):
    """The model failed after its answer had started streaming."""

    code = "upstream_failed"
    status = 502


class UpstreamAuthFailed(FimumError):
    code = "upstream_auth_failed"
    status = 503


class CircuitBreaker:
    """closed → (N consecutive failures) → open → (reset_s) → half_open: one probe → closed/open."""

    def __init__(
        self, failures_to_open: int, reset_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures_to_open = failures_to_open
        self.reset_s = reset_s
        self.clock = clock
        self.consecutive_failures = 0
        self.opened_at: float | None = None
        self.probing = False

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.reset_s else "open"

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.reset_s - self.clock())

    def try_acquire(self) -> bool:
        """May a request go to this model now? In half-open, only one probe at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self.probing:
            self.probing = True
            return True
        return False

    def release(self) -> None:
        """The request was not sent after all (e.g. the client-side rate limit said no)."""
        self.probing = False

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.opened_at = None
        self.probing = False

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        if self.probing or self.consecutive_failures >= self.failures_to_open:
            self.opened_at = self.clock()
        self.probing = False


@dataclass
class ModelHealth:
    breaker: CircuitBreaker
    requests: int = 0
    failures: int = 0
    resting_until: float = 0.0  # a 429's Retry-After (monotonic clock)
    last_error: str | None = None
    last_error_at: float | None = None  # epoch seconds
    last_success_at: float | None = None  # epoch seconds
    ttft_ms: float | None = None  # time to first token, exponentially averaged

    def report(self, now: float) -> dict[str, Any]:
        state = self.breaker.state
        resting = max(0.0, self.resting_until - now)
        return {
            "state": state,
            "available": state != "open" and resting == 0.0,
            "consecutive_failures": self.breaker.consecutive_failures,
            "retry_in_s": round(max(self.breaker.retry_in() if state == "open" else 0.0, resting), 3),
            "requests": self.requests,
            "failures": self.failures,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_success_at": self.last_success_at,
            "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 1),
        }


class SmoothWeightedRoundRobin:
    """nginx's smooth weighted round robin: picks in proportion to weight, evenly interleaved."""

    def __init__(self) -> None:
        self._current: dict[tuple[str, ...], dict[str, float]] = {}

    def order(self, group: Sequence[TextModel]) -> list[TextModel]:
        if len(group) < 2:
            return list(group)
        key = tuple(model.id for model in group)
        current = self._current.setdefault(key, dict.fromkeys(key, 0.0))
        total = 0.0
        for model in group:
            current[model.id] += model.weight
            total += model.weight
        first = max(group, key=lambda model: current[model.id])
        current[first.id] -= total
        rest = sorted((m for m in group if m is not first), key=lambda m: -m.weight)
        return [first, *rest]


@dataclass
class ChatRequest:
    """One completion through the router. `messages` are OpenAI-format dicts; `params` the other
    OpenAI body fields passed through (temperature, max_tokens, top_p, stop, seed, tool_choice...)."""

    messages: list[dict[str, Any]]
    role: TextRole = "general"
    model: str | None = None  # a catalogue id; None or "fimum/auto": the role's order
    tools: list[dict[str, Any]] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    fallback: bool = True  # with an explicit model: try the role's others when it fails

    @property
    def has_images(self) -> bool:
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, list) and any(
                isinstance(part, dict) and part.get("type") == "image_url" for part in content
            ):
                return True
        return False


@dataclass
class Completion:
    """A whole answer (`Router.complete`)."""

    model: str
    content: str
    finish_reason: str
    tool_calls: list[ToolCall]
    usage: Usage | None
    switches: list[ModelSwitch]


class Router:
    def __init__(
        self,
        catalogue: Catalogue,
        client: ChatClient,
        config: ChatConfig,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalogue = catalogue
        self.client = client
        self.config = config
        self.limiter = limiter
        self.clock = clock
        self._rr = SmoothWeightedRoundRobin()
        self._health: dict[str, ModelHealth] = {}
        self.upstream_fallbacks = (
            config.upstream_fallbacks if config.upstream_fallbacks is not None else client.is_openrouter
        )

    # --- health ------------------------------------------------------------------------------

    def health_of(self, model_id: str) -> ModelHealth:
        health = self._health.get(model_id)
        if health is None:
            breaker = CircuitBreaker(self.config.breaker_failures, self.config.breaker_reset_s, self.clock)
            health = self._health[model_id] = ModelHealth(breaker)
        return health

    def health(self) -> dict[str, dict[str, Any]]:
        now = self.clock()
        return {model.id: self.health_of(model.id).report(now) for model in self.catalogue.models}

    # --- order --------------------------------------------------------------------------------

    def plan(self, request: ChatRequest) -> list[TextModel]:
        """The models to try, in order (see the module docstring)."""
        explicit = request.model if request.model and request.model != AUTO else None
        first = self.catalogue.require(explicit) if explicit else None
        role: TextRole = "vision" if request.has_images and request.role == "general" else request.role
        pool = self.catalogue.by_role(role)
        if request.has_images:
            pool = [m for m in pool if m.vision] or self.catalogue.vision_models()
        if request.tools:
            pool = [m for m in pool if m.tools] or pool
        ordered: list[TextModel] = []
        for priority in sorted({m.priority for m in pool}):
            ordered += self._rr.order([m for m in pool if m.priority == priority])
        if first is None:
            return ordered
        if request.has_images and not first.vision:
            raise ModelsUnavailable(
                f"{first.id} does not accept images; choose a vision model or {AUTO!r}",
                details={"model": first.id, "needs": "vision"},
            )
        rest = [m for m in ordered if m.id != first.id] if request.fallback else []
        return [first, *rest]

    # --- answering ----------------------------------------------------------------------------

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """The answer as events: ModelSwitch for each fallback, then Delta..., ToolCall..., Usage,
        Done(model that replied). Raises ModelsUnavailable when no model could answer (before any
        Delta), AnswerBroken when a started answer fails."""
        plan = self.plan(request)
        attempted: list[dict[str, str]] = []
        previous, reason = "", ""
        retry_hint: float | None = None
        for index, model in enumerate(plan):
            if len(attempted) >= self.config.max_attempts:
                break
            health = self.health_of(model.id)
            skip = await self._skip_reason(model, health)
            if skip is not None:
                attempted.append({"model": model.id, "result": skip})
                wait = self._wait_hint(health)
                retry_hint = wait if retry_hint is None else min(retry_hint, wait)
                continue
            if previous:
                yield ModelSwitch(model=model.id, previous=previous, reason=reason)
            fallbacks = [m.id for m in plan[index + 1 : index + 3]] if self.upstream_fallbacks else []
            try:
                async for event in self._attempt(model, health, request, fallbacks):
                    yield event
                return
            except UpstreamFailure as failure:
                attempted.append({"model": model.id, "result": failure.kind})
                if failure.kind == "auth":
                    raise UpstreamAuthFailed(
                        "the model endpoint refused the API key: check OPENROUTER_API_KEY",
                        details={"status": failure.status},
                    ) from None
                previous, reason = model.id, failure.kind
        if not plan:
            raise ModelsUnavailable(f"no model in the catalogue has the role {request.role!r}")
        headers = {"Retry-After": str(max(1, round(retry_hint)))} if retry_hint else None
        raise ModelsUnavailable(
            "no model could answer right now; try again shortly",
            details={"attempts": attempted},
            headers=headers,
        )

    async def complete(self, request: ChatRequest) -> Completion:
        text: list[str] = []
        calls: list[ToolCall] = []
        switches: list[ModelSwitch] = []
        usage: Usage | None = None
        done: Done | None = None
        async for event in self.stream(request):
            if isinstance(event, Delta):
                text.append(event.text)
            elif isinstance(event, ToolCall):
                calls.append(event)
            elif isinstance(event, ModelSwitch):
                switches.append(event)
            elif isinstance(event, Usage):
                usage = event
            elif isinstance(event, Done):
                done = event
        assert done is not None
        return Completion(done.model, "".join(text), done.finish_reason, calls, usage, switches)

    async def _skip_reason(self, model: TextModel, health: ModelHealth) -> str | None:
        if health.resting_until > self.clock():
            return "resting"  # the upstream said 429 with a Retry-After
        if not health.breaker.try_acquire():
            return "circuit_open"
        if self.limiter is not None and model.requests_per_minute >= 0:
            try:
                state = await self.limiter.hit(
                    "chat-upstream:" + model.id, RateLimiter.per_minute(model.requests_per_minute)
                )
            except Exception:
                log.warning("upstream rate limit storage failed; not limiting", exc_info=True)
                return None
            if not state.allowed:
                health.breaker.release()
                health.resting_until = max(
                    health.resting_until, self.clock() + max(0.0, state.reset_at - time.time())
                )
                return "upstream_limit"
        return None

    def _wait_hint(self, health: ModelHealth) -> float:
        return max(health.resting_until - self.clock(), health.breaker.retry_in(), 1.0)

    def _fail(self, health: ModelHealth, model: TextModel, failure: UpstreamFailure) -> None:
        health.failures += 1
        health.last_error = failure.kind
        health.last_error_at = time.time()
        health.breaker.record_failure()
        if failure.kind == "rate_limited":
            rest = failure.retry_after if failure.retry_after is not None else 5.0
            health.resting_until = self.clock() + min(rest, 300.0)
        log.warning(
            "chat model failed",
            extra={
                "model": model.id,
                "kind": failure.kind,
                "status": failure.status,
                "breaker": health.breaker.state,
            },
        )

    async def _attempt(
        self, model: TextModel, health: ModelHealth, request: ChatRequest, fallbacks: list[str]
    ) -> AsyncIterator[Event]:
        health.requests += 1
        params = dict(request.params)
        if request.tools:
            params["tools"] = request.tools
        if fallbacks:
            params["models"] = [model.id, *fallbacks]
        started = self.clock()
        stream: ChunkStream | None = None
        answered = False  # text or a tool call came
        try:
            async with asyncio.timeout(self.config.first_token_timeout_s):
                stream = await self.client.open_stream(model.id, request.messages, params)
            iterator = stream.__aiter__()
            replied_by = model.id
            finish = "stop"
            usage: Usage | None = None
            calls: dict[int, dict[str, str]] = {}
            while True:
                wait = self.config.read_timeout_s if answered else self.config.first_token_timeout_s
                try:
                    async with asyncio.timeout(wait):
                        chunk = await anext(iterator)
                except StopAsyncIteration:
                    break
                if chunk.get("model"):
                    replied_by = str(chunk["model"])
                if chunk.get("usage"):
                    counts = chunk["usage"]
                    usage = Usage(
                        prompt_tokens=int(counts.get("prompt_tokens") or 0),
                        completion_tokens=int(counts.get("completion_tokens") or 0),
                        total_tokens=int(counts.get("total_tokens") or 0),
                    )
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    text = delta.get("content")
                    if text:
                        if not answered:
                            self._first_token(health, started)
                        answered = True
                        yield Delta(text=text)
                    for part in delta.get("tool_calls") or ():
                        if not answered:
                            self._first_token(health, started)
                        answered = True
                        call = calls.setdefault(
                            int(part.get("index", 0)), {"id": "", "name": "", "arguments": ""}
                        )
                        call["id"] = part.get("id") or call["id"]
                        function = part.get("function") or {}
                        call["name"] += function.get("name") or ""
                        call["arguments"] += function.get("arguments") or ""
                    if choice.get("finish_reason"):
                        finish = str(choice["finish_reason"])
            if not answered:
                raise UpstreamFailure("empty", "the model sent an empty answer")
            for index in sorted(calls):
                call = calls[index]
                yield ToolCall(
                    id=call["id"] or f"call_{index}", name=call["name"], arguments=call["arguments"] or "{}"
                )
            if usage is not None:
                yield usage
            health.breaker.record_success()
            health.last_success_at = time.time()
            yield Done(model=replied_by, finish_reason=finish)
        except (asyncio.CancelledError, GeneratorExit):
            health.breaker.release()  # the caller went away: says nothing about the model
            raise
        except Exception as exc:
            failure = classify(
                exc if not isinstance(exc, TimeoutError) else UpstreamFailure("timeout", "no answer in time")
            )
            self._fail(health, model, failure)
            if answered:
                raise AnswerBroken(
                    f"{model.id} failed while answering ({failure.kind}); the answer is incomplete",
                    details={"model": model.id, "reason": failure.kind},
                ) from None
            raise failure from None
        finally:
            if stream is not None:
                await stream.aclose()  # also what cancels the upstream request when the client left

    def _first_token(self, health: ModelHealth, started: float) -> None:
        elapsed_ms = (self.clock() - started) * 1000
        health.ttft_ms = elapsed_ms if health.ttft_ms is None else 0.8 * health.ttft_ms + 0.2 * elapsed_ms


FAILURE_KINDS: tuple[FailureKind, ...] = (
    "rate_limited",
    "server_error",
    "timeout",
    "empty",
    "connection",
    "rejected",
)
