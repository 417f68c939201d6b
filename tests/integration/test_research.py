"""Deep research (FR-RES-001) against the OpenRouter stand-in (a real HTTP server): the research
models run in parallel, each on its own timeout; one failing or hanging does not sink the rest; the
synthesis merges the answers with the sources each model cited; the API streams it all as SSE and
counts it against research/day."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from fimum_ai.app import create_app
from fimum_ai.chat.catalogue import Catalogue
from fimum_ai.chat.client import ChatClient
from fimum_ai.chat.events import Delta, Done, Error, Event, Progress, Sources
from fimum_ai.chat.research import NO_LIVE_SOURCES, NOTHING_FOUND, DeepResearch
from fimum_ai.chat.router import Router
from fimum_ai.settings import ChatConfig, ResearchConfig, Settings, TextModel, load_settings
from tests.conftest import auth_headers
from tests.integration.chat_support import live_server, sse_events
from tests.peers.openrouter import OpenRouterStandIn, Reply

RESEARCHERS = ["r/alpha", "r/beta", "r/gamma", "r/delta"]
SYNTH = "s/synth"
MODELS = [
    *(
        {"id": m, "roles": ["research"], "priority": 1, "weight": 1.0, "context_length": 32768}
        for m in RESEARCHERS
    ),
    {"id": SYNTH, "roles": ["general"], "priority": 0, "weight": 1.0, "context_length": 32768},
]
QUESTION = "Which Python web framework should a small team choose in 2026?"


class Search:
    """The web-search interface research uses (the search engine itself is another issue's)."""

    def __init__(self, results: list[dict[str, Any]] | Exception) -> None:
        self.results = results
        self.queries: list[tuple[str, int]] = []

    async def web_search(self, query: str, *, limit: int = 5) -> list[dict[str, Any]]:
        self.queries.append((query, limit))
        if isinstance(self.results, Exception):
            raise self.results
        return self.results[:limit]


RESULTS = [
    {
        "url": "https://fastapi.tiangolo.com/",
        "title": "FastAPI",
        "snippet": "Fast to code.",
        "credibility": 0.9,
    },
    {
        "url": "https://www.djangoproject.com/",
        "title": "Django",
        "snippet": "Batteries included.",
        "credibility": 0.9,
    },
    {
        "url": "https://flask.palletsprojects.com/",
        "title": "Flask",
        "snippet": "Micro framework.",
        "credibility": 0.8,
    },
]


def make_research(server: OpenRouterStandIn, search: Search | None = None, **config: Any) -> DeepResearch:
    models = [TextModel(**m) for m in MODELS]  # type: ignore[arg-type]
    settings = Settings(openrouter_base_url=server.base_url, openrouter_api_key="sk-test", text_models=models)
    router = Router(Catalogue(models), ChatClient(settings), ChatConfig(first_token_timeout_s=10))
    research = ResearchConfig(**{"synthesis_model": SYNTH, "model_timeout_s": 5.0, **config})
    return DeepResearch(router, research, search)


def collect(research: DeepResearch) -> list[Event]:
    async def run() -> list[Event]:
        return [event async for event in research.run(QUESTION)]

    return asyncio.run(run())


def text(events: list[Event], source: str | None) -> str:
    return "".join(e.text for e in events if isinstance(e, Delta) and e.source == source)


def test_four_models_in_parallel_then_a_synthesis_with_sources(openrouter: OpenRouterStandIn) -> None:
    for model, cites in zip(RESEARCHERS, ("[1]", "[1] and [2]", "[2]", "none"), strict=True):
        openrouter.script(model, Reply.text(f"{model} recommends a framework, see {cites}.", delay=1.5))
    openrouter.script(SYNTH, Reply.text("Choose FastAPI [1]; Django [2] if you want an admin."))
    search = Search(RESULTS)
    started = time.monotonic()
    events = collect(make_research(openrouter, search))
    elapsed = time.monotonic() - started
    assert elapsed < 4.5, elapsed  # four 1.5 s answers at once, not one after the other (6 s)

    assert search.queries == [(QUESTION, 8)]
    requests = openrouter.received()
    assert sorted(r.model for r in requests[:4]) == sorted(RESEARCHERS)
    assert all(not r.body.get("models") for r in requests[:4])  # each model alone: no silent fallback
    system = requests[0].messages[0]["content"]
    assert "[1] FastAPI" in system and "https://www.djangoproject.com/" in system

    for model in RESEARCHERS:
        assert text(events, model).startswith(f"{model} recommends")
        assert any(
            isinstance(e, Progress) and e.stage == "model_started" and e.source == model for e in events
        )
        assert any(isinstance(e, Done) and e.source == model for e in events)
    cited_by_model = {
        e.source: [i["url"] for i in e.items] for e in events if isinstance(e, Sources) and e.source
    }
    assert cited_by_model["r/beta"] == ["https://fastapi.tiangolo.com/", "https://www.djangoproject.com/"]
    assert cited_by_model["r/delta"] == []

    # The synthesis came last, saw every answer, and names who cited what.
    synthesis_request = requests[-1]
    assert synthesis_request.model == SYNTH
    prompt = synthesis_request.messages[-1]["content"]
    assert all(f"{model} recommends" in prompt for model in RESEARCHERS)
    assert text(events, None) == "Choose FastAPI [1]; Django [2] if you want an admin."
    final_sources = [e for e in events if isinstance(e, Sources) and e.source is None][-1]
    assert [(i["n"], i["cited_by"]) for i in final_sources.items] == [
        (1, ["r/alpha", "r/beta"]),
        (2, ["r/beta", "r/gamma"]),
    ]
    assert isinstance(events[-1], Done) and events[-1].source is None and events[-1].model == SYNTH
    first_synthesis = next(i for i, e in enumerate(events) if e.source == "synthesis")
    assert all(not (isinstance(e, Delta) and e.source in RESEARCHERS) for e in events[first_synthesis:])


def test_one_model_failing_and_one_hanging_do_not_sink_the_rest(openrouter: OpenRouterStandIn) -> None:
    openrouter.script("r/alpha", Reply.server_error())
    openrouter.script("r/beta", Reply.slow(30, "too late"))
    openrouter.script("r/gamma", Reply.text("gamma's findings"))
    openrouter.script("r/delta", Reply.text("delta's findings"))
    openrouter.script(SYNTH, Reply.text("merged"))
    started = time.monotonic()
    events = collect(make_research(openrouter, model_timeout_s=1.5))
    assert time.monotonic() - started < 6  # the hanging model was given up after its own timeout

    errors = {e.source: e for e in events if isinstance(e, Error)}
    assert set(errors) == {"r/alpha", "r/beta"}
    assert errors["r/beta"].code == "timeout"
    assert errors["r/alpha"].code == "models_unavailable"
    prompt = openrouter.received(SYNTH)[-1].messages[-1]["content"]
    assert "gamma's findings" in prompt and "delta's findings" in prompt and "too late" not in prompt
    assert text(events, None) == "merged"
    assert isinstance(events[-1], Done) and events[-1].model == SYNTH
    # Without a search service, research says it ran without live sources.
    notes = [e for e in events if isinstance(e, Progress) and e.stage == "no_live_sources"]
    assert notes and notes[0].detail == NO_LIVE_SOURCES
    assert "No live web sources" in openrouter.received("r/gamma")[0].messages[0]["content"]


def test_when_every_model_fails_research_says_so(openrouter: OpenRouterStandIn) -> None:
    for model in RESEARCHERS:
        openrouter.script(model, Reply.rate_limited(), Reply.rate_limited())
    events = collect(make_research(openrouter, search=Search(RuntimeError("index offline"))))
    assert any(isinstance(e, Progress) and e.stage == "search_failed" for e in events)
    assert isinstance(events[-1], Error) and events[-1].code == "research_failed"
    assert not any(isinstance(e, Done) and e.source is None for e in events)
    assert openrouter.received(SYNTH) == []


def test_a_failed_synthesis_still_answers_with_the_best_report(openrouter: OpenRouterStandIn) -> None:
    openrouter.script("r/alpha", Reply.text("short"))
    openrouter.script("r/beta", Reply.text("the longest and most detailed report"))
    openrouter.script("r/gamma", Reply.text("mid report"))
    openrouter.script("r/delta", Reply.text("tiny"))
    for _ in range(8):  # the synthesis model and every fallback refuse
        openrouter.script(SYNTH, Reply.server_error())
        for model in RESEARCHERS:
            openrouter.script(model, Reply.server_error())
    events = collect(make_research(openrouter))
    assert any(isinstance(e, Error) and e.source == "synthesis" for e in events)
    assert text(events, None) == "the longest and most detailed report"
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "synthesis_failed"


# --- The API -------------------------------------------------------------------------------------


@pytest.fixture
def research_app_env(openrouter: OpenRouterStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's chat settings pointed at the stand-in with this file's models."""
    monkeypatch.setenv("FIMUM_OPENROUTER_BASE_URL", openrouter.base_url)
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
    monkeypatch.setenv("FIMUM_TEXT_MODELS", json.dumps(MODELS))
    monkeypatch.setenv("FIMUM_RESEARCH__SYNTHESIS_MODEL", SYNTH)


@pytest.mark.usefixtures("research_app_env")
def test_the_research_api_streams_and_counts_against_the_daily_quota(
    openrouter: OpenRouterStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "FIMUM_TIERS", json.dumps({"free": {"research_per_day": 2}, "pro": {}, "enterprise": {}})
    )
    with TestClient(create_app(load_settings())) as client:
        headers = auth_headers(client)

        def research(body: dict[str, Any]) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
            with client.stream("POST", "/api/v1/research", json=body, headers=headers) as response:
                if response.status_code != 200:
                    return response.status_code, [], json.loads(response.read())
                assert response.headers["content-type"].startswith("text/event-stream")
                return 200, list(sse_events(response.iter_lines())), {}

        status, events, _ = research({"question": QUESTION})
        assert status == 200
        assert {e.get("source") for e in events if e["type"] == "delta"} == {*RESEARCHERS, None}
        assert events[-1] == {"type": "done", "model": SYNTH, "finish_reason": "stop"}

        # A research that produced nothing is given back; one that answered counts.
        for model in RESEARCHERS:
            openrouter.script(model, Reply.server_error())
        status, events, _ = research({"question": QUESTION})
        assert status == 200 and events[-1]["type"] == "error" and events[-1]["code"] == "research_failed"
        assert client.get("/api/v1/me", headers=headers).json()["usage"]["research"]["used"] == 1

        status, events, _ = research({"question": QUESTION, "models": ["r/alpha", "r/gamma"]})
        assert status == 200
        assert {e["source"] for e in events if e["type"] == "delta" and e.get("source")} == {
            "r/alpha",
            "r/gamma",
        }
        status, _, error = research({"question": QUESTION})
        assert status == 429 and error["error"]["code"] == "quota_exceeded"
        assert error["error"]["details"]["kind"] == "research"

        status, _, error = research({"question": QUESTION, "models": ["nope/none"]})
        assert status == 400 and error["error"]["code"] == "unknown_model"
        status, _, error = research({"question": ""})
        assert status == 422


def test_a_search_that_finds_nothing_is_research_without_live_sources(openrouter: OpenRouterStandIn) -> None:
    for model in RESEARCHERS:
        openrouter.script(model, Reply.text(f"{model} knows"))
    openrouter.script(SYNTH, Reply.text("merged"))
    events = collect(make_research(openrouter, search=Search([])))
    notes = [e for e in events if isinstance(e, Progress) and e.stage == "no_live_sources"]
    assert notes and notes[0].detail == NOTHING_FOUND
    assert all(not e.items for e in events if isinstance(e, Sources))
    assert "No live web sources" in openrouter.received(RESEARCHERS[0])[0].messages[0]["content"]
    assert text(events, None) == "merged"


@pytest.mark.usefixtures("research_app_env")
def test_research_in_a_conversation_is_stored_and_reads_back_as_it_streamed(
    openrouter: OpenRouterStandIn,
) -> None:
    for model in RESEARCHERS[:3]:
        openrouter.script(model, Reply.text(f"{model} says FastAPI."))
    openrouter.script(RESEARCHERS[3], Reply.server_error())
    openrouter.script(SYNTH, Reply.text("Choose FastAPI."))
    with TestClient(create_app(load_settings())) as client:
        headers = auth_headers(client)
        with client.stream(
            "POST", "/api/v1/research", json={"question": QUESTION, "conversation_id": "new"}, headers=headers
        ) as response:
            assert response.status_code == 200
            conversation_id = response.headers["x-conversation-id"]
            events = list(sse_events(response.iter_lines()))
        assert events[0] == {
            "type": "started",
            "conversation_id": conversation_id,
            "message_id": "",
            "model": "",
        }
        assert events[-1]["type"] == "done"

        stored = client.get(f"/api/v1/chat/conversations/{conversation_id}", headers=headers).json()
        assert stored["title"] == QUESTION[:80]
        question, answer = stored["messages"]
        assert (question["role"], question["content"]) == ("user", QUESTION)
        assert (answer["role"], answer["model"], answer["finish_reason"]) == ("assistant", SYNTH, "stop")
        assert answer["content"] == "Choose FastAPI."
        tracks = {track["model"]: track for track in answer["meta"]["research"]}
        assert set(tracks) == set(RESEARCHERS)
        assert tracks["r/alpha"] == {
            "model": "r/alpha",
            "text": "r/alpha says FastAPI.",
            "status": "done",
            "error": None,
            "sources": [],
        }
        assert tracks[RESEARCHERS[3]]["status"] == "error" and tracks[RESEARCHERS[3]]["error"]
        assert answer["meta"]["mode"] == "research"

        # A second question goes to the same conversation; somebody else's conversation is refused
        # before anything is counted.
        with client.stream(
            "POST",
            "/api/v1/research",
            json={"question": "And for a big team?", "conversation_id": conversation_id},
            headers=headers,
        ) as response:
            assert response.status_code == 200
            list(response.iter_lines())
        messages = client.get(f"/api/v1/chat/conversations/{conversation_id}", headers=headers).json()[
            "messages"
        ]
        assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
        assert messages[2]["content"] == "And for a big team?"
        used = client.get("/api/v1/me", headers=headers).json()["usage"]["research"]["used"]
        stranger = auth_headers(client, "eve@example.com")
        refused = client.post(
            "/api/v1/research",
            json={"question": QUESTION, "conversation_id": conversation_id},
            headers=stranger,
        )
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
        assert client.get("/api/v1/me", headers=stranger).json()["usage"]["research"]["used"] == 0
        assert used == 2


@pytest.mark.usefixtures("research_app_env")
def test_leaving_a_research_midway_stores_it_as_stopped_and_gives_the_quota_back(
    openrouter: OpenRouterStandIn,
) -> None:
    for model in RESEARCHERS:
        openrouter.script(model, Reply.text("slowly " * 400, chunk_delay=0.02))
    for server in live_server():
        headers = server.sign_in()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            body = {"question": QUESTION, "conversation_id": "new"}
            with http.stream("POST", "/api/v1/research", json=body, headers=headers) as response:
                conversation_id = response.headers["x-conversation-id"]
                for event in sse_events(response.iter_lines()):
                    if event["type"] == "delta":
                        break  # leaving the block closes the connection mid-research
            deadline = time.monotonic() + 15
            messages: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                path = f"/api/v1/chat/conversations/{conversation_id}"
                messages = http.get(path, headers=headers).json()["messages"]
                if len(messages) == 2:
                    break
                time.sleep(0.05)
            assert [m["role"] for m in messages] == ["user", "assistant"]
            assert messages[1]["finish_reason"] == "cancelled"
            assert any(track["text"].startswith("slowly") for track in messages[1]["meta"]["research"])
            used = http.get("/api/v1/me", headers=headers).json()["usage"]["research"]["used"]
            assert used == 0  # nothing was answered: the research is given back
