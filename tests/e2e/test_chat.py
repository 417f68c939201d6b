"""The chat page in Chromium against a real `fimum serve` whose chat endpoint is the OpenRouter
stand-in (tests/e2e/chat_server.py), scripted per test.

FR-TEST-006 (code with a generated logo), a streamed conversation with model attribution, fallback,
highlighted code run in the sandbox, stop, the conversation list (search, rename, export, delete,
delete all), attachments (checked before upload, an image sent to a vision model), deep research
progress, the phone layout, and axe-core on each state.
"""

from __future__ import annotations

import io
import json
import re
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e.chat_server import chat_live_server, openrouter_standin  # noqa: F401 (fixtures)
from tests.e2e.conftest import LiveServer
from tests.peers.openrouter import OpenRouterStandIn, Reply

GENERAL_FIRST = "meta-llama/llama-3.3-70b-instruct:free"
RESEARCH_FAILING = "google/gemini-2.0-flash-exp:free"


@pytest.fixture(scope="module")
def live_server(chat_live_server: LiveServer) -> LiveServer:  # noqa: F811
    """This module's pages talk to the server with a chat endpoint."""
    return chat_live_server


@pytest.fixture
def standin(openrouter_standin: OpenRouterStandIn) -> Iterator[OpenRouterStandIn]:  # noqa: F811
    openrouter_standin.reset()
    default = openrouter_standin.default
    yield openrouter_standin
    openrouter_standin.default = default


