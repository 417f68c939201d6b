"""Schemathesis over the whole app's OpenAPI document: for every operation, generated requests
(valid and invalid) never get a 5xx, and every answer is one the schema documents — its status code,
content type, headers and body.

Each operation gets its own app (embedded mode, SQLite in the test's temp dir, the tiny demo model)
and a signed-in enterprise admin, so rate limits, the daily image quota and admin-only routes do not
turn every answer into the same 429/403. The sign-out routes get a fresh session each time, so one
`/auth/logout-all` does not sign the rest of the run out.

Image generation with the tiny model costs ~3-5 s per 512² image on these CPUs, so generated bodies
are made cheap before they are sent (sizes, steps and batch sizes inside their valid ranges are lowered
to the smallest valid value; invalid values are left alone so invalid requests stay invalid), one
request per job operation waits for its images, and the rest are sent as `async` jobs that are
cancelled at once. `POST /v1/images/generations` always waits (OpenAI's API has no async mode), so it
runs fewer examples. On paths with ids (`/jobs/{job_id}`, `/images/{image_id}`...) every other
valid request names a real job and image (made once per test by a quick x2 upscale of the example
image), the others keep their generated ids (404). The WebSocket route and /metrics are not in the
schema.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import ASGIClient, shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fimum_ai.accounts.identifiers import parse_identifier
from fimum_ai.accounts.users import create_user
from fimum_ai.app import create_app
from fimum_ai.images.requests import EXAMPLE_IMAGE_BASE64
from fimum_ai.settings import load_settings
from tests.conftest import REPO, remember_secret
from tests.peers.openrouter import OpenRouterStandIn

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]

# Job operations (which take `async`): at most this many requests each wait for their images.
SYNC_RUNS_PER_OPERATION = 1
IMAGE_JOB_PATHS = (
    "/api/v1/image/generate",
    "/api/v1/image/edit",
    "/api/v1/image/outpaint",
    "/api/v1/image/upscale",
)
OPENAI_PATH = "/v1/images/generations"

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "max-examples": 12,
            "deterministic": True,
            "database": "none",
            # Every request carries the test user's token (and `ignored_auth` probes without it), so a
            # generated request "without its required Authorization header" would be sent with it.
            "with-security-parameters": False,
        },
        # A request that waits for an image can queue behind a job being cancelled, on a busy CPU.
        "request-timeout": 60,
        "operations": [
            # Always synchronous (OpenAI's API has no async mode): every valid request generates an image.
            {
                "include-path": OPENAI_PATH,
                "generation": {"max-examples": 3},
                "phases": {"coverage": {"enabled": False}},
            },
        ],
    }
)


def _openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document, from an app that is built (in a temp dir) but never started.
    Loaded at collection, so each operation becomes its own test; every test then starts its own app."""
    with pytest.MonkeyPatch.context() as env, tempfile.TemporaryDirectory() as tmp:
        for name in list(os.environ):
            if name.startswith(("FIMUM_", "IMAGE_")):
                env.delenv(name)
        env.setenv("FIMUM_CONFIG", str(REPO / "config" / "models.yaml"))
        env.setenv("FIMUM_DATA_DIR", tmp)
        document: dict[str, Any] = json.loads(json.dumps(create_app(load_settings()).openapi()))
        return document


class CurrentApp:
    """The ASGI app Schemathesis calls: forwards to the app of the running test. Schemathesis runs its
    lifespan on first use and ends it when the test ends, so each test starts and stops its own app."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None, "no app: the test must use the `session` fixture"
        await self.app(scope, receive, send)


CURRENT_APP = CurrentApp()
schema = schemathesis.openapi.from_dict(_openapi_document(), config=CONFIG)
schema.app = CURRENT_APP  # what `from_asgi` does: requests go in-process to the app


class Session:
    """The app of one operation's run, its signed-in user, and how many requests waited for images."""

    def __init__(self, app: Any, user_id: str) -> None:
        self.app = app
        self.user_id = user_id
        self.sync_runs = 0
        self.id_requests = 0
        self._headers: dict[str, str] | None = None
        self._ids: dict[str, str] | None = None

    def headers(self, fresh: bool = False) -> dict[str, str]:
        """The bearer header; `fresh` signs in again (after a request that may have signed out)."""
        if self._headers is None or fresh:
            pair = asyncio.run(self.app.state.accounts.sessions.start(self.user_id))
            remember_secret(pair.access_token)
            remember_secret(pair.refresh_token)
            self._headers = {"Authorization": f"Bearer {pair.access_token}"}
        return self._headers

    def real_ids(self) -> dict[str, str]:
        """A real job and image of this user, made once (x2 upscale of the 64×64 example: ~1 s)."""
        if self._ids is None:
            body = {"image_base64": EXAMPLE_IMAGE_BASE64, "scale": 2}
            with ASGIClient(CURRENT_APP) as client:
                response = client.post("/api/v1/image/upscale", json=body, headers=self.headers())
            assert response.status_code == 200, response.text
            result = response.json()
            self._ids = {"job_id": result["id"], "image_id": result["images"][0]["id"]}
        return self._ids


