"""The OpenAI-compatible endpoints driven by the `openai` SDK (streaming and not, tools, errors),
and attachments: images as OpenAI image parts to vision models only; PDF, DOCX, TXT, MD to text,
truncated to the model's context with a visible note; bad uploads refused clearly."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

from tests.integration.chat_support import LiveServer, configure_chat, live_server, read_events
from tests.peers.openrouter import OpenRouterStandIn, Reply


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, openrouter: OpenRouterStandIn) -> Iterator[LiveServer]:
    configure_chat(monkeypatch, openrouter)
    yield from live_server()


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def sdk(server: LiveServer, headers: dict[str, str]) -> openai.OpenAI:
    token = headers["Authorization"].removeprefix("Bearer ")
    return openai.OpenAI(base_url=server.url + "/v1", api_key=token, max_retries=0)


# --- /v1 with the openai SDK ---------------------------------------------------------------------


def test_openai_sdk_non_streaming_and_streaming(server: LiveServer, openrouter: OpenRouterStandIn) -> None:
    client = sdk(server, server.sign_in())
    openrouter.script("test/general-a", Reply.server_error())
    openrouter.script("test/general-b", Reply.text("Hello from b."), Reply.text("Streamed hello from b."))
    completion = client.chat.completions.create(
        model="fimum/auto", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "Hello from b."
    assert completion.model == "test/general-b"  # who actually replied
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    stream = client.chat.completions.create(
        model="test/general-b",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
        temperature=0.2,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Streamed hello from b."
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    assert openrouter.received("test/general-b")[-1].body["temperature"] == 0.2
    listed = [m.id for m in client.models.list()]
    assert "fimum/auto" in listed and "fimum/coding" in listed and "test/eyes" in listed


def test_openai_sdk_tool_calls_both_modes(server: LiveServer, openrouter: OpenRouterStandIn) -> None:
    client = sdk(server, server.sign_in())
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    call = Reply.tools(("get_weather", {"city": "Oslo"}))
    openrouter.script("test/coder", call, call)
    messages = [{"role": "user", "content": "weather in Oslo?"}]
    completion = client.chat.completions.create(model="fimum/coding", messages=messages, tools=tools)  # type: ignore[arg-type]
    calls = completion.choices[0].message.tool_calls
    assert completion.choices[0].finish_reason == "tool_calls"
    assert calls is not None and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]
    stream = client.chat.completions.create(model="fimum/coding", messages=messages, tools=tools, stream=True)  # type: ignore[arg-type]
    streamed = [tc for c in stream if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert streamed[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(streamed[0].function.arguments) == {"city": "Oslo"}  # type: ignore[union-attr, arg-type]
    assert openrouter.received("test/coder")[0].body["tools"] == tools


def test_openai_sdk_errors(server: LiveServer, openrouter: OpenRouterStandIn) -> None:
    client = sdk(server, server.sign_in())
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="nobody/nothing", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["code"] == "unknown_model"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="fimum/auto", messages=[{"role": "wizard", "content": "hi"}])  # type: ignore[misc, list-item]
    openrouter.script("test/general-a", Reply.server_error())
    openrouter.script("test/general-b", Reply.server_error())
    with pytest.raises(openai.InternalServerError) as unavailable:
        client.chat.completions.create(
            model="fimum/auto", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert unavailable.value.status_code == 503
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="fim_wrong", max_retries=0).models.list()


# --- attachments ---------------------------------------------------------------------------------


def png_bytes(size: tuple[int, int] = (96, 80)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def pdf_bytes(text: str) -> bytes:
    """A one-page PDF with `text` in Helvetica (built by hand: no PDF writer with fonts is installed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def docx_bytes(*paragraphs: str) -> bytes:
    import docx

    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "cell one", "cell two"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def upload(http: httpx.Client, headers: dict[str, str], name: str, data: bytes) -> httpx.Response:
    return http.post("/api/v1/chat/attachments", files={"file": (name, data)}, headers=headers)


def test_images_go_as_image_parts_to_a_vision_model_only(
    server: LiveServer, http: httpx.Client, openrouter: OpenRouterStandIn
) -> None:
    headers = server.sign_in()
    created = upload(http, headers, "red.png", png_bytes())
    assert created.status_code == 201, created.text
    image = created.json()
    assert (image["kind"], image["media_type"]) == ("image", "image/png")
    openrouter.script("test/eyes", Reply.text("A red rectangle."))
    events = read_events(
        http, "/api/v1/chat/new/messages", headers, {"content": "What is this?", "attachments": [image["id"]]}
    )
    assert events[-1] == {"type": "done", "model": "test/eyes", "finish_reason": "stop"}
    assert openrouter.models_asked() == ["test/eyes"]  # not the general models
    parts = openrouter.received("test/eyes")[0].messages[-1]["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    url = parts[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size == (96, 80)
    # The file is stored under the data dir and erased with everything else.
    stored = list(Path(server.app.state.settings.data_dir, "chat").rglob("*.png"))
    assert len(stored) == 1
    message = http.get(f"/api/v1/chat/conversations/{events[0]['conversation_id']}", headers=headers).json()
    assert message["messages"][0]["attachments"][0]["filename"] == "red.png"
    erased = http.delete("/api/v1/chat/conversations", params={"confirm": "true"}, headers=headers).json()
    assert erased["attachments"] == 1 and not stored[0].exists()


def test_the_uploader_can_read_an_attachment_back_and_nobody_else(
    server: LiveServer, http: httpx.Client
) -> None:
    headers = server.sign_in()
    image = upload(http, headers, "red.png", png_bytes()).json()
    document = upload(http, headers, "plain.txt", "Grüße aus Köln".encode()).json()

    got = http.get(f"/api/v1/chat/attachments/{image['id']}/file", headers=headers)
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(got.content)) as picture:
        assert picture.format == "PNG" and picture.size == (96, 80)
    assert got.headers["cache-control"].startswith("private")
    text = http.get(f"/api/v1/chat/attachments/{document['id']}/file", headers=headers)
    assert text.status_code == 200 and text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.text == "Grüße aus Köln"

    stranger = server.sign_in("eve@example.com")
    refused = http.get(f"/api/v1/chat/attachments/{image['id']}/file", headers=stranger)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    assert http.get(f"/api/v1/chat/attachments/{image['id']}/file").status_code == 401
    missing = http.get("/api/v1/chat/attachments/no-such-id/file", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_an_explicit_text_model_refuses_images(server: LiveServer, http: httpx.Client) -> None:
    headers = server.sign_in()
    image = upload(http, headers, "red.png", png_bytes()).json()
    response = http.post(
        "/api/v1/chat/new/messages",
        json={"content": "What is this?", "attachments": [image["id"]], "model": "test/general-a"},
        headers=headers,
    )
    assert response.status_code == 503 and response.json()["error"]["code"] == "models_unavailable"
    assert "does not accept images" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("report.pdf", pdf_bytes("Quarterly revenue grew 12 percent"), "Quarterly revenue grew 12 percent"),
        ("notes.docx", docx_bytes("First paragraph.", "Second paragraph."), "Second paragraph."),
        ("readme.md", b"# Title\n\nSome *markdown* text.", "Some *markdown* text."),
        ("plain.txt", "Grüße aus Köln".encode(), "Grüße aus Köln"),
    ],
)
def test_documents_become_text_in_the_message(
    server: LiveServer,
    http: httpx.Client,
    openrouter: OpenRouterStandIn,
    name: str,
    data: bytes,
    expected: str,
) -> None:
    headers = server.sign_in()
    created = upload(http, headers, name, data)
    assert created.status_code == 201, created.text
    assert created.json()["kind"] == "document" and created.json()["chars"] >= len(expected)
    read_events(
        http,
        "/api/v1/chat/new/messages",
        headers,
        {"content": "Summarise", "attachments": [created.json()["id"]]},
    )
    content = openrouter.received("test/general-a")[0].messages[-1]["content"]
    assert isinstance(content, str)
    assert f'<document name="{name}">' in content and expected in content
    assert content.endswith("Summarise")
    if name.endswith(".docx"):
        assert "cell one | cell two" in content


