"""Page metadata, snapshots, the embedding queue and the link graph in the app's database.

Shared by both backends (SQLite embedded, PostgreSQL distributed); the full-text part of each
backend is in `fulltext_tantivy.py` / `fulltext_pg.py`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from sqlalchemy import Engine, bindparam, delete, func, select, update
from sqlalchemy.engine import Connection, RowMapping

from fimum_ai.search import tables
from fimum_ai.search.documents import Page, PageState
from fimum_ai.search.languages import base_lang

EMBEDDING_DIM = 384  # all-MiniLM-L6-v2


def url_key(url: str) -> int:
    """A stable positive 63-bit id for a URL (fits BIGINT, tantivy i64 and faiss ids)."""
    digest = hashlib.blake2b(url.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF or 1


def site_of(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def domain_suffixes(site: str) -> list[str]:
    """'a.b.example.com' -> ['a.b.example.com', 'b.example.com', 'example.com'] (domain filters
    match subdomains)."""
    labels = site.split(".")
    return [".".join(labels[i:]) for i in range(max(1, len(labels) - 1))]


@dataclass(frozen=True, slots=True)
class StoredPage:
    """One page as written: what the full-text backend needs to (re)index it."""

    key: int
    page: Page
    site: str
    lang: str
    snapshot_id: str
    changed: bool  # content differs from the stored copy (re-embed, new snapshot)


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class PageStore:
    def __init__(self, engine: Engine, read_engine: Engine | None = None) -> None:
        self.engine = engine  # writes
        self.read_engine = read_engine or engine

    # --- writes --------------------------------------------------------------------------------

    def upsert(self, connection: Connection, batch: Sequence[Page]) -> list[StoredPage]:
        """Write pages (last one wins per URL); a page whose text or title changed gets a new
        snapshot and goes back into the embedding queue."""
        by_url = {page.url: page for page in batch}
        keys = {url: url_key(url) for url in by_url}
        existing = {
            row.key: row
            for row in connection.execute(
                select(
                    tables.pages.c.key,
                    tables.pages.c.fingerprint,
                    tables.pages.c.title,
                    tables.pages.c.snapshot_id,
                    tables.pages.c.authority,
                ).where(tables.pages.c.key.in_(list(keys.values())))
            )
        }
        now = datetime.now(UTC)
        stored: list[StoredPage] = []
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        new_snapshots: list[dict[str, Any]] = []
        for url, page in by_url.items():
            key = keys[url]
            old = existing.get(key)
            fingerprint = page.fingerprint or _text_fingerprint(page.text)
            changed = old is None or old.fingerprint != fingerprint or old.title != page.title
            snapshot_id = str(uuid.uuid4()) if changed else old.snapshot_id  # type: ignore[union-attr]
            site = site_of(url)
            lang = base_lang(page.lang)
            published = _as_utc(page.published)
            fetched_at = _as_utc(page.fetched_at) or now
            values: dict[str, Any] = {
                "url": url,
                "site": site,
                "title": page.title,
                "lang": lang,
                "filetype": page.filetype,
                "published": published,
                "fetched_at": fetched_at,
                "author": page.author,
                "publisher": page.publisher,
                "etag": page.etag,
                "last_modified": page.last_modified,
                "fingerprint": fingerprint,
                "https": urlsplit(url).scheme == "https",
                "links": json.dumps(list(page.links)),
                "snapshot_id": snapshot_id,
            }
            if changed:
                values |= {"updated_at": now, "embedding": None, "embedded_at": None}
                new_snapshots.append(
                    {
                        "id": snapshot_id,
                        "page_key": key,
                        "url": url,
                        "title": page.title,
                        "text": page.text,
                        "lang": lang,
                        "filetype": page.filetype,
                        "published": published,
                        "fetched_at": fetched_at,
                        "author": page.author,
                        "publisher": page.publisher,
                        "fingerprint": fingerprint,
                    }
                )
            if old is None:
                inserts.append({"key": key, "authority": 0.0, **values})
            else:
                updates.append({"k": key, **values})
            stored.append(StoredPage(key, page, site, lang, snapshot_id, changed))
        if inserts:
            connection.execute(tables.pages.insert(), inserts)
        # One executemany per set of columns (unchanged pages keep their embedding).
        for group in (
            [u for u in updates if "embedding" in u],
            [u for u in updates if "embedding" not in u],
        ):
            if group:
                columns: dict[str, Any] = {name: bindparam(f"v_{name}") for name in group[0] if name != "k"}
                connection.execute(
                    update(tables.pages).where(tables.pages.c.key == bindparam("k")).values(**columns),
                    [
                        {("k" if name == "k" else f"v_{name}"): value for name, value in u.items()}
                        for u in group
                    ],
                )
        if new_snapshots:
            connection.execute(tables.snapshots.insert(), new_snapshots)
        return stored

    # --- reads ---------------------------------------------------------------------------------

    def remove(self, connection: Connection, urls: Sequence[str]) -> list[int]:
        """Delete the pages of these URLs (the ones stored); their snapshots stay, so a citation
        made before the page went away can still be checked. Returns the keys removed."""
        keys = list({url_key(url) for url in urls})
        if not keys:
            return []
        result = connection.execute(
            delete(tables.pages).where(tables.pages.c.key.in_(keys)).returning(tables.pages.c.key)
        )
        return [int(key) for key in result.scalars()]

    def state(self, url: str) -> PageState | None:
        with self.read_engine.connect() as connection:
            row = connection.execute(
                select(
                    tables.pages.c.etag,
                    tables.pages.c.last_modified,
                    tables.pages.c.fingerprint,
                    tables.pages.c.fetched_at,
                ).where(tables.pages.c.key == url_key(url))
            ).first()
        if row is None:
            return None
        return PageState(url, row.etag, row.last_modified, row.fingerprint, row.fetched_at)

    def rows(self, keys: Iterable[int], with_text: bool = False) -> dict[int, RowMapping]:
        """Page rows by key (with `text`, the current snapshot's, when asked)."""
        wanted = list(keys)
        if not wanted:
            return {}
        statement = _ROWS_WITH_TEXT if with_text else _ROWS
        with self.read_engine.connect() as connection:
            result = connection.execute(statement, {"keys": wanted})
            return {row["key"]: row for row in result.mappings()}

    def snapshot(self, snapshot_id: str) -> RowMapping | None:
        with self.read_engine.connect() as connection:
            return (
                connection.execute(select(tables.snapshots).where(tables.snapshots.c.id == snapshot_id))
                .mappings()
                .first()
            )

    def count(self) -> tuple[int, int, datetime | None]:
        """(pages, pages waiting for an embedding, when the oldest waiting one changed)."""
        with self.read_engine.connect() as connection:
            total = connection.execute(select(func.count()).select_from(tables.pages)).scalar_one()
            pending, oldest = connection.execute(
                select(func.count(), func.min(tables.pages.c.updated_at)).where(
                    tables.pages.c.embedded_at.is_(None)
                )
            ).one()
        return int(total), int(pending), _as_utc(oldest)

    # --- embeddings ----------------------------------------------------------------------------

    def claim_pending(self, connection: Connection, limit: int) -> list[RowMapping]:
        """The oldest pages waiting for an embedding; on PostgreSQL rows locked by another
        embedder are skipped, so any number of embedders share the queue."""
        query = (
            select(
                tables.pages.c.key,
                tables.pages.c.title,
                tables.pages.c.snapshot_id,
                tables.snapshots.c.text,
            )
            .join(tables.snapshots, tables.snapshots.c.id == tables.pages.c.snapshot_id)
            .where(tables.pages.c.embedding.is_(None))
            .order_by(tables.pages.c.updated_at)
            .limit(limit)
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(of=tables.pages, skip_locked=True)
        return list(connection.execute(query).mappings())

    def save_embeddings(
        self, connection: Connection, items: Sequence[tuple[int, str, np.ndarray[Any, Any]]]
    ) -> None:
        """Store vectors for (key, snapshot_id it was computed from); a page that changed while
        it was being embedded keeps waiting for the newer text."""
        if not items:
            return
        now = datetime.now(UTC)
        connection.execute(
            update(tables.pages)
            .where(tables.pages.c.key == bindparam("k"), tables.pages.c.snapshot_id == bindparam("s"))
            .values(embedding=bindparam("e"), embedded_at=now),
            [{"k": key, "s": sid, "e": vector.astype(np.float32).tobytes()} for key, sid, vector in items],
        )

    def vectors_since(self, since: datetime | None) -> list[tuple[int, datetime, bytes]]:
        query = select(tables.pages.c.key, tables.pages.c.embedded_at, tables.pages.c.embedding).where(
            tables.pages.c.embedding.is_not(None)
        )
        if since is not None:
            query = query.where(tables.pages.c.embedded_at >= since)
        with self.read_engine.connect() as connection:
            return [(row[0], row[1], row[2]) for row in connection.execute(query)]

    def vector(self, key: int) -> np.ndarray[Any, Any] | None:
        with self.read_engine.connect() as connection:
            blob = connection.execute(
                select(tables.pages.c.embedding).where(tables.pages.c.key == key)
            ).scalar_one_or_none()
        return None if blob is None else np.frombuffer(blob, dtype=np.float32)

    # --- link authority ------------------------------------------------------------------------

    def refresh_authority(self) -> int:
        """PageRank over the crawl graph (links between stored pages), stored as a percentile 0..1
        so scores stay comparable as the crawl grows. Returns the number of pages ranked."""
        import networkx as nx

        with self.engine.connect() as connection:
            rows = connection.execute(select(tables.pages.c.key, tables.pages.c.url, tables.pages.c.links))
            graph: nx.DiGraph[int] = nx.DiGraph()
            key_by_url: dict[str, int] = {}
            links_by_key: dict[int, list[str]] = {}
            for key, url, links in rows:
                key_by_url[url] = key
                links_by_key[key] = json.loads(links)
                graph.add_node(key)
        for key, links in links_by_key.items():
            for target in links:
                target_key = key_by_url.get(target)
                if target_key is not None and target_key != key:
                    graph.add_edge(key, target_key)
        if graph.number_of_nodes() == 0:
            return 0
        ranks: dict[int, float] = nx.pagerank(graph) if graph.number_of_edges() else {}
        ordered = sorted(graph.nodes, key=lambda node: ranks.get(node, 0.0))
        n = len(ordered)
        percentile: dict[int, float] = {}
        i = 0
        while i < n:  # ties (e.g. pages nobody links to) share the lowest percentile of their run
            j = i
            while j + 1 < n and ranks.get(ordered[j + 1], 0.0) == ranks.get(ordered[i], 0.0):
                j += 1
            value = i / (n - 1) if n > 1 and ranks else 0.0
            for node in ordered[i : j + 1]:
                percentile[node] = value
            i = j + 1
        with self.engine.begin() as connection:
            connection.execute(
                update(tables.pages)
                .where(tables.pages.c.key == bindparam("k"))
                .values(authority=bindparam("a")),
                [{"k": key, "a": value} for key, value in percentile.items()],
            )
        return n


# Built once: SQLAlchemy caches their compiled form (hydrating a page of results is on every search).
_ROW_COLUMNS = [c for c in tables.pages.c if c.name not in ("embedding", "links")]
_ROWS = select(*_ROW_COLUMNS).where(tables.pages.c.key.in_(bindparam("keys", expanding=True)))
_ROWS_WITH_TEXT = (
    select(*_ROW_COLUMNS, tables.snapshots.c.text)
    .join(tables.snapshots, tables.snapshots.c.id == tables.pages.c.snapshot_id)
    .where(tables.pages.c.key.in_(bindparam("keys", expanding=True)))
)


def _text_fingerprint(text: str) -> int:
    """A content hash when the crawler gave no SimHash (exact-change detection only)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
