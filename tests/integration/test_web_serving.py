"""The web app as the server delivers it: static files, client-route fallback, headers, /api/v1/about.

A small stand-in build (real files in a temp dir, FIMUM_WEB__STATIC_DIR) keeps these tests
independent of npm; tests/e2e drives the real build in Chromium.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fimum_ai.app import create_app
from fimum_ai.settings import load_settings

INDEX = (
    '<!doctype html><html lang="en"><head><script type="module" src="/assets/index-abc123.js"></script>'
    '</head><body><div id="root"></div></body></html>'
)
SCRIPT = "console.log('fimum');\n" * 100


@pytest.fixture
def static_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "static"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "assets" / "index-abc123.js").write_text(SCRIPT)
    (root / "favicon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (tmp_path / "secret.txt").write_text("outside the static dir")
    monkeypatch.setenv("FIMUM_WEB__STATIC_DIR", str(root))
    return root


@pytest.fixture
def client(static_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(load_settings()), raise_server_exceptions=False) as c:
        yield c


def _assert_html_headers(response: object) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    csp = headers["content-security-policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-cache"
    assert headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/", "/login", "/images/edit", "/gallery/5ed40313-7e08", "/no/such/page"])
def test_client_routes_get_the_app_with_a_strict_csp(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.text == INDEX
    _assert_html_headers(response)


def test_hashed_assets_are_cached_for_a_year_and_gzipped(client: TestClient) -> None:
    response = client.get("/assets/index-abc123.js", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert response.text == SCRIPT  # httpx decoded the gzip body
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["vary"] == "Accept-Encoding"
    assert int(response.headers["content-length"]) == len(gzip.compress(SCRIPT.encode(), 9, mtime=0))

    plain = client.get("/assets/index-abc123.js", headers={"accept-encoding": "identity"})
    assert plain.content == SCRIPT.encode()
    assert "content-encoding" not in plain.headers


def test_other_static_files_are_revalidated(client: TestClient) -> None:
    response = client.get("/favicon.svg")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.headers["cache-control"] == "no-cache"


def test_a_rebuild_is_served_without_a_restart(client: TestClient, static_dir: Path) -> None:
    assert client.get("/").text == INDEX
    (static_dir / "index.html").write_text("<!doctype html><title>rebuilt</title>")
    assert "rebuilt" in client.get("/gallery").text


@pytest.mark.parametrize("path", ["/assets/missing-123.js", "/favicon.png", "/robots.txt"])
def test_missing_files_are_json_404s_not_the_app(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "path", ["/api/v1/no-such-route", "/api/nothing", "/v1/nothing", "/healthz/x", "/metrics/x", "/docs/x"]
)
def test_api_prefixes_are_never_swallowed_by_the_app(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_api_routes_still_answer(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/openapi.json").json()["info"]["title"] == "Fimum AI"
    assert "swagger" in client.get("/docs").text.lower()
    assert client.get("/api/v1/me").status_code == 401


def test_no_escape_from_the_static_dir(client: TestClient) -> None:
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt"):
        response = client.get(path)
        assert "outside the static dir" not in response.text


def test_only_get_and_head(client: TestClient) -> None:
    head = client.head("/gallery")
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) > 0
    post = client.post("/gallery", json={})
    assert post.status_code == 405
    assert post.json()["error"]["code"] == "method_not_allowed"


def test_without_a_build_the_answer_says_how_to_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIMUM_WEB__STATIC_DIR", str(tmp_path / "empty"))
    with TestClient(create_app(load_settings()), raise_server_exceptions=False) as client:
        response = client.get("/images")
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "web_app_not_built"
        assert "make web" in error["message"]
        assert client.get("/healthz").status_code == 200


def test_about_names_the_licences_without_sign_in(client: TestClient) -> None:
    body = client.get("/api/v1/about").json()
    assert body["name"] == "Fimum AI"
    assert body["models"] == []  # nothing installed in this test
    licences = {licence["id"]: licence for licence in body["licences"]}
    sdxl = licences["creativeml-openrail-pp-m"]
    assert sdxl["name"] == "CreativeML Open RAIL++-M"
    assert "Attachment A" in sdxl["text"] and "Use Restrictions" in sdxl["text"]
    assert "Apache License" in licences["apache-2.0"]["text"]
    assert "CreativeML" in body["notes"]
    assert body["docs"]["swagger"] == "/docs"


def test_about_marks_the_demo_model(static_dir: Path, with_tiny_models: Path) -> None:
    with TestClient(create_app(load_settings()), raise_server_exceptions=False) as client:
        body = client.get("/api/v1/about").json()
    roles = {model["role"]: model for model in body["models"]}
    assert roles["base"]["demo"] is True
    assert roles["base"]["licence"] == "apache-2.0"
    assert roles["base"]["name"] == f"{with_tiny_models.name}/base"
