"""The chat service (`app.state.chat`): catalogue, client, router, conversations, attachments and
the answers being generated.

A chat turn runs as its own asyncio task that feeds a queue; the SSE response reads the queue.
Stopping (POST .../stop) or the client going away cancels the task, which closes the upstream
HTTP response, so the model stops generating too; what was answered so far is stored with
`finish_reason: "cancelled"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
import redis.asyncio

from fimum_ai.accounts.principal import Principal
from fimum_ai.chat.attachments import CHARS_PER_TOKEN, Ingested, Truncation, estimate_tokens, user_content
from fimum_ai.chat.catalogue import AUTO, Catalogue
from fimum_ai.chat.client import ChatClient
from fimum_ai.chat.conversations import ConversationStore, StoredAttachment, TurnContext
from fimum_ai.chat.events import (
    Delta,
    Done,
    Error,
    Event,
    ModelSwitch,
    Progress,
    Started,
    ToolCall,
    ToolResult,
    Usage,
)
from fimum_ai.chat.router import ChatRequest, Router
from fimum_ai.db import Database
from fimum_ai.db.base import new_id
from fimum_ai.errors import Conflict, FimumError, InvalidInput
from fimum_ai.limits import RateLimiter
from fimum_ai.redis_clients import async_redis
from fimum_ai.settings import Settings, TextRole

log = logging.getLogger(__name__)

NOT_CONFIGURED_MESSAGE = (
    "Chat needs a model endpoint: set OPENROUTER_API_KEY (a key from https://openrouter.ai/keys), or point "
    "FIMUM_OPENROUTER_BASE_URL at a local OpenAI-compatible server such as Ollama (http://127.0.0.1:11434/v1)."
)


# Request bodies: an attachment upload (10 MiB file + multipart framing); OpenAI-format bodies may
# carry several base64 images.
CHAT_BODY_LIMITS = {"/api/v1/chat/": 11 * 1024 * 1024, "/v1/chat/": 48 * 1024 * 1024}


class ChatNotConfigured(FimumError):
    code = "chat_not_configured"
    status = 503

    def __init__(self) -> None:
        super().__init__(
            NOT_CONFIGURED_MESSAGE, details={"settings": ["OPENROUTER_API_KEY", "FIMUM_OPENROUTER_BASE_URL"]}
        )


@dataclass
class Turn:
    """What the user sent, as the routes parsed it."""

    content: str
    model: str = AUTO
    attachments: list[str] = field(default_factory=list)
    mode: Literal["chat", "agent"] = "chat"
    role: TextRole | None = None
    include_logo: bool = False
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Generation:
    conversation_id: str
    user_id: str
    message_id: str
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


@dataclass
class _Answer:
    """What a turn produced, accumulated from its events for storage."""

    text: list[str] = field(default_factory=list)
    model: str | None = None
    finish: str | None = None
    usage: tuple[int, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def see(self, event: Event) -> None:
        if isinstance(event, Delta) and event.source is None:
            self.text.append(event.text)
        elif isinstance(event, Done) and event.source is None:
            self.model, self.finish = event.model, event.finish_reason
        elif isinstance(event, Usage) and event.source is None:
            self.usage = (event.prompt_tokens, event.completion_tokens)
        elif isinstance(event, ModelSwitch):
            self.meta.setdefault("model_switches", []).append(event.to_dict())
        elif isinstance(event, ToolCall):
            self.meta.setdefault("tool_calls", []).append(event.to_dict())
        elif isinstance(event, ToolResult):
            self.meta.setdefault("tool_results", []).append(event.to_dict())
            self.meta.setdefault("images", []).extend(event.images)
        elif isinstance(event, Progress) and event.stage == "document_truncated":
            self.meta.setdefault("notes", []).append(event.detail)
        elif isinstance(event, Error) and event.source is None:
            self.finish = "error"
            self.meta["error"] = {"code": event.code, "message": event.message}


class ChatService:
    def __init__(self, settings: Settings, database: Database, limiter: RateLimiter | None = None) -> None:
        self.settings = settings
        self.catalogue = Catalogue(settings.text_models)
        self.client = ChatClient(settings)
        self.router = Router(self.catalogue, self.client, settings.chat, limiter)
        self.store = ConversationStore(database)
        self.files = settings.data_dir / "chat"
        self._active: dict[str, Generation] = {}
        # Distributed mode: a stop may reach another replica than the one generating; replicas
        # note who generates what in Redis and pass stops on over a pub/sub channel.
        self._redis: redis.asyncio.Redis | None = None
        self._stop_channel = settings.redis_prefix + "chat:stop"
        self._listener: asyncio.Task[None] | None = None
        # Other parts of the app the agent uses (images, sandbox, search); set by create_app.
        self.app_state: Any = None

    @property
    def configured(self) -> bool:
        return self.settings.chat_endpoint_configured

    def require_configured(self) -> None:
        if not self.configured:
            raise ChatNotConfigured

    async def start(self) -> None:
        self.files.mkdir(parents=True, exist_ok=True)
        if self.settings.mode == "distributed" and self.settings.redis_url:
            self._redis = async_redis(self.settings.redis_url)
            pubsub = self._redis.pubsub()
            await pubsub.subscribe(self._stop_channel)
            self._listener = asyncio.create_task(self._listen(pubsub), name="chat-stop-listener")

    async def _listen(self, pubsub: Any) -> None:
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None:
                    continue
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    data = json.loads(message["data"])
                    self._stop_local(str(data["user_id"]), str(data["conversation_id"]))
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    def _active_key(self, conversation_id: str) -> str:
        return f"{self.settings.redis_prefix}chat:active:{conversation_id}"

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for generation in list(self._active.values()):
            if generation.task is not None:
                generation.task.cancel()
        tasks = [g.task for g in self._active.values() if g.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await self.client.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    # --- blocking store calls, off the event loop -----------------------------------------------

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    # --- attachments ----------------------------------------------------------------------------

    async def save_attachment(self, user_id: str, filename: str, ingested: Ingested) -> dict[str, Any]:
        attachment_id = new_id()
        relative: str | None = None
        if ingested.png is not None:
            relative = f"chat/{user_id}/{attachment_id}.png"
            target = self.settings.data_dir / relative
            await anyio.to_thread.run_sync(_write_atomically, target, ingested.png)
        try:
            return dict(
                await self.call(
                    self.store.add_attachment,
                    user_id,
                    attachment_id=attachment_id,
                    kind=ingested.kind,
                    filename=filename,
                    media_type=ingested.media_type,
                    size_bytes=ingested.size_bytes,
                    text=ingested.text,
                    path=relative,
                )
            )
        except BaseException:
            if relative is not None:
                (self.settings.data_dir / relative).unlink(missing_ok=True)
            raise

    async def delete_all(self, user_id: str) -> dict[str, Any]:
        for generation in [g for g in self._active.values() if g.user_id == user_id]:
            await self.stop_generation(user_id, generation.conversation_id)
        result: dict[str, Any] = await self.call(self.store.delete_all, user_id)
        for relative in result.pop("paths"):
            (self.settings.data_dir / relative).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            (self.files / user_id).rmdir()
        return result

    # --- a turn ---------------------------------------------------------------------------------

    def _stop_local(self, user_id: str, conversation_id: str) -> bool:
        generation = self._active.get(conversation_id)
        if generation is None or generation.user_id != user_id or generation.task is None:
            return False
        generation.task.cancel()
        return True

    async def stop_generation(self, user_id: str, conversation_id: str) -> bool:
        """Stop the answer being generated in this conversation, on whichever replica runs it."""
        if self._stop_local(user_id, conversation_id):
            return True
        if self._redis is None:
            return False
        owner = await self._redis.get(self._active_key(conversation_id))
        if owner is None or (owner.decode() if isinstance(owner, bytes) else str(owner)) != user_id:
            return False
        payload = json.dumps({"user_id": user_id, "conversation_id": conversation_id})
        await self._redis.publish(self._stop_channel, payload)
        return True

    async def begin_turn(self, principal: Principal, conversation_id: str | None, turn: Turn) -> Generation:
        """Start answering the user's message (in a new conversation when `conversation_id` is
        None); the caller streams `events(...)`. One database round trip happens before the
        upstream request starts; the user's message is written while the model thinks."""
        self.require_configured()
        if conversation_id is not None and conversation_id in self._active:
            raise Conflict(
                "an answer is still being generated in this conversation; stop it first",
                details={"conversation_id": conversation_id},
            )
        if turn.model != AUTO:
            self.catalogue.require(turn.model)
        if not turn.content.strip() and not turn.attachments:
            raise InvalidInput("content: write a message or attach a file", details={"field": "content"})
        user_id = principal.user_id
        context: TurnContext = await self.call(
            self.store.load_turn, user_id, conversation_id, turn.model, turn.attachments
        )
        conversation_id = str(context.conversation["id"])
        attachments = context.attachments
        agent = turn.mode == "agent" or turn.include_logo
        role: TextRole = turn.role or ("coding" if agent else "general")
        has_images = any(a.kind == "image" for a in attachments)
        if has_images and role == "general":
            role = "vision"
        model = None if turn.model == AUTO else turn.model
        stub = ChatRequest(
            [{"role": "user", "content": [{"type": "image_url"}]}] if has_images else [], role, model
        )
        plan = self.router.plan(stub)
        context_tokens = min(
            (m.context_length for m in plan[: self.settings.chat.max_attempts]), default=8192
        )
        vision = bool(plan) and plan[0].vision
        messages, truncations = self._messages(
            context.history, context.earlier, turn, attachments, context_tokens, vision
        )
        if conversation_id in self._active:
            raise Conflict(
                "an answer is still being generated in this conversation; stop it first",
                details={"conversation_id": conversation_id},
            )
        generation = Generation(conversation_id, user_id, new_id())
        self._active[conversation_id] = generation
        user_message = asyncio.create_task(
            self.call(
                self.store.add_message,
                user_id,
                conversation_id,
                "user",
                turn.content,
                attachments=[{"id": a.id, "kind": a.kind, "filename": a.filename} for a in attachments],
                meta={"notes": [t.note() for t in truncations]} if truncations else None,
            )
        )
        request = ChatRequest(messages, role=role, model=model, params=turn.params)
        source = self._agent(principal, request, turn) if agent else self.router.stream(request)
        generation.queue.put_nowait(
            Started(conversation_id=conversation_id, message_id=generation.message_id, model=turn.model)
        )
        for truncation in truncations:
            generation.queue.put_nowait(Progress(stage="document_truncated", detail=truncation.note()))
        generation.task = asyncio.create_task(
            self._produce(generation, source, user_message), name=f"chat-{conversation_id}"
        )
        return generation

    def _agent(self, principal: Principal, request: ChatRequest, turn: Turn) -> AsyncIterator[Event]:
        try:
            agent = importlib.import_module("fimum_ai.chat.agent")
        except ImportError:
            raise FimumError("the coding agent is not installed in this build") from None
        run: Any = agent.run_agent
        stream: AsyncIterator[Event] = run(
            router=self.router,
            request=request,
            principal=principal,
            app_state=self.app_state,
            include_logo=turn.include_logo,
        )
        return stream

    def _messages(
        self,
        history: list[dict[str, Any]],
        earlier: list[StoredAttachment],
        turn: Turn,
        attachments: list[StoredAttachment],
        context_tokens: int,
        vision: bool,
    ) -> tuple[list[dict[str, Any]], list[Truncation]]:
        """The conversation as OpenAI messages within the model's context: the oldest turns go
        first when it is full; documents share what is left (truncated with a note)."""
        by_id = {a.id: a for a in earlier}
        budget = context_tokens - self.settings.chat.answer_reserve_tokens - estimate_tokens(turn.content)
        past: list[tuple[dict[str, Any], list[StoredAttachment]]] = []
        for message in history:
            if message["role"] not in ("user", "assistant") or (
                message["role"] == "assistant" and not message["content"]
            ):
                continue
            past.append((message, [by_id[a["id"]] for a in message["attachments"] if a["id"] in by_id]))
        while past and sum(estimate_tokens(m["content"]) for m, _ in past) > budget // 2:
            past.pop(0)
        budget -= sum(estimate_tokens(m["content"]) for m, _ in past)
        documents = sum(1 for _, atts in past for a in atts if a.kind == "document") + sum(
            1 for a in attachments if a.kind == "document"
        )
        per_document = max(0, budget) * CHARS_PER_TOKEN // max(1, documents)
        messages: list[dict[str, Any]] = []
        truncations: list[Truncation] = []
        for message, atts in past:
            if message["role"] == "user":
                docs = [a for a in atts if a.kind == "document"]
                content, cut = user_content(
                    message["content"], docs, self.settings.data_dir, per_document * len(docs), False
                )
                truncations += cut
                messages.append({"role": "user", "content": content})
            else:
                messages.append({"role": "assistant", "content": message["content"]})
        docs_now = sum(1 for a in attachments if a.kind == "document")
        content, cut = user_content(
            turn.content, attachments, self.settings.data_dir, per_document * docs_now, vision
        )
        messages.append({"role": "user", "content": content})
        return messages, truncations + cut

    async def _produce(
        self, generation: Generation, source: AsyncIterator[Event], user_message: asyncio.Task[Any]
    ) -> None:
        answer = _Answer()
        queue = generation.queue
        key = self._active_key(generation.conversation_id)
        try:
            if self._redis is not None:
                try:
                    await self._redis.set(key, generation.user_id, ex=3600)
                except Exception:  # Redis away: stopping from another replica will not find it
                    log.warning("could not record the chat generation in Redis", exc_info=True)
            async for event in source:
                answer.see(event)
                queue.put_nowait(event)
        except asyncio.CancelledError:
            answer.finish = "cancelled"
            done = Done(model=answer.model or "", finish_reason="cancelled")
            queue.put_nowait(done)
        except FimumError as exc:
            error = Error(code=exc.code, message=exc.message)
            answer.see(error)
            queue.put_nowait(error)
        except Exception:
            log.exception("chat turn failed", extra={"conversation_id": generation.conversation_id})
            error = Error(code="internal_error", message="the answer failed; try again")
            answer.see(error)
            queue.put_nowait(error)
        finally:
            with contextlib.suppress(Exception):
                await aclose_quietly(source)
            try:
                await asyncio.shield(_after(user_message, self._save(generation, answer)))
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception(
                    "could not store a chat answer", extra={"conversation_id": generation.conversation_id}
                )
            finally:
                self._active.pop(generation.conversation_id, None)
                if self._redis is not None:
                    with contextlib.suppress(Exception):
                        await self._redis.delete(key)
                queue.put_nowait(None)  # last: once the stream ends, no replica finds it running

    async def _save(self, generation: Generation, answer: _Answer) -> None:
        await self.call(
            self.store.add_message,
            generation.user_id,
            generation.conversation_id,
            "assistant",
            "".join(answer.text),
            model=answer.model,
            finish_reason=answer.finish,
            usage=answer.usage,
            meta=answer.meta,
            message_id=generation.message_id,
        )

    async def events(self, generation: Generation) -> AsyncIterator[Event]:
        """The turn's events until it ends. If the reader goes away, the turn is cancelled."""
        try:
            while True:
                event = await generation.queue.get()
                if event is None:
                    return
                yield event
        finally:
            if generation.task is not None and not generation.task.done():
                generation.task.cancel()


async def _after(first: asyncio.Task[Any], then: Any) -> None:
    """Store the answer only after the user's message (its position comes first)."""
    try:
        await first
    finally:
        await then


async def aclose_quietly(stream: AsyncIterator[Event]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    partial.write_bytes(data)
    partial.replace(target)
