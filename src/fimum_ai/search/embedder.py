"""The background embedder: turns queued pages (rows of `search_pages` without an embedding)
into vectors, so crawling never waits for the model.

Embedded mode: the server starts it as a child process (`EmbedderProcess`). Distributed mode: run
`python -m fimum_ai.search.embedder` as a service, as many as you like (PostgreSQL hands each
one different rows: FOR UPDATE SKIP LOCKED). It is the only place besides the query encoder's
child process that imports torch.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from fimum_ai.search.store import PageStore
from fimum_ai.settings import Settings

log = logging.getLogger(__name__)


class Embedder:
    def __init__(
        self, store: PageStore, *, batch: int = 32, max_chars: int = 2000, model: Any = None
    ) -> None:
        self.store = store
        self.batch = batch
        self.max_chars = max_chars
        self._model = model  # loaded on the first batch when not given

    def _encode(self, texts: list[str]) -> Any:
        from fimum_ai.search.encoder import encode, load_model

        if self._model is None:
            began = time.perf_counter()
            self._model = load_model()
            log.info("embedding model loaded", extra={"seconds": round(time.perf_counter() - began, 2)})
        return encode(self._model, texts, batch_size=self.batch)

    def run_once(self) -> int:
        """Embed one batch; returns how many pages got a vector (0: the queue is empty)."""
        if self.store.engine.dialect.name == "postgresql":
            # Rows stay locked while they are encoded, so other embedders take other rows.
            with self.store.engine.begin() as connection:
                rows = self.store.claim_pending(connection, self.batch)
                if rows:
                    self._embed(connection, rows)
            return len(rows)
        # SQLite has one writer at a time: read, encode outside any transaction, then write
        # (a page that changed meanwhile keeps waiting: save_embeddings checks the snapshot).
        with self.store.read_engine.connect() as connection:
            rows = self.store.claim_pending(connection, self.batch)
        if rows:
            vectors = self._encode_rows(rows)
            with self.store.engine.begin() as connection:
                self._save(connection, rows, vectors)
        return len(rows)

    def _embed(self, connection: Any, rows: list[Any]) -> None:
        self._save(connection, rows, self._encode_rows(rows))

    def _encode_rows(self, rows: list[Any]) -> Any:
        texts = [f"{row['title']}\n{row['text']}"[: self.max_chars] for row in rows]
        began = time.perf_counter()
        vectors = self._encode(texts)
        log.info(
            "embedded pages", extra={"pages": len(rows), "seconds": round(time.perf_counter() - began, 3)}
        )
        return vectors

    def _save(self, connection: Any, rows: list[Any], vectors: Any) -> None:
        self.store.save_embeddings(
            connection,
            [(row["key"], row["snapshot_id"], vector) for row, vector in zip(rows, vectors, strict=True)],
        )

    def run_until_empty(self) -> int:
        total = 0
        while (done := self.run_once()) > 0:
            total += done
        return total

    def run_forever(self, stop: threading.Event, idle_s: float = 0.5) -> None:
        while not stop.is_set():
            try:
                if self.run_once() == 0:
                    stop.wait(idle_s)
            except Exception:
                log.exception("embedding batch failed; retrying")
                stop.wait(5.0)


class EmbedderProcess:
    """The embedded server's embedder, as a child process with the server's database settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIMUM_SEARCH__")}
        env |= {
            "FIMUM_MODE": self.settings.mode,
            "FIMUM_DATA_DIR": str(self.settings.data_dir.resolve()),
            "FIMUM_SEARCH": self.settings.search.model_dump_json(),
            "OMP_WAIT_POLICY": "PASSIVE",
        }
        if self.settings.database_url:
            env["FIMUM_DATABASE_URL"] = self.settings.database_url
        if self.settings.database_schema:
            env["FIMUM_DATABASE_SCHEMA"] = self.settings.database_schema
        self._process = subprocess.Popen(
            [sys.executable, "-m", "fimum_ai.search.embedder"], env=env, stdin=subprocess.DEVNULL
        )

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


def main() -> None:
    from fimum_ai.logs import configure_logging
    from fimum_ai.search.index import open_store
    from fimum_ai.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    store = open_store(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("embedder started", extra={"at": datetime.now(UTC).isoformat()})
    Embedder(store, batch=settings.search.embed_batch, max_chars=settings.search.embed_max_chars).run_forever(
        stop
    )
    store.engine.dispose()
    store.read_engine.dispose()


if __name__ == "__main__":
    main()
