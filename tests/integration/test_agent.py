"""The coding agent (FR-CODE-002/004) against the OpenRouter stand-in, with the real image service
(tiny SDXL-architecture model), the real sandbox (bubblewrap) and the real quota store: the model's
tool calls run, their results go back to it, images count against the user's quota, and a request
for a logo always comes back with one."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fimum_ai.accounts.principal import Principal
from fimum_ai.app import create_app
from fimum_ai.chat.agent import AgentTools, image_request_for, run_agent, wants_image
from fimum_ai.chat.events import Delta, Done, Event, Progress, ToolCall, ToolResult
from fimum_ai.chat.router import ChatRequest
from fimum_ai.settings import load_settings
from tests.conftest import auth_headers
from tests.integration.chat_support import TEST_MODELS, configure_chat, sse_events
from tests.peers.openrouter import OpenRouterStandIn, Reply

CODER = "test/coder"
HAS_BWRAP = os.path.exists("/usr/bin/bwrap")


AGENT_MODELS = [
    *TEST_MODELS,
    {"id": "test/researcher", "roles": ["research"], "priority": 0, "weight": 1.0, "context_length": 8192},
]


@pytest.fixture(scope="module")
def module_server() -> Iterator[OpenRouterStandIn]:
    server = OpenRouterStandIn().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_app(
    module_server: OpenRouterStandIn, tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """One app for the module: each app loads the SDXL pipeline once, which costs seconds on CPU."""
    data = tmp_path_factory.mktemp("agent-data")
    env = {
        "FIMUM_DATA_DIR": str(data),
        "FIMUM_DEMO_MODEL_PATH": str(tiny_models_dir),
        "IMAGE_MODEL_BASE_PATH": str(data / "no-sdxl"),
        "IMAGE_MODEL_REFINER_PATH": str(data / "no-refiner"),
        "IMAGE_MODEL_UPSCALER_PATH": str(data / "no-upscaler"),
        "IMAGE_DEVICE": "cpu",
        "FIMUM_OPENROUTER_BASE_URL": module_server.base_url,
        "OPENROUTER_API_KEY": "sk-or-test",
        "FIMUM_CHAT__FIRST_TOKEN_TIMEOUT_S": "5",
        "FIMUM_TEXT_MODELS": json.dumps(AGENT_MODELS),
        "FIMUM_AGENT__IMAGE_WIDTH": "512",
        "FIMUM_AGENT__IMAGE_HEIGHT": "512",
        "FIMUM_AGENT__IMAGE_STEPS": "20",
        "FIMUM_AUTH__USER_CACHE_TTL_S": "0",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("FIMUM_", "IMAGE_")):
                patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        with TestClient(create_app(load_settings())) as client:
            yield client


@pytest.fixture
def app_client(shared_app: TestClient, module_server: OpenRouterStandIn) -> TestClient:
    module_server.reset()
    module_server.default = lambda model: Reply(content=f"Answer from {model}.")
    state: Any = shared_app.app.state  # type: ignore[attr-defined]
    state.search = None
    return shared_app


@pytest.fixture
def openrouter(module_server: OpenRouterStandIn) -> OpenRouterStandIn:
    """This module's stand-in (shared with the app), reset for each test by `app_client`."""
    return module_server


@contextlib.contextmanager
def openrouter_stopped(server: OpenRouterStandIn) -> Iterator[None]:
    try:
        yield
    finally:
        server.stop()


def principal_of(client: TestClient, headers: dict[str, str]) -> Principal:
    me = client.get("/api/v1/me", headers=headers).json()
    return Principal(me["user"]["id"], me["tier"], False, me["user"].get("email"), None, "jwt")


def agent_events(
    client: TestClient, principal: Principal, content: str, include_logo: bool = False, search: Any = None
) -> list[Event]:
    state: Any = client.app.state  # type: ignore[attr-defined]
    if search is not None:
        state.search = search

    async def run() -> list[Event]:
        request = ChatRequest([{"role": "user", "content": content}], role="coding")
        stream = run_agent(
            router=state.chat.router,
            request=request,
            principal=principal,
            app_state=state,
            include_logo=include_logo,
        )
        return [event async for event in stream]

    events: list[Event] = client.portal.call(run)  # type: ignore[union-attr]
    return events


