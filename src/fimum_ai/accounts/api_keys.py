"""Personal API keys for scripts: `fim_` + 256 random bits, shown once, stored as SHA-256.

A slow password hash adds nothing for a secret this long, and would cost every API call ~20 ms.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fimum_ai.db import ApiKey, User
from fimum_ai.errors import NotFound

PREFIX = "fim_"
_TOUCH_EVERY = timedelta(minutes=1)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, user_id: str, name: str) -> tuple[ApiKey, str]:
    key = PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(user_id=user_id, name=name, prefix=key[:12], key_hash=digest(key))
    session.add(row)
    session.flush()
    return row, key


def list_keys(session: Session, user_id: str) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
    return list(session.scalars(query.order_by(ApiKey.created_at.desc())))


def revoke_key(session: Session, user_id: str, key_id: str) -> None:
    row = session.get(ApiKey, key_id)
    if row is None or row.user_id != user_id or row.revoked_at is not None:
        raise NotFound("no such API key")
    row.revoked_at = datetime.now(UTC)


def resolve(session: Session, key: str) -> tuple[ApiKey, User] | None:
    found = session.execute(
        select(ApiKey, User)
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.key_hash == digest(key), ApiKey.revoked_at.is_(None))
    ).first()
    if found is None:
        return None
    row, user = found
    now = datetime.now(UTC)
    if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
        row.last_used_at = now
    return row, user


def public(row: ApiKey) -> dict[str, object]:
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "created_at": row.created_at.isoformat(),
        "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
    }
