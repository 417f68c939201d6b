"""A stand-in for OpenRouter: a real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions
protocol (OpenRouter cannot be reached from here).

`POST /api/v1/chat/completions` answers JSON or, with `"stream": true`, Server-Sent Events ending
in `data: [DONE]`, with tool calls, usage, 429 + Retry-After, 500, slow and empty answers. Tests
script the replies per model id (`script(model, Reply...)`, a FIFO queue; an unscripted model gets
`default`) and read every request received from `requests` (body, headers, whether the client
closed the connection before the answer ended). Like OpenRouter, a request's `models` list is a
server-side fallback: a failing scripted reply moves on to the next model in it.

Run it in tests through the `openrouter` fixture (tests/peers/plugin.py), or as a process for
benchmarks: `python -m tests.peers.openrouter --port 8900`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass(frozen=True)
class Reply:
    """One scripted answer. `status` != 200 makes it an error (`retry_after` adds the header)."""

    content: str = ""
    status: int = 200
    delay: float = 0.0  # seconds before the first byte (the headers, in streaming mode)
    chunk_delay: float = 0.0  # seconds between streamed chunks
    chunks: tuple[str, ...] | None = None  # how the content is split when streamed; default ~word-wise
    tool_calls: tuple[dict[str, Any], ...] = ()  # {"id", "name", "arguments"(str)}
    finish_reason: str | None = None  # default: "tool_calls" with tool calls, else "stop"
    usage: dict[str, int] | None = None  # default: counted from words
    retry_after: int | None = None
    error_message: str = ""
    model: str | None = None  # the model the answer names (default: the one that answered)

    @staticmethod
    def text(content: str, **kwargs: Any) -> Reply:
        return Reply(content=content, **kwargs)

    @staticmethod
    def rate_limited(retry_after: int = 1) -> Reply:
        return Reply(
            status=429, retry_after=retry_after, error_message="Rate limit exceeded: free-models-per-min"
        )

    @staticmethod
    def server_error(status: int = 500) -> Reply:
        return Reply(status=status, error_message="Internal Server Error")

    @staticmethod
    def empty() -> Reply:
        return Reply(content="")

    @staticmethod
    def slow(seconds: float, content: str = "late answer") -> Reply:
        return Reply(content=content, delay=seconds)

    @staticmethod
    def tools(*calls: tuple[str, dict[str, Any]], content: str = "") -> Reply:
        """Tool calls given as (name, arguments dict); ids are call_0, call_1, ..."""
        return Reply(
            content=content,
            tool_calls=tuple(
                {"id": f"call_{i}", "name": name, "arguments": json.dumps(args)}
                for i, (name, args) in enumerate(calls)
            ),
        )

    @property
    def failed(self) -> bool:
        return self.status != 200


@dataclass
class ReceivedRequest:
    """What the stand-in received, for assertions."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    answered_by: str = ""  # the model whose scripted reply was used
    status: int = 0
    closed_early: bool = False  # the client went away before the answer ended
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])


