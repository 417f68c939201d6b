"""The vector index searchers use: usearch HNSW (cosine), fed from the embeddings in the database.

The embedder writes vectors to `search_pages.embedding`; every searching process tails new ones
(by `embedded_at`, with a look-back so a slow transaction that commits late is not missed) at most
every `refresh_s`. Embedded mode also saves the index to data_dir/search/vectors.usearch with its
watermark, so a restart loads it instead of re-reading every vector.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from usearch.index import Index

from fimum_ai.search.store import EMBEDDING_DIM, PageStore

log = logging.getLogger(__name__)
_LOOKBACK = timedelta(seconds=30)


class VectorIndex:
    def __init__(self, store: PageStore, path: Path | None = None, refresh_s: float = 1.0) -> None:
        self.store = store
        self.path = path
        self._refresh_s = refresh_s
        self._index = Index(
            ndim=EMBEDDING_DIM, metric="cos", dtype="f16", connectivity=16, expansion_search=128
        )
        self._watermark: datetime | None = None
        self._versions: dict[int, datetime] = {}  # key -> embedded_at of the vector held
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._dirty = False
        if path is not None:
            self._load(path)

    def __len__(self) -> int:
        return len(self._index)

    def refresh(self, force: bool = False) -> int:
        """Take in vectors written since the last look; returns how many were new or changed."""
        now = time.monotonic()
        if not force and now - self._checked_at < self._refresh_s:
            return 0
        with self._lock:
            self._checked_at = now
            since = self._watermark - _LOOKBACK if self._watermark else None
            rows = self.store.vectors_since(since)
            fresh = [(key, at, blob) for key, at, blob in rows if self._versions.get(key) != at]
            if not fresh:
                return 0
            keys = np.array([key for key, _, _ in fresh], dtype=np.uint64)
            for key in keys:
                if self._index.contains(int(key)):
                    self._index.remove(int(key))
            vectors = np.stack([np.frombuffer(blob, dtype=np.float32) for _, _, blob in fresh])
            self._index.add(keys, vectors)
            for key, at, _ in fresh:
                self._versions[key] = at
                if self._watermark is None or at > self._watermark:
                    self._watermark = at
            self._dirty = True
            return len(fresh)

    def search(self, vector: np.ndarray[Any, Any], limit: int) -> list[tuple[int, float]]:
        """(key, cosine similarity), best first."""
        self.refresh()
        if len(self._index) == 0:
            return []
        matches = self._index.search(vector.astype(np.float32), limit)
        return [
            (int(key), 1.0 - float(distance))
            for key, distance in zip(matches.keys, matches.distances, strict=True)
        ]

    def get(self, key: int) -> np.ndarray[Any, Any] | None:
        self.refresh()
        if not self._index.contains(key):
            return None
        return np.asarray(self._index.get(key), dtype=np.float32)

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            self._index.save(str(tmp))
            tmp.replace(self.path)
            meta = {
                "watermark": self._watermark.isoformat() if self._watermark else None,
                "versions": {str(k): v.isoformat() for k, v in self._versions.items()},
            }
            meta_path = self.path.with_suffix(".json")
            meta_path.with_suffix(".json.tmp").write_text(json.dumps(meta))
            meta_path.with_suffix(".json.tmp").replace(meta_path)
            self._dirty = False

    def _load(self, path: Path) -> None:
        meta_path = path.with_suffix(".json")
        if not (path.is_file() and meta_path.is_file()):
            return
        try:
            meta = json.loads(meta_path.read_text())
            self._index.load(str(path))
            self._versions = {int(k): datetime.fromisoformat(v) for k, v in meta["versions"].items()}
            self._watermark = datetime.fromisoformat(meta["watermark"]) if meta["watermark"] else None
        except Exception:  # a damaged file is only a cache: start over from the database
            log.warning("vector index at %s unreadable; rebuilding from the database", path, exc_info=True)
            self._index = Index(
                ndim=EMBEDDING_DIM, metric="cos", dtype="f16", connectivity=16, expansion_search=128
            )
            self._versions, self._watermark = {}, None
