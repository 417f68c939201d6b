"""Who is calling: an ASGI middleware that resolves the bearer credential once per request, and the
FastAPI dependencies routes declare (`CurrentUser`, `AdminUser`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
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
# which cost ~150 µs per hop on every authenticated request (bench/RESULTS.md, auth benchmark).

# Declares the scheme in OpenAPI (the Authorize button in /docs); the middleware does the work.
_bearer_scheme = HTTPBearer(auto_error=False, description="An access token or a personal API key (fim_...)")


async def get_accounts(request: Request) -> Accounts:
    accounts: Accounts = request.app.state.accounts
    return accounts


async def current_principal(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)]
) -> Principal:
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


AccountsDep = Annotated[Accounts, Depends(get_accounts)]
CurrentUser = Annotated[Principal, Depends(current_principal)]
AdminUser = Annotated[Principal, Depends(admin_principal)]
