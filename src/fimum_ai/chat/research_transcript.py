"""What a deep-research stream said, gathered as it goes, so the answer can be stored in a
conversation in the shape the chat page reads back (`meta.research`, `meta.sources`, `meta.notes`):
after a reload the thread shows each model's part, the synthesis and its sources as it streamed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fimum_ai.chat.events import Delta, Done, Error, Event, Progress, Sources, Usage
from fimum_ai.chat.research import SYNTHESIS

# Progress stages that stay with the answer as notes (the chat page does the same while streaming).
NOTE_STAGES = frozenset({"no_live_sources", "search_failed"})


@dataclass
class ResearchTranscript:
    text: str = ""
    model: str | None = None
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: dict[str, str] | None = None
    tracks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def answered(self) -> bool:
        return self.finish_reason is not None

    def take(self, event: Event) -> None:
        if event.source is not None and event.source != SYNTHESIS:
            self._take_track(event.source, event)
            return
        if isinstance(event, Delta):
            self.text += event.text
        elif isinstance(event, Sources):
            self.sources = [dict(item) for item in event.items]
        elif isinstance(event, Usage):
            self.usage = (event.prompt_tokens, event.completion_tokens)
        elif isinstance(event, Progress) and event.stage in NOTE_STAGES and event.detail:
            self.notes.append(event.detail)
        elif isinstance(event, Error) and event.source is None:
            self.error = {"code": event.code, "message": event.message}
        elif isinstance(event, Done) and event.source is None:
            self.model, self.finish_reason = event.model, event.finish_reason

    def _take_track(self, model: str, event: Event) -> None:
        track = self.tracks.setdefault(
            model, {"model": model, "text": "", "status": "running", "error": None, "sources": []}
        )
        if isinstance(event, Delta):
            track["text"] += event.text
        elif isinstance(event, Sources):
            track["sources"] = [dict(item) for item in event.items]
        elif isinstance(event, Done):
            track["status"] = "done"
        elif isinstance(event, Error):
            track["status"], track["error"] = "error", event.message

    def message(self) -> dict[str, Any]:
        """Keyword arguments for ConversationStore.add_message (role "assistant")."""
        finish = self.finish_reason or ("error" if self.error else "cancelled")
        meta: dict[str, Any] = {
            "mode": "research",
            "research": [
                track
                if track["status"] != "running"
                else {**track, "status": "error", "error": "stopped before it finished"}
                for track in self.tracks.values()
            ],
            "sources": self.sources,
            "notes": self.notes,
        }
        if self.error:
            meta["error"] = self.error
        return {
            "content": self.text,
            "model": self.model,
            "finish_reason": finish,
            "usage": self.usage,
            "meta": meta,
        }