def test_long_documents_are_truncated_with_a_visible_note(
    server: LiveServer, http: httpx.Client, openrouter: OpenRouterStandIn
) -> None:
    headers = server.sign_in()
    # The test models have 8,192 tokens of context, 4,096 kept for the answer: ~12,000 characters.
    text = "".join(f"line {i:06d} of a very long log file\n" for i in range(20_000))
    document = upload(http, headers, "big.log.txt", text.encode()).json()
    events = read_events(
        http,
        "/api/v1/chat/new/messages",
        headers,
        {"content": "Any errors?", "attachments": [document["id"]]},
    )
    notes = [e for e in events if e["type"] == "progress" and e["stage"] == "document_truncated"]
    assert len(notes) == 1 and "big.log.txt was truncated" in notes[0]["detail"]
    content = openrouter.received("test/general-a")[0].messages[-1]["content"]
    assert "[Note: big.log.txt was truncated to its first" in content
    assert len(content) < 13_000 < len(text)
    stored = http.get(f"/api/v1/chat/conversations/{events[0]['conversation_id']}", headers=headers).json()
    assert "truncated" in stored["messages"][0]["meta"]["notes"][0]


def test_bad_uploads_are_refused_clearly(server: LiveServer, http: httpx.Client) -> None:
    headers = server.sign_in()
    cases = [
        ("virus.exe", b"MZ\x90\x00" + b"\x00" * 100, 415, "unsupported_media_type"),
        ("anim.gif", b"GIF89a" + b"\x00" * 100, 415, "unsupported_media_type"),
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", 400, "unreadable_document"),
        ("latin1.txt", "café".encode("latin-1"), 400, "unreadable_document"),
        ("empty.txt", b"", 400, "invalid_input"),
        ("cut.png", png_bytes()[:60], 400, "invalid_image"),
        ("big.txt", b"a" * (10 * 1024 * 1024 + 1), 413, "payload_too_large"),
    ]
    for name, data, status, code in cases:
        response = upload(http, headers, name, data)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), name
    assert http.post("/api/v1/chat/attachments", data={"x": "1"}, headers=headers).status_code == 400
    assert not list(Path(server.app.state.settings.data_dir, "chat").rglob("*.png"))
