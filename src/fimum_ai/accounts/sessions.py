"""Login sessions: an access + refresh token pair per sign-in, refresh-token rotation with reuse
detection (a used refresh token presented again revokes its whole family), logout and
"log out everywhere"."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from fimum_ai.accounts.principal import Principal
from fimum_ai.accounts.revocation import RevocationStore, remaining
from fimum_ai.accounts.tokens import TokenClaims, TokenCodec
from fimum_ai.accounts.users import UserCache
from fimum_ai.db import Database, RefreshToken, User
from fimum_ai.errors import InvalidToken

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int

    def body(self) -> dict[str, object]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "refresh_expires_in": self.refresh_expires_in,
        }


class SessionService:
    def __init__(
        self, database: Database, codec: TokenCodec, revocation: RevocationStore, users: UserCache
    ) -> None:
        self._db = database
        self._codec = codec
        self._revocation = revocation
        self._users = users

    async def start(self, user_id: str, user_agent: str | None = None) -> TokenPair:
        return await asyncio.to_thread(self._issue, user_id, str(uuid.uuid4()), user_agent)

    def _issue(self, user_id: str, family_id: str, user_agent: str | None) -> TokenPair:
        access = self._codec.issue("access", user_id, family_id)
        refresh = self._codec.issue("refresh", user_id, family_id)
        with self._db.session() as session, session.begin():
            session.add(
                RefreshToken(
                    jti=refresh.jti,
                    family_id=family_id,
                    user_id=user_id,
                    expires_at=datetime.fromtimestamp(refresh.expires_at, UTC),
                    user_agent=(user_agent or "")[:200] or None,
                )
            )
        return TokenPair(access.token, refresh.token, self._codec.access_ttl_s, self._codec.refresh_ttl_s)

    async def refresh(self, refresh_token: str, user_agent: str | None = None) -> TokenPair:
        claims = self._codec.decode(refresh_token, "refresh")
        if await self._revocation.is_revoked(
            jti=None, family_id=claims.family_id, user_id=claims.user_id, issued_at=claims.issued_at
        ):
            raise InvalidToken("the session has ended; sign in again", details={"reason": "revoked"})
        outcome = await asyncio.to_thread(self._rotate, claims)
        if outcome == "reused":
            log.warning("refresh token reuse; session revoked", extra={"user_id": claims.user_id})
            await self._revocation.revoke_family(claims.family_id, self._codec.refresh_ttl_s)
            raise InvalidToken(
                "this refresh token was already used; the session has been ended for safety",
                details={"reason": "reused"},
            )
        if outcome != "ok":
            raise InvalidToken("the session has ended; sign in again", details={"reason": outcome})
        return await asyncio.to_thread(self._issue, claims.user_id, claims.family_id, user_agent)

    def _rotate(self, claims: TokenClaims) -> str:
        now = datetime.now(UTC)
        with self._db.session() as session, session.begin():
            # Atomic claim: of two concurrent uses of one token, exactly one succeeds.
            claimed = session.execute(
                update(RefreshToken)
                .where(
                    RefreshToken.jti == claims.jti,
                    RefreshToken.used_at.is_(None),
                    RefreshToken.revoked_at.is_(None),
                )
                .values(used_at=now)
            )
            assert isinstance(claimed, CursorResult)
            if claimed.rowcount == 1:
                user = session.get(User, claims.user_id)
                return "disabled" if user is None or user.disabled else "ok"
            row = session.get(RefreshToken, claims.jti)
            if row is None:
                return "unknown"
            if row.revoked_at is not None:
                return "revoked"
            self._revoke_family_rows(session, claims.family_id, now)
            return "reused"

    @staticmethod
    def _revoke_family_rows(session: Session, family_id: str, now: datetime) -> None:
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def logout(self, principal: Principal | None, refresh_token: str | None) -> None:
        """End one session: the access token at hand and every token of its family."""
        families: set[str] = set()
        if principal is not None and principal.jti and principal.expires_at:
            await self._revocation.revoke_token(principal.jti, remaining(principal.expires_at))
            if principal.family_id:
                families.add(principal.family_id)
        if refresh_token:
            # Logging out with a dead refresh token is still a successful logout.
            with contextlib.suppress(InvalidToken):
                families.add(self._codec.decode(refresh_token, "refresh").family_id)
        for family_id in families:
            await self._revocation.revoke_family(family_id, self._codec.refresh_ttl_s)
            await asyncio.to_thread(self._end_family, family_id)

    def _end_family(self, family_id: str) -> None:
        with self._db.session() as session, session.begin():
            self._revoke_family_rows(session, family_id, datetime.now(UTC))

    async def logout_everywhere(self, user_id: str) -> None:
        now = time.time()
        await self._revocation.revoke_user_before(user_id, now, self._codec.refresh_ttl_s)
        await asyncio.to_thread(self._end_user_sessions, user_id, datetime.fromtimestamp(now, UTC))
        self._users.invalidate(user_id)

    def _end_user_sessions(self, user_id: str, now: datetime) -> None:
        with self._db.session() as session, session.begin():
            session.execute(update(User).where(User.id == user_id).values(tokens_valid_after=now))
            session.execute(
                update(RefreshToken)
                .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )

    def active_sessions(self, user_id: str) -> int:
        with self._db.session() as session:
            rows = session.scalars(
                select(RefreshToken.family_id).where(
                    RefreshToken.user_id == user_id,
                    RefreshToken.revoked_at.is_(None),
                    RefreshToken.used_at.is_(None),
                    RefreshToken.expires_at > datetime.now(UTC),
                )
            )
            return len(set(rows))
