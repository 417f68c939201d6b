"""Deep research (FR-RES-001): the research models answer one question in parallel, each on its own
timeout, then a synthesis step merges what they found into one answer with sources.

The stream (chat events, each tagged with `source`):
- `Progress(stage="searching" | "sources" | "no_live_sources" | "search_failed")` (no source);
  `Sources(items)` with the web results every model is given (when a search service exists);
- per model `m`: `Progress("model_started", source=m)`, `Delta(source=m)`..., then either
  `Sources(source=m)` (the results it cited) + `Done(source=m)`, or `Error(source=m)` (failed, timed
  out): one model failing does not stop the others;
- `Progress("synthesis_started", source="synthesis")`, `Delta(source="synthesis")`...;
- `Sources(items)` (no source): every source with the models that cited it; `Done(model)`: the
  model that wrote the synthesis. If every model fails: `Error(code="research_failed")`.

Web search is an interface (`WebSearch`): the search engine is built elsewhere; an app without one
runs research on the models' own knowledge and says so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fimum_ai.chat.events import Delta, Done, Error, Event, ModelSwitch, Progress, Sources, Usage
from fimum_ai.chat.router import ChatRequest, Router
from fimum_ai.errors import FimumError
from fimum_ai.settings import ResearchConfig, TextModel

log = logging.getLogger(__name__)

SYNTHESIS = "synthesis"
NO_LIVE_SOURCES = "Research ran without live sources: no web search service is installed."
NOTHING_FOUND = "Research ran without live sources: web search found nothing on this question."
_CITATION = re.compile(r"\[(\d{1,3})\]")


class WebSearch(Protocol):
    """What research and the agent need from the search service (`app.state.search`)."""

    async def web_search(self, query: str, *, limit: int = 5) -> list[dict[str, Any]]:
        """Results as dicts with url, title, snippet, published, credibility."""
        ...


class ResearchFailed(FimumError):
    code = "research_failed"
    status = 503


@dataclass
class ModelReport:
    model: str
    text: list[str] = field(default_factory=list)
    replied_by: str = ""
    error: str | None = None
    duration_s: float = 0.0

    @property
    def answer(self) -> str:
        return "".join(self.text)


def research_models(router: Router, config: ResearchConfig) -> list[TextModel]:
    """The configured research models, else the catalogue's `research` role in the router's order."""
    if config.models:
        return [router.catalogue.require(model_id) for model_id in config.models][: config.max_models]
    return router.plan(ChatRequest([], role="research"))[: config.max_models]


def _numbered(sources: Sequence[dict[str, Any]]) -> str:
    lines = []
    for number, item in enumerate(sources, 1):
        snippet = str(item.get("snippet") or "").strip().replace("\n", " ")[:500]
        when = f" ({item['published']})" if item.get("published") else ""
        lines.append(
            f"[{number}] {item.get('title') or item.get('url')}{when}\n    {item.get('url')}\n    {snippet}"
        )
    return "\n".join(lines)


def model_messages(question: str, sources: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    if sources:
        system = (
            "You are one of several research assistants answering the same question independently. "
            "Use the numbered web sources below where they help and cite them inline as [n]. Say "
            "plainly what the sources do not settle. Be thorough, specific and structured.\n\n"
            f"Sources:\n{_numbered(sources)}"
        )
    else:
        system = (
            "You are one of several research assistants answering the same question independently. "
            "No live web sources are available: answer from what you know, name the documents, "
            "standards or projects you rely on, and say what may be out of date."
        )
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def synthesis_messages(
    question: str, reports: Sequence[ModelReport], sources: Sequence[dict[str, Any]], max_chars: int
) -> list[dict[str, Any]]:
    parts = []
    for index, report in enumerate(reports, 1):
        answer = report.answer
        if len(answer) > max_chars:
            answer = answer[:max_chars] + "\n[... cut for length]"
        parts.append(f"### Researcher {index} ({report.replied_by or report.model})\n{answer}")
    system = (
        "Merge the researchers' answers below into one answer to the user's question: keep what they "
        "agree on, resolve or flag disagreements, drop what is unsupported, and keep the source "
        "citations [n] they used (the numbering is shared). End with a short list of the sources cited."
    )
    if sources:
        system += f"\n\nSources:\n{_numbered(sources)}"
    else:
        system += "\n\nNo live web sources were available; say so in one line at the end."
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"Question: {question}\n\n" + "\n\n".join(parts)},
    ]


def cited(text: str, sources: Sequence[dict[str, Any]]) -> list[int]:
    """The 1-based source numbers a text cites as [n], in order of first citation."""
    seen: list[int] = []
    for match in _CITATION.finditer(text):
        number = int(match.group(1))
        if 1 <= number <= len(sources) and number not in seen:
            seen.append(number)
    return seen


def _tag(event: Event, source: str) -> Event:
    return dataclasses.replace(event, source=source)


class DeepResearch:
    def __init__(self, router: Router, config: ResearchConfig, search: WebSearch | None = None) -> None:
        self.router = router
        self.config = config
        self.search = search

    async def _sources(self, question: str) -> tuple[list[dict[str, Any]], list[Event]]:
        if self.search is None or self.config.max_sources == 0:
            return [], [Progress(stage="no_live_sources", detail=NO_LIVE_SOURCES)]
        try:
            found = await self.search.web_search(question, limit=self.config.max_sources)
        except Exception as exc:  # the search service is another component: research goes on without it
            log.warning("web search failed during research", exc_info=True)
            return [], [
                Progress(
                    stage="search_failed",
                    detail=f"web search failed ({type(exc).__name__}); research ran without live sources",
                )
            ]
        items = [dict(item) for item in found[: self.config.max_sources] if item.get("url")]
        if not items:  # an empty index, or nothing on this question: say so like no search at all
            return [], [Progress(stage="no_live_sources", detail=NOTHING_FOUND)]
        return items, [
            Progress(stage="sources", detail=f"{len(items)} web sources"),
            Sources(items=tuple(items)),
        ]

    async def _one_model(
        self,
        model: TextModel,
        messages: list[dict[str, Any]],
        sources: list[dict[str, Any]],
        queue: asyncio.Queue[Event],
    ) -> ModelReport:
        report = ModelReport(model.id)
        started = time.monotonic()
        await queue.put(Progress(stage="model_started", detail=model.name or model.id, source=model.id))
        request = ChatRequest(messages, role="research", model=model.id, fallback=False)
        try:
            async with asyncio.timeout(self.config.model_timeout_s):
                async for event in self.router.stream(request):
                    if isinstance(event, Delta):
                        report.text.append(event.text)
                    elif isinstance(event, Done):
                        report.replied_by = event.model
                    await queue.put(_tag(event, model.id))
            if not report.answer.strip():
                raise FimumError("the model sent no text")
        except TimeoutError:
            report.error = f"no complete answer within {self.config.model_timeout_s:g} s"
            await queue.put(Error(code="timeout", message=report.error, source=model.id))
        except FimumError as exc:
            report.error = exc.message
            await queue.put(Error(code=exc.code, message=exc.message, source=model.id))
        except Exception as exc:  # one model's failure never sinks the others
            log.warning("research model failed", extra={"model": model.id}, exc_info=True)
            report.error = type(exc).__name__
            await queue.put(
                Error(code="internal_error", message="the model's answer failed", source=model.id)
            )
        else:
            used = cited(report.answer, sources)
            await queue.put(Sources(items=tuple({"n": n, **sources[n - 1]} for n in used), source=model.id))
        report.duration_s = time.monotonic() - started
        return report

    async def run(self, question: str) -> AsyncGenerator[Event, None]:
        models = research_models(self.router, self.config)
        if not models:
            raise ResearchFailed("no research models are configured (catalogue role `research`)")
        yield Progress(stage="searching" if self.search is not None else "started", detail=question[:200])
        sources, notes = await self._sources(question)
        for note in notes:
            yield note
        queue: asyncio.Queue[Event] = asyncio.Queue()
        messages = model_messages(question, sources)
        tasks = [
            asyncio.create_task(self._one_model(model, messages, sources, queue), name=f"research-{model.id}")
            for model in models
        ]
        getter: asyncio.Future[Event] | None = None
        try:
            pending = set(tasks)
            while pending:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, *pending}, return_when=asyncio.FIRST_COMPLETED)
                pending -= done
                if getter in done:
                    yield getter.result()
                else:
                    getter.cancel()
            while not queue.empty():
                yield queue.get_nowait()
        finally:
            if getter is not None:
                getter.cancel()  # cancelled while waiting: no queue read left behind
            for task in tasks:
                task.cancel()  # the client went away: stop every model (closes their upstream streams)
            await asyncio.gather(*tasks, return_exceptions=True)
        reports = [task.result() for task in tasks]
        answered = [r for r in reports if r.error is None]
        if not answered:
            yield Error(
                code=ResearchFailed.code,
                message="every research model failed: " + "; ".join(f"{r.model}: {r.error}" for r in reports),
            )
            return
        async for event in self._synthesise(question, answered, sources):
            yield event

    async def _synthesise(
        self, question: str, reports: list[ModelReport], sources: list[dict[str, Any]]
    ) -> AsyncIterator[Event]:
        yield Progress(stage="synthesis_started", detail=f"merging {len(reports)} answers", source=SYNTHESIS)
        request = ChatRequest(
            synthesis_messages(question, reports, sources, self.config.max_answer_chars),
            role="research",
            model=self.config.synthesis_model,
        )
        text: list[str] = []
        done: Done | None = None
        usage: Usage | None = None
        try:
            async with asyncio.timeout(self.config.synthesis_timeout_s):
                async for event in self.router.stream(request):
                    if isinstance(event, Delta):
                        text.append(event.text)
                        yield Delta(text=event.text)
                    elif isinstance(event, Done):
                        done = event
                    elif isinstance(event, Usage):
                        usage = event
                    elif isinstance(event, ModelSwitch):
                        yield _tag(event, SYNTHESIS)
        except (TimeoutError, FimumError) as exc:
            message = exc.message if isinstance(exc, FimumError) else "the synthesis did not finish in time"
            code = exc.code if isinstance(exc, FimumError) else "timeout"
            yield Error(code=code, message=message, source=SYNTHESIS)
            # The researchers' answers are still worth having: hand back the longest one.
            best = max(reports, key=lambda r: len(r.answer))
            fallback = ("\n\n" if text else "") + best.answer
            text.append(fallback)
            yield Delta(text=fallback)
            done = Done(model=best.replied_by or best.model, finish_reason="synthesis_failed")
        used = cited("".join(text), sources) or sorted({n for r in reports for n in cited(r.answer, sources)})
        by_number = {
            n: [r.replied_by or r.model for r in reports if n in cited(r.answer, sources)]
            for n in range(1, len(sources) + 1)
        }
        yield Sources(items=tuple({"n": n, **sources[n - 1], "cited_by": by_number[n]} for n in used))
        if usage is not None:
            yield usage
        assert done is not None
        yield Done(model=done.model, finish_reason=done.finish_reason)
