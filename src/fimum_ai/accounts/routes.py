"""/api/v1/auth/*, /api/v1/me, /api/v1/admin/users: thin routes over the accounts services."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from fimum_ai.accounts import api_keys
from fimum_ai.accounts.auth import BEARER_SECURITY, AccountsDep, AdminUser, CurrentUser, require_principal
from fimum_ai.accounts.delivery import DeliveryError, OtpMessage
from fimum_ai.accounts.identifiers import parse_identifier
from fimum_ai.accounts.otp import AccountDisabled, OtpAttemptsExceeded, OtpExpired, OtpInvalid
from fimum_ai.accounts.principal import Principal
from fimum_ai.accounts.service import Accounts
from fimum_ai.accounts.sessions import TokenPair
from fimum_ai.accounts.users import UserSnapshot, check_tier, create_user, get_user, list_users
from fimum_ai.errors import (
    MALFORMED_BODY,
    NOT_SIGNED_IN,
    RATE_LIMITED,
    VALIDATION_FAILED,
    Conflict,
    ErrorDoc,
    Forbidden,
    InvalidInput,
    InvalidToken,
    NotAuthenticated,
    NotFound,
    error_responses,
)
from fimum_ai.settings import Settings

log = logging.getLogger(__name__)
# Every route here is under /api/: the per-user (or per-IP) request limit applies to all of them.
router = APIRouter(prefix="/api/v1", responses=error_responses(RATE_LIMITED))

_BAD_IDENTIFIER = ErrorDoc.of(
    InvalidInput, "identifier: not a valid e-mail address (The email address is not valid.)"
)
_ADMINS_ONLY = ErrorDoc.of(Forbidden, "administrators only")
_SIGNED_IN = error_responses(*NOT_SIGNED_IN)
_ADMIN = error_responses(*NOT_SIGNED_IN, _ADMINS_ONLY)

REFRESH_COOKIE = "fimum_refresh"
CSRF_COOKIE = "fimum_csrf"
CSRF_HEADER = "x-csrf-token"
_ACCEPTED = "If this address can sign in, a code is on its way."


class _Body(BaseModel):
    # Strict, as the schema says: `"is_admin": 0` is refused (422), not coerced to false.
    model_config = ConfigDict(strict=True)


_IDENTIFIER = "E-mail address or phone number in international (+E.164) form, 3-320 characters."


class OtpRequest(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"identifier": "ada@example.com"}, {"identifier": "+14155550123", "channel": "sms"}]
        }
    )

    identifier: str = Field(
        min_length=3, max_length=320, description=_IDENTIFIER, examples=["ada@example.com", "+14155550123"]
    )
    channel: Literal["email", "sms"] | None = Field(
        None,
        description="Where to send the code; default: e-mail for an address, SMS for a phone number. "
        "It must match the identifier.",
        examples=["email"],
    )


class OtpVerify(_Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"identifier": "ada@example.com", "code": "123456"}]}
    )

    identifier: str = Field(
        min_length=3,
        max_length=320,
        description="The identifier the code was sent to.",
        examples=["ada@example.com"],
    )
    code: str = Field(
        pattern=r"^\d{6}$", description="The 6-digit code (valid 10 minutes).", examples=["123456"]
    )


class RefreshBody(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"refresh_token": "eyJhbGciOiJIUzI1NiIs..."}]})

    refresh_token: str | None = Field(
        None,
        max_length=4096,
        description="The refresh token from sign-in; leave it out to use the session cookie "
        "(then send the `fimum_csrf` cookie's value in `X-CSRF-Token`).",
        examples=["eyJhbGciOiJIUzI1NiIs..."],
    )


class ApiKeyCreate(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Open WebUI"}]})

    name: str = Field(
        "API key",
        min_length=1,
        max_length=100,
        description="A label (1-100 characters).",
        examples=["laptop"],
    )


class UserCreate(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"identifier": "grace@example.com", "tier": "pro", "is_admin": False}]
        }
    )

    identifier: str = Field(
        min_length=3, max_length=320, description=_IDENTIFIER, examples=["grace@example.com"]
    )
    tier: str = Field("free", description="A configured tier: free, pro, enterprise...", examples=["pro"])
    is_admin: bool = Field(False, description="May manage users.")


class UserUpdate(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"tier": "enterprise"}, {"disabled": True}]})

    tier: str | None = Field(None, description="A configured tier.", examples=["enterprise"])
    disabled: bool | None = Field(None, description="Disabled users cannot sign in; their sessions end.")
    is_admin: bool | None = Field(None, description="May manage users (you cannot remove your own).")


# --- Response bodies (documentation: routes return plain dicts, `response_model=None`) ----------------


class UserView(BaseModel):
    id: str = Field(examples=["5ed40313-7e08-4e28-8fc2-b61639ad79a3"])
    email: str | None = Field(examples=["ada@example.com"])
    phone: str | None = Field(examples=[None])
    tier: str = Field(examples=["free"])
    is_admin: bool
    disabled: bool
    created_at: str = Field(description="ISO 8601, UTC.")
    last_login_at: str | None


class OtpAccepted(BaseModel):
    """The same answer whether or not the identifier has an account."""

    status: Literal["accepted"]
    message: str
    channel: Literal["email", "sms"]
    delivery: str = Field(description="smtp, smpp, modem or console (development).")
    expires_in: int = Field(description="Seconds the code stays valid.", examples=[600])
    requests_remaining: int = Field(description="Codes this identifier may still ask for in the window.")
    window_resets_at: float = Field(description="Unix time when that window ends.")


class TokenPairView(BaseModel):
    access_token: str
    refresh_token: str = Field(description="Also set as an HttpOnly cookie (path /api/v1/auth).")
    token_type: Literal["bearer"]
    expires_in: int = Field(description="Seconds the access token is valid.", examples=[900])
    refresh_expires_in: int = Field(examples=[2592000])


class SignedIn(TokenPairView):
    user: UserView


class ApiKeyView(BaseModel):
    id: str
    name: str = Field(examples=["Open WebUI"])
    prefix: str = Field(description="The key's first characters, to recognise it.", examples=["fim_a1b2c3"])
    created_at: str
    last_used_at: str | None


class NewApiKey(ApiKeyView):
    key: str = Field(description="The key itself: shown this once, store it now.", examples=["fim_..."])


class ApiKeyList(BaseModel):
    items: list[ApiKeyView]
    next_cursor: None = None


class UserPage(BaseModel):
    items: list[UserView]
    next_cursor: str | None


class Usage(BaseModel):
    limit: int | None = Field(description="Per day; null: unlimited.")
    used: int
    remaining: int | None
    resets_at: str = Field(description="ISO 8601, UTC.")


class Me(BaseModel):
    user: UserView
    tier: str
    limits: dict[str, int | None] = Field(
        description="requests_per_minute, images_per_day, research_per_day (null: unlimited)."
    )
    usage: dict[str, Usage] = Field(description="Today's use per quota (images, research).")
    auth: dict[str, Any] = Field(
        description="How this request signed in: `via` jwt or api_key, `expires_at`."
    )


def _ok(model: type[BaseModel], status: int = 200) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": model, "description": "Success"}}


def delivery_name(settings: Settings, channel: Literal["email", "sms"]) -> str:
    """Where codes for this channel go: smtp | smpp | modem | console (development)."""
    if channel == "email":
        return "smtp" if settings.smtp_host else "console"
    if settings.smpp_host:
        return "smpp"
    return "modem" if settings.modem_device else "console"


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get(
    "/me",
    tags=["account"],
    summary="Me: tier, limits, today's usage and remaining quota",
    response_model=None,
    responses=_ok(Me) | _SIGNED_IN,
    openapi_extra=BEARER_SECURITY,
)
async def me(request: Request) -> JSONResponse:
    # The busiest authenticated route: first in the router (route matching is linear) and without
    # dependencies (each one FastAPI solves costs ~15 µs per request).
    principal = require_principal(request)
    accounts: Accounts = request.app.state.accounts
    user = await accounts.user(principal.user_id)
    if user is None:
        raise NotAuthenticated("the account no longer exists")
    # Already JSON types: a JSONResponse skips FastAPI's jsonable_encoder pass (~40 µs per request
    # on the hottest authenticated route, bench/RESULTS.md).
    return JSONResponse(
        {
            "user": user.public(),
            "tier": user.tier,
            "limits": _limits(accounts, user.tier),
            "usage": {
                kind: {
                    "limit": report.limit,
                    "used": report.used,
                    "remaining": report.remaining,
                    "resets_at": report.resets_at.isoformat(),
                }
                for kind, report in (await accounts.quotas.report(user.id, user.tier)).items()
            },
            "auth": {"via": principal.via, "expires_at": principal.expires_at},
        }
    )


@router.post(
    "/auth/otp/request",
    status_code=202,
    tags=["auth"],
    summary="Send a one-time sign-in code",
    response_model=None,
    responses=_ok(OtpAccepted, 202)
    | error_responses(
        _BAD_IDENTIFIER,
        ErrorDoc.of(InvalidInput, "channel: sms codes need a phone number"),
        MALFORMED_BODY,
        VALIDATION_FAILED,
    ),
)
async def request_code(body: OtpRequest, request: Request, accounts: AccountsDep) -> dict[str, Any]:
    identifier = parse_identifier(body.identifier)
    if body.channel and body.channel != identifier.channel:
        needed = "an e-mail address" if body.channel == "email" else "a phone number"
        raise InvalidInput(f"channel: {body.channel} codes need {needed}")
    auth = accounts.settings.auth
    await accounts.limiter.check_or_raise(f"otp-ip:{_client_ip(request)}", auth.otp_requests_per_ip)
    state = await accounts.limiter.check_or_raise(
        f"otp-id:{identifier.value}", auth.otp_requests_per_identifier
    )
    issued = await asyncio.to_thread(accounts.otp.issue, identifier)
    if issued.deliver:
        message = OtpMessage(
            channel=identifier.channel,
            recipient=identifier.value,
            code=issued.code,
            expires_in_s=issued.expires_in_s,
            public_url=accounts.settings.public_url,
        )
        try:
            accounts.dispatcher.enqueue(message)
        except DeliveryError as exc:
            # Answer as if sent: a different answer here would tell who has an account.
            log.error("otp not queued", extra={"identifier": identifier.masked(), "reason": exc.message})
    log.info("otp requested", extra={"identifier": identifier.masked(), "delivered": issued.deliver})
    # The same answer whether or not the identifier has an account (no enumeration).
    return {
        "status": "accepted",
        "message": _ACCEPTED,
        "channel": identifier.channel,
        "delivery": delivery_name(accounts.settings, identifier.channel),
        "expires_in": issued.expires_in_s,
        "requests_remaining": state.remaining,
        "window_resets_at": state.reset_at,
    }


@router.post(
    "/auth/otp/verify",
    tags=["auth"],
    summary="Exchange a code for tokens",
    response_model=None,
    responses=_ok(SignedIn)
    | error_responses(
        ErrorDoc.of(OtpInvalid, "the code is not correct", {"attempts_left": 4}),
        ErrorDoc.of(OtpExpired, "the code has expired; request a new one"),
        ErrorDoc.of(OtpAttemptsExceeded, "too many wrong codes; request a new one"),
        _BAD_IDENTIFIER,
        ErrorDoc.of(AccountDisabled, "this account is disabled"),
        MALFORMED_BODY,
        VALIDATION_FAILED,
    ),
)
async def verify_code(
    body: OtpVerify, request: Request, response: Response, accounts: AccountsDep
) -> dict[str, Any]:
    await accounts.limiter.check_or_raise(
        f"otp-verify-ip:{_client_ip(request)}", accounts.settings.auth.otp_requests_per_ip
    )
    proof = {"identifier": body.identifier, "code": body.code}
    user = await asyncio.to_thread(accounts.providers["otp"].sign_in, proof)
    accounts.users.invalidate(user.id)
    pair = await accounts.sessions.start(user.id, request.headers.get("user-agent"))
    log.info("signed in", extra={"user_id": user.id})
    _set_session_cookies(request, response, pair, accounts.settings)
    return {**pair.body(), "user": user.public()}


@router.post(
    "/auth/refresh",
    tags=["auth"],
    summary="Rotate the refresh token; get a new access token",
    response_model=None,
    responses=_ok(TokenPairView)
    | error_responses(
        ErrorDoc.of(NotAuthenticated, "no refresh token: send {'refresh_token': ...} or the session cookie"),
        ErrorDoc.of(InvalidToken, "the session has ended; sign in again", {"reason": "revoked"}),
        ErrorDoc.of(
            Forbidden, "CSRF check failed: send the fimum_csrf cookie's value in the X-CSRF-Token header"
        ),
        MALFORMED_BODY,
        VALIDATION_FAILED,
    ),
)
async def refresh(
    request: Request,
    response: Response,
    accounts: AccountsDep,
    body: Annotated[RefreshBody | None, Body()] = None,
) -> dict[str, Any]:
    token = body.refresh_token if body else None
    if not token:
        token = request.cookies.get(REFRESH_COOKIE)
        if not token:
            raise NotAuthenticated("no refresh token: send {'refresh_token': ...} or the session cookie")
        _check_csrf(request)
    pair = await accounts.sessions.refresh(token, request.headers.get("user-agent"))
    _set_session_cookies(request, response, pair, accounts.settings)
    return pair.body()


@router.post(
    "/auth/logout",
    status_code=204,
    tags=["auth"],
    summary="End this session",
    responses=error_responses(MALFORMED_BODY, VALIDATION_FAILED),
)
async def logout(
    request: Request,
    accounts: AccountsDep,
    body: Annotated[RefreshBody | None, Body()] = None,
) -> Response:
    principal = getattr(request.state, "principal", None)
    token = (body.refresh_token if body else None) or request.cookies.get(REFRESH_COOKIE)
    await accounts.sessions.logout(principal if isinstance(principal, Principal) else None, token)
    response = Response(status_code=204)
    _clear_session_cookies(response)
    return response


@router.post(
    "/auth/logout-all",
    status_code=204,
    tags=["auth"],
    summary="End every session of this user",
    responses=_SIGNED_IN,
)
async def logout_all(principal: CurrentUser, accounts: AccountsDep) -> Response:
    await accounts.sessions.logout_everywhere(principal.user_id)
    response = Response(status_code=204)
    _clear_session_cookies(response)
    return response


def _limits(accounts: Accounts, tier: str) -> dict[str, int | None]:
    tier_limits = accounts.settings.tiers.get(tier) or accounts.settings.tiers["free"]

    def unlimited(value: int) -> int | None:
        return None if value < 0 else value

    return {
        "requests_per_minute": unlimited(tier_limits.requests_per_minute),
        "images_per_day": unlimited(accounts.quotas.limit_for(tier, "images")),
        "research_per_day": unlimited(accounts.quotas.limit_for(tier, "research")),
    }


@router.get(
    "/me/api-keys",
    tags=["account"],
    summary="My personal API keys",
    response_model=None,
    responses=_ok(ApiKeyList) | _SIGNED_IN,
)
async def list_api_keys(principal: CurrentUser, accounts: AccountsDep) -> dict[str, Any]:
    def run() -> list[dict[str, object]]:
        with accounts.db.session() as session:
            return [api_keys.public(row) for row in api_keys.list_keys(session, principal.user_id)]

    return {"items": await asyncio.to_thread(run), "next_cursor": None}


@router.post(
    "/me/api-keys",
    status_code=201,
    tags=["account"],
    summary="Create an API key (shown once)",
    response_model=None,
    responses=_ok(NewApiKey, 201) | error_responses(*NOT_SIGNED_IN, MALFORMED_BODY, VALIDATION_FAILED),
)
async def create_api_key(body: ApiKeyCreate, principal: CurrentUser, accounts: AccountsDep) -> dict[str, Any]:
    def run() -> dict[str, object]:
        with accounts.db.session() as session, session.begin():
            row, key = api_keys.create_key(session, principal.user_id, body.name)
            return {**api_keys.public(row), "key": key}

    return await asyncio.to_thread(run)


@router.delete(
    "/me/api-keys/{key_id}",
    status_code=204,
    tags=["account"],
    summary="Revoke an API key",
    responses=error_responses(*NOT_SIGNED_IN, ErrorDoc.of(NotFound, "no such API key"), VALIDATION_FAILED),
)
async def revoke_api_key(key_id: str, principal: CurrentUser, accounts: AccountsDep) -> Response:
    def run() -> None:
        with accounts.db.session() as session, session.begin():
            api_keys.revoke_key(session, principal.user_id, key_id)

    await asyncio.to_thread(run)
    return Response(status_code=204)


@router.get(
    "/admin/users",
    tags=["admin"],
    summary="All users (admins only)",
    response_model=None,
    responses=_ok(UserPage)
    | error_responses(
        ErrorDoc.of(InvalidInput, "cursor: unknown cursor"), *NOT_SIGNED_IN, _ADMINS_ONLY, VALIDATION_FAILED
    ),
)
async def admin_list_users(
    _: AdminUser,
    accounts: AccountsDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        with accounts.db.session() as session:
            rows, next_cursor = list_users(session, cursor=cursor, limit=limit)
            return {"items": [UserSnapshot.of(u).public() for u in rows], "next_cursor": next_cursor}

    return await asyncio.to_thread(run)


@router.post(
    "/admin/users",
    status_code=201,
    tags=["admin"],
    summary="Create (invite) a user",
    response_model=None,
    responses=_ok(UserView, 201)
    | error_responses(
        _BAD_IDENTIFIER,
        ErrorDoc.of(InvalidInput, "tier: unknown tier 'gold' (known: enterprise, free, pro)"),
        *NOT_SIGNED_IN,
        _ADMINS_ONLY,
        ErrorDoc.of(Conflict, "a user with this email already exists"),
        MALFORMED_BODY,
        VALIDATION_FAILED,
    ),
)
async def admin_create_user(body: UserCreate, _: AdminUser, accounts: AccountsDep) -> dict[str, Any]:
    identifier = parse_identifier(body.identifier)
    check_tier(body.tier, accounts.settings.tiers)
    if accounts.settings.signup_policy == "closed":
        raise Conflict(
            "sign-up is closed (FIMUM_SIGNUP=closed); the operator can add users with `fimum users create`"
        )

    def run() -> dict[str, object]:
        with accounts.db.session() as session, session.begin():
            return UserSnapshot.of(
                create_user(session, identifier, tier=body.tier, is_admin=body.is_admin)
            ).public()

    return await asyncio.to_thread(run)


@router.patch(
    "/admin/users/{user_id}",
    tags=["admin"],
    summary="Set a user's tier, admin flag or disabled flag",
    response_model=None,
    responses=_ok(UserView)
    | error_responses(
        ErrorDoc.of(InvalidInput, "tier: unknown tier 'gold' (known: enterprise, free, pro)"),
        *NOT_SIGNED_IN,
        _ADMINS_ONLY,
        ErrorDoc.of(Forbidden, "you cannot disable yourself or remove your own admin rights"),
        ErrorDoc.of(NotFound, "no such user"),
        MALFORMED_BODY,
        VALIDATION_FAILED,
    ),
)
async def admin_update_user(
    user_id: str, body: UserUpdate, admin: AdminUser, accounts: AccountsDep
) -> dict[str, Any]:
    if body.tier is not None:
        check_tier(body.tier, accounts.settings.tiers)
    if user_id == admin.user_id and (body.disabled or body.is_admin is False):
        raise Forbidden("you cannot disable yourself or remove your own admin rights")

    def run() -> UserSnapshot:
        with accounts.db.session() as session, session.begin():
            user = get_user(session, user_id)
            if body.tier is not None:
                user.tier = body.tier
            if body.is_admin is not None:
                user.is_admin = body.is_admin
            if body.disabled is not None:
                user.disabled = body.disabled
            session.flush()
            return UserSnapshot.of(user)

    snapshot = await asyncio.to_thread(run)
    accounts.users.invalidate(user_id)
    if body.disabled:
        await accounts.sessions.logout_everywhere(user_id)
    log.info(
        "user updated",
        extra={"user_id": user_id, "by": admin.user_id, "fields": sorted(body.model_fields_set)},
    )
    return snapshot.public()


def _set_session_cookies(request: Request, response: Response, pair: TokenPair, settings: Settings) -> None:
    secure = request.url.scheme == "https"
    response.set_cookie(
        REFRESH_COOKIE,
        pair.refresh_token,
        max_age=pair.refresh_expires_in,
        path="/api/v1/auth",
        httponly=True,
        secure=secure,
        samesite="strict",
    )
    # Double-submit CSRF token: readable by our page's script, echoed in X-CSRF-Token on refresh.
    response.set_cookie(
        CSRF_COOKIE,
        secrets.token_urlsafe(24),
        max_age=pair.refresh_expires_in,
        path="/",
        secure=secure,
        samesite="strict",
    )


def _clear_session_cookies(response: Response) -> None:
    response.delete_cookie(REFRESH_COOKIE, path="/api/v1/auth")
    response.delete_cookie(CSRF_COOKIE, path="/")


def _check_csrf(request: Request) -> None:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not secrets.compare_digest(cookie, header):
        raise Forbidden("CSRF check failed: send the fimum_csrf cookie's value in the X-CSRF-Token header")