def offered_tools(request_body: dict[str, Any]) -> list[str]:
    return [tool["function"]["name"] for tool in request_body.get("tools") or []]


@pytest.mark.slow  # one tiny-SDXL image at 512², 20 steps on CPU: ~8 s idle, ~25 s on a loaded machine
def test_the_model_calls_generate_image_and_gets_the_result(
    app_client: TestClient, openrouter: OpenRouterStandIn
) -> None:
    headers = auth_headers(app_client, identifier="user1@example.com")
    principal = principal_of(app_client, headers)
    openrouter.script(
        CODER,
        Reply.tools(
            ("generate_image", {"prompt": "a fox head, orange", "style": "logo"}), content="Drawing it."
        ),
        Reply.text("```html\n<img src='logo.png' alt='Fox'>\n```\nThe logo is above."),
    )
    events = agent_events(app_client, principal, "Make a landing page for Fox Bakery")

    calls = [e for e in events if isinstance(e, ToolCall)]
    results = [e for e in events if isinstance(e, ToolResult)]
    assert [c.name for c in calls] == ["generate_image"]
    assert len(results) == 1 and results[0].ok and len(results[0].images) == 1, results
    image_id = results[0].images[0]
    assert app_client.get(f"/api/v1/images/{image_id}", headers=headers).status_code == 200
    assert app_client.get("/api/v1/me", headers=headers).json()["usage"]["images"]["used"] == 1
    assert any(isinstance(e, Progress) and e.stage == "generating_image" for e in events)
    text = "".join(e.text for e in events if isinstance(e, Delta))
    assert text.startswith("Drawing it.") and "```html" in text
    assert isinstance(events[-1], Done) and events[-1].model == CODER

    first, second = openrouter.received(CODER)
    assert {"generate_image", "run_code", "research"} <= set(offered_tools(first.body))
    assert "web_search" not in offered_tools(first.body)  # no search service in this app
    assert first.messages[0]["role"] == "system"
    assistant, tool = second.messages[-2], second.messages[-1]
    assert assistant["tool_calls"][0]["function"]["name"] == "generate_image"
    assert tool["role"] == "tool" and tool["tool_call_id"] == calls[0].id
    assert json.loads(tool["content"])["image_ids"] == [image_id]


@pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap is not installed")
def test_the_model_runs_code_in_the_sandbox(app_client: TestClient, openrouter: OpenRouterStandIn) -> None:
    principal = principal_of(app_client, auth_headers(app_client, identifier="user2@example.com"))
    openrouter.script(
        CODER,
        Reply.tools(("run_code", {"language": "python", "code": "print(sum(range(10)))"})),
        Reply.tools(
            (
                "run_code",
                {"language": "python", "code": "import socket; socket.create_connection(('1.1.1.1', 80), 2)"},
            )
        ),
        Reply.text("The sum is 45."),
    )
    events = agent_events(app_client, principal, "What is the sum of 0..9? Check it by running code.")
    results = [e for e in events if isinstance(e, ToolResult)]
    first, second = (json.loads(r.content) for r in results)
    assert (first["status"], first["stdout"], results[0].ok) == ("ok", "45\n", True)
    assert second["status"] == "error" and "OSError" in second["stderr"]
    assert results[1].ok is False
    last = openrouter.received(CODER)[-1]
    tool_messages = [m for m in last.messages if m["role"] == "tool"]
    assert len(tool_messages) == 2 and json.loads(tool_messages[0]["content"])["stdout"] == "45\n"
    assert "".join(e.text for e in events if isinstance(e, Delta)).endswith("The sum is 45.")


