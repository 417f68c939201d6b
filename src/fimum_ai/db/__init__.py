"""The database: SQLAlchemy 2 models, engine/sessions, Alembic migrations."""

from fimum_ai.db.base import Base, utcnow
from fimum_ai.db.migrate import current_revision, head_revision, upgrade
from fimum_ai.db.models import (
    ApiKey,
    ImageJob,
    OtpChallenge,
    QuotaUsage,
    RefreshToken,
    RevokedToken,
    StoredImage,
    User,
)
from fimum_ai.db.session import Database, make_engine

__all__ = [
    "ApiKey",
    "Base",
    "Database",
    "ImageJob",
    "OtpChallenge",
    "QuotaUsage",
    "RefreshToken",
    "RevokedToken",
    "StoredImage",
    "User",
    "current_revision",
    "head_revision",
    "make_engine",
    "upgrade",
    "utcnow",
]
