"""GET /api/v1/search, /api/v1/search/snapshots/{id}, /api/v1/search/stats through the real app, on
both backends; `web_search`; and (slow) the embedded server's own background embedder and query
encoder processes end to end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fimum_ai.app import create_app
from fimum_ai.search.service import SearchService
from fimum_ai.settings import load_settings
from tests.conftest import auth_headers
from tests.integration.search_corpus import topic_pages

RESULT_KEYS = {
    "url",
    "title",
    "snippet",
    "lang",
    "published",
    "credibility",
    "snapshot_id",
    "site",
    "fetched_at",
    "filetype",
}


@pytest.fixture
def client(backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("FIMUM_SEARCH__REFRESH_S", "0.05")
    monkeypatch.setenv("FIMUM_SEARCH__EMBEDDER", "off")  # the slow test below runs the real one
    with TestClient(create_app(load_settings()), raise_server_exceptions=False) as c:
        c.app.state.search.index.add(topic_pages())  # type: ignore[attr-defined]
        yield c


def search(client: TestClient, headers: dict[str, str], **params: Any) -> Any:
    response = client.get("/api/v1/search", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def urls(body: Any) -> list[str]:
    return [result["url"] for result in body["results"]]


def test_search_answers_the_documented_shape(client: TestClient) -> None:
    headers = auth_headers(client)
    body = search(client, headers, q="flour", mode="keyword")
    assert set(body) == {"results", "total", "took_ms"}
    assert body["total"] == 2 and isinstance(body["took_ms"], float)
    result = next(r for r in body["results"] if r["url"] == "http://recipes.example/bread")
    assert set(result) == RESULT_KEYS
    assert result["title"] == "Sourdough bread at home"
    assert "<mark>flour</mark>" in result["snippet"]
    assert result["lang"] == "en" and result["filetype"] == "txt" and result["site"] == "recipes.example"
    assert result["published"].startswith("2023-01-10")
    assert 0 <= result["credibility"]["score"] <= 100
    assert set(result["credibility"]["breakdown"]) == {
        "authority",
        "reputation",
        "agreement",
        "freshness",
        "metadata",
        "https",
    }
    points = sum(signal["points"] for signal in result["credibility"]["breakdown"].values())
    assert abs(points - result["credibility"]["score"]) < 0.5
    # Hybrid is the default; with nothing embedded yet it is the keyword list (no model started).
    assert set(urls(search(client, headers, q="flour"))) == set(urls(body))
    assert not client.app.state.search.encoder.started  # type: ignore[attr-defined]

    snapshot = client.get(f"/api/v1/search/snapshots/{result['snapshot_id']}", headers=headers)
    assert snapshot.status_code == 200
    assert snapshot.json()["text"].startswith("Feed the starter")
    assert snapshot.json()["url"] == result["url"]
    missing = client.get("/api/v1/search/snapshots/00000000-0000-0000-0000-000000000000", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

    stats = client.get("/api/v1/search/stats", headers=headers).json()
    assert stats["documents"] == len(topic_pages()) and stats["pending_embeddings"] == len(topic_pages())


def test_filters_and_pages_through_the_api(client: TestClient) -> None:
    headers = auth_headers(client)
    bread, baguette = "http://recipes.example/bread", "https://recipes.example/baguette"
    assert urls(search(client, headers, q="flour", mode="keyword", **{"from": "2024-01-01"})) == [baguette]
    assert urls(search(client, headers, q="flour", mode="keyword", to="2023-01-10")) == [bread]
    assert urls(search(client, headers, q="flour", mode="keyword", filetype="txt")) == [bread]
    assert set(urls(search(client, headers, q="flour", mode="keyword", filetype="txt,docx"))) == {
        bread,
        baguette,
    }
    assert urls(search(client, headers, q="documents", mode="keyword", domain="search.example")) == [
        "https://blog.sub.search.example/bm25"
    ]
    assert urls(search(client, headers, q="documents", mode="keyword", domain="-search.example")) == [
        "https://docs.python.example/tutorial/indexing"
    ]
    assert urls(search(client, headers, q="backen", lang="de")) == ["https://kochen.example/brot"]
    assert search(client, headers, q="flour", page=2)["results"] == []


BAD_REQUESTS: list[tuple[dict[str, Any], int, str | None]] = [
    ({"q": "x", "domain": "not a domain"}, 400, "domain"),
    ({"q": "x", "filetype": "exe"}, 400, "filetype"),
    ({"q": "x", "lang": "english"}, 400, "lang"),
    ({"q": "x", "from": "yesterday"}, 400, "from"),
    ({"q": "x", "from": "2025-02-01", "to": "2025-01-01"}, 400, "from"),
    ({}, 422, None),
    ({"q": "x", "mode": "fuzzy"}, 422, None),
    ({"q": "x", "page": 0}, 422, None),
    ({"q": "x" * 501}, 422, None),
]


def test_bad_requests_get_clear_errors(client: TestClient) -> None:
    headers = auth_headers(client)
    for params, status, field in BAD_REQUESTS:
        response = client.get("/api/v1/search", params=params, headers=headers)
        assert response.status_code == status, params
        error = response.json()["error"]
        assert error["message"], params
        if field:
            assert error["details"]["field"] == field, params
    assert client.get("/api/v1/search", params={"q": "x"}).status_code == 401
    assert client.get("/api/v1/search/snapshots/x").status_code == 401


def test_web_search_returns_the_api_results(client: TestClient) -> None:
    service: SearchService = client.app.state.search  # type: ignore[attr-defined]
    results = client.portal.call(lambda: service.web_search("bake bread dough", limit=1))  # type: ignore[union-attr]
    assert len(results) == 1 and set(results[0]) == RESULT_KEYS


def test_search_counts_against_the_per_user_limit(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tiers = {
        "free": {"requests_per_minute": 3},
        "pro": {"requests_per_minute": 1000},
        "enterprise": {"requests_per_minute": -1},
    }
    monkeypatch.setenv("FIMUM_SEARCH__EMBEDDER", "off")
    with TestClient(create_app(load_settings(tiers=tiers)), raise_server_exceptions=False) as client:
        ada, bob = auth_headers(client, "ada@example.com"), auth_headers(client, "bob@example.com")
        codes = [client.get("/api/v1/search", params={"q": "x"}, headers=ada).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = client.get("/api/v1/search", params={"q": "x"}, headers=ada)
        assert limited.json()["error"]["code"] == "rate_limited" and "Retry-After" in limited.headers
        assert client.get("/api/v1/search", params={"q": "x"}, headers=bob).status_code == 200


@pytest.mark.slow  # two processes load the embedding model (~10-30 s on 2 shared cores)
def test_embedded_server_embeds_in_the_background_and_searches_by_meaning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FIMUM_SEARCH__REFRESH_S", "0.1")
    with TestClient(create_app(load_settings()), raise_server_exceptions=False) as client:
        headers = auth_headers(client)
        client.app.state.search.index.add(topic_pages())  # type: ignore[attr-defined]
        # Keyword search works at once, while the embedder process is still starting.
        assert search(client, headers, q="flour", mode="keyword")["total"] == 2
        deadline = time.monotonic() + 240
        stats: dict[str, Any] = {}
        while time.monotonic() < deadline:
            stats = client.get("/api/v1/search/stats", headers=headers).json()
            if stats["pending_embeddings"] == 0:
                break
            time.sleep(0.5)
        assert stats["pending_embeddings"] == 0, stats
        assert stats["embedder"] == "running"
        body = search(client, headers, q="how do search engines score results", mode="semantic")
        assert set(urls(body)[:2]) == {
            "https://docs.python.example/tutorial/indexing",
            "https://blog.sub.search.example/bm25",
        }
        assert client.app.state.search.encoder.started  # type: ignore[attr-defined]
        hybrid = search(client, headers, q="sourdough starter")
        assert urls(hybrid)[0] == "http://recipes.example/bread"
