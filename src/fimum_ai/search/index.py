"""`SearchIndex`: one interface, two backends (docs/search.md).

- embedded: tantivy (BM25) under data_dir/search/tantivy + faiss HNSW vectors + page metadata and
  snapshots in the SQLite database;
- distributed: PostgreSQL full text (tsvector, GIN) with embeddings and snapshots beside it, so
  every API replica and crawler node shares one index.

Both keep vectors for semantic search in a faiss HNSW index in each searching process, fed from
the database (`vectors.py`). The crawler only calls `open_index`, `add`, `remove`, `state` and `close`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import RowMapping

from fimum_ai.db.migrate import upgrade
from fimum_ai.db.session import make_engine
from fimum_ai.search.documents import Page, PageState
from fimum_ai.search.fulltext_pg import PostgresFullText
from fimum_ai.search.fulltext_tantivy import TantivyFullText
from fimum_ai.search.query import Filters, KeywordHits
from fimum_ai.search.store import PageStore
from fimum_ai.search.vectors import VectorIndex
from fimum_ai.settings import Settings


@dataclass(frozen=True, slots=True)
class IndexStats:
    documents: int
    embedded: int
    pending_embeddings: int
    oldest_pending: datetime | None  # when the longest-waiting page entered the queue


class SearchIndex(Protocol):
    """What the crawler writes to and the search service reads from."""

    backend: str
    store: PageStore

    def add(self, pages: Sequence[Page]) -> None:
        """Upsert by URL; searchable by keyword in every process within `search.refresh_s`,
        semantically once the embedder has caught up."""

    def remove(self, urls: Sequence[str]) -> int:
        """Take pages that are gone (404/410 on a recrawl) out of search; their snapshots stay.
        Returns how many were in the index."""

    def state(self, url: str) -> PageState | None: ...

    def keyword(self, query: str, filters: Filters, limit: int, offset: int = 0) -> KeywordHits: ...

    def semantic(self, vector: Any, limit: int) -> list[tuple[int, float]]: ...

    def vector(self, key: int) -> Any: ...

    def vector_count(self) -> int:
        """Vectors searchable now (after taking in the embedder's latest)."""

    def rows(self, keys: Sequence[int], with_text: bool = False) -> dict[int, RowMapping]: ...

    def snapshot(self, snapshot_id: str) -> RowMapping | None: ...

    def refresh_authority(self) -> int: ...

    def stats(self) -> IndexStats: ...

    def close(self) -> None: ...


class HybridIndex:
    """The two backends differ only in their full-text part."""

    def __init__(
        self,
        backend: str,
        store: PageStore,
        fulltext: TantivyFullText | PostgresFullText,
        vectors: VectorIndex,
    ) -> None:
        self.backend = backend
        self.store = store
        self.fulltext = fulltext
        self.vectors = vectors
        self._write_lock = threading.Lock()

    def add(self, pages: Sequence[Page]) -> None:
        if not pages:
            return
        with self._write_lock, self.store.engine.begin() as connection:
            stored = self.store.upsert(connection, pages)
            # Full text is written before the rows commit: a failure leaves neither.
            if isinstance(self.fulltext, PostgresFullText):
                self.fulltext.write(connection, stored)
            else:
                self.fulltext.write(stored)

    def remove(self, urls: Sequence[str]) -> int:
        if not urls:
            return 0
        with self._write_lock, self.store.engine.begin() as connection:
            keys = self.store.remove(connection, urls)
            # PostgreSQL's full text is a column of the deleted rows; tantivy's goes before the commit.
            if keys and isinstance(self.fulltext, TantivyFullText):
                self.fulltext.remove(keys)
        # Other processes' vector graphs keep the old vectors: searching drops keys without a row.
        self.vectors.forget(keys)
        return len(keys)

    def state(self, url: str) -> PageState | None:
        return self.store.state(url)

    def keyword(self, query: str, filters: Filters, limit: int, offset: int = 0) -> KeywordHits:
        return self.fulltext.search(query, filters, limit, offset)

    def semantic(self, vector: Any, limit: int) -> list[tuple[int, float]]:
        return self.vectors.search(vector, limit)

    def vector(self, key: int) -> Any:
        return self.vectors.get(key)

    def vector_count(self) -> int:
        self.vectors.refresh()
        return len(self.vectors)

    def rows(self, keys: Sequence[int], with_text: bool = False) -> dict[int, RowMapping]:
        return self.store.rows(keys, with_text)

    def snapshot(self, snapshot_id: str) -> RowMapping | None:
        return self.store.snapshot(snapshot_id)

    def refresh_authority(self) -> int:
        return self.store.refresh_authority()

    def stats(self) -> IndexStats:
        total, pending, oldest = self.store.count()
        return IndexStats(total, total - pending, pending, oldest)

    def close(self) -> None:
        self.vectors.save()
        self.fulltext.close()
        self.store.engine.dispose()
        if self.store.read_engine is not self.store.engine:
            self.store.read_engine.dispose()


def _sqlite_reader(settings: Settings) -> Engine:
    """Readers on SQLite without the app's BEGIN IMMEDIATE (WAL lets them run beside a writer)."""
    engine = create_engine(settings.sqlalchemy_url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def open_store(settings: Settings) -> PageStore:
    """The database part, migrated to the current revision (idempotent; safe from many processes)."""
    engine = make_engine(settings)
    upgrade(engine, settings.database_schema)
    reader = _sqlite_reader(settings) if engine.dialect.name == "sqlite" else engine
    return PageStore(engine, reader)


def open_index(settings: Settings) -> SearchIndex:
    """Embedded (tantivy) or distributed (PostgreSQL) by the configured database, like the rest
    of the app: PostgreSQL holds the full text whenever it is the database."""
    store = open_store(settings)
    refresh = settings.search.refresh_s
    fulltext: TantivyFullText | PostgresFullText
    if store.engine.dialect.name == "postgresql":
        fulltext = PostgresFullText(store.engine)
        vectors = VectorIndex(store, None, refresh)
        backend = "postgresql"
    else:
        root = settings.data_dir / "search"
        fulltext = TantivyFullText(root / "tantivy", refresh)
        vectors = VectorIndex(store, root / "vectors.faiss", refresh)
        backend = "tantivy"
    return HybridIndex(backend, store, fulltext, vectors)
