"""The request-body limit for uploads, behind a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, UploadFile
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from fimum_ai.errors import FimumError
from fimum_ai.images.uploads import BodySizeLimitMiddleware, read_upload

LIMIT = 64 * 1024
FIELD_LIMIT = 16 * 1024


def _app() -> FastAPI:
    app = FastAPI()

    @app.exception_handler(FimumError)
    async def fimum_error(_: Request, exc: FimumError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    @app.post("/api/v1/image/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    @app.post("/api/v1/image/edit")
    async def edit(image: UploadFile) -> dict[str, int]:
        return {"received": len(await read_upload(image, limit=FIELD_LIMIT))}

    @app.post("/api/other")
    async def other(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    return app


class _Spy:
    """Records the paths of the requests that reached the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[httpx.Client, _Spy]]:
    spy = _Spy(_app())
    asgi = BodySizeLimitMiddleware(spy, max_bytes=LIMIT)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
    port = sock.getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=10) as client:
        yield client, spy
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def client(served: tuple[httpx.Client, _Spy]) -> httpx.Client:
    served[1].paths.clear()
    return served[0]


@pytest.fixture
def spy(served: tuple[httpx.Client, _Spy]) -> _Spy:
    return served[1]


def _chunks(total: int, size: int = 8 * 1024) -> Iterator[bytes]:
    """A generator body: httpx sends it chunked, with no Content-Length."""
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"x" * piece


def _assert_413(response: httpx.Response) -> None:
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "payload_too_large" and error["message"]
    assert error["details"]["limit_bytes"] == LIMIT


def test_declared_length_over_the_limit_is_refused_before_the_app(client: httpx.Client, spy: _Spy) -> None:
    response = client.post("/api/v1/image/raw", content=b"x" * (4 * LIMIT))
    _assert_413(response)
    assert spy.paths == []
    # The server dropped the unread body and the connection is still good for the next request.
    assert client.post("/api/v1/image/raw", content=b"ok").json() == {"received": 2}


def test_chunked_body_over_the_limit_is_refused(client: httpx.Client) -> None:
    response = client.post("/api/v1/image/raw", content=_chunks(4 * LIMIT))
    assert "content-length" not in response.request.headers
    _assert_413(response)


def test_chunked_multipart_over_the_limit_is_refused_not_a_400(client: httpx.Client) -> None:
    """FastAPI turns the aborted form parse into a 400; the client sees the 413 instead."""

    def multipart() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        yield from _chunks(4 * LIMIT)
        yield b"\r\n--b--\r\n"

    response = client.post(
        "/api/v1/image/edit", content=multipart(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    _assert_413(response)


def test_under_the_limit_passes(client: httpx.Client, spy: _Spy) -> None:
    assert client.post("/api/v1/image/raw", content=b"x" * LIMIT).json() == {"received": LIMIT}
    assert client.post("/api/v1/image/raw", content=_chunks(LIMIT)).json() == {"received": LIMIT}
    response = client.post("/api/v1/image/edit", files={"image": ("a.png", b"y" * FIELD_LIMIT)})
    assert response.json() == {"received": FIELD_LIMIT}
    assert spy.paths == ["/api/v1/image/raw"] * 2 + ["/api/v1/image/edit"]


def test_a_part_over_its_own_limit_is_413_from_read_upload(client: httpx.Client) -> None:
    response = client.post("/api/v1/image/edit", files={"image": ("a.png", b"y" * (FIELD_LIMIT + 1))})
    assert response.status_code == 413
    assert response.json()["error"]["details"] == {"field": "image", "limit_bytes": FIELD_LIMIT}


def test_other_paths_are_not_limited(client: httpx.Client) -> None:
    response = client.post("/api/other", content=b"x" * (4 * LIMIT))
    assert response.json() == {"received": 4 * LIMIT}
    assert client.post("/api/other", content=_chunks(4 * LIMIT)).json() == {"received": 4 * LIMIT}
