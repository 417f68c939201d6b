"""Who is calling: an ASGI middleware that resolves the bearer credential once per request, and the
FastAPI dependencies routes declare (`CurrentUser`, `AdminUser`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from fimum_ai.accounts.principal import Principal
from fimum_ai.accounts.service import Accounts
from fimum_ai.errors import FimumError, Forbidden, NotAuthenticated


class AuthMiddleware:
    """Sets scope["state"]["principal"] (or ["auth_error"]) before routing and rate limiting.

    It never rejects a request itself: public routes stay public, and protected routes raise the
    stored error through `CurrentUser`, so the reason (expired, revoked...) reaches the client."""

    def __init__(self, app: ASGIApp, accounts: Accounts) -> None:
        self.app = app
        self.accounts = accounts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            credentials = _bearer(scope)
            if credentials:
                state = scope.setdefault("state", {})
                try:
                    state["principal"] = await self.accounts.authenticate(credentials)
                except FimumError as exc:
                    state["auth_error"] = exc
        await self.app(scope, receive, send)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in its thread pool,
# which cost ~150 µs per hop on every authenticated request (bench/RESULTS.md, auth benchmark). And
# the bearer scheme is not a dependency of `current_principal`: solving it cost ~15 µs per request
# for nothing but the OpenAPI entry, which `document_bearer_auth` writes instead.
BEARER_SECURITY: dict[str, Any] = {"security": [{"HTTPBearer": []}]}
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An access token (POST /api/v1/auth/otp/verify) or a personal API key (fim_...).",
}


async def get_accounts(request: Request) -> Accounts:
    accounts: Accounts = request.app.state.accounts
    return accounts


async def current_principal(request: Request) -> Principal:
    return require_principal(request)


def require_principal(request: Request) -> Principal:
    """The signed-in caller, for a route that reads it without a dependency (mark that route with
    `openapi_extra=BEARER_SECURITY`)."""
    principal = getattr(request.state, "principal", None)
    if isinstance(principal, Principal):
        return principal
    error = getattr(request.state, "auth_error", None)
    if isinstance(error, FimumError):
        raise error
    raise NotAuthenticated("sign in first: send an access token or API key as 'Authorization: Bearer ...'")


async def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden("administrators only")
    return principal


def document_bearer_auth(app: FastAPI) -> None:
    """Mark every operation that needs a signed-in user with the bearer scheme in OpenAPI (the
    Authorize button in /docs, and clients generated from the schema)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["HTTPBearer"] = BEARER_SCHEME
        for path, route in _api_routes(app.routes, ""):
            if _needs_principal(route.dependant):
                for method in route.methods or ():
                    operation = schema.get("paths", {}).get(path, {}).get(method.lower())
                    if operation is not None:
                        operation["security"] = [{"HTTPBearer": []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _api_routes(routes: Sequence[BaseRoute], prefix: str) -> Iterator[tuple[str, APIRoute]]:
    for route in routes:
        if isinstance(route, APIRoute):
            if route.include_in_schema:
                yield prefix + route.path_format, route
        elif hasattr(route, "original_router"):  # FastAPI's wrapper of an included router
            context = getattr(route, "include_context", None)
            yield from _api_routes(route.original_router.routes, prefix + getattr(context, "prefix", ""))


def _needs_principal(dependant: Dependant) -> bool:
    return any(
        d.call in (current_principal, admin_principal) or _needs_principal(d) for d in dependant.dependencies
    )


AccountsDep = Annotated[Accounts, Depends(get_accounts)]
CurrentUser = Annotated[Principal, Depends(current_principal)]
AdminUser = Annotated[Principal, Depends(admin_principal)]
