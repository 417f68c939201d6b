"""The chat API through a real uvicorn server and the OpenRouter stand-in: streaming answers with
model attribution, stop and disconnect cancelling the upstream request, conversations (CRUD,
search, export, GDPR delete-all) on both backends, the 503 without an endpoint, tier limits."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.chat_support import LiveServer, configure_chat, live_server, read_events, sse_events
from tests.peers.openrouter import OpenRouterStandIn, Reply


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, openrouter: OpenRouterStandIn) -> Iterator[LiveServer]:
    configure_chat(monkeypatch, openrouter)
    yield from live_server()


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_without_an_endpoint_chat_explains_how_to_set_one(
    monkeypatch: pytest.MonkeyPatch, openrouter: OpenRouterStandIn
) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    for server in live_server():
        headers = server.sign_in()
        with httpx.Client(base_url=server.url) as http:
            response = http.post("/api/v1/chat/new/messages", json={"content": "hi"}, headers=headers)
            assert response.status_code == 503
            error = response.json()["error"]
            assert error["code"] == "chat_not_configured"
            assert (
                "OPENROUTER_API_KEY" in error["message"] and "FIMUM_OPENROUTER_BASE_URL" in error["message"]
            )
            assert error["message"].count(". ") == 0  # one sentence
            response = http.post(
                "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": "hi"}]},
                headers=headers,
            )
            assert response.status_code == 503 and response.json()["error"]["code"] == "chat_not_configured"
            models = http.get("/api/v1/models", headers=headers).json()
            assert models["configured"] is False and "OPENROUTER_API_KEY" in models["hint"]
            assert len(models["models"]) >= 13  # the shipped catalogue
    assert openrouter.received() == []


def test_a_streamed_answer_names_the_model_and_is_stored(
    server: LiveServer, http: httpx.Client, openrouter: OpenRouterStandIn
) -> None:
    headers = server.sign_in()
    openrouter.script("test/general-a", Reply.rate_limited(retry_after=30))
    openrouter.script("test/general-b", Reply.text("Paris is the capital of France."))
    events = read_events(http, "/api/v1/chat/new/messages", headers, {"content": "Capital of France?"})
    kinds = [e["type"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "done"
    assert {
        "type": "model_switch",
        "model": "test/general-b",
        "previous": "test/general-a",
        "reason": "rate_limited",
    } in events
    assert "".join(e["text"] for e in events if e["type"] == "delta") == "Paris is the capital of France."
    assert events[-1]["model"] == "test/general-b"
    usage = next(e for e in events if e["type"] == "usage")
    assert usage["completion_tokens"] == 6
    conversation_id = events[0]["conversation_id"]
    # Stored: both messages, the answer with its model, usage and the switch.
    stored = http.get(f"/api/v1/chat/conversations/{conversation_id}", headers=headers).json()
    assert stored["title"] == "Capital of France?"
    user, answer = stored["messages"]
    assert (user["role"], user["content"]) == ("user", "Capital of France?")
    assert answer["id"] == events[0]["message_id"]
    assert (answer["model"], answer["finish_reason"]) == ("test/general-b", "stop")
    assert answer["usage"]["completion_tokens"] == 6
    assert answer["meta"]["model_switches"][0]["reason"] == "rate_limited"
    # The second turn carries the history upstream.
    openrouter.script("test/general-b", Reply.text("About 2.1 million."))
    read_events(http, f"/api/v1/chat/{conversation_id}/messages", headers, {"content": "Population?"})
    sent = openrouter.received("test/general-b")[-1].messages
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == "Paris is the capital of France."


def test_stop_endpoint_cancels_the_upstream_request(
    server: LiveServer, http: httpx.Client, openrouter: OpenRouterStandIn
) -> None:
    headers = server.sign_in()
    conversation = http.post("/api/v1/chat/conversations", json={}, headers=headers).json()
    cid = conversation["id"]
    openrouter.script("test/general-a", Reply.text("word " * 500, chunk_delay=0.02))
    seen: list[dict] = []
    with http.stream(
        "POST", f"/api/v1/chat/{cid}/messages", json={"content": "talk"}, headers=headers
    ) as response:
        for event in sse_events(response.iter_lines()):
            seen.append(event)
            if len([e for e in seen if e["type"] == "delta"]) == 5:
                stopped = http.post(f"/api/v1/chat/{cid}/stop", headers=headers).json()
                assert stopped == {"stopped": True}
    assert seen[-1] == {"type": "done", "model": "", "finish_reason": "cancelled"}
    request = openrouter.received("test/general-a")[0]
    assert openrouter.wait_closed(request) is True  # the stand-in saw the connection closed
    answer = http.get(f"/api/v1/chat/conversations/{cid}", headers=headers).json()["messages"][-1]
    assert answer["finish_reason"] == "cancelled"
    assert 0 < len(answer["content"]) < len("word " * 500)
    assert http.post(f"/api/v1/chat/{cid}/stop", headers=headers).json() == {"stopped": False}


def test_client_disconnect_cancels_the_upstream_request(
    server: LiveServer, http: httpx.Client, openrouter: OpenRouterStandIn
) -> None:
    headers = server.sign_in()
    openrouter.script("test/general-a", Reply.text("word " * 500, chunk_delay=0.02))
    with http.stream(
        "POST", "/api/v1/chat/new/messages", json={"content": "talk"}, headers=headers
    ) as response:
        deltas = 0
        for event in sse_events(response.iter_lines()):
            deltas += event["type"] == "delta"
            if deltas == 3:
                cid = response.headers["x-conversation-id"]
                break  # leaving the block closes the connection
    request = openrouter.received("test/general-a")[0]
    assert openrouter.wait_closed(request, timeout=10) is True
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        messages = http.get(f"/api/v1/chat/conversations/{cid}", headers=headers).json()["messages"]
        if len(messages) == 2:
            break
        time.sleep(0.05)
    assert messages[-1]["finish_reason"] == "cancelled"


def test_conversation_crud_search_export_and_gdpr_delete(
    backend: str, monkeypatch: pytest.MonkeyPatch, openrouter: OpenRouterStandIn
) -> None:
    configure_chat(monkeypatch, openrouter)
    for server in live_server():
        headers = server.sign_in()
        other = server.sign_in("eve@example.com")
        with httpx.Client(base_url=server.url, timeout=30) as http:
            openrouter.script("test/general-a", Reply.text("Use **asyncio**."), Reply.text("Tabs."))
            first = read_events(
                http, "/api/v1/chat/new/messages", headers, {"content": "Python concurrency?"}
            )
            second = read_events(http, "/api/v1/chat/new/messages", headers, {"content": "Tabs or spaces"})
            a, b = first[0]["conversation_id"], second[0]["conversation_id"]
            listed = http.get("/api/v1/chat/conversations", headers=headers).json()["conversations"]
            assert [c["id"] for c in listed] == [b, a]  # newest first
            found = http.get("/api/v1/chat/conversations", params={"q": "ASYNCIO"}, headers=headers).json()
            assert [c["id"] for c in found["conversations"]] == [a]  # matched in a message
            renamed = http.patch(
                f"/api/v1/chat/conversations/{a}", json={"title": "Concurrency"}, headers=headers
            )
            assert renamed.status_code == 200 and renamed.json()["title"] == "Concurrency"
            # Another user sees none of it.
            assert http.get("/api/v1/chat/conversations", headers=other).json()["conversations"] == []
            assert http.get(f"/api/v1/chat/conversations/{a}", headers=other).status_code == 404
            assert http.delete(f"/api/v1/chat/conversations/{a}", headers=other).status_code == 404
            # Export one as Markdown, all as JSON.
            markdown = http.get(
                f"/api/v1/chat/conversations/{a}/export", params={"format": "markdown"}, headers=headers
            )
            assert markdown.headers["content-type"].startswith("text/markdown")
            assert "attachment" in markdown.headers["content-disposition"]
            assert "# Concurrency" in markdown.text and "Python concurrency?" in markdown.text
            assert "Assistant (test/general-a)" in markdown.text and "Use **asyncio**." in markdown.text
            exported = http.get("/api/v1/chat/export", params={"format": "json"}, headers=headers).json()
            assert exported["format"] == "fimum-chat-export"
            assert [c["id"] for c in exported["conversations"]] == [a, b]
            assert exported["conversations"][0]["messages"][1]["model"] == "test/general-a"
            # Delete one, then everything (needs confirm=true).
            assert http.delete(f"/api/v1/chat/conversations/{b}", headers=headers).status_code == 204
            assert http.get(f"/api/v1/chat/conversations/{b}", headers=headers).status_code == 404
            refused = http.delete("/api/v1/chat/conversations", headers=headers)
            assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_input"
            erased = http.delete(
                "/api/v1/chat/conversations", params={"confirm": "true"}, headers=headers
            ).json()
            assert erased == {"conversations": 1, "messages": 2, "attachments": 0}
            assert http.get("/api/v1/chat/conversations", headers=headers).json()["conversations"] == []
            assert http.get("/api/v1/chat/export", headers=headers).json()["conversations"] == []


def test_bad_requests_get_clear_errors(
    server: LiveServer, http: httpx.Client, openrouter: OpenRouterStandIn
) -> None:
    headers = server.sign_in()
    cases = [
        ({"content": "hi", "model": "nobody/nothing"}, 400, "unknown_model"),
        ({"content": "hi", "colour": "red"}, 422, "validation_error"),
        ({"content": ""}, 400, "invalid_input"),
        ({"content": "hi", "attachments": ["00000000-0000-4000-8000-000000000000"]}, 404, "not_found"),
    ]
    for body, status, code in cases:
        response = http.post("/api/v1/chat/new/messages", json=body, headers=headers)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
    missing = http.post(
        "/api/v1/chat/00000000-0000-4000-8000-000000000000/messages", json={"content": "hi"}, headers=headers
    )
    assert missing.status_code == 404
    assert http.post("/api/v1/chat/new/messages", json={"content": "hi"}).status_code == 401
    assert openrouter.received() == []


def test_models_endpoint_shows_live_health(
    server: LiveServer, http: httpx.Client, openrouter: OpenRouterStandIn
) -> None:
    headers = server.sign_in()
    openrouter.script("test/general-a", Reply.server_error(), Reply.server_error(), Reply.server_error())
    for _ in range(3):
        read_events(http, "/api/v1/chat/new/messages", headers, {"content": "hi"})
    body = http.get("/api/v1/models", headers=headers).json()
    assert body["configured"] is True and body["endpoint"] == openrouter.base_url
    by_id = {m["id"]: m for m in body["models"]}
    assert by_id["test/general-a"]["health"]["state"] == "open"
    assert by_id["test/general-a"]["health"]["available"] is False
    assert by_id["test/general-b"]["health"]["state"] == "closed"
    assert by_id["test/general-b"]["health"]["requests"] == 3


def test_per_tier_requests_per_minute_apply_to_chat(
    monkeypatch: pytest.MonkeyPatch, openrouter: OpenRouterStandIn
) -> None:
    configure_chat(monkeypatch, openrouter)
    monkeypatch.setenv(
        "FIMUM_TIERS",
        json.dumps(
            {
                "free": {"requests_per_minute": 2, "research_per_day": 10},
                "pro": {"requests_per_minute": 1000, "research_per_day": -1},
                "enterprise": {"requests_per_minute": -1, "research_per_day": -1},
            }
        ),
    )
    for server in live_server():
        headers = server.sign_in()
        with httpx.Client(base_url=server.url) as http:
            statuses = [
                http.post(
                    "/v1/chat/completions",
                    json={"messages": [{"role": "user", "content": "hi"}]},
                    headers=headers,
                ).status_code
                for _ in range(3)
            ]
            assert statuses == [200, 200, 429]
            limited = http.post("/api/v1/chat/new/messages", json={"content": "hi"}, headers=headers)
            assert limited.status_code == 429 and "retry-after" in limited.headers
    assert len(openrouter.received()) == 2


def test_sse_frames_are_well_formed(
    server: LiveServer, http: httpx.Client, openrouter: OpenRouterStandIn
) -> None:
    headers = server.sign_in()
    openrouter.script("test/general-a", Reply.text('a\nb "quoted"'))
    with http.stream("POST", "/api/v1/chat/new/messages", json={"content": "x"}, headers=headers) as response:
        raw = response.read().decode()
    frames = [f for f in raw.split("\n\n") if f]
    for frame in frames:
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        assert json.loads(data_line[6:])["type"] == event_line[7:]


def test_stop_reaches_the_replica_that_generates(
    monkeypatch: pytest.MonkeyPatch, openrouter: OpenRouterStandIn, request: pytest.FixtureRequest
) -> None:
    """Distributed mode, two API replicas on one PostgreSQL + Redis: the answer streams from
    replica A, the stop lands on replica B, and A cancels the upstream request."""
    from tests.conftest import JWT_TEST_SECRET, POSTGRES_URL, REDIS_URL

    configure_chat(monkeypatch, openrouter)
    monkeypatch.setenv("FIMUM_MODE", "distributed")
    monkeypatch.setenv("FIMUM_DATABASE_URL", POSTGRES_URL)
    monkeypatch.setenv("FIMUM_DATABASE_SCHEMA", request.getfixturevalue("pg_schema"))
    monkeypatch.setenv("FIMUM_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("FIMUM_REDIS_PREFIX", request.getfixturevalue("redis_prefix"))
    monkeypatch.setenv("FIMUM_JWT_SECRET", JWT_TEST_SECRET)
    replica_a, replica_b = LiveServer(), LiveServer()
    try:
        headers = replica_a.sign_in()
        openrouter.script("test/general-a", Reply.text("word " * 500, chunk_delay=0.02))
        with httpx.Client(timeout=30) as http:
            with http.stream(
                "POST", replica_a.url + "/api/v1/chat/new/messages", json={"content": "talk"}, headers=headers
            ) as response:
                seen = []
                for event in sse_events(response.iter_lines()):
                    seen.append(event)
                    if len(seen) == 5:
                        cid = seen[0]["conversation_id"]
                        stopped = http.post(f"{replica_b.url}/api/v1/chat/{cid}/stop", headers=headers)
                        assert stopped.json() == {"stopped": True}
            assert seen[-1]["type"] == "done" and seen[-1]["finish_reason"] == "cancelled"
            assert openrouter.wait_closed(openrouter.received("test/general-a")[0]) is True
            # Once it ended, neither replica has anything to stop.
            again = http.post(f"{replica_b.url}/api/v1/chat/{cid}/stop", headers=headers)
            assert again.json() == {"stopped": False}
    finally:
        replica_a.stop()
        replica_b.stop()


def test_agent_mode_runs_through_the_message_route_and_is_stored(
    server: LiveServer, http: httpx.Client, openrouter: OpenRouterStandIn
) -> None:
    """`mode: "agent"` hands the turn to the coding agent (chat/agent.py): its tool calls and
    results stream as events and are kept with the answer."""
    headers = server.sign_in()
    openrouter.script(
        "test/coder",
        Reply.tools(("run_code", {"language": "python", "code": "print(6 * 7)"})),
        Reply.text("It prints 42."),
    )
    events = read_events(
        http, "/api/v1/chat/new/messages", headers, {"content": "What does print(6*7) show?", "mode": "agent"}
    )
    kinds = [e["type"] for e in events]
    assert "tool_call" in kinds and "tool_result" in kinds and kinds[-1] == "done"
    call = next(e for e in events if e["type"] == "tool_call")
    assert call["name"] == "run_code"
    assert "".join(e["text"] for e in events if e["type"] == "delta").endswith("It prints 42.")
    assert openrouter.models_asked() == ["test/coder", "test/coder"]  # the coding role
    stored = http.get(f"/api/v1/chat/conversations/{events[0]['conversation_id']}", headers=headers).json()
    answer = stored["messages"][-1]
    assert answer["model"] == "test/coder" and answer["content"].endswith("It prints 42.")
    assert answer["meta"]["tool_calls"][0]["name"] == "run_code"
    assert answer["meta"]["tool_results"][0]["name"] == "run_code"
