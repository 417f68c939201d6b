"""A second live server for the chat e2e tests: the foundation's `fimum serve` setup (tests/e2e/
conftest.py) plus a chat endpoint, the OpenRouter stand-in (tests/peers/openrouter.py).

The foundation's session-wide `live_server` has no chat endpoint (it is what the "not configured"
test needs), so tests/e2e/test_chat.py overrides `live_server` for its module with
`chat_live_server`: same data-dir layout, tiny image model and SMTP peer, and
FIMUM_OPENROUTER_BASE_URL pointing at a stand-in the tests script per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import LiveServer, running_server
from tests.peers.openrouter import OpenRouterStandIn

STANDIN_KEY = "sk-or-e2e-standin"


@pytest.fixture(scope="module")
def openrouter_standin() -> Iterator[OpenRouterStandIn]:
    server = OpenRouterStandIn(api_key=STANDIN_KEY).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chat_live_server(e2e_models_dir: Path, openrouter_standin: OpenRouterStandIn) -> Iterator[LiveServer]:
    # FIMUM_OPENROUTER_API_KEY from the caller's environment is dropped with every FIMUM_* variable.
    chat_env = {
        # The chat endpoint: the stand-in, with a key it checks (like OpenRouter's 401 otherwise).
        "FIMUM_OPENROUTER_BASE_URL": openrouter_standin.base_url,
        "OPENROUTER_API_KEY": STANDIN_KEY,
        # The agent's logo on the tiny model: the smallest size the settings allow.
        "FIMUM_AGENT__IMAGE_WIDTH": "512",
        "FIMUM_AGENT__IMAGE_HEIGHT": "512",
    }
    with running_server(e2e_models_dir, chat_env, prefix="fimum-e2e-chat-") as server:
        yield server
