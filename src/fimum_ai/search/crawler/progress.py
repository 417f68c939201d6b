"""Twice a second: a progress snapshot for the reporter (CLI display, admin API), a heartbeat for
the shared frontier, and the check whether someone asked this crawl to stop."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from scrapy import signals
from scrapy.utils.defer import deferred_from_coro
from twisted.internet import task

from fimum_ai.search.crawler.context import CrawlProgress

TICK_S = 0.5
RATE_WINDOW_S = 10.0


class ProgressExtension:
    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.started = time.monotonic()
        self.history: deque[tuple[float, int]] = deque()
        self.timer = task.LoopingCall(self.tick)
        self.stopping = False

    @classmethod
    def from_crawler(cls, crawler: Any) -> ProgressExtension:
        ext = cls(crawler)
        crawler.signals.connect(ext.opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.closed, signal=signals.spider_closed)
        return ext

    def opened(self) -> None:
        engine = self.crawler.engine
        if self.crawler.spider.ctx.frontier.kind == "redis":
            # An idle worker looks at the shared queue this often (Scrapy's default is 5 s).
            engine._SLOT_HEARTBEAT_INTERVAL = TICK_S
        self.started = time.monotonic()
        self.timer.start(TICK_S, now=True)

    def snapshot(self, state: str = "running", reason: str = "") -> CrawlProgress:
        stats = self.crawler.stats
        engine = self.crawler.engine
        now = time.monotonic()
        elapsed = now - self.started
        fetched = int(stats.get_value("fimum/fetched", 0))
        self.history.append((now, fetched))
        while self.history and now - self.history[0][0] > RATE_WINDOW_S:
            self.history.popleft()
        t0, f0 = self.history[0]
        window = now - t0
        queue = 0
        in_flight = 0
        if engine is not None:
            scheduler = engine.scheduler
            queue = len(scheduler) if scheduler is not None and hasattr(scheduler, "__len__") else 0
            in_flight = len(engine.downloader.active)
        return CrawlProgress(
            state=state,
            fetched=fetched,
            indexed=int(stats.get_value("fimum/indexed", 0)),
            unchanged=int(stats.get_value("fimum/unchanged", 0)),
            removed=int(stats.get_value("fimum/removed", 0)),
            duplicates=int(stats.get_value("fimum/duplicates", 0)),
            skipped=int(stats.get_value("fimum/skipped", 0)),
            errors=int(stats.get_value("fimum/errors", 0)),
            queue=queue,
            in_flight=in_flight,
            elapsed_s=round(elapsed, 2),
            pages_per_min=round((fetched - f0) / window * 60, 1) if window > 0.5 else 0.0,
            average_pages_per_min=round(fetched / elapsed * 60, 1) if elapsed > 0 else 0.0,
            reason=reason,
            breakdown={
                key.removeprefix("fimum/"): int(value)
                for key, value in stats.get_stats().items()
                if key.startswith(("fimum/skipped_", "fimum/errors_", "fimum/unchanged_"))
            },
        )

    def tick(self) -> None:
        ctx = self.crawler.spider.ctx
        progress = self.snapshot()
        ctx.frontier.heartbeat(busy=progress.queue > 0 or progress.in_flight > 0)
        ctx.reporter.report(progress)
        if not self.stopping and ctx.reporter.stop_requested():
            self.stopping = True
            deferred_from_coro(self.crawler.engine.close_spider_async(reason="stopped"))

    def closed(self, reason: str) -> None:
        if self.timer.running:
            self.timer.stop()
        ctx = self.crawler.spider.ctx
        state = {"finished": "finished", "max_pages": "finished", "stopped": "stopped", "shutdown": "stopped"}
        progress = self.snapshot(state=state.get(reason, "failed"), reason=reason)
        # The page counter is shared; a worker that ends the crawl at max_pages ends it for all.
        ctx.frontier.leave(finished=progress.state == "finished")
        ctx.reporter.report(progress)
