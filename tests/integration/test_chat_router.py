"""The chat router against the OpenRouter stand-in (a real HTTP server): order by priority and
weight, fallback on each failure kind, circuit breaker, client-side upstream limits, cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from fimum_ai.chat.catalogue import Catalogue
from fimum_ai.chat.client import ChatClient
from fimum_ai.chat.events import Delta, Done, Event, ModelSwitch, ToolCall, Usage
from fimum_ai.chat.router import (
    AnswerBroken,
    ChatRequest,
    ModelsUnavailable,
    Router,
    SmoothWeightedRoundRobin,
)
from fimum_ai.limits import RateLimiter
from fimum_ai.settings import ChatConfig, Settings, TextModel
from tests.peers.openrouter import OpenRouterStandIn, Reply

HELLO = [{"role": "user", "content": "hello"}]


def coding_models() -> list[TextModel]:
    """The spec's FR-CODE-001 five, as config/models.yaml ships them."""
    return [m for m in Settings().text_models if "coding" in m.roles]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_router(
    server: OpenRouterStandIn,
    models: list[TextModel] | None = None,
    clock: Clock | None = None,
    limiter: RateLimiter | None = None,
    **config: Any,
) -> Router:
    settings = Settings(
        openrouter_base_url=server.base_url, openrouter_api_key="sk-test", text_models=models or []
    )
    chat = ChatConfig(
        **{"first_token_timeout_s": 10.0, "breaker_failures": 2, "breaker_reset_s": 30.0, **config}
    )
    catalogue = Catalogue(models if models is not None else coding_models())
    return Router(catalogue, ChatClient(settings), chat, limiter, clock or Clock())


def model(model_id: str, priority: int = 1, weight: float = 1.0, **kw: Any) -> TextModel:
    return TextModel(
        id=model_id,
        roles=kw.pop("roles", ("general",)),
        priority=priority,
        weight=weight,
        context_length=8192,
        **kw,
    )


async def collect(stream: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in stream]


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, Delta))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def routers(openrouter: OpenRouterStandIn) -> AsyncIterator[Callable[..., Router]]:
    """make_router, with every router's HTTP client closed on the test's event loop."""
    made: list[Router] = []

    def make(*args: Any, **kwargs: Any) -> Router:
        made.append(make_router(openrouter, *args, **kwargs))
        return made[-1]

    yield make
    for router in made:
        await router.client.aclose()


def test_catalogue_ships_the_spec_models() -> None:
    settings = Settings()
    by_id = {m.id: m for m in settings.text_models}
    assert len(by_id) >= 13
    expected = {
        "kwaipilot/kat-coder-pro:free": (1.3, 1),
        "qwen/qwen3-coder:free": (1.1, 2),
        "moonshotai/kimi-k2:free": (1.2, 1),
        "agentica-org/deepcoder-14b-preview:free": (1.5, 0),
        "z-ai/glm-4.5-air:free": (0.9, 2),
    }
    for model_id, (weight, priority) in expected.items():
        assert (by_id[model_id].weight, by_id[model_id].priority) == (weight, priority)
        assert "coding" in by_id[model_id].roles
    assert len([m for m in by_id.values() if m.vision and "vision" in m.roles]) >= 3
    assert len([m for m in by_id.values() if "research" in m.roles]) >= 4
    assert [m for m in by_id.values() if "general" in m.roles]


def test_equal_priorities_share_requests_by_weight() -> None:
    """Smooth weighted round robin: in every 25 picks kat-coder (1.3) leads 13 times and kimi-k2
    (1.2) 12 times; in every 20, qwen3-coder (1.1) 11 and glm-4.5-air (0.9) 9; interleaved."""
    rr = SmoothWeightedRoundRobin()
    by_priority = {p: [m for m in coding_models() if m.priority == p] for p in (0, 1, 2)}
    assert [m.id for m in by_priority[0]] == ["agentica-org/deepcoder-14b-preview:free"]
    firsts = [rr.order(by_priority[1])[0].id for _ in range(25)]
    assert firsts.count("kwaipilot/kat-coder-pro:free") == 13
    assert firsts.count("moonshotai/kimi-k2:free") == 12
    assert all(
        a != b for a, b in zip(firsts[:20:2], firsts[1:20:2], strict=True)
    )  # interleaved, not 13 in a row
    firsts = [rr.order(by_priority[2])[0].id for _ in range(20)]
    assert (firsts.count("qwen/qwen3-coder:free"), firsts.count("z-ai/glm-4.5-air:free")) == (11, 9)