@pytest.fixture(scope="module")
def catalogue(chat_live_server: LiveServer) -> dict[str, dict[str, Any]]:  # noqa: F811
    key = chat_live_server.api_key("chat-catalogue@example.com")
    request = urllib.request.Request(
        f"{chat_live_server.url}/api/v1/models", headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    assert body["configured"] is True
    return {model["id"]: model for model in body["models"]}


@pytest.fixture(scope="module")
def model_names(catalogue: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {model_id: model["name"] for model_id, model in catalogue.items()}


def send(page: Page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_label("Message", exact=True).press("Enter")


def last_answer(page: Page) -> Any:
    return page.locator("article.bubble-assistant").last


def wait_answered(page: Page, timeout: float = 30_000) -> Any:
    answer = last_answer(page)
    expect(answer).not_to_have_attribute("aria-busy", "true", timeout=timeout)
    return answer


def test_streamed_conversation_with_attribution_fallback_code_and_run(
    page: Page,
    login: Callable[..., None],
    axe: Callable[..., Any],
    screenshot: Callable[[Page, str], None],
    standin: OpenRouterStandIn,
    model_names: dict[str, str],
) -> None:
    # The first general model is rate limited: the router falls back and the bubble names who replied.
    standin.script(GENERAL_FIRST, Reply.rate_limited(retry_after=60))
    standin.default = lambda model: Reply.text(
        "Hello from the **stand-in**.\n\n```python\nprint(6 * 7)\n```\n", chunk_delay=0.02
    )
    login(page, "chat-stream@example.com")
    page.goto("/chat")
    expect(page.get_by_role("heading", name="Chat", level=1)).to_be_visible()
    expect(page.get_by_text(re.compile(r"\d+ of 13 models available"))).to_be_visible()
    axe(page)

    send(page, "Say hello and show Python")
    answer = wait_answered(page)
    replied = standin.received()[-1].model
    assert replied != GENERAL_FIRST and standin.received()[0].model == GENERAL_FIRST
    model_badge = answer.locator(".bubble-model")
    expect(model_badge).to_have_attribute("data-model", replied)
    expect(model_badge).to_have_text(model_names[replied])
    expect(answer.get_by_text(re.compile("rate limited: switched to"))).to_be_visible()
    expect(answer.locator("strong", has_text="stand-in")).to_be_visible()  # Markdown, not raw text
    expect(answer.locator("time")).to_have_count(1)
    # Highlighted (lowlight tokens as elements) with copy and Run; the sandbox's output inline.
    code = answer.locator(".code-block code")
    expect(code.locator("[class^='hljs-']").first).to_be_visible()
    expect(answer.get_by_role("button", name="Copy python code")).to_be_visible()
    expect(answer.get_by_role("button", name="Run python code")).to_be_visible()
    # Completion announced once in the live region (not every token).
    expect(page.get_by_test_id("announcer-polite")).to_contain_text(
        f"from {model_names[replied]} finished", timeout=5_000
    )
    # The conversation is in the list and its URL; a reload shows the stored answer the same way.
    conversations = page.get_by_role("navigation", name="Conversations")
    expect(conversations.locator(".conversation-open", has_text="Say hello and show Python")).to_be_visible()
    assert re.search(r"[?&]c=", page.url)
    axe(page)
    screenshot(page, "chat")
    page.reload()
    stored = wait_answered(page)
    expect(stored.locator(".bubble-model")).to_have_attribute("data-model", replied)
    expect(stored.get_by_text(re.compile("rate limited: switched to"))).to_be_visible()
    expect(page.locator("article.bubble-user")).to_contain_text("Say hello and show Python")


def test_stop_keeps_the_partial_answer(
    page: Page, login: Callable[..., None], standin: OpenRouterStandIn
) -> None:
    words = " ".join(f"word{i}" for i in range(300))
    standin.default = lambda model: Reply.text(
        words, chunks=tuple(f"{w} " for w in words.split()), chunk_delay=0.1
    )
    login(page, "chat-stop@example.com")
    page.goto("/chat")
    send(page, "Count slowly")
    answer = last_answer(page)
    expect(answer).to_contain_text("word3")
    page.get_by_role("button", name="Stop").click()
    expect(answer.locator(".bubble-status")).to_have_text("Stopped", timeout=10_000)
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    upstream = standin.received()[-1]
    assert standin.wait_closed(upstream, timeout=10), "the upstream request was not cancelled"
    assert "word299" not in (answer.text_content() or "")
    # Stored as cancelled with its partial text.
    page.reload()
    stored = wait_answered(page)
    expect(stored.locator(".bubble-status")).to_have_text("Stopped")
    expect(stored).to_contain_text("word3")


def test_conversation_list_search_rename_export_delete(
    page: Page, login: Callable[..., None], axe: Callable[..., Any], standin: OpenRouterStandIn
) -> None:
    standin.default = lambda model: Reply.text("Noted.")
    login(page, "chat-list@example.com")
    page.goto("/chat")
    send(page, "Apples are red")
    wait_answered(page)
    page.get_by_role("button", name="New conversation").click()
    expect(page.locator("article")).to_have_count(0)
    send(page, "Bananas are yellow")
    wait_answered(page)
    panel = page.get_by_role("navigation", name="Conversations")
    expect(panel.locator(".conversation-open")).to_have_count(2)

    panel.get_by_label("Search conversations").fill("banana")
    expect(panel.locator(".conversation-open")).to_have_count(1)
    expect(panel.locator(".conversation-open")).to_contain_text("Bananas are yellow")
    panel.get_by_label("Search conversations").fill("")
    expect(panel.locator(".conversation-open")).to_have_count(2)

    panel.get_by_role("button", name="Rename “Bananas are yellow”").click()
    title_field = panel.get_by_label("New title for “Bananas are yellow”")
    expect(title_field).to_be_focused()
    title_field.fill("Fruit colours")
    title_field.press("Enter")
    expect(panel.get_by_role("button", name=re.compile("^Fruit colours"))).to_be_visible()
    expect(page.get_by_role("heading", name="Fruit colours", level=2)).to_be_visible()

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export Markdown").click()
    exported = download_info.value
    text = Path(exported.path()).read_text(encoding="utf-8")
    assert "Bananas are yellow" in text and "Noted." in text
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export JSON").click()
    body = json.loads(Path(download_info.value.path()).read_text(encoding="utf-8"))
    assert "Bananas are yellow" in json.dumps(body)

    panel.get_by_role("button", name="Delete “Fruit colours”").click()
    dialog = page.get_by_role("dialog", name="Delete this conversation?")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    axe(page)
    dialog.get_by_role("button", name="Delete").click()
    expect(panel.locator(".conversation-open")).to_have_count(1)

    panel.get_by_text("All conversations").click()
    panel.get_by_role("button", name="Delete all…").click()
    page.get_by_role("dialog", name="Delete every conversation?").get_by_role(
        "button", name="Delete all"
    ).click()
    expect(panel.get_by_text("No conversations yet.")).to_be_visible()
    page.reload()
    expect(
        page.get_by_role("navigation", name="Conversations").get_by_text("No conversations yet.")
    ).to_be_visible()


def test_attachments_checked_before_upload_and_image_goes_to_a_vision_model(
    page: Page,
    login: Callable[..., None],
    standin: OpenRouterStandIn,
    catalogue: dict[str, dict[str, Any]],
    tmp_path: Path,
) -> None:
    standin.default = lambda model: Reply.text("A red pixel.")
    login(page, "chat-files@example.com")
    page.goto("/chat")
    file_input = page.locator("input[type=file]")
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if r.url.endswith("/chat/attachments") else None)
    huge = tmp_path / "huge.pdf"  # a path, not a buffer: Chromium reads it, nothing crosses the wire
    huge.write_bytes(b"%PDF" + b"0" * (10 * 1024 * 1024))
    file_input.set_input_files(huge)
    expect(page.get_by_role("alert")).to_contain_text("the limit is 10 MB")
    assert uploads == [], "an over-size file was sent"

    pixel = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(pixel, format="PNG")
    file_input.set_input_files([{"name": "pixel.png", "mimeType": "image/png", "buffer": pixel.getvalue()}])
    attachments = page.get_by_role("list", name="Attachments")
    expect(attachments).to_contain_text("pixel.png")
    expect(attachments.locator(".attachment-uploading")).to_have_count(0, timeout=30_000)
    expect(attachments.locator(".attachment-failed")).to_have_count(0)
    expect(attachments.locator(".attachment-ready")).to_have_count(1)
    send(page, "What is in this picture?")
    wait_answered(page)
    request = standin.received()[-1]
    parts = request.messages[-1]["content"]
    assert any(part.get("type") == "image_url" for part in parts), parts
    assert catalogue[request.model]["vision"] is True
    # The bubble shows the picture as it was sent (fetched with the session's token), also after a
    # reload, from the stored conversation.
    loaded = """() => { const i = document.querySelector('article.bubble-user img');
                       return i !== null && i.complete && i.naturalWidth === 64; }"""
    for reload in (False, True):
        if reload:
            page.reload()
        bubble = page.locator("article.bubble-user")
        expect(bubble.get_by_role("img", name="Attached image pixel.png")).to_be_visible()
        page.wait_for_function(loaded)
        expect(bubble).to_contain_text("pixel.png")


def test_agent_answers_with_code_and_a_generated_logo(
    page: Page,
    login: Callable[..., None],
    axe: Callable[..., Any],
    screenshot: Callable[[Page, str], None],
    standin: OpenRouterStandIn,
) -> None:
    """FR-TEST-006: a user asks for code that includes a logo; the answer shows the code and the
    logo the image engine (tiny model) generated for it."""
    replies = deque(
        [
            Reply.tools(
                ("generate_image", {"prompt": "Minimal logo for a bakery called Crumb", "style": "logo"})
            ),
            Reply.text(
                "Here is your page:\n\n```html\n<!doctype html>\n<h1>Crumb</h1>\n"
                '<img src="logo.png" alt="Crumb logo">\n```\n'
            ),
        ]
    )
    standin.default = lambda model: replies.popleft() if replies else Reply.text("(no more replies)")
    login(page, "chat-agent@example.com")
    page.goto("/chat")
    page.get_by_label("Agent (code, images, tools)").check()
    send(page, "Write a landing page for my bakery Crumb that includes a logo")
    answer = last_answer(page)
    expect(answer.locator(".tool-name", has_text="generate_image")).to_be_visible()
    answer = wait_answered(page, timeout=300_000)
    expect(answer.locator(".tool-step-done")).to_have_count(1)
    image = answer.locator(".answer-images img")
    expect(image).to_have_count(1, timeout=30_000)
    expect(image).to_have_attribute("alt", "Image generated for this answer")
    page.wait_for_function(
        "() => { const i = document.querySelector('.answer-images img');"
        " return i && i.complete && i.naturalWidth === 512; }"
    )
    expect(answer.get_by_role("link", name="Open in gallery")).to_have_attribute(
        "href", re.compile(r"^/gallery/")
    )
    expect(answer.locator(".code-block-lang")).to_have_text("html")
    expect(answer.locator(".code-block code")).to_contain_text("<h1>Crumb</h1>")
    first = standin.received()[0].body
    assert "generate_image" in [tool["function"]["name"] for tool in first.get("tools", [])]
    axe(page)
    screenshot(page, "chat-agent")
    page.reload()
    stored = wait_answered(page)
    expect(stored.locator(".answer-images img")).to_have_count(1, timeout=15_000)
    expect(stored.locator(".code-block code")).to_contain_text("<h1>Crumb</h1>")


def test_research_shows_each_model_then_the_synthesis(
    page: Page, login: Callable[..., None], axe: Callable[..., Any], standin: OpenRouterStandIn
) -> None:
    standin.script(RESEARCH_FAILING, Reply.server_error())
    standin.default = lambda model: Reply.text(f"Findings of {model}.", delay=1.5)
    login(page, "chat-research@example.com")
    page.goto("/chat")
    page.get_by_label("Deep research").check()
    page.get_by_label("Message", exact=True).fill("How do SQLite and PostgreSQL lock?")
    page.get_by_role("button", name="Research", exact=True).click()
    tracks = page.locator(".research-track")
    expect(tracks.first).to_be_visible()
    expect(page.get_by_text(re.compile("researching"))).not_to_have_count(0)
    answer = wait_answered(page, timeout=60_000)
    expect(tracks).to_have_count(4)
    expect(answer.locator(".research-done")).to_have_count(3)
    expect(answer.locator(".research-error")).to_have_count(1)
    expect(answer.get_by_text("without live sources")).to_be_visible()
    expect(answer.locator(":scope > .markdown")).to_contain_text("Findings of")
    axe(page)

    # The research is stored in a conversation of its own: after a reload it reads back the same.
    page.wait_for_url(re.compile(r"/chat\?c="))
    expect(page.get_by_role("navigation", name=re.compile("Conversations", re.I))).to_contain_text(
        "How do SQLite and PostgreSQL lock?"
    )
    page.reload()
    expect(page.locator("article.bubble-user")).to_contain_text("How do SQLite and PostgreSQL lock?")
    expect(tracks).to_have_count(4)
    expect(page.locator(".research-done")).to_have_count(3)
    expect(page.locator(".research-error")).to_have_count(1)
    expect(page.get_by_text("without live sources")).to_be_visible()
    expect(page.locator(".markdown", has_text="Findings of")).not_to_have_count(0)


def test_phone_layout_and_voice_button(
    phone_page: Page, login: Callable[..., None], axe: Callable[..., Any]
) -> None:
    login(phone_page, "chat-phone@example.com")
    phone_page.goto("/chat")
    expect(phone_page.get_by_label("Message", exact=True)).to_be_visible()
    # Measured with the model list in (its longest option name is what would widen the page).
    expect(phone_page.get_by_text(re.compile(r"\d+ of 13 models available"))).to_be_visible()
    width = phone_page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360, f"the chat page scrolls sideways on a phone ({width} px)"
    voice = phone_page.get_by_role("button", name=re.compile("Voice"))
    has_speech = phone_page.evaluate(
        "() => 'SpeechRecognition' in window || 'webkitSpeechRecognition' in window"
    )
    if has_speech:
        expect(voice).to_be_enabled()
        expect(voice).to_have_attribute("aria-keyshortcuts", "Control+Shift+M")
    else:
        expect(voice).to_be_disabled()
        expect(phone_page.get_by_text("Voice input is unavailable")).to_be_visible()
    axe(phone_page)


def test_run_button_shows_the_sandbox_output_inline(
    page: Page, login: Callable[..., None], standin: OpenRouterStandIn, live_server: LiveServer
) -> None:
    standin.default = lambda model: Reply.text("```python\nprint(6 * 7)\n```\n")
    login(page, "chat-run@example.com")
    page.goto("/chat")
    send(page, "Print the answer")
    answer = wait_answered(page)
    answer.get_by_role("button", name="Run python code").click()
    try:
        expect(answer.get_by_label("Program output")).to_have_text("42\n", timeout=20_000)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\nserver log:\n{live_server.output(40)}") from None
    expect(answer.get_by_text(re.compile(r"Finished \(exit code 0\)"))).to_be_visible()
