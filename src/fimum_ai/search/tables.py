"""The search tables (migration 0004), as SQLAlchemy Core: pages, their embeddings and snapshots.

Both backends keep page metadata, the link graph, embeddings and snapshots here (SQLite in
embedded mode, PostgreSQL in distributed mode). Full text lives in tantivy (embedded) or in the
PostgreSQL-only `tsv` column of `search_pages` (distributed; added by the migration).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from fimum_ai.db.base import NAMING_CONVENTION, UtcDateTime

metadata = MetaData(naming_convention=NAMING_CONVENTION)

pages = Table(
    "search_pages",
    metadata,
    # 63-bit hash of the URL: the id shared by the full-text and the vector index.
    Column("key", BigInteger, primary_key=True, autoincrement=False),
    Column("url", Text, nullable=False, unique=True),
    Column("site", String(255), nullable=False),
    Column("title", Text, nullable=False),
    Column("lang", String(16), nullable=False),
    Column("filetype", String(8), nullable=False),
    Column("published", UtcDateTime, nullable=True),
    Column("fetched_at", UtcDateTime, nullable=False),
    Column("author", Text, nullable=True),
    Column("publisher", Text, nullable=True),
    Column("etag", Text, nullable=True),
    Column("last_modified", Text, nullable=True),
    Column("fingerprint", BigInteger, nullable=False),
    Column("https", Boolean, nullable=False),
    Column("links", Text, nullable=False),  # JSON list of outgoing URLs
    Column("snapshot_id", String(36), nullable=False),
    Column("authority", Float, nullable=False),  # PageRank percentile 0..1 in the crawl graph
    Column("updated_at", UtcDateTime, nullable=False),  # last content change (or first sight)
    Column("embedding", LargeBinary, nullable=True),  # float32 x 384; NULL = waiting in the queue
    Column("embedded_at", UtcDateTime, nullable=True),
    Index("ix_search_pages_site", "site"),
    Index("ix_search_pages_embedded_at", "embedded_at"),
)

snapshots = Table(
    "search_snapshots",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("page_key", BigInteger, nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("lang", String(16), nullable=False),
    Column("filetype", String(8), nullable=False),
    Column("published", UtcDateTime, nullable=True),
    Column("fetched_at", UtcDateTime, nullable=False),
    Column("author", Text, nullable=True),
    Column("publisher", Text, nullable=True),
    Column("fingerprint", BigInteger, nullable=False),
)
