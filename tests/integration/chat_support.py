"""Helpers for the chat tests: the app behind a real uvicorn server on 127.0.0.1 (so streams,
disconnects and the `openai` SDK behave as in production), a signed-in user, SSE parsing."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from fimum_ai.accounts.identifiers import parse_identifier
from fimum_ai.accounts.users import create_user, find_by_identifier
from fimum_ai.app import create_app
from fimum_ai.settings import load_settings
from tests.conftest import remember_secret
from tests.peers.openrouter import OpenRouterStandIn

# A small catalogue for routing tests: two general models, a vision model and a coding model.
TEST_MODELS = [
    {"id": "test/general-a", "roles": ["general"], "priority": 0, "weight": 1.0, "context_length": 8192},
    {"id": "test/general-b", "roles": ["general"], "priority": 1, "weight": 1.0, "context_length": 8192},
    {
        "id": "test/eyes",
        "roles": ["vision"],
        "priority": 0,
        "weight": 1.0,
        "context_length": 8192,
        "vision": True,
    },
    {
        "id": "test/coder",
        "roles": ["coding"],
        "priority": 0,
        "weight": 1.0,
        "context_length": 8192,
        "tools": True,
    },
]


def configure_chat(
    monkeypatch: pytest.MonkeyPatch, openrouter: OpenRouterStandIn, catalogue: bool = True
) -> None:
    monkeypatch.setenv("FIMUM_OPENROUTER_BASE_URL", openrouter.base_url)
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
    monkeypatch.setenv("FIMUM_CHAT__FIRST_TOKEN_TIMEOUT_S", "15")
    if catalogue:
        monkeypatch.setenv("FIMUM_TEXT_MODELS", json.dumps(TEST_MODELS))


class LiveServer:
    """create_app(load_settings()) served by uvicorn on its own thread and event loop."""

    def __init__(self) -> None:
        self.app: FastAPI = create_app(load_settings())
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=lambda: self.loop.run_until_complete(self.server.serve(sockets=[sock])), daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the app did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, coroutine: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def sign_in(self, identifier: str = "ada@example.com", tier: str = "free") -> dict[str, str]:
        accounts = self.app.state.accounts
        with accounts.db.session() as session, session.begin():
            user = find_by_identifier(session, parse_identifier(identifier))
            if user is None:
                user = create_user(session, parse_identifier(identifier), tier=tier)
            user_id = user.id
        pair = self.run(accounts.sessions.start(user_id))
        remember_secret(pair.access_token)
        remember_secret(pair.refresh_token)
        return {"Authorization": f"Bearer {pair.access_token}"}

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)


def live_server() -> Iterator[LiveServer]:
    server = LiveServer()
    try:
        yield server
    finally:
        server.stop()


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse `event:`/`data:` frames (chat/events.py) from a line iterator."""
    for line in lines:
        if line.startswith("data: "):
            yield json.loads(line[len("data: ") :])


def read_events(
    client: httpx.Client, url: str, headers: dict[str, str], body: dict[str, Any]
) -> list[dict[str, Any]]:
    with client.stream("POST", url, json=body, headers=headers, timeout=30) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(sse_events(response.iter_lines()))