def _usage(reply: Reply, body: dict[str, Any]) -> dict[str, int]:
    if reply.usage is not None:
        return reply.usage
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])
    completion = len(reply.content.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _finish(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _split(content: str) -> list[str]:
    if not content:
        return []
    words = content.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


class OpenRouterStandIn:
    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key  # when set, other keys get 401 like OpenRouter
        self.lock = threading.Lock()
        self.scripts: dict[str, deque[Reply]] = {}
        self.default: Callable[[str], Reply] = lambda model: Reply(content=f"Answer from {model}.")
        self.requests: list[ReceivedRequest] = []
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(
            routes=[
                Route("/api/v1/chat/completions", self._completions, methods=["POST"]),
                Route("/api/v1/models", self._models, methods=["GET"]),
            ]
        )

    # --- test side -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def script(self, model: str, *replies: Reply) -> None:
        with self.lock:
            self.scripts.setdefault(model, deque()).extend(replies)

    def received(self, model: str | None = None) -> list[ReceivedRequest]:
        with self.lock:
            return [r for r in self.requests if model is None or r.model == model]

    def models_asked(self) -> list[str]:
        return [r.model for r in self.received()]

    def wait_closed(self, request: ReceivedRequest, timeout: float = 5.0) -> bool:
        """Wait until the request's answer ended; whether the client closed it early."""
        request.finished.wait(timeout)
        return request.closed_early

    def reset(self) -> None:
        with self.lock:
            self.scripts.clear()
            self.requests.clear()

    def start(self) -> OpenRouterStandIn:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", access_log=False, timeout_keep_alive=30
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the OpenRouter stand-in did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    # --- server side ------------------------------------------------------------------------------

    def _next_reply(self, model: str) -> Reply:
        with self.lock:
            queue = self.scripts.get(model)
            if queue:
                return queue.popleft()
        return self.default(model)

    async def _models(self, request: Request) -> Response:
        with self.lock:
            names = sorted(self.scripts)
        return JSONResponse({"data": [{"id": name, "object": "model"} for name in names]})

    async def _completions(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": {"code": 400, "message": "invalid JSON"}}, status_code=400)
        record = ReceivedRequest(path=request.url.path, headers=dict(request.headers), body=body)
        with self.lock:
            self.requests.append(record)
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            record.status = 401
            record.finished.set()
            return JSONResponse(
                {"error": {"code": 401, "message": "No auth credentials found"}}, status_code=401
            )
        if not isinstance(body, dict) or not body.get("model") or not isinstance(body.get("messages"), list):
            record.status = 400
            record.finished.set()
            return JSONResponse(
                {"error": {"code": 400, "message": "model and messages are required"}}, status_code=400
            )
        # OpenRouter's `models`: the request's model first, then the listed fallbacks.
        candidates = [body["model"], *[m for m in body.get("models") or [] if m != body["model"]]]
        reply, answered_by = self._next_reply(candidates[0]), candidates[0]
        for model in candidates[1:]:
            if not reply.failed:
                break
            reply, answered_by = self._next_reply(model), model
        record.answered_by = answered_by
        record.status = reply.status
        if reply.delay and not body.get("stream"):
            try:
                await asyncio.sleep(reply.delay)
            except asyncio.CancelledError:
                record.closed_early = True
                record.finished.set()
                raise
        if reply.failed:
            record.finished.set()
            headers = {"Retry-After": str(reply.retry_after)} if reply.retry_after is not None else None
            return JSONResponse(
                {"error": {"code": reply.status, "message": reply.error_message or "error"}},
                status_code=reply.status,
                headers=headers,
            )
        model = reply.model or answered_by
        completion_id = f"gen-{uuid.uuid4().hex[:20]}"
        if body.get("stream"):
            return StreamingResponse(
                self._stream(request, record, reply, body, model, completion_id),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        record.finished.set()
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in reply.tool_calls
            ]
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "provider": "stand-in",
                "choices": [{"index": 0, "message": message, "finish_reason": _finish(reply)}],
                "usage": _usage(reply, body),
            }
        )

    async def _stream(
        self,
        request: Request,
        record: ReceivedRequest,
        reply: Reply,
        body: dict[str, Any],
        model: str,
        cid: str,
    ) -> AsyncIterator[bytes]:
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            data = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "provider": "stand-in",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            return f"data: {json.dumps(data)}\n\n".encode()

        completed = False
        try:
            if reply.delay:
                # OpenRouter keeps a slow stream alive with SSE comments.
                yield b": OPENROUTER PROCESSING\n\n"
                await asyncio.sleep(reply.delay)
            yield chunk({"role": "assistant", "content": ""})
            pieces = list(reply.chunks) if reply.chunks is not None else _split(reply.content)
            for piece in pieces:
                if reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)
                    if await request.is_disconnected():
                        return
                yield chunk({"content": piece})
            for index, call in enumerate(reply.tool_calls):
                head = {"index": index, "id": call["id"], "type": "function"}
                yield chunk({"tool_calls": [{**head, "function": {"name": call["name"], "arguments": ""}}]})
                args = call["arguments"]
                for part in (args[: len(args) // 2], args[len(args) // 2 :]):
                    yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
            yield chunk({}, _finish(reply))
            usage_chunk = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": _usage(reply, body),
            }
            yield f"data: {json.dumps(usage_chunk)}\n\n".encode()
            yield b"data: [DONE]\n\n"
            completed = True
        finally:
            record.closed_early = not completed
            record.finished.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--words", type=int, default=20, help="words in every (unscripted) answer")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between streamed words")
    args = parser.parse_args()
    server = OpenRouterStandIn()
    server.port = args.port
    text = " ".join(f"word{i}" for i in range(args.words))
    server.default = lambda model: Reply(content=text, chunk_delay=args.chunk_delay)
    server.start()
    print(f"OpenRouter stand-in on {server.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
