"""The admin crawl API: start a crawl (its own process), watch it, stop it; admins only.
Both deployment modes: the job store is a folder (embedded) or Redis (distributed).

Slow (each crawl is a real crawler process: ~4 s of start-up).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fimum_ai.app import create_app
from fimum_ai.settings import load_settings
from tests.conftest import auth_headers, remember_secret
from tests.search_site import SiteServer, make_site

# Seconds on an idle machine; minutes when other jobs share its two cores.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CRAWLS = "/api/v1/admin/crawls"


@pytest.fixture
def client(backend: str) -> Iterator[TestClient]:
    with TestClient(create_app(load_settings())) as client:
        yield client


def admin_headers(client: TestClient) -> dict[str, str]:
    from fimum_ai.accounts.identifiers import parse_identifier
    from fimum_ai.accounts.users import create_user

    accounts = client.app.state.accounts  # type: ignore[attr-defined]
    with accounts.db.session() as session, session.begin():
        user_id = create_user(
            session, parse_identifier("root@example.com"), tier="enterprise", is_admin=True
        ).id
    pair = client.portal.call(accounts.sessions.start, user_id)  # type: ignore[union-attr]
    remember_secret(pair.refresh_token)
    return {"Authorization": f"Bearer {remember_secret(pair.access_token)}"}


def wait_for(
    client: TestClient, headers: dict[str, str], crawl_id: str, states: tuple[str, ...]
) -> dict[str, Any]:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        response = client.get(f"{CRAWLS}/{crawl_id}", headers=headers)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["state"] in states:
            return job
        time.sleep(0.5)
    raise AssertionError(f"crawl still {job['state']}: {job}")


def test_admins_start_and_watch_a_crawl(client: TestClient) -> None:
    admin = admin_headers(client)  # enterprise: polling is not rate-limited
    user = auth_headers(client, "user@example.com", tier="enterprise")
    with SiteServer(make_site(40)) as site:
        body = {"seeds": [site.url + "/"], "max_pages": 500, "depth": 4}
        assert client.post(CRAWLS, json=body).status_code == 401
        refused = client.post(CRAWLS, json=body, headers=user)  # an enterprise tier is no admin
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"

        started = client.post(CRAWLS, json=body, headers=admin)
        assert started.status_code == 202, started.text
        crawl_id = started.json()["id"]
        assert started.json()["state"] == "starting" and started.json()["seeds"] == [site.url + "/"]
        job = wait_for(client, admin, crawl_id, ("finished", "failed", "stopped"))

    assert job["state"] == "finished", job
    progress = job["progress"]
    assert progress["indexed"] >= 40 and progress["errors"] >= 1  # the broken link
    assert progress["breakdown"]["skipped_robots"] == 2
    assert job["finished_at"] and job["started_by"]
    listed = client.get(CRAWLS, headers=admin).json()["crawls"]
    assert [c["id"] for c in listed] == [crawl_id]
    again = client.post(f"{CRAWLS}/{crawl_id}/stop", headers=admin)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"

    # What the crawl indexed is searchable through the running server, without a restart.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = client.get("/api/v1/search", params={"q": "astronomy", "mode": "keyword"}, headers=user)
        if found.status_code == 200 and found.json()["results"]:
            break
        time.sleep(0.5)
    assert found.status_code == 200, found.text
    assert any(r["url"].startswith(site.url) for r in found.json()["results"])


def test_a_running_crawl_stops_when_asked(client: TestClient) -> None:
    admin = admin_headers(client)
    with SiteServer(make_site(200), delay_s=0.2) as site:
        started = client.post(CRAWLS, json={"seeds": [site.url + "/"]}, headers=admin)
        crawl_id = started.json()["id"]
        running = wait_for(client, admin, crawl_id, ("running",))
        assert running["max_pages"] == 10_000 and running["depth"] == 5  # the configured defaults
        stopping = client.post(f"{CRAWLS}/{crawl_id}/stop", headers=admin)
        assert stopping.status_code == 202 and stopping.json()["stop_requested"] is True
        job = wait_for(client, admin, crawl_id, ("stopped", "finished", "failed"))
    assert job["state"] == "stopped" and job["progress"]["reason"] == "stopped"
    assert job["progress"]["fetched"] < 200


BAD_REQUESTS = [
    ({"seeds": []}, "seeds"),
    ({"seeds": ["ftp://example.com/"]}, "seeds"),
    ({"seeds": ["https://example.com/"], "allow_domains": ["https://example.com/"]}, "allow_domains"),
    ({"seeds": ["https://example.com/"], "max_pages": 0}, "max_pages"),
    ({"seeds": ["https://example.com/"], "depth": 101}, "depth"),
    ({"seeds": ["https://example.com/"], "surprise": 1}, "surprise"),
]


def test_bad_crawl_requests_are_refused(client: TestClient) -> None:
    admin = admin_headers(client)
    for body, field in BAD_REQUESTS:
        response = client.post(CRAWLS, json=body, headers=admin)
        assert response.status_code == 422, body
        error = response.json()["error"]
        assert error["code"] == "validation_error" and error["details"]["errors"][0]["field"] == field
    assert client.get(CRAWLS, headers=admin).json() == {"crawls": []}  # nothing was started


def test_unknown_crawls_are_404(client: TestClient) -> None:
    admin = admin_headers(client)
    for crawl_id in ("3f0c1d0e-8e0a-4c55-9a43-0d6f4f1f9b8e", "../../etc/passwd", "nope"):
        response = client.get(f"{CRAWLS}/{crawl_id}", headers=admin)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
