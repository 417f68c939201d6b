"""Tables of the accounts feature. Later features add theirs beside these (one metadata)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from fimum_ai.db.base import Base, UtcDateTime, new_id, utcnow


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("email IS NOT NULL OR phone IS NOT NULL", name="has_identifier"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)  # E.164
    tier: Mapped[str] = mapped_column(String(32), default="free")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Tokens issued before this instant are refused ("log out everywhere", disable).
    tokens_valid_after: Mapped[datetime | None] = mapped_column(UtcDateTime)


class OtpChallenge(Base):
    """One requested code. Only an Argon2 hash of the code is kept."""

    __tablename__ = "otp_challenges"
    __table_args__ = (Index("ix_otp_challenges_identifier_created", "identifier", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    identifier: Mapped[str] = mapped_column(String(320))  # normalised e-mail or E.164
    channel: Mapped[str] = mapped_column(String(8))  # email | sms
    code_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # active | used | superseded | dead (too many wrong attempts)
    state: Mapped[str] = mapped_column(String(12), default="active")


class RefreshToken(Base):
    """Every refresh token ever issued, by family: reuse of a used one revokes the family."""

    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(String(36), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    user_agent: Mapped[str | None] = mapped_column(String(200))


class ApiKey(Base):
    """Personal API keys (`fim_...`). High-entropy, so a SHA-256 digest is the right hash."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists: fim_abcd1234
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class RevokedToken(Base):
    """The embedded revocation list (distributed mode keeps it in Redis)."""

    __tablename__ = "revoked_tokens"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)  # "jti:<id>", "fam:<id>", "usr:<id>"
    value: Mapped[str] = mapped_column(String(32), default="1")  # usr: tokens issued before this epoch
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class QuotaUsage(Base):
    """Daily counters (UTC calendar days) for the database quota backend."""

    __tablename__ = "quota_usage"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)


class ImageJob(Base):
    """One image request (1-8 images), queued until a worker takes it. The queue itself in embedded
    mode: a restart finds queued jobs here and runs them."""

    __tablename__ = "image_jobs"
    __table_args__ = (Index("ix_image_jobs_status_created", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tier: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher runs first (tier order)
    kind: Mapped[str] = mapped_column(String(16))  # generate | edit | outpaint | upscale
    # queued | running | completed | failed | cancelled
    status: Mapped[str] = mapped_column(String(12), default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(JSON)  # the validated request (prompt included)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # stored input files (edits)
    batch_size: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(500))
    image_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    quota_day: Mapped[date | None] = mapped_column(Date)  # the reservation to refund on failure
    quota_n: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(100))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # the worker is alive
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class StoredImage(Base):
    """An image in a user's gallery; the files live under data/images/{user}/{yyyy}/{mm}/."""

    __tablename__ = "images"
    __table_args__ = (Index("ix_images_user_created", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    mode: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    model_version: Mapped[str] = mapped_column(String(80))
    metadata_json: Mapped[dict[str, Any]] = mapped_column(JSON)  # ImageMetadata (prompt included)
    original_path: Mapped[str] = mapped_column(String(300))  # relative to data_dir
    thumbnail_path: Mapped[str] = mapped_column(String(300))
    metadata_path: Mapped[str] = mapped_column(String(300))
    source_path: Mapped[str | None] = mapped_column(String(300))  # the kept input (preserve_original)
    phash: Mapped[str | None] = mapped_column(String(16), index=True)
    duplicate_of: Mapped[str | None] = mapped_column(String(36))