def test_tool_failures_go_back_to_the_model(app_client: TestClient, openrouter: OpenRouterStandIn) -> None:
    headers = auth_headers(app_client, identifier="quota@example.com")
    principal = principal_of(app_client, headers)
    openrouter.script(
        CODER,
        Reply(tool_calls=({"id": "c1", "name": "generate_image", "arguments": "{not json"},)),
        Reply.tools(("launch_rockets", {"count": 3})),
        Reply.tools(("generate_image", {"prompt": "a naked person"})),
        Reply.text("Sorry, I could not make that."),
    )
    events = agent_events(app_client, principal, "draw something")
    results = [e for e in events if isinstance(e, ToolResult)]
    codes = [json.loads(r.content)["error"]["code"] for r in results]
    assert codes == ["invalid_arguments", "unknown_tool", "nsfw_content_blocked"]
    assert not any(r.ok for r in results)
    assert app_client.get("/api/v1/me", headers=headers).json()["usage"]["images"]["used"] == 0
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "stop"


def test_the_image_quota_applies_to_the_agent(
    monkeypatch: pytest.MonkeyPatch, with_tiny_models: Path
) -> None:
    # Refused before any image is made: this app never loads the pipeline.
    openrouter = OpenRouterStandIn().start()
    configure_chat(monkeypatch, openrouter)
    monkeypatch.setenv("FIMUM_IMAGE_GENERATION__RATE_LIMITS__FREE", "0")
    with openrouter_stopped(openrouter), TestClient(create_app(load_settings())) as client:
        headers = auth_headers(client)
        openrouter.script(
            CODER, Reply.tools(("generate_image", {"prompt": "a fox"})), Reply.text("No image today.")
        )
        events = agent_events(client, principal_of(client, headers), "a fox logo please")
        results = [e for e in events if isinstance(e, ToolResult)]
        assert results and all(json.loads(r.content)["error"]["code"] == "quota_exceeded" for r in results)
        # The agent's own attempt (the request named a logo) meets the same quota.
        assert [r.id for r in results] == ["call_0", "fimum_auto_image"]


def test_web_search_is_offered_when_a_search_service_exists(
    app_client: TestClient, openrouter: OpenRouterStandIn
) -> None:
    class Search:
        async def web_search(self, query: str, *, limit: int = 5) -> list[dict[str, Any]]:
            return [
                {"url": "https://docs.python.org/3/", "title": f"Python docs for {query}", "snippet": "..."}
            ][:limit]

    principal = principal_of(app_client, auth_headers(app_client, identifier="user4@example.com"))
    openrouter.script(
        CODER, Reply.tools(("web_search", {"query": "asyncio TaskGroup"})), Reply.text("Use TaskGroup.")
    )
    events = agent_events(app_client, principal, "How do I run tasks concurrently?", search=Search())
    assert "web_search" in offered_tools(openrouter.received(CODER)[0].body)
    result = next(e for e in events if isinstance(e, ToolResult))
    assert json.loads(result.content)[0]["title"] == "Python docs for asyncio TaskGroup"