@pytest.mark.anyio
async def test_plan_and_first_answer_follow_the_documented_order(
    openrouter: OpenRouterStandIn, routers: Callable[..., Router]
) -> None:
    router = routers()
    plan = [m.id for m in router.plan(ChatRequest(HELLO, role="coding"))]
    assert plan == [
        "agentica-org/deepcoder-14b-preview:free",
        "kwaipilot/kat-coder-pro:free",
        "moonshotai/kimi-k2:free",
        "qwen/qwen3-coder:free",
        "z-ai/glm-4.5-air:free",
    ]
    openrouter.script("agentica-org/deepcoder-14b-preview:free", Reply.text("def f(): pass"))
    events = await collect(router.stream(ChatRequest(HELLO, role="coding")))
    assert text_of(events) == "def f(): pass"
    assert events[-1] == Done(model="agentica-org/deepcoder-14b-preview:free", finish_reason="stop")
    sent = openrouter.received()[0]
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.headers["x-title"] == "Fimum AI" and sent.headers["http-referer"]
    assert sent.stream and sent.messages == HELLO


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (Reply.rate_limited(retry_after=7), "rate_limited"),
        (Reply.server_error(500), "server_error"),
        (Reply.server_error(503), "server_error"),
        (Reply.slow(6.0), "timeout"),
        (Reply.empty(), "empty"),
    ],
)
async def test_fallback_on_each_failure_kind(
    openrouter: OpenRouterStandIn, routers: Callable[..., Router], failure: Reply, kind: str
) -> None:
    # 3 s without a first token is a timeout here (the slow reply takes 6 s).
    router = routers([model("a", 0), model("b", 1)], first_token_timeout_s=3.0)
    openrouter.script("a", failure)
    openrouter.script("b", Reply.text("from b"))
    events = await collect(router.stream(ChatRequest(HELLO)))
    assert events[0] == ModelSwitch(model="b", previous="a", reason=kind)
    assert text_of(events) == "from b"
    assert isinstance(events[-1], Done) and events[-1].model == "b"
    assert openrouter.models_asked() == ["a", "b"]
    health = router.health()["a"]
    assert health["last_error"] == kind and health["failures"] == 1
    if kind == "rate_limited":  # the Retry-After rests the model: the next request skips it
        assert health["available"] is False and 6 <= health["retry_in_s"] <= 7
        openrouter.script("b", Reply.text("again b"))
        events = await collect(router.stream(ChatRequest(HELLO)))
        assert text_of(events) == "again b" and openrouter.models_asked()[-1] == "b"
        assert not any(isinstance(e, ModelSwitch) for e in events)


@pytest.mark.anyio
async def test_circuit_breaker_opens_half_opens_and_closes(
    openrouter: OpenRouterStandIn, routers: Callable[..., Router]
) -> None:
    clock = Clock()
    router = routers([model("a", 0), model("b", 1)], clock=clock)
    openrouter.script("a", Reply.server_error(), Reply.server_error())
    for _ in range(2):
        events = await collect(router.stream(ChatRequest(HELLO)))
        assert isinstance(events[-1], Done) and events[-1].model == "b"
    assert router.health()["a"]["state"] == "open"
    # Open: "a" is not even asked.
    asked = len(openrouter.received("a"))
    events = await collect(router.stream(ChatRequest(HELLO)))
    assert len(openrouter.received("a")) == asked and isinstance(events[-1], Done) and events[-1].model == "b"
    # After the reset time one probe goes through; it fails: open again.
    clock.now += 31
    assert router.health()["a"]["state"] == "half_open"
    openrouter.script("a", Reply.server_error())
    await collect(router.stream(ChatRequest(HELLO)))
    assert len(openrouter.received("a")) == asked + 1
    assert router.health()["a"]["state"] == "open"
    # Next probe succeeds: closed, and "a" answers first again.
    clock.now += 31
    openrouter.script("a", Reply.text("a is back"))
    events = await collect(router.stream(ChatRequest(HELLO)))
    assert text_of(events) == "a is back"
    assert router.health()["a"]["state"] == "closed"
    events = await collect(router.stream(ChatRequest(HELLO)))
    assert isinstance(events[-1], Done) and events[-1].model == "a"


@pytest.mark.anyio
async def test_all_models_failing_is_a_503_with_the_attempts(
    openrouter: OpenRouterStandIn, routers: Callable[..., Router]
) -> None:
    router = routers([model("a", 0), model("b", 1)])
    openrouter.script("a", Reply.server_error())
    openrouter.script("b", Reply.rate_limited(retry_after=4))
    with pytest.raises(ModelsUnavailable) as caught:
        await collect(router.stream(ChatRequest(HELLO)))
    assert caught.value.status == 503
    assert caught.value.details["attempts"] == [
        {"model": "a", "result": "server_error"},
        {"model": "b", "result": "rate_limited"},
    ]


