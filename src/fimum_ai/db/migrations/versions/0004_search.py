"""search index: pages, embeddings, snapshots (issue 8)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 23:50:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "search_pages",
        sa.Column("key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("site", sa.String(length=255), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(length=16), nullable=False),
        sa.Column("filetype", sa.String(length=8), nullable=False),
        sa.Column("published", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.Text(), nullable=True),
        sa.Column("publisher", sa.Text(), nullable=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("fingerprint", sa.BigInteger(), nullable=False),
        sa.Column("https", sa.Boolean(), nullable=False),
        sa.Column("links", sa.Text(), nullable=False),
        sa.Column("snapshot_id", sa.String(length=36), nullable=False),
        sa.Column("authority", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("embedded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_search_pages")),
        sa.UniqueConstraint("url", name=op.f("uq_search_pages_url")),
    )
    op.create_index("ix_search_pages_site", "search_pages", ["site"])
    op.create_index("ix_search_pages_embedded_at", "search_pages", ["embedded_at"])
    op.create_table(
        "search_snapshots",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("page_key", sa.BigInteger(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(length=16), nullable=False),
        sa.Column("filetype", sa.String(length=8), nullable=False),
        sa.Column("published", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.Text(), nullable=True),
        sa.Column("publisher", sa.Text(), nullable=True),
        sa.Column("fingerprint", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_snapshots")),
    )
    op.create_index("ix_search_snapshots_page_key", "search_snapshots", ["page_key"])
    if op.get_bind().dialect.name == "postgresql":
        # Distributed full text: one tsvector per page (title A, stemmed body B, plain words and
        # CJK/Thai bigrams D), GIN-indexed; the embedder's queue is the pages without an embedding.
        op.execute("ALTER TABLE search_pages ADD COLUMN tsv tsvector NOT NULL DEFAULT ''::tsvector")
        op.execute("CREATE INDEX ix_search_pages_tsv ON search_pages USING gin (tsv)")
        op.execute(
            "CREATE INDEX ix_search_pages_pending ON search_pages (updated_at) WHERE embedding IS NULL"
        )


def downgrade() -> None:
    op.drop_table("search_snapshots")
    op.drop_table("search_pages")