def test_the_last_round_offers_no_tools(
    app_client: TestClient, openrouter: OpenRouterStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    principal = principal_of(app_client, auth_headers(app_client, identifier="user5@example.com"))
    state: Any = app_client.app.state  # type: ignore[attr-defined]
    tools = AgentTools(
        principal=principal,
        settings=state.settings.model_copy(
            update={"agent": state.settings.agent.model_copy(update={"max_steps": 2})}
        ),
        router=state.chat.router,
        quotas=state.accounts.quotas,
    )
    openrouter.script(CODER, Reply.tools(("research", {"question": "x"})), Reply.text("done"))
    openrouter.default = lambda model: Reply.text(f"research answer from {model}")

    async def run() -> list[Event]:
        request = ChatRequest([{"role": "user", "content": "loop forever"}], role="coding")
        stream = run_agent(
            router=state.chat.router, request=request, principal=principal, app_state=state, tools=tools
        )
        return [event async for event in stream]

    events: list[Event] = app_client.portal.call(run)  # type: ignore[union-attr]
    coder_requests = openrouter.received(CODER)
    assert len(coder_requests) == 2 and offered_tools(coder_requests[1].body) == []
    result = next(e for e in events if isinstance(e, ToolResult))
    assert result.name == "research" and result.ok
    assert any(isinstance(e, Progress) and e.source == "research" for e in events)


def test_image_intent() -> None:
    assert wants_image([{"role": "user", "content": "Build a todo app with a Logo"}], False)
    assert wants_image([{"role": "user", "content": "draw an architecture diagram"}], False)
    assert not wants_image([{"role": "user", "content": "sort a list in Go"}], False)
    assert wants_image([{"role": "user", "content": "sort a list in Go"}], True)
    prompt, style = image_request_for([{"role": "user", "content": "a flowchart of the login"}], False)
    assert style == "technical-diagram" and "login" in prompt


# --- Through the chat API (FR-TEST-006 at the HTTP level) ----------------------------------------


@pytest.mark.slow  # one tiny-SDXL image at 512², 20 steps on CPU: ~8 s idle, ~25 s on a loaded machine
def test_a_chat_message_asking_for_a_logo_returns_code_and_a_logo(
    app_client: TestClient, openrouter: OpenRouterStandIn
) -> None:
    """FR-TEST-006 at the HTTP level: the model writes only code; the agent still brings the logo."""
    headers = auth_headers(app_client, identifier="sparrow@example.com")
    openrouter.script(CODER, Reply.text("Here is the site:\n```html\n<h1>Sparrow</h1>\n```"))
    body = {"content": "Write a landing page for Sparrow", "mode": "agent", "include_logo": True}
    with app_client.stream("POST", "/api/v1/chat/new/messages", json=body, headers=headers) as response:
        assert response.status_code == 200, response.read()
        events = list(sse_events(response.iter_lines()))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "done"
    call = next(e for e in events if e["type"] == "tool_call")
    assert call["id"] == "fimum_auto_image" and call["name"] == "generate_image"
    arguments = json.loads(call["arguments"])
    assert arguments["style"] == "logo" and "Sparrow" in arguments["prompt"]
    result = next(e for e in events if e["type"] == "tool_result")
    assert result["ok"] and len(result["images"]) == 1
    # The model was asked to draw it first.
    assert "generate_image" in openrouter.received(CODER)[0].messages[0]["content"]
    conversation = events[0]["conversation_id"]
    stored = app_client.get(f"/api/v1/chat/conversations/{conversation}", headers=headers).json()
    answer = stored["messages"][-1]
    assert "```html" in answer["content"] and answer["model"] == CODER
    assert answer["meta"]["images"] == result["images"]
    image = app_client.get(f"/api/v1/images/{result['images'][0]}/file", headers=headers)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


def test_tool_calls_per_answer_are_capped(app_client: TestClient, openrouter: OpenRouterStandIn) -> None:
    class Search:
        def __init__(self) -> None:
            self.queries: list[str] = []

        async def web_search(self, query: str, *, limit: int = 5) -> list[dict[str, Any]]:
            self.queries.append(query)
            return [{"url": "https://example.org/", "title": query}]

    principal = principal_of(app_client, auth_headers(app_client, identifier="loop@example.com"))
    state: Any = app_client.app.state  # type: ignore[attr-defined]
    search = Search()
    agent = state.settings.agent.model_copy(update={"max_tool_calls": 2})
    tools = AgentTools(
        principal=principal, settings=state.settings.model_copy(update={"agent": agent}), search=search
    )
    openrouter.script(
        CODER,
        Reply.tools(
            ("web_search", {"query": "a"}), ("web_search", {"query": "b"}), ("web_search", {"query": "c"})
        ),
        Reply.text("enough"),
    )

    async def run() -> list[Event]:
        request = ChatRequest([{"role": "user", "content": "search a lot"}], role="coding")
        stream = run_agent(
            router=state.chat.router, request=request, principal=principal, app_state=state, tools=tools
        )
        return [event async for event in stream]

    events: list[Event] = app_client.portal.call(run)  # type: ignore[union-attr]
    results = [e for e in events if isinstance(e, ToolResult)]
    assert [r.ok for r in results] == [True, True, False]
    assert json.loads(results[2].content)["error"]["code"] == "tool_limit"
    assert search.queries == ["a", "b"]
