"""Users: lookup, creation, tier and status changes, and a short-lived per-process cache of the row
that every authenticated request needs (tier, admin flag, disabled)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fimum_ai.accounts.identifiers import Identifier
from fimum_ai.db import User
from fimum_ai.errors import Conflict, InvalidInput, NotFound


@dataclass(frozen=True, slots=True)
class UserSnapshot:
    id: str
    email: str | None
    phone: str | None
    tier: str
    is_admin: bool
    disabled: bool
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserSnapshot:
        return cls(
            user.id,
            user.email,
            user.phone,
            user.tier,
            user.is_admin,
            user.disabled,
            user.created_at,
            user.last_login_at,
        )

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "email": self.email,
            "phone": self.phone,
            "tier": self.tier,
            "is_admin": self.is_admin,
            "disabled": self.disabled,
            "created_at": self.created_at.isoformat(),
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
        }


class UserCache:
    """user id -> snapshot for `ttl_s` seconds. Changes made by this process invalidate at once;
    changes made by another replica are seen within `ttl_s` (revocations are immediate anyway)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, UserSnapshot | None]] = {}

    def get(self, user_id: str) -> tuple[bool, UserSnapshot | None]:
        entry = self._entries.get(user_id)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, user_id: str, snapshot: UserSnapshot | None) -> None:
        if self.ttl_s > 0:
            if len(self._entries) > 100_000:
                self._entries.clear()
            self._entries[user_id] = (time.monotonic() + self.ttl_s, snapshot)

    def invalidate(self, user_id: str) -> None:
        self._entries.pop(user_id, None)


def find_by_identifier(session: Session, identifier: Identifier) -> User | None:
    column = User.email if identifier.kind == "email" else User.phone
    return session.scalars(select(User).where(column == identifier.value)).first()


def create_user(
    session: Session, identifier: Identifier, *, tier: str = "free", is_admin: bool = False
) -> User:
    if find_by_identifier(session, identifier) is not None:
        raise Conflict(f"a user with this {identifier.kind} already exists")
    user = User(tier=tier, is_admin=is_admin)
    if identifier.kind == "email":
        user.email = identifier.value
    else:
        user.phone = identifier.value
    session.add(user)
    session.flush()
    return user


def count_users(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(User)) or 0)


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


def check_tier(tier: str, tiers: object) -> str:
    if not isinstance(tiers, dict) or tier not in tiers:
        known = ", ".join(sorted(tiers)) if isinstance(tiers, dict) else ""
        raise InvalidInput(f"tier: unknown tier {tier!r} (known: {known})")
    return tier


def list_users(session: Session, *, cursor: str | None, limit: int) -> tuple[list[User], str | None]:
    """Oldest first, keyset-paginated on (created_at, id): stable while users are added."""
    query = select(User).order_by(User.created_at, User.id).limit(limit + 1)
    if cursor:
        after = session.get(User, cursor)
        if after is None:
            raise InvalidInput("cursor: unknown cursor")
        query = query.where(
            (User.created_at > after.created_at)
            | ((User.created_at == after.created_at) & (User.id > after.id))
        )
    rows = list(session.scalars(query))
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_cursor
