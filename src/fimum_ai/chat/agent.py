"""The coding agent (FR-CODE-002/003/004): a tool-calling loop in the OpenAI tools format through the
router, with Fimum's own tools:

- `generate_image`: the image service (SDXL), counted against the user's image quota;
- `run_code`: the code sandbox (chat/sandbox), for every language it has;
- `research`: deep research (chat/research.py), counted against the research quota;
- `web_search`: the search service, only when the app has one (`app_state.search`).

Each round streams the model's text; tool calls are run in order, their results go back to the
model, until it answers without tools or `agent.max_steps` is reached (the last round offers no
tools, so it must answer). When the request asks for an image (`include_logo`, or the words logo,
icon, diagram, mockup, wireframe...) and the model did not call `generate_image`, the agent calls it
itself, so the answer always comes with the code AND the image.

Events: `Delta`, `ModelSwitch`, `ToolCall`/`ToolResult` (images are image ids), `Progress`, one `Usage`
(summed over rounds) and one `Done` (the model of the last round).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fimum_ai.accounts.principal import Principal
from fimum_ai.chat.events import (
    Delta,
    Done,
    Event,
    ModelSwitch,
    Progress,
    Sources,
    ToolCall,
    ToolResult,
    Usage,
)
from fimum_ai.chat.research import DeepResearch, WebSearch, research_models
from fimum_ai.chat.router import ChatRequest, Router
from fimum_ai.chat.sandbox import SandboxService
from fimum_ai.errors import FimumError
from fimum_ai.settings import Settings

log = logging.getLogger(__name__)

IMAGE_INTENT = re.compile(
    r"\b(logos?|icons?|favicons?|diagrams?|mock-?ups?|wireframes?|illustrations?|banners?|mascots?|"
    r"flowcharts?|hero image)\b",
    re.IGNORECASE,
)
_STYLE_FOR = (
    ("logo", "logo"),
    ("icon", "logo"),
    ("diagram", "technical-diagram"),
    ("flowchart", "technical-diagram"),
)

AGENT_PROMPT = (
    "You are Fimum's coding agent. Write complete, working code with short explanations, in fenced "
    "code blocks tagged with their language. Use the tools when they help: run_code to check code "
    "before you present it (no network inside), generate_image for logos, icons, diagrams and UI "
    "mockups the user asks for (the images are shown to the user next to your answer: refer to them, "
    "do not draw them in ASCII), research for documentation and best practices."
)


def _function(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


@dataclass
class AgentTools:
    """What the tools run on; each is None when the app lacks it (the tool is then not offered)."""

    principal: Principal
    settings: Settings
    images: Any = None  # ImageService
    sandbox: SandboxService | None = None
    search: WebSearch | None = None
    quotas: Any = None  # QuotaService
    router: Router | None = None
    sandbox_languages: tuple[str, ...] = ()

    @classmethod
    async def from_app_state(cls, state: Any, principal: Principal, router: Router) -> AgentTools:
        sandbox: SandboxService | None = getattr(state, "sandbox", None)
        languages: tuple[str, ...] = ()
        if sandbox is not None:
            listed = await sandbox.languages()
            languages = tuple(str(lang["id"]) for lang in listed["languages"]) if listed["available"] else ()
        accounts = getattr(state, "accounts", None)
        return cls(
            principal=principal,
            settings=state.settings,
            images=getattr(state, "images", None),
            sandbox=sandbox if languages else None,
            search=getattr(state, "search", None),
            quotas=getattr(accounts, "quotas", None),
            router=router,
            sandbox_languages=languages,
        )

    def specs(self) -> list[dict[str, Any]]:
        """The tools offered to the model, in the OpenAI tools format."""
        tools: list[dict[str, Any]] = []
        if self.images is not None:
            presets = sorted(self.settings.image_generation.style_presets)
            tools.append(
                _function(
                    "generate_image",
                    "Generate an image with Fimum's Stable Diffusion XL engine: logos, icons, diagrams, "
                    "UI mockups, illustrations. Returns image ids; the user sees the images.",
                    {
                        "prompt": {
                            "type": "string",
                            "description": "What to draw, concretely (max 1000 chars).",
                        },
                        "style": {"type": "string", "enum": presets, "description": "A style preset."},
                    },
                    ["prompt"],
                )
            )
        if self.sandbox is not None:
            tools.append(
                _function(
                    "run_code",
                    "Run a program in an isolated sandbox (no network, a few seconds of CPU) and get "
                    "its exit status, stdout and stderr.",
                    {
                        "language": {"type": "string", "enum": list(self.sandbox_languages)},
                        "code": {"type": "string", "description": "The whole program."},
                        "stdin": {"type": "string", "description": "Standard input (optional)."},
                    },
                    ["language", "code"],
                )
            )
        if (
            self.router is not None
            and self.quotas is not None
            and research_models(self.router, self.settings.research)
        ):
            tools.append(
                _function(
                    "research",
                    "Deep research: several models answer a question in parallel and their answers are "
                    "merged, with sources. Slow and counted against the user's daily research quota.",
                    {"question": {"type": "string"}},
                    ["question"],
                )
            )
        if self.search is not None:
            tools.append(
                _function(
                    "web_search",
                    "Search the web; returns results with url, title, snippet, date and credibility.",
                    {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 10}},
                    ["query"],
                )
            )
        return tools

    # --- running one call ---------------------------------------------------------------------

    async def call(self, call: ToolCall, progress: asyncio.Queue[Event]) -> ToolResult:
        """Run one tool call; a failure becomes a result the model can read (never an exception)."""
        try:
            arguments = json.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("the arguments are not a JSON object")
        except ValueError as exc:
            return _failed(call, "invalid_arguments", f"the arguments are not valid JSON: {exc}")
        handler = {
            "generate_image": self._generate_image if self.images is not None else None,
            "run_code": self._run_code if self.sandbox is not None else None,
            "research": self._research,
            "web_search": self._web_search if self.search is not None else None,
        }.get(call.name)
        if handler is None:
            return _failed(call, "unknown_tool", f"there is no tool named {call.name!r}")
        try:
            return await handler(call, arguments, progress)
        except FimumError as exc:
            return _failed(call, exc.code, exc.message, exc.details)
        except (KeyError, TypeError, ValueError) as exc:
            return _failed(call, "invalid_arguments", f"{type(exc).__name__}: {exc}")

    async def generate_image(self, prompt: str, style: str | None) -> list[str]:
        from fimum_ai.images.requests import GenerateParams  # pydantic only, no torch

        config = self.settings.agent
        presets = self.settings.image_generation.style_presets
        params = GenerateParams(
            prompt=prompt.strip()[:1000] or "a simple logo",
            width=config.image_width,
            height=config.image_height,
            steps=config.image_steps,
            style_preset=style if style in presets else None,
        )
        job = await self.images.submit_generate(self.principal, params)
        if job.get("status") == "completed" and job.get("image_ids"):
            return [str(i) for i in job["image_ids"]]  # served from the result cache
        async with asyncio.timeout(config.image_timeout_s):
            event = await self.images.wait(job["id"])
        if event.type != "completed":
            error = FimumError(str(event.data.get("message", "the image job failed")))
            error.code = str(event.data.get("code", "image_failed"))
            raise error
        return [str(i) for i in event.data["images"]]

    async def _generate_image(
        self, call: ToolCall, arguments: dict[str, Any], progress: asyncio.Queue[Event]
    ) -> ToolResult:
        await progress.put(Progress(stage="generating_image", detail=str(arguments.get("prompt", ""))[:200]))
        ids = await self.generate_image(str(arguments["prompt"]), arguments.get("style"))
        content = {
            "image_ids": ids,
            "urls": [f"/api/v1/images/{i}/file" for i in ids],
            "note": "The user sees these images with your answer.",
        }
        return ToolResult(id=call.id, name=call.name, content=json.dumps(content), images=tuple(ids))

    async def _run_code(
        self, call: ToolCall, arguments: dict[str, Any], progress: asyncio.Queue[Event]
    ) -> ToolResult:
        assert self.sandbox is not None
        language = str(arguments["language"])
        await progress.put(Progress(stage="running_code", detail=language))
        result = await self.sandbox.run(
            language,
            str(arguments["code"]),
            stdin=str(arguments.get("stdin") or ""),
            user_id=self.principal.user_id,
        )
        limit = self.settings.agent.max_tool_output_chars
        shown = result.to_dict()
        for key in ("stdout", "stderr", "build_output"):
            text = str(shown[key])
            if len(text) > limit:
                shown[key] = text[:limit] + f"\n[... {len(text) - limit} more characters]"
        return ToolResult(id=call.id, name=call.name, content=json.dumps(shown), ok=result.status == "ok")

    async def _research(
        self, call: ToolCall, arguments: dict[str, Any], progress: asyncio.Queue[Event]
    ) -> ToolResult:
        if self.router is None or self.quotas is None:
            raise FimumError("research is not available here")
        question = str(arguments["question"])[:4000]
        reservation = await self.quotas.reserve(self.principal, "research")
        text: list[str] = []
        sources: list[dict[str, Any]] = []
        try:
            async for event in DeepResearch(self.router, self.settings.research, self.search).run(question):
                if isinstance(event, Delta) and event.source is None:
                    text.append(event.text)
                elif isinstance(event, Progress):
                    detail = f"{event.source}: {event.stage}" if event.source else event.stage
                    await progress.put(Progress(stage="research", detail=detail, source="research"))
                elif isinstance(event, Sources) and event.source is None:
                    sources = list(event.items)
        finally:
            if not text:
                await self.quotas.refund(self.principal.user_id, reservation)
        if not text:
            raise FimumError("research produced no answer")
        limit = self.settings.agent.max_tool_output_chars
        answer = "".join(text)
        return ToolResult(
            id=call.id,
            name=call.name,
            content=json.dumps({"answer": answer[:limit], "sources": sources}),
        )

    async def _web_search(
        self, call: ToolCall, arguments: dict[str, Any], progress: asyncio.Queue[Event]
    ) -> ToolResult:
        assert self.search is not None
        query = str(arguments["query"])
        await progress.put(Progress(stage="web_search", detail=query[:200]))
        limit = max(1, min(10, int(arguments.get("limit") or 5)))
        results = await self.search.web_search(query, limit=limit)
        return ToolResult(id=call.id, name=call.name, content=json.dumps(results, default=str))


def _failed(call: ToolCall, code: str, message: str, details: dict[str, Any] | None = None) -> ToolResult:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return ToolResult(id=call.id, name=call.name, content=json.dumps(body, default=str), ok=False)


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
            )
    return ""


def wants_image(messages: list[dict[str, Any]], include_logo: bool) -> bool:
    return include_logo or bool(IMAGE_INTENT.search(_last_user_text(messages)))


def image_request_for(messages: list[dict[str, Any]], include_logo: bool) -> tuple[str, str | None]:
    """(prompt, style preset) for the image the agent makes itself when the model made none."""
    text = " ".join(_last_user_text(messages).split())[:600]
    match = IMAGE_INTENT.search(text)
    word = match.group(1).lower() if match else ("logo" if include_logo else "")
    style = next((preset for key, preset in _STYLE_FOR if word.startswith(key)), None)
    if include_logo and style is None:
        style = "logo"
    subject = text or "a software project"
    prompt = f"{word or 'logo'} for: {subject}" if style == "logo" else subject
    return prompt[:1000], style


async def _limited_call(
    tools: AgentTools, call: ToolCall, progress: asyncio.Queue[Event], calls_made: int, images_made: int
) -> ToolResult:
    """The per-answer caps (a model that loops on tools must not drain quotas or the sandbox)."""
    config = tools.settings.agent
    if calls_made >= config.max_tool_calls:
        return _failed(
            call, "tool_limit", f"at most {config.max_tool_calls} tool calls per answer: answer now"
        )
    if call.name == "generate_image" and images_made >= config.max_images:
        return _failed(call, "tool_limit", f"at most {config.max_images} images per answer")
    return await tools.call(call, progress)


async def _drain(queue: asyncio.Queue[Event]) -> AsyncIterator[Event]:
    while not queue.empty():
        yield queue.get_nowait()


async def run_agent(
    *,
    router: Router,
    request: ChatRequest,
    principal: Principal,
    app_state: Any,
    include_logo: bool = False,
    tools: AgentTools | None = None,
) -> AsyncIterator[Event]:
    """The agent's answer to `request` (OpenAI-format messages, the role, the chosen model) as events."""
    tools = tools or await AgentTools.from_app_state(app_state, principal, router)
    config = tools.settings.agent
    specs = tools.specs()
    image_wanted = wants_image(request.messages, include_logo) and tools.images is not None
    system = AGENT_PROMPT
    if image_wanted:
        system += (
            " This request needs an image (a logo, icon, diagram or mockup): call generate_image "
            "for it, then give the code."
        )
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}, *request.messages]
    images_made: list[str] = []
    calls_made = 0
    usage = [0, 0, 0]
    replied_by = ""
    finish = "stop"
    progress: asyncio.Queue[Event] = asyncio.Queue()
    for step in range(config.max_steps):
        offer = specs if step < config.max_steps - 1 else []
        round_request = ChatRequest(
            list(messages),
            role=request.role,
            model=request.model,
            tools=offer or None,
            params=request.params,
            fallback=request.fallback,
        )
        text: list[str] = []
        calls: list[ToolCall] = []
        async for event in router.stream(round_request):
            if isinstance(event, Delta):
                text.append(event.text)
                yield event
            elif isinstance(event, ToolCall):
                calls.append(event)
            elif isinstance(event, Usage):
                usage = [
                    usage[0] + event.prompt_tokens,
                    usage[1] + event.completion_tokens,
                    usage[2] + event.total_tokens,
                ]
            elif isinstance(event, Done):
                replied_by, finish = event.model, event.finish_reason
            elif isinstance(event, ModelSwitch):
                yield event
        if not calls:
            break
        messages.append(
            {
                "role": "assistant",
                "content": "".join(text) or None,
                "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in calls
                ],
            }
        )
        for call in calls:
            yield call
            result = await _limited_call(tools, call, progress, calls_made, len(images_made))
            calls_made += 1
            async for note in _drain(progress):
                yield note
            images_made += result.images
            yield result
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result.content})
        if text:
            yield Delta(text="\n\n")
    if image_wanted and not images_made:
        prompt, style = image_request_for(request.messages, include_logo)
        call = ToolCall(
            id="fimum_auto_image",
            name="generate_image",
            arguments=json.dumps({"prompt": prompt, "style": style}),
        )
        yield call
        result = await tools.call(call, progress)
        async for note in _drain(progress):
            yield note
        yield result
        if not result.ok:
            log.warning("the agent's own image failed", extra={"tool_result": result.content[:300]})
    if usage[2]:
        yield Usage(prompt_tokens=usage[0], completion_tokens=usage[1], total_tokens=usage[2])
    yield Done(model=replied_by, finish_reason="stop" if finish == "tool_calls" else finish)
