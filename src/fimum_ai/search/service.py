"""SearchService: hybrid search (RRF of keyword and semantic lists), filters, snippets, citations
with credibility, snapshots; `web_search` for the chat, research and agent features.

The index is opened on start (`open_index`); in embedded mode the service also runs the background
embedder process and recomputes link authority while pages change.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from fimum_ai.errors import FimumError, NotFound
from fimum_ai.search import credibility
from fimum_ai.search.embedder import EmbedderProcess
from fimum_ai.search.encoder import EncoderUnavailable, QueryEncoder
from fimum_ai.search.index import SearchIndex, open_index
from fimum_ai.search.query import Filters
from fimum_ai.search.snippets import make_snippet
from fimum_ai.settings import Settings

log = logging.getLogger(__name__)
Mode = Literal["hybrid", "keyword", "semantic"]
MODES: tuple[Mode, ...] = ("hybrid", "keyword", "semantic")
# Nearest neighbours below this cosine similarity are noise, not results.
MIN_SIMILARITY = 0.2
# Results compared with each other for the agreement signal.
AGREEMENT_POOL = 30


class SearchUnavailable(FimumError):
    code = "search_unavailable"
    status = 503


def rrf(lists: Sequence[Sequence[int]], k: int) -> list[int]:
    """Reciprocal rank fusion: score(d) = sum over lists of 1 / (k + rank of d), rank from 1."""
    scores: dict[int, float] = {}
    for ranked in lists:
        for rank, key in enumerate(ranked, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda key: (-scores[key], key))


class SearchService:
    def __init__(
        self, settings: Settings, index: SearchIndex | None = None, encoder: QueryEncoder | None = None
    ) -> None:
        self.settings = settings
        self.config = settings.search
        self._index = index
        self.encoder = encoder or QueryEncoder()
        self._embedder: EmbedderProcess | None = None
        self._stop = threading.Event()
        self._maintenance: threading.Thread | None = None

    @property
    def index(self) -> SearchIndex:
        if self._index is None:
            raise SearchUnavailable("the search index is not open yet")
        return self._index

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._index is None:
            self._index = await asyncio.to_thread(open_index, self.settings)
        self._maintenance = threading.Thread(target=self._maintain, name="search-maintenance", daemon=True)
        self._maintenance.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._maintenance is not None:
            await asyncio.to_thread(self._maintenance.join, 30)
        if self._embedder is not None:
            await asyncio.to_thread(self._embedder.stop)
        await asyncio.to_thread(self.encoder.close)
        if self._index is not None:
            await asyncio.to_thread(self._index.close)

    def _maintain(self) -> None:
        """Embedded mode: start the embedder process once pages wait for embeddings (so a server
        with nothing to embed never loads the model). Both modes: recompute link authority every
        `authority_interval_s` while pages change."""
        runs_embedder = self.settings.mode == "embedded" and self.config.embedder == "auto"
        last_authority, last_count = time.monotonic(), -1
        while not self._stop.wait(1.0):
            try:
                stats = self.index.stats()
                if (
                    runs_embedder
                    and stats.pending_embeddings
                    and not (self._embedder and self._embedder.alive)
                ):
                    self._embedder = EmbedderProcess(self.settings)
                    self._embedder.start()
                interval = self.config.authority_interval_s
                due = interval > 0 and time.monotonic() - last_authority >= interval
                if due and stats.documents != last_count:
                    self.index.refresh_authority()
                    last_authority, last_count = time.monotonic(), stats.documents
            except Exception:
                log.exception("search maintenance failed")
                self._stop.wait(10.0)

    # --- searching -----------------------------------------------------------------------------

    def search(
        self, query: str, *, mode: Mode = "hybrid", filters: Filters | None = None, page: int = 1
    ) -> dict[str, Any]:
        began = time.perf_counter()
        filters = filters or Filters()
        size = self.config.page_size
        offset = (page - 1) * size
        index = self.index
        candidates = self.config.candidates
        if mode == "keyword":
            hits = index.keyword(query, filters, size, offset)
            keys, total = [key for key, _ in hits.hits], hits.total
            ordered = keys
            window = keys
        else:
            semantic = self._semantic(query, filters, candidates)
            if mode == "semantic":
                ordered, total = semantic, len(semantic)
            else:
                hits = index.keyword(query, filters, candidates)
                keyword_keys = [key for key, _ in hits.hits]
                ordered = rrf([keyword_keys, semantic], self.config.rrf_k)
                total = hits.total + len(set(semantic) - set(keyword_keys))
            window = ordered[offset : offset + size]
        rows = index.rows(window, with_text=True)
        window = [key for key in window if key in rows]  # a page removed since it was found
        agreement = self._agreement(window, ordered[:AGREEMENT_POOL], rows)
        reputation = self.config.domain_reputation
        now = datetime.now(UTC)
        results = []
        for key in window:
            row = rows[key]
            date = row["published"] or row["fetched_at"]
            signals = credibility.Signals(
                authority=row["authority"],
                https=row["https"],
                author=bool(row["author"]),
                publisher=bool(row["publisher"]),
                has_date=row["published"] is not None,
                age_days=credibility.age_days(date, now),
                agreeing_sites=agreement.get(key, 0),
                reputation=credibility.reputation_of(row["site"], reputation),
            )
            results.append(
                {
                    "url": row["url"],
                    "title": row["title"],
                    "snippet": make_snippet(row["text"], query),
                    "lang": row["lang"],
                    "published": row["published"].isoformat() if row["published"] else None,
                    "credibility": credibility.score(signals),
                    "snapshot_id": row["snapshot_id"],
                    "site": row["site"],
                    "fetched_at": row["fetched_at"].isoformat(),
                    "filetype": row["filetype"],
                }
            )
        took_ms = round((time.perf_counter() - began) * 1000, 2)
        return {"results": results, "total": total, "took_ms": took_ms}

    def _semantic(self, query: str, filters: Filters, limit: int) -> list[int]:
        if self.index.vector_count() == 0:
            return []  # nothing embedded yet: no reason to start the model
        try:
            vector = self.encoder.encode(query)
        except EncoderUnavailable as exc:
            raise SearchUnavailable(f"semantic search is unavailable: {exc}") from None
        # Ask for more neighbours when filters will drop some of them.
        wanted = limit if filters == Filters() else limit * 4
        neighbours = [(key, sim) for key, sim in self.index.semantic(vector, wanted) if sim >= MIN_SIMILARITY]
        if filters == Filters():
            return [key for key, _ in neighbours[:limit]]
        rows = self.index.rows([key for key, _ in neighbours])
        kept = []
        for key, _ in neighbours:
            row = rows.get(key)
            if row is not None and filters.accepts(
                site=row["site"],
                lang=row["lang"],
                filetype=row["filetype"],
                date=row["published"] or row["fetched_at"],
            ):
                kept.append(key)
        return kept[:limit]

    def _agreement(self, window: list[int], pool: list[int], rows: dict[int, Any]) -> dict[int, int]:
        """For each result: how many other sites among the top candidates say much the same."""
        pool_keys = list(dict.fromkeys([*window, *pool]))
        vectors = {key: v for key in pool_keys if (v := self.index.vector(key)) is not None}
        if len(vectors) < 2:
            return {}
        pool_rows = {**self.index.rows([k for k in vectors if k not in rows]), **rows}
        keys = [key for key in vectors if key in pool_rows]
        matrix = np.stack([vectors[key] for key in keys])
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True) + 1e-9
        similar = matrix @ matrix.T
        position = {key: i for i, key in enumerate(keys)}
        agreement: dict[int, int] = {}
        for key in window:
            i = position.get(key)
            if i is None:
                continue
            sites = {
                pool_rows[other]["site"]
                for j, other in enumerate(keys)
                if j != i
                and similar[i, j] >= credibility.AGREEMENT_COSINE
                and pool_rows[other]["site"] != pool_rows[key]["site"]
            }
            agreement[key] = len(sites)
        return agreement

    async def web_search(self, query: str, *, limit: int = 5) -> list[dict[str, Any]]:
        """The first `limit` hybrid results (falls back to keyword results when the embedding
        model cannot run), as the API's result dicts: for research answers and the agent."""

        def run() -> list[dict[str, Any]]:
            try:
                results = self.search(query, mode="hybrid")["results"]
            except SearchUnavailable:
                results = self.search(query, mode="keyword")["results"]
            return list(results[:limit])

        return await asyncio.to_thread(run)

    def snapshot(self, snapshot_id: str) -> dict[str, Any]:
        row = self.index.snapshot(snapshot_id)
        if row is None:
            raise NotFound("no such snapshot", details={"snapshot_id": snapshot_id})
        return {
            "id": row["id"],
            "url": row["url"],
            "title": row["title"],
            "text": row["text"],
            "lang": row["lang"],
            "filetype": row["filetype"],
            "published": row["published"].isoformat() if row["published"] else None,
            "fetched_at": row["fetched_at"].isoformat(),
            "author": row["author"],
            "publisher": row["publisher"],
        }

    def stats(self) -> dict[str, Any]:
        stats = self.index.stats()
        lag = (datetime.now(UTC) - stats.oldest_pending).total_seconds() if stats.oldest_pending else 0.0
        return {
            "backend": getattr(self.index, "backend", "unknown"),
            "documents": stats.documents,
            "embedded": stats.embedded,
            "pending_embeddings": stats.pending_embeddings,
            "embedding_lag_s": round(max(lag, 0.0), 3),
            "embedder": "running" if self._embedder and self._embedder.alive else "external",
            "query_encoder_load_s": self.encoder.load_seconds,
        }