@pytest.fixture
def session(
    with_tiny_models: Path, monkeypatch: pytest.MonkeyPatch, openrouter: OpenRouterStandIn
) -> Iterator[Session]:
    """A started app (lifespan run by Schemathesis' in-process client) with an enterprise admin."""
    # Chat answers from the OpenRouter stand-in (without an endpoint every chat route is a 503).
    monkeypatch.setenv("FIMUM_OPENROUTER_BASE_URL", openrouter.base_url)
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-contract")
    # Every request comes from one client address: the per-IP limits on anonymous requests and on
    # sign-in codes would soon answer 429 to everything, including Schemathesis' requests without
    # credentials that check the routes refuse them (401).
    monkeypatch.setenv("FIMUM_AUTH__ANONYMOUS_REQUESTS_PER_MINUTE", "-1")
    monkeypatch.setenv("FIMUM_AUTH__OTP_REQUESTS_PER_IP", "100000/minute")
    app = create_app(load_settings())
    CURRENT_APP.app = app
    with ASGIClient(CURRENT_APP) as client:  # starts the lifespan: migrations, job queue, ...
        assert client.get("/healthz").status_code == 200
    with app.state.accounts.db.session() as db, db.begin():
        user = create_user(db, parse_identifier("contract@example.com"), tier="enterprise", is_admin=True)
        user_id = user.id
    yield Session(app, user_id)
    shutdown_lifespans()  # Schemathesis' plugin has done it already; kept for a run without it
    CURRENT_APP.app = None


def _valid_int(value: Any, low: int, high: int, step: int = 1) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and low <= value <= high and value % step == 0
    )


def _lower(body: dict[str, Any], key: str, cheap: int, low: int, high: int, step: int = 1) -> None:
    """A valid but costly value becomes the cheapest valid one; a missing one gets it too."""
    if key not in body or (_valid_int(body[key], low, high, step) and body[key] > cheap):
        body[key] = cheap


def make_cheap(path: str, body: Any) -> None:
    if not isinstance(body, dict):
        return
    if path == OPENAI_PATH:
        size = body.get("size")
        match = re.fullmatch(r"(\d+)x(\d+)", size) if isinstance(size, str) else None
        if "size" not in body or (
            match and all(_valid_int(int(side), 512, 4096, 64) for side in match.groups())
        ):
            body["size"] = "512x512"
        _lower(body, "n", 1, 1, 8)
        _lower(body, "steps", 20, 20, 100)
        return
    if path not in IMAGE_JOB_PATHS:
        return
    _lower(body, "steps", 20, 20, 100)
    if path == "/api/v1/image/generate":
        _lower(body, "width", 512, 512, 4096, 64)
        _lower(body, "height", 512, 512, 4096, 64)
    if path != "/api/v1/image/upscale":
        _lower(body, "batch_size", 1, 1, 8)
    if path == "/api/v1/image/outpaint":
        for side in ("left", "right", "top", "bottom"):
            if _valid_int(body.get(side), 65, 2048, 8):
                body[side] = 64


def use_real_ids(case: Any, state: Session) -> None:
    """Every other valid request to a path with an id names a real job/image instead of a made-up one."""
    names = [name for name in ("job_id", "image_id") if name in (case.path_parameters or {})]
    if not names or case.meta is None or case.meta.generation.mode.is_negative:
        return
    state.id_requests += 1
    if state.id_requests % 2 == 0:
        ids = state.real_ids()
        for name in names:
            case.path_parameters[name] = ids[name]


def run_in_background(path: str, body: Any, state: Session) -> None:
    """All but the first few image requests are sent as async jobs (cancelled once answered)."""
    if path not in IMAGE_JOB_PATHS or not isinstance(body, dict):
        return
    if "async" in body and not isinstance(body["async"], bool):
        return  # an invalid value: leave the request invalid
    if body.get("async") is not True and state.sync_runs < SYNC_RUNS_PER_OPERATION:
        return
    body["async"] = True


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_every_operation_keeps_its_contract(case: Any, session: Session) -> None:
    state = session
    path = case.operation.path
    make_cheap(path, case.body)
    run_in_background(path, case.body, state)
    use_real_ids(case, state)
    signs_out = path in ("/api/v1/auth/logout", "/api/v1/auth/logout-all")
    response = case.call_and_validate(headers=state.headers(fresh=signs_out), checks=CHECKS)
    if response.status_code == 200:
        state.sync_runs += 1
    if path in IMAGE_JOB_PATHS and response.status_code == 202:
        job = response.json()
        with ASGIClient(CURRENT_APP) as client:
            cancelled = client.delete(f"/api/v1/image/jobs/{job['id']}", headers=state.headers())
        assert cancelled.status_code == 200, cancelled.text