@pytest.mark.anyio
async def test_client_side_upstream_rate_limit_skips_the_model(
    openrouter: OpenRouterStandIn, routers: Callable[..., Router]
) -> None:
    limiter = RateLimiter.from_settings(Settings())
    router = routers([model("a", 0, requests_per_minute=2), model("b", 1)], limiter=limiter)
    answered = []
    for _ in range(3):
        events = await collect(router.stream(ChatRequest(HELLO)))
        assert isinstance(events[-1], Done)
        answered.append(events[-1].model)
    assert answered == ["a", "a", "b"]
    assert openrouter.models_asked() == ["a", "a", "b"]  # the third never reached "a" upstream
    await limiter.aclose()


@pytest.mark.anyio
async def test_tool_calls_usage_and_explicit_model(
    openrouter: OpenRouterStandIn, routers: Callable[..., Router]
) -> None:
    router = routers([model("a", 0, tools=True), model("b", 1, tools=True)])
    openrouter.script("b", Reply.tools(("run_code", {"language": "python", "code": "print(1)"})))
    tools = [{"type": "function", "function": {"name": "run_code", "parameters": {"type": "object"}}}]
    events = await collect(router.stream(ChatRequest(HELLO, model="b", tools=tools)))
    call = next(e for e in events if isinstance(e, ToolCall))
    assert call.name == "run_code" and json.loads(call.arguments) == {
        "language": "python",
        "code": "print(1)",
    }
    assert any(isinstance(e, Usage) and e.total_tokens > 0 for e in events)
    assert events[-1] == Done(model="b", finish_reason="tool_calls")
    assert openrouter.received()[0].body["tools"] == tools


@pytest.mark.anyio
async def test_images_go_to_vision_models_only(
    openrouter: OpenRouterStandIn, routers: Callable[..., Router]
) -> None:
    models = [model("text", 0), model("eyes", 1, vision=True, roles=("vision",))]
    router = routers(models)
    picture = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    events = await collect(router.stream(ChatRequest([{"role": "user", "content": picture}])))
    assert isinstance(events[-1], Done) and events[-1].model == "eyes"
    assert openrouter.models_asked() == ["eyes"]
    with pytest.raises(ModelsUnavailable):
        router.plan(ChatRequest([{"role": "user", "content": picture}], model="text"))


@pytest.mark.anyio
async def test_openrouter_models_fallback_list_and_attribution(
    openrouter: OpenRouterStandIn, routers: Callable[..., Router]
) -> None:
    router = routers([model("a", 0), model("b", 1), model("c", 2)], upstream_fallbacks=True)
    openrouter.script("a", Reply.server_error())  # the server falls back itself, like OpenRouter
    openrouter.script("b", Reply.text("b answered upstream"))
    events = await collect(router.stream(ChatRequest(HELLO)))
    assert openrouter.received()[0].body["models"] == ["a", "b", "c"]
    assert len(openrouter.received()) == 1
    assert events[-1] == Done(model="b", finish_reason="stop")  # the model that actually replied


@pytest.mark.anyio
async def test_failure_after_text_started_is_an_error_not_a_fallback(
    openrouter: OpenRouterStandIn, routers: Callable[..., Router]
) -> None:
    router = routers([model("a", 0), model("b", 1)], read_timeout_s=0.3)
    openrouter.script("a", Reply.text("one two three", chunk_delay=0.6))
    with pytest.raises(AnswerBroken):
        await collect(router.stream(ChatRequest(HELLO)))
    assert openrouter.models_asked() == ["a"]


@pytest.mark.anyio
async def test_cancelling_closes_the_upstream_connection(
    openrouter: OpenRouterStandIn, routers: Callable[..., Router]
) -> None:
    router = routers([model("a", 0)])
    openrouter.script("a", Reply.text("word " * 200, chunk_delay=0.02))
    seen: list[Event] = []

    async def consume() -> None:
        async for event in router.stream(ChatRequest(HELLO)):
            seen.append(event)

    task = asyncio.create_task(consume())
    while len(seen) < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    request = openrouter.received()[0]
    assert await asyncio.to_thread(openrouter.wait_closed, request) is True
    assert router.health()["a"]["failures"] == 0  # a user's stop says nothing about the model
