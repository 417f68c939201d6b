"""The accounts feature assembled from settings: one object the app holds and routes depend on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from fimum_ai.accounts import api_keys
from fimum_ai.accounts.delivery import Dispatcher, build_dispatcher
from fimum_ai.accounts.otp import OtpService
from fimum_ai.accounts.principal import Principal
from fimum_ai.accounts.providers import LoginProvider
from fimum_ai.accounts.revocation import RevocationStore, build_revocation_store
from fimum_ai.accounts.sessions import SessionService
from fimum_ai.accounts.tokens import TokenClaims, TokenCodec, signing_key
from fimum_ai.accounts.users import UserCache, UserSnapshot
from fimum_ai.db import Database, User
from fimum_ai.errors import InvalidToken
from fimum_ai.limits import QuotaService, RateLimiter, build_quota_store
from fimum_ai.settings import Settings

log = logging.getLogger(__name__)
_DECODED_CACHE_SIZE = 4096


class Accounts:
    def __init__(
        self, settings: Settings, database: Database, *, dispatcher: Dispatcher | None = None
    ) -> None:
        self.settings = settings
        self.db = database
        self.codec = TokenCodec(
            signing_key(settings),
            access_ttl_s=settings.auth.access_ttl_s,
            refresh_ttl_s=settings.auth.refresh_ttl_s,
        )
        self.users = UserCache(settings.auth.user_cache_ttl_s)
        self.revocation: RevocationStore = build_revocation_store(settings, database)
        self.sessions = SessionService(database, self.codec, self.revocation, self.users)
        self.otp = OtpService(database, settings)
        # Ways of signing in (SAML for Enterprise will join the one-time code here).
        self.providers: dict[str, LoginProvider] = {self.otp.name: self.otp}
        self.dispatcher = dispatcher or build_dispatcher(settings)
        self.limiter = RateLimiter.from_settings(settings)
        self.quotas = QuotaService(build_quota_store(settings, database), settings)
        # Signature checks of tokens already seen: clients present the same token many times.
        self._decoded: OrderedDict[str, TokenClaims] = OrderedDict()

    async def start(self) -> None:
        await self.revocation.start()
        await self.limiter.start()
        await self.dispatcher.start()

    async def stop(self) -> None:
        await self.dispatcher.stop()
        await self.revocation.aclose()
        await self.limiter.aclose()
        await self.quotas.aclose()

    async def authenticate(self, credentials: str) -> Principal:
        """A bearer credential (access JWT or personal API key) -> the caller, or InvalidToken."""
        if credentials.startswith(api_keys.PREFIX):
            return await asyncio.to_thread(self._api_key_principal, credentials)
        claims = self._decode_access(credentials)
        if await self.revocation.is_revoked(
            jti=claims.jti, family_id=claims.family_id, user_id=claims.user_id, issued_at=claims.issued_at
        ):
            raise InvalidToken("the token has been revoked; sign in again", details={"reason": "revoked"})
        user = await self.user(claims.user_id)
        if user is None or user.disabled:
            raise InvalidToken("the account is disabled or gone", details={"reason": "disabled"})
        return Principal(
            user_id=user.id,
            tier=user.tier,
            is_admin=user.is_admin,
            email=user.email,
            phone=user.phone,
            via="jwt",
            jti=claims.jti,
            family_id=claims.family_id,
            expires_at=claims.expires_at,
        )

    def _decode_access(self, token: str) -> TokenClaims:
        claims = self._decoded.get(token)
        if claims is not None and claims.expires_at > time.time():
            return claims
        claims = self.codec.decode(token, "access")
        self._decoded[token] = claims
        if len(self._decoded) > _DECODED_CACHE_SIZE:
            self._decoded.popitem(last=False)
        return claims

    def _api_key_principal(self, key: str) -> Principal:
        with self.db.session() as session, session.begin():
            found = api_keys.resolve(session, key)
            if found is None:
                raise InvalidToken("unknown or revoked API key", details={"reason": "invalid"})
            _, user = found
            if user.disabled:
                raise InvalidToken("the account is disabled", details={"reason": "disabled"})
            return Principal(
                user_id=user.id,
                tier=user.tier,
                is_admin=user.is_admin,
                email=user.email,
                phone=user.phone,
                via="api_key",
            )

    async def user(self, user_id: str) -> UserSnapshot | None:
        hit, snapshot = self.users.get(user_id)
        if hit:
            return snapshot
        snapshot = await asyncio.to_thread(self._load_user, user_id)
        self.users.put(user_id, snapshot)
        return snapshot

    def _load_user(self, user_id: str) -> UserSnapshot | None:
        with self.db.session() as session:
            user = session.get(User, user_id)
            return UserSnapshot.of(user) if user is not None else None


__all__ = ["Accounts"]
