"""Pages to the index: near-duplicates collapsed, the rest handed over in batches; pages that are
gone (404/410) taken out in the same batches.

`SearchIndex.add` is blocking (a tantivy commit, a PostgreSQL transaction), so batches go to one
writer thread and the reactor keeps crawling. A batch leaves when it is full or a second old, so a
new page is searchable within seconds.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from twisted.internet import task

from fimum_ai.search.documents import Gone, Page

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 1.0


class IndexPipeline:
    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self._buffer: list[Page] = []
        self._gone: list[str] = []
        self._last_flush = time.monotonic()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fimum-index")
        self._pending: list[Future[tuple[str, int]]] = []
        self._timer = task.LoopingCall(self.tick)

    @classmethod
    def from_crawler(cls, crawler: Any) -> IndexPipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if isinstance(item, Gone):
            self._gone.append(item.url)
            return item
        if not isinstance(item, Page):
            return item
        ctx = self.crawler.spider.ctx
        stats = self.crawler.stats
        original = ctx.near_duplicates.claim(item.url, item.fingerprint)
        if original is not None:
            stats.inc_value("fimum/duplicates")
            log.debug("%s is a near-copy of %s", item.url, original)
            return item
        self._buffer.append(item)
        if len(self._buffer) >= ctx.index_batch:
            self.flush()
        return item

    def open_spider(self) -> None:
        self._timer.start(FLUSH_EVERY_S / 4, now=False)

    def tick(self) -> None:
        if (self._buffer or self._gone) and time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
            self.flush()
        self._collect(wait=False)

    def flush(self) -> None:
        batch, self._buffer = self._buffer, []
        gone, self._gone = self._gone, []
        self._last_flush = time.monotonic()
        if batch:
            self._pending.append(self._writer.submit(self._write, batch))
        if gone:
            self._pending.append(self._writer.submit(self._remove, gone))

    def _write(self, batch: list[Page]) -> tuple[str, int]:
        """Runs in the writer thread; the count is added to the stats in the reactor thread."""
        try:
            self.crawler.spider.ctx.index.add(batch)
        except Exception:
            log.exception("the index refused a batch of %d pages", len(batch))
            return "errors", len(batch)
        return "indexed", len(batch)

    def _remove(self, urls: list[str]) -> tuple[str, int]:
        try:
            return "removed", self.crawler.spider.ctx.index.remove(urls)
        except Exception:
            log.exception("could not remove %d gone pages from the index", len(urls))
            return "errors", len(urls)

    def _collect(self, *, wait: bool) -> None:
        stats = self.crawler.stats
        still: list[Future[tuple[str, int]]] = []
        for future in self._pending:
            if not wait and not future.done():
                still.append(future)
                continue
            outcome, count = future.result()
            stats.inc_value(f"fimum/{outcome}", count)
            if outcome == "errors":
                stats.inc_value("fimum/errors_index", count)
        self._pending = still

    def close_spider(self) -> None:
        if self._timer.running:
            self._timer.stop()
        self.flush()
        self._writer.shutdown(wait=True)
        self._collect(wait=True)
