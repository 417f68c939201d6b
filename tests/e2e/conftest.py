"""End-to-end harness: a real `fimum serve` on the tiny model, Debian's Chromium driven by Playwright.

Fixtures for tests/e2e/test_*.py:
- `live_server` (session): the server's `url`, `data_dir`, `smtp` (the SMTP peer the sign-in codes
  go to) and `output()` (its log, for failure messages).
- `page` (per test): a fresh browser context at 1280x800. Uncaught page errors and Content-Security-
  Policy violations fail the test at teardown.
- `phone_page`: the same at 360x740 (touch, mobile).
- `live_server.api_key(email, tier)`: a personal API key, to prepare state through the API.
- `login(page, email, tier="free")`: signs in through the real login page with the code from the
  SMTP peer; the user is created with `tier` first.
- `axe(page, context=None)`: runs axe-core (web/node_modules/axe-core) and fails on serious or
  critical violations, printing each one.
- `screenshot(page, name)`: docs/images/<name>.png, only when FIMUM_SCREENSHOTS=1.

Needs the built web app (`make web`) and /usr/bin/chromium (`.ci/run` installs it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, sync_playwright

from tests.peers.smtp import SmtpServer

REPO = Path(__file__).resolve().parents[2]
STATIC_DIR = REPO / "src" / "fimum_ai" / "static"
AXE_JS = REPO / "web" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / "docs" / "images"
CHROMIUM = os.environ.get("FIMUM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FIMUM = str(Path(sys.executable).with_name("fimum"))
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
CODE_RE = re.compile(r"\b(\d{6})\b")
# Anything slower than this in the UI is a bug worth a failure, not a hang.
DEFAULT_TIMEOUT_MS = 15_000
# Read at import: the autouse clean_env fixture removes FIMUM_* variables before each test.
TAKE_SCREENSHOTS = os.environ.get("FIMUM_SCREENSHOTS") == "1"
# A demo model built before (`fimum models make-tiny DIR`) saves a minute per local run.
PREBUILT_MODELS = os.environ.get("FIMUM_E2E_TINY_MODELS")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Real browser against a real server: seconds per test, not milliseconds (`-m "not slow"` skips).
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    smtp: SmtpServer
    env: dict[str, str]
    process: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)

    def output(self, lines: int = 60) -> str:
        return "\n".join(self.log[-lines:])

    def latest_code(self, recipient: str, after: int, timeout: float = 15.0) -> str:
        """The code in the first mail to `recipient` beyond the first `after` ones."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mails = self.mails_to(recipient)
            if len(mails) > after:
                match = CODE_RE.search(mails[after].part("plain"))
                assert match, f"no code in the mail: {mails[after].part('plain')!r}"
                return match.group(1)
            time.sleep(0.05)
        raise AssertionError(
            f"no sign-in mail reached {recipient} in {timeout} s; server log:\n{self.output()}"
        )

    def mails_to(self, recipient: str) -> list[Any]:
        return [m for m in self.smtp.messages if recipient.lower() in (r.lower() for r in m.rcpt_tos)]

    def set_tier(self, email: str, tier: str) -> None:
        """Create the user with this tier, or change its tier (the server sees it within 2 s)."""
        from fimum_ai.accounts.identifiers import parse_identifier
        from fimum_ai.accounts.users import create_user, find_by_identifier
        from fimum_ai.db.session import Database
        from fimum_ai.settings import Settings

        database = Database(Settings(data_dir=self.data_dir))
        try:
            with database.session() as session, session.begin():
                identifier = parse_identifier(email)
                user = find_by_identifier(session, identifier)
                if user is None:
                    create_user(session, identifier, tier=tier)
                else:
                    user.tier = tier
        finally:
            database.dispose()

    def api_key(self, email: str, tier: str = "free") -> str:
        """A personal API key for this user (created if needed), for preparing state through the API."""
        from fimum_ai.accounts import api_keys
        from fimum_ai.accounts.identifiers import parse_identifier
        from fimum_ai.accounts.users import find_by_identifier
        from fimum_ai.db.session import Database
        from fimum_ai.settings import Settings

        self.set_tier(email, tier)
        database = Database(Settings(data_dir=self.data_dir))
        try:
            with database.session() as session, session.begin():
                user = find_by_identifier(session, parse_identifier(email))
                assert user is not None
                _row, key = api_keys.create_key(session, user.id, "e2e")
                return key
        finally:
            database.dispose()


def _require_build() -> None:
    if not (STATIC_DIR / "index.html").is_file():
        pytest.fail("the web app is not built: run `make web` (tests/e2e drive the real build)")
    if not AXE_JS.is_file():
        pytest.fail(f"{AXE_JS} is missing: run `make web` (npm ci installs axe-core)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does it)")


@pytest.fixture(scope="session")
def e2e_models_dir(request: pytest.FixtureRequest) -> Path:
    if PREBUILT_MODELS and Path(PREBUILT_MODELS, "base", "model_index.json").is_file():
        return Path(PREBUILT_MODELS)
    path: Path = request.getfixturevalue("tiny_models_dir")
    return path


