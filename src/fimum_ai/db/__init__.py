"""The database: SQLAlchemy 2 models, engine/sessions, Alembic migrations."""

from fimum_ai.db.base import Base, utcnow
from fimum_ai.db.migrate import current_revision, head_revision, upgrade
from fimum_ai.db.models import ApiKey, OtpChallenge, QuotaUsage, RefreshToken, RevokedToken, User
from fimum_ai.db.session import Database, make_engine

__all__ = [
    "ApiKey",
    "Base",
    "Database",
    "OtpChallenge",
    "QuotaUsage",
    "RefreshToken",
    "RevokedToken",
    "User",
    "current_revision",
    "head_revision",
    "make_engine",
    "upgrade",
    "utcnow",
]
