"""Where extraction runs: in the crawler process, or in a pool of worker processes.

Extraction (lxml, trafilatura, htmldate, language, SimHash) is most of a page's CPU time, and the
crawler process is one Python thread: a pool of `crawler.extract_workers` processes lets a second
core extract while the first fetches, schedules and writes the index.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from fimum_ai.search.crawler.extract import Extracted, extract_document


def default_workers() -> int:
    """One per core beside the crawler's own, at most 4; none on a single core."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


class Extractors:
    def __init__(self, workers: int) -> None:
        self.workers = default_workers() if workers < 0 else workers
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 0:
            # spawn, not fork: the crawler process holds a Twisted reactor and open connections.
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    async def extract(self, filetype: str, body: bytes, url: str, encoding: str | None) -> Extracted:
        if self._pool is None:
            return extract_document(filetype, body, url, encoding)
        future = self._pool.submit(extract_document, filetype, body, url, encoding)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
