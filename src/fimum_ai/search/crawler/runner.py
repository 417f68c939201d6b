"""Run one crawl in this process: Scrapy settings from `Settings.crawler`, the context, the reactor.

Twisted's reactor runs once per process, so each crawl is a process of its own: `fimum crawl`
is one, and the admin API starts `python -m fimum_ai.search.crawler.job` for each crawl.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fimum_ai.search.crawler.context import (
    CrawlContext,
    CrawlOptions,
    CrawlProgress,
    CrawlReporter,
    Frontier,
    IndexSink,
    PageBudget,
)
from fimum_ai.search.crawler.extractors import Extractors
from fimum_ai.search.crawler.fingerprint import MemoryNearDuplicates, NearDuplicates, RedisNearDuplicates
from fimum_ai.search.crawler.memory import LinkMemory, RedisLinkMemory, SqliteLinkMemory
from fimum_ai.settings import Settings

log = logging.getLogger(__name__)

_PKG = "fimum_ai.search.crawler"


def frontier_kind(settings: Settings) -> str:
    configured = settings.crawler.frontier
    if configured == "auto":
        return "redis" if settings.mode == "distributed" and settings.redis_url else "memory"
    if configured == "redis" and not settings.redis_url:
        raise ValueError("crawler.frontier is redis, so FIMUM_REDIS_URL is needed")
    return configured


def scrapy_settings(settings: Settings, frontier: Frontier, log_level: str = "WARNING") -> dict[str, Any]:
    cfg = settings.crawler
    values: dict[str, Any] = {
        "BOT_NAME": "fimum",
        "USER_AGENT": cfg.user_agent,
        "ROBOTSTXT_OBEY": cfg.obey_robots,
        "ROBOTSTXT_USER_AGENT": cfg.user_agent.split("/", 1)[0],
        "CONCURRENT_REQUESTS": cfg.concurrent_requests,
        "CONCURRENT_REQUESTS_PER_DOMAIN": cfg.concurrent_per_domain,
        "DOWNLOAD_DELAY": cfg.download_delay_s,
        "DOWNLOAD_TIMEOUT": cfg.download_timeout_s,
        "DOWNLOAD_MAXSIZE": cfg.max_page_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        "REDIRECT_MAX_TIMES": 10,
        "RETRY_TIMES": 1,
        "COOKIES_ENABLED": False,
        # No telnet console / remote control port (NOTES.md: REMOTE_CONTROL_ENABLED).
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,
        "LOG_LEVEL": log_level,
        # The spider awaits extraction in worker processes (asyncio futures).
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "LOGSTATS_INTERVAL": 0,
        # Breadth first: seeds and shallow pages before deep ones (a page budget keeps the best).
        "DEPTH_PRIORITY": 1,
        "REACTOR_THREADPOOL_MAXSIZE": 8,
        "ITEM_PIPELINES": {f"{_PKG}.pipeline.IndexPipeline": 300},
        "EXTENSIONS": {f"{_PKG}.progress.ProgressExtension": 500},
        # After robots.txt (100): a URL robots forbids is not looked up in the index.
        "DOWNLOADER_MIDDLEWARES": {f"{_PKG}.middleware.ConditionalRequestMiddleware": 120},
    }
    if frontier.kind == "redis":
        values |= {
            "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
            "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
            "SCHEDULER_QUEUE_CLASS": "scrapy_redis.queue.PriorityQueue",
            "SCHEDULER_QUEUE_KEY": frontier.queue_key,
            "SCHEDULER_DUPEFILTER_KEY": frontier.seen_key,
            # Workers leave at different times: the last one clears the frontier (Frontier.leave).
            "SCHEDULER_PERSIST": True,
            "REDIS_URL": frontier.redis_url,
        }
    else:
        values |= {
            "SCHEDULER_PRIORITY_QUEUE": "scrapy.pqueues.DownloaderAwarePriorityQueue",
            "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
            "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
        }
    return values


def build_context(
    settings: Settings,
    options: CrawlOptions,
    reporter: CrawlReporter,
    index: IndexSink | None = None,
) -> CrawlContext:
    cfg = settings.crawler
    kind = frontier_kind(settings)
    if index is None:
        from fimum_ai.search.index import open_index

        index = open_index(settings)
    near: NearDuplicates
    links: LinkMemory
    if kind == "redis":
        import redis

        client = redis.Redis.from_url(settings.redis_url or "")
        base = f"{settings.redis_prefix}crawler:{cfg.crawl_name}:"
        frontier = Frontier("redis", settings.redis_url, base, client)
        options = _shared_options(client, frontier, options)
        near = RedisNearDuplicates(
            redis.Redis.from_url(settings.redis_url or ""), settings.redis_prefix, cfg.near_duplicate_bits
        )
        links = RedisLinkMemory(redis.Redis.from_url(settings.redis_url or ""), settings.redis_prefix)
        budget = PageBudget(options.max_pages, client, frontier.pages_key)
    else:
        frontier = Frontier("memory")
        folder = settings.data_dir / "search" / "crawler"
        near = MemoryNearDuplicates(cfg.near_duplicate_bits, folder / "fingerprints.sqlite3")
        links = SqliteLinkMemory(folder / "links.sqlite3")
        budget = PageBudget(options.max_pages)
    return CrawlContext(
        extractors=Extractors(cfg.extract_workers),
        options=options,
        index=index,
        near_duplicates=near,
        links=links,
        budget=budget,
        frontier=frontier,
        reporter=reporter,
        index_batch=cfg.index_batch,
        idle_close_s=cfg.idle_close_s,
        follow_sitemaps=cfg.follow_sitemaps,
    )


def _shared_options(client: Any, frontier: Frontier, options: CrawlOptions) -> CrawlOptions:
    """The first worker of a shared crawl records its options; a worker started without seeds
    joins with them."""
    if options.seeds:
        client.set(frontier.options_key, options.to_json(), nx=True)
        return options
    stored = client.get(frontier.options_key)
    if stored is None:
        raise ValueError("no seeds given and no shared crawl to join (start one worker with seeds)")
    return CrawlOptions.from_json(stored.decode())


def run_crawl(
    settings: Settings,
    options: CrawlOptions,
    reporter: CrawlReporter,
    *,
    index: IndexSink | None = None,
    log_level: str = "WARNING",
    on_context: Callable[[CrawlContext], None] | None = None,
) -> CrawlProgress:
    """Crawl until the frontier is empty, the page budget is spent or a stop is asked for; return
    the last progress snapshot. Blocks; runs the Twisted reactor (once per process)."""
    from scrapy.crawler import CrawlerProcess

    from fimum_ai.search.crawler.spider import SiteSpider

    ctx = build_context(settings, options, reporter, index)
    if on_context is not None:
        on_context(ctx)
    last: list[CrawlProgress] = []

    class _Keep:
        def report(self, progress: CrawlProgress) -> None:
            last.append(progress)
            del last[:-1]
            reporter.report(progress)

        def stop_requested(self) -> bool:
            return reporter.stop_requested()

    ctx.reporter = _Keep()
    process = CrawlerProcess(scrapy_settings(settings, ctx.frontier, log_level), install_root_handler=False)
    # Scrapy logs every request and item at DEBUG; the crawl's own progress is the reporter's job.
    for name in ("scrapy", "scrapy_redis", "twisted", "trafilatura", "htmldate", "courlan", "protego"):
        logging.getLogger(name).setLevel(getattr(logging, log_level))
    try:
        process.crawl(SiteSpider, ctx=ctx)
        process.start()
    finally:
        ctx.extractors.close()
        ctx.near_duplicates.close()
        ctx.links.close()
        ctx.index.close()
    return last[-1] if last else CrawlProgress(state="failed", reason="the crawl did not start")