@contextlib.contextmanager
def running_server(
    e2e_models_dir: Path, extra_env: dict[str, str] | None = None, prefix: str = "fimum-e2e-"
) -> Iterator[LiveServer]:
    """A real `fimum serve` on a free port with its own data dir, the tiny model and an SMTP peer;
    `extra_env` adds to (or overrides) its environment (the chat tests' OpenRouter stand-in)."""
    _require_build()
    smtp = SmtpServer("plain").start()
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    # The server gets a copy of the build: a rebuild during the run cannot pull files from under it.
    shutil.copytree(STATIC_DIR, data_dir / "static")
    port = _free_port()
    env = (
        {key: value for key, value in os.environ.items() if not key.startswith(("FIMUM_", "IMAGE_"))}
        | {
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
            # Every browser here is 127.0.0.1: the per-IP code limit would stop the suite, not a person.
            "FIMUM_AUTH__OTP_REQUESTS_PER_IP": "1000/15 minutes",
            "HF_HUB_OFFLINE": "1",
            "OMP_WAIT_POLICY": "PASSIVE",
        }
        | (extra_env or {})
    )
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
    # Generous: on a loaded two-core CI machine the first start (imports, migrations) can take a minute.
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as response:
                if json.load(response)["status"] == "ok":
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            smtp.stop()
            raise AssertionError(f"`fimum serve` did not start:\n{server.output()}")
        time.sleep(0.2)
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        smtp.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def live_server(e2e_models_dir: Path) -> Iterator[LiveServer]:
    with running_server(e2e_models_dir) as server:
        yield server


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    _require_build()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    yield browser
    browser.close()


class PageProblems:
    """Uncaught exceptions and CSP violations seen by a page: each is a bug."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and "Content Security Policy" in message.text:
                self.errors.append(f"CSP: {message.text}")

        page.on("console", on_console)


def _context(browser: Browser, live_server: LiveServer, **options: Any) -> BrowserContext:
    context = browser.new_context(base_url=live_server.url, locale="en-GB", timezone_id="UTC", **options)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    return context


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    context = _context(browser, live_server, viewport=DESKTOP)
    problems = PageProblems()
    context.on("page", problems.watch)
    page = context.new_page()
    yield page
    context.close()
    assert not problems.errors, "the page had errors:\n" + "\n".join(problems.errors)


@pytest.fixture
def phone_page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    context = _context(
        browser, live_server, viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    problems = PageProblems()
    context.on("page", problems.watch)
    page = context.new_page()
    yield page
    context.close()
    assert not problems.errors, "the page had errors:\n" + "\n".join(problems.errors)


@pytest.fixture
def login(live_server: LiveServer) -> Callable[..., None]:
    """Sign in through the login page: e-mail, the code from the SMTP peer, auto-submit."""

    def sign_in(page: Page, email: str, tier: str = "free") -> None:
        live_server.set_tier(email, tier)
        before = len(live_server.mails_to(email))
        page.goto("/login")
        page.get_by_label("E-mail address or phone number").fill(email)
        page.get_by_role("button", name="Send code").click()
        code = live_server.latest_code(email, after=before)
        page.get_by_label("6-digit code").fill(code)  # six digits submit on their own
        page.wait_for_url(lambda url: "/login" not in url)
        page.get_by_role("button", name="Sign out", include_hidden=True).wait_for(state="attached")

    return sign_in


@pytest.fixture
def axe() -> Callable[..., list[dict[str, Any]]]:
    """Run axe-core on the page (or a CSS selector within it); fail on serious/critical violations."""
    source = AXE_JS.read_text(encoding="utf-8")

    def check(page: Page, context: str | None = None) -> list[dict[str, Any]]:
        # evaluate() runs through the DevTools protocol, which the page's CSP does not restrict.
        if not page.evaluate("() => typeof window.axe === 'object'"):
            page.evaluate(source)
        result: dict[str, Any] = page.evaluate(
            """async (context) => await window.axe.run(context ? document.querySelector(context) : document,
                   { resultTypes: ['violations'], runOnly: { type: 'tag',
                     values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } })""",
            context,
        )
        violations: list[dict[str, Any]] = result["violations"]
        blocking = [v for v in violations if v["impact"] in ("serious", "critical")]
        if blocking:
            lines = []
            for violation in blocking:
                lines.append(f"[{violation['impact']}] {violation['id']}: {violation['help']}")
                lines += [
                    f"    {node['target']}: {node['failureSummary']}" for node in violation["nodes"][:5]
                ]
            pytest.fail(f"axe-core on {page.url}:\n" + "\n".join(lines))
        return violations

    return check


@pytest.fixture
def screenshot() -> Callable[[Page, str], None]:
    """docs/images/<name>.png for the README, only when FIMUM_SCREENSHOTS=1 (`make screenshots`)."""

    def take(page: Page, name: str) -> None:
        if not TAKE_SCREENSHOTS:
            return
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False, animations="disabled")

    return take
