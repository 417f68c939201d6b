"""The vector index searchers use: a faiss HNSW graph (inner product on unit vectors = cosine), fed
from the embeddings in the database.

The embedder writes vectors to `search_pages.embedding`; every searching process tails new ones
(by `embedded_at`, with a look-back so a slow transaction that commits late is not missed) at most
every `refresh_s`. HNSW cannot delete, so a page embedded again gets a new graph node and its old
node is skipped in results; the graph is rebuilt once a fifth of it is stale. Embedded mode saves
the graph to data_dir/search/vectors.faiss with its id map, so a restart loads it instead of
re-reading every vector.

(usearch was tried first: importing it before onnxruntime, which the image NSFW check loads in the
same server process, crashes the process with a segmentation fault. faiss does not.)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from fimum_ai.search.store import EMBEDDING_DIM, PageStore

log = logging.getLogger(__name__)
_LOOKBACK = timedelta(seconds=30)
_M = 32  # HNSW neighbours per node
_EF_CONSTRUCTION = 80
_EF_SEARCH = 128
_REMOVED = 0  # the key of a removed page's node (url_key is never 0)


def _new_graph() -> Any:
    graph = faiss.IndexHNSWFlat(EMBEDDING_DIM, _M, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = _EF_CONSTRUCTION
    graph.hnsw.efSearch = _EF_SEARCH
    return graph


class VectorIndex:
    def __init__(self, store: PageStore, path: Path | None = None, refresh_s: float = 1.0) -> None:
        self.store = store
        self.path = path
        self._refresh_s = refresh_s
        self._graph = _new_graph()
        self._keys: list[int] = []  # graph node -> page key
        self._node: dict[int, int] = {}  # page key -> its current node
        self._versions: dict[int, datetime] = {}  # page key -> embedded_at of the vector held
        self._watermark: datetime | None = None
        self._checked_at = 0.0
        self._lock = threading.RLock()
        self._dirty = False
        if path is not None:
            self._load(path)

    def __len__(self) -> int:
        return len(self._node)

    @property
    def stale(self) -> int:
        return len(self._keys) - len(self._node)

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
            vectors = np.stack([np.frombuffer(blob, dtype=np.float32) for _, _, blob in fresh])
            self._append([key for key, _, _ in fresh], vectors)
            for key, at, _ in fresh:
                self._versions[key] = at
                if self._watermark is None or at > self._watermark:
                    self._watermark = at
            if self.stale > max(1000, len(self._keys) // 5):
                self._rebuild()
            self._dirty = True
            return len(fresh)

    def forget(self, keys: list[int]) -> None:
        """Pages removed from the index: their nodes become stale (HNSW cannot delete), marked
        with key 0 (no URL has it) so a saved and reloaded graph does not bring them back."""
        with self._lock:
            for key in keys:
                node = self._node.pop(key, None)
                if node is not None:
                    self._keys[node] = _REMOVED
                    self._versions.pop(key, None)
                    self._dirty = True

    def _append(self, keys: list[int], vectors: np.ndarray[Any, Any]) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        faiss.normalize_L2(vectors)
        first = len(self._keys)
        self._graph.add(vectors)
        for offset, key in enumerate(keys):
            self._keys.append(key)
            self._node[key] = first + offset

    def _rebuild(self) -> None:
        keys = list(self._node)
        vectors = np.stack([self._graph.reconstruct(self._node[key]) for key in keys]) if keys else None
        self._graph, self._keys, self._node = _new_graph(), [], {}
        if vectors is not None:
            self._append(keys, vectors)

    def search(self, vector: np.ndarray[Any, Any], limit: int) -> list[tuple[int, float]]:
        """(key, cosine similarity), best first."""
        self.refresh()
        with self._lock:
            if not self._node:
                return []
            query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
            faiss.normalize_L2(query)
            wanted = min(limit + min(self.stale, limit), len(self._keys))
            similarities, nodes = self._graph.search(query, wanted)
            found: list[tuple[int, float]] = []
            for node, similarity in zip(nodes[0], similarities[0], strict=True):
                if node < 0:
                    continue
                key = self._keys[node]
                if self._node.get(key) == node:  # not a stale copy
                    found.append((key, float(similarity)))
            return found[:limit]

    def get(self, key: int) -> np.ndarray[Any, Any] | None:
        self.refresh()
        with self._lock:
            node = self._node.get(key)
            return None if node is None else np.asarray(self._graph.reconstruct(node), dtype=np.float32)

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            faiss.write_index(self._graph, str(tmp))
            meta = {
                "watermark": self._watermark.isoformat() if self._watermark else None,
                "keys": self._keys,
                "versions": {str(k): v.isoformat() for k, v in self._versions.items()},
            }
            meta_path = self.path.with_suffix(".json")
            meta_tmp = self.path.with_suffix(".json.tmp")
            meta_tmp.write_text(json.dumps(meta))
            tmp.replace(self.path)
            meta_tmp.replace(meta_path)
            self._dirty = False

    def _load(self, path: Path) -> None:
        meta_path = path.with_suffix(".json")
        if not (path.is_file() and meta_path.is_file()):
            return
        try:
            meta = json.loads(meta_path.read_text())
            graph = faiss.read_index(str(path))
            keys = [int(k) for k in meta["keys"]]
            if graph.ntotal != len(keys):
                raise ValueError("the graph and its id map disagree")
            self._graph, self._keys = graph, keys
            self._graph.hnsw.efSearch = _EF_SEARCH
            self._node = {key: node for node, key in enumerate(keys) if key != _REMOVED}  # later nodes win
            self._versions = {int(k): datetime.fromisoformat(v) for k, v in meta["versions"].items()}
            self._watermark = datetime.fromisoformat(meta["watermark"]) if meta["watermark"] else None
        except Exception:  # a damaged file is only a cache: start over from the database
            log.warning("vector index at %s unreadable; rebuilding from the database", path, exc_info=True)
            self._graph, self._keys, self._node, self._versions, self._watermark = (
                _new_graph(),
                [],
                {},
                {},
                None,
            )
