"""A second live server for the chat e2e tests: the foundation's `fimum serve` setup (tests/e2e/
conftest.py) plus a chat endpoint, the OpenRouter stand-in (tests/peers/openrouter.py).

The foundation's session-wide `live_server` has no chat endpoint (it is what the "not configured"
test needs), so tests/e2e/test_chat.py overrides `live_server` for its module with
`chat_live_server`: same data-dir layout, tiny image model and SMTP peer, and
FIMUM_OPENROUTER_BASE_URL pointing at a stand-in the tests script per test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import FIMUM, REPO, STATIC_DIR, LiveServer, _free_port, _require_build
from tests.peers.openrouter import OpenRouterStandIn
from tests.peers.smtp import SmtpServer

STANDIN_KEY = "sk-or-e2e-standin"


@pytest.fixture(scope="module")
def openrouter_standin() -> Iterator[OpenRouterStandIn]:
    server = OpenRouterStandIn(api_key=STANDIN_KEY).start()
    try:
        yield server
    finally:
        server.stop()


def _start(env: dict[str, str], data_dir: Path, smtp: SmtpServer) -> LiveServer:
    port = _free_port()
    process = subprocess.Popen(
        [FIMUM, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", data_dir / "data", smtp, env, process)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            server.log.append(line.rstrip())

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 180  # as the foundation's: a loaded CI machine starts slowly
    while True:
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as response:
                if json.load(response)["status"] == "ok":
                    return server
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"`fimum serve` did not start:\n{server.output()}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def chat_live_server(e2e_models_dir: Path, openrouter_standin: OpenRouterStandIn) -> Iterator[LiveServer]:
    _require_build()
    smtp = SmtpServer("plain").start()
    data_dir = Path(tempfile.mkdtemp(prefix="fimum-e2e-chat-"))
    # A copy of the build, as the foundation's server gets: a rebuild during the run cannot break it.
    shutil.copytree(STATIC_DIR, data_dir / "static")

    env = {key: value for key, value in os.environ.items() if not key.startswith(("FIMUM_", "IMAGE_"))} | {
        "FIMUM_CONFIG": str(REPO / "config" / "models.yaml"),
        "FIMUM_DATA_DIR": str(data_dir / "data"),
        "FIMUM_DEMO_MODEL_PATH": str(e2e_models_dir),
        "IMAGE_MODEL_BASE_PATH": str(data_dir / "no-sdxl-base"),
        "IMAGE_MODEL_REFINER_PATH": str(data_dir / "no-sdxl-refiner"),
        "IMAGE_MODEL_UPSCALER_PATH": str(data_dir / "no-sdxl-upscaler"),
        "IMAGE_DEVICE": "cpu",
        "FIMUM_SMTP_HOST": "127.0.0.1",
        "FIMUM_SMTP_PORT": str(smtp.port),
        "FIMUM_SMTP_TLS": "none",
        "FIMUM_LOG_FORMAT": "text",
        "FIMUM_WEB__STATIC_DIR": str(data_dir / "static"),
        "FIMUM_AUTH__OTP_REQUESTS_PER_IP": "1000/15 minutes",
        "HF_HUB_OFFLINE": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        # The chat endpoint: the stand-in, with a key it checks (like OpenRouter's 401 otherwise).
        "FIMUM_OPENROUTER_BASE_URL": openrouter_standin.base_url,
        "OPENROUTER_API_KEY": STANDIN_KEY,
        # The agent's logo on the tiny model: the smallest size the settings allow.
        "FIMUM_AGENT__IMAGE_WIDTH": "512",
        "FIMUM_AGENT__IMAGE_HEIGHT": "512",
    }
    env.pop("FIMUM_OPENROUTER_API_KEY", None)
    try:
        server = _start(env, data_dir, smtp)
    except BaseException:
        smtp.stop()
        raise
    try:
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(10)
        smtp.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
