"""The typed events one chat turn streams: plain chat, the coding agent and deep research alike.

Each event is a frozen dataclass with a `type` tag. `sse_frame` turns one into a Server-Sent
Events frame (`event: <type>` + one JSON `data:` line); `event_from_dict` reads the JSON back
(clients, tests). `source` says which stream an event belongs to when several run at once (a
research model id, "synthesis"); it is None for a plain chat turn.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias


@dataclass(frozen=True, slots=True, kw_only=True)
class _Event:
    type: ClassVar[str]
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data.get("source") is None:
            data.pop("source", None)
        return {"type": self.type, **data}


@dataclass(frozen=True, slots=True, kw_only=True)
class Started(_Event):
    """The turn began: where the answer will be stored (ids are empty outside a conversation)."""

    type: ClassVar[str] = "started"
    conversation_id: str = ""
    message_id: str = ""
    model: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Delta(_Event):
    """A piece of the answer's text."""

    type: ClassVar[str] = "delta"
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall(_Event):
    """The model asked for a tool (OpenAI tools format); `arguments` is the JSON string it sent."""

    type: ClassVar[str] = "tool_call"
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResult(_Event):
    """What a tool returned; `images` are image ids (GET /api/v1/images/{id}) it produced."""

    type: ClassVar[str] = "tool_result"
    id: str
    name: str
    content: str
    images: tuple[str, ...] = ()
    ok: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSwitch(_Event):
    """The router left `previous` for `model` (429, 5xx, timeout, empty answer, open breaker)."""

    type: ClassVar[str] = "model_switch"
    model: str
    reason: str
    previous: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress(_Event):
    """Work that is not answer text: research stages, a search, a sandbox run."""

    type: ClassVar[str] = "progress"
    stage: str
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Sources(_Event):
    """Sources a model used (research): dicts with at least `url` and `title`."""

    type: ClassVar[str] = "sources"
    items: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage(_Event):
    type: ClassVar[str] = "usage"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Done(_Event):
    """The end of a stream: the model that actually answered and why it stopped
    (`stop`, `length`, `tool_calls`, `cancelled`)."""

    type: ClassVar[str] = "done"
    model: str
    finish_reason: str = "stop"


@dataclass(frozen=True, slots=True, kw_only=True)
class Error(_Event):
    """A failure that ends the stream (or, with a `source`, ends only that source's part)."""

    type: ClassVar[str] = "error"
    code: str
    message: str


Event: TypeAlias = (
    Started | Delta | ToolCall | ToolResult | ModelSwitch | Progress | Sources | Usage | Done | Error
)
EventType = Literal[
    "started",
    "delta",
    "tool_call",
    "tool_result",
    "model_switch",
    "progress",
    "sources",
    "usage",
    "done",
    "error",
]

_BY_TYPE: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (Started, Delta, ToolCall, ToolResult, ModelSwitch, Progress, Sources, Usage, Done, Error)
}


# OpenAPI: the schema of one Server-Sent Event of a `text/event-stream` response (what clients and
# schema checkers read: each event has a JSON `data` line and, for chat events, its `event` type).
SSE_EVENT_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "description": "The event type (chat events: the same as data.type)."},
        "data": {"type": "string", "description": "One JSON object (or `[DONE]` on the OpenAI stream)."},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
    "required": ["data"],
}


def sse_frame(event: Event) -> bytes:
    """One Server-Sent Events frame: `event: <type>` and the event as one JSON `data:` line."""
    data = json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":"))
    return f"event: {event.type}\ndata: {data}\n\n".encode()


def event_from_dict(data: dict[str, Any]) -> Event:
    """The event a `to_dict()` (or an SSE frame's JSON) describes; ValueError for an unknown type."""
    fields = dict(data)
    kind = fields.pop("type", None)
    cls = _BY_TYPE.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown chat event type {kind!r}")
    if cls is ToolResult and "images" in fields:
        fields["images"] = tuple(fields["images"])
    if cls is Sources and "items" in fields:
        fields["items"] = tuple(fields["items"])
    return cls(**fields)


__all__ = [
    "SSE_EVENT_SCHEMA",
    "Delta",
    "Done",
    "Error",
    "Event",
    "EventType",
    "ModelSwitch",
    "Progress",
    "Sources",
    "Started",
    "ToolCall",
    "ToolResult",
    "Usage",
    "event_from_dict",
    "sse_frame",
]
