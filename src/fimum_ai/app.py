"""FastAPI application factory: routers, JSON errors, health."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from fimum_ai import __version__, web
from fimum_ai import about as about_routes
from fimum_ai.accounts import routes as account_routes
from fimum_ai.accounts.auth import AuthMiddleware, document_bearer_auth
from fimum_ai.accounts.service import Accounts
from fimum_ai.chat import openai_compat as openai_chat
from fimum_ai.chat import research_routes, sandbox_routes
from fimum_ai.chat import routes as chat_routes
from fimum_ai.chat.sandbox import SandboxService
from fimum_ai.chat.service import CHAT_BODY_LIMITS, ChatService
from fimum_ai.db import Database, upgrade
from fimum_ai.errors import FimumError, InvalidInput
from fimum_ai.images import openai_compat as openai_images
from fimum_ai.images import routes as image_routes
from fimum_ai.images.provider import DEMO_WARNING, EngineProvider
from fimum_ai.images.routes import ImageModels
from fimum_ai.images.service import ImageService
from fimum_ai.images.uploads import MAX_EDIT_BODY_BYTES, BodySizeLimitMiddleware
from fimum_ai.limits import RateLimitMiddleware
from fimum_ai.settings import Settings

log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str, details: Any = None, headers: Any = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FimumError)
    async def fimum_error(_: Request, exc: FimumError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.details, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return _error(422, "validation_error", message, {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # 400: a body FastAPI could not even parse (e.g. not UTF-8); invalid input like any other.
        code = {400: InvalidInput.code, 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        return _error(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return _error(500, "internal_error", "internal server error")


class Health(BaseModel):
    """GET /healthz (documentation: the route returns a plain dict)."""

    status: Literal["ok"]
    version: str
    mode: Literal["embedded", "distributed"]
    image_model: ImageModels
    database: str = Field(examples=["sqlite"])
    signup: Literal["open", "invite", "closed"]
    delivery: dict[str, str] = Field(
        description="Where sign-in codes go per channel: smtp, smpp, modem, console."
    )


def create_app(settings: Settings) -> FastAPI:
    provider = EngineProvider(settings)
    database = Database(settings)
    accounts = Accounts(settings, database)
    images = ImageService(settings, database, provider, accounts.quotas)
    chat = ChatService(settings, database, accounts.limiter)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Migrations run on every start (idempotent; replicas take turns on PostgreSQL).
        await asyncio.to_thread(upgrade, database.engine, settings.database_schema)
        await accounts.start()
        await images.start()
        await chat.start()
        models = provider.models()
        if models is None:
            log.warning("no image model installed; image requests will return 503 model_not_installed")
        elif models.demo:
            log.warning(DEMO_WARNING)
        try:
            yield
        finally:
            await chat.stop()
            await images.stop()
            await accounts.stop()
            provider.close()
            database.dispose()

    app = FastAPI(
        title="Fimum AI",
        version=__version__,
        description="Self-hosted AI platform: SDXL image generation and editing, chat, search.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine_provider = provider
    app.state.database = database
    app.state.accounts = accounts
    app.state.images = images
    app.state.chat = chat
    chat.app_state = app.state  # the agent reaches images, sandbox and search through it
    app.state.sandbox = SandboxService.from_settings(settings)
    _install_error_handlers(app)
    # Starlette runs the last added middleware first: authenticate, then rate-limit per user.
    app.add_middleware(RateLimitMiddleware, limiter=accounts.limiter, settings=settings)
    app.add_middleware(AuthMiddleware, accounts=accounts)
    # Outermost: an oversized upload is refused before any other work (413, body never read whole).
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=MAX_EDIT_BODY_BYTES)
    for prefix, limit in CHAT_BODY_LIMITS.items():
        app.add_middleware(BodySizeLimitMiddleware, max_bytes=limit, prefixes=(prefix,))
    app.include_router(account_routes.router)
    app.include_router(image_routes.router)
    app.include_router(image_routes.gallery)
    app.include_router(openai_images.router)
    app.include_router(about_routes.router)
    app.include_router(chat_routes.models_router)
    app.include_router(chat_routes.router)
    app.include_router(openai_chat.router)
    app.include_router(sandbox_routes.router)
    app.include_router(research_routes.router)
    document_bearer_auth(app)

    @app.get(
        "/healthz",
        tags=["ops"],
        summary="Liveness and what is installed",
        response_model=None,
        responses={200: {"model": Health, "description": "Up"}},
    )
    async def healthz() -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "mode": settings.mode,
                "image_model": provider.status(),
                "database": database.dialect,
                "signup": settings.signup_policy,
                "delivery": {
                    "email": account_routes.delivery_name(settings, "email"),
                    "sms": account_routes.delivery_name(settings, "sms"),
                },
            }
        )

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # The web app answers whatever no route matched (client routes, static files).
    web.install(app, settings)

    return app
