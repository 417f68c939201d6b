"""The spider: seeds and sitemaps in, `Page`s and in-domain links out.

Scrapy does the politeness (robots.txt, per-domain concurrency and delay), redirects, size limits
and the seen-set; this class decides what to fetch and turns responses into pages.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy import signals
from scrapy.exceptions import DontCloseSpider, DownloadCancelledError, IgnoreRequest
from scrapy.http import Request, Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.gz import gunzip
from scrapy.utils.sitemap import Sitemap
from twisted.python.failure import Failure

from fimum_ai.search.crawler.context import CrawlContext
from fimum_ai.search.crawler.extract import UnsupportedDocument, filetype_of, http_date
from fimum_ai.search.crawler.urls import host_of, in_domains, normalise_url
from fimum_ai.search.documents import Gone, Page

log = logging.getLogger(__name__)

PAGE_META = {"handle_httpstatus_list": [304], "fimum_page": True}


class SiteSpider(scrapy.Spider):
    name = "fimum"

    def __init__(self, ctx: CrawlContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        domains = ctx.options.allow_domains or tuple(host_of(s) for s in ctx.options.seeds)
        self.domains = frozenset(d.lower().lstrip(".") for d in domains if d)
        # OffsiteMiddleware: host names without ports (NOTES.md).
        self.allowed_domains = sorted(self.domains)
        self._idle_since: float | None = None
        self._budget_spent = False

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> SiteSpider:
        spider: SiteSpider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider._robots_parsed, signal=signals.robots_parsed)
        crawler.signals.connect(spider._idle, signal=signals.spider_idle)
        return spider

    # ------------------------------------------------------------------------ what to fetch

    async def start(self) -> AsyncIterator[Any]:
        sites: dict[str, None] = {}
        for seed in self.ctx.options.seeds:
            url = normalise_url(seed)
            if url is None:
                continue
            yield self.page_request(url, depth_reset=True)
            parts = urlsplit(url)
            sites.setdefault(f"{parts.scheme}://{parts.netloc}", None)
        if self.ctx.follow_sitemaps:
            for site in sites:
                yield self.sitemap_request(f"{site}/sitemap.xml")

    def page_request(self, url: str, *, depth_reset: bool = False, lastmod: str | None = None) -> Request:
        meta: dict[str, Any] = dict(PAGE_META)
        if depth_reset:
            meta["depth_reset"] = True
        if lastmod:
            meta["lastmod"] = lastmod
        return Request(url, callback=self.parse_page, errback=self.page_failed, meta=meta)

    def sitemap_request(self, url: str) -> Request:
        return Request(
            url, callback=self.parse_sitemap, errback=self.sitemap_failed, meta={"depth_reset": True}
        )

    def _robots_parsed(self, robotparser: Any, request: Request) -> None:
        """Sitemaps that robots.txt names, and its Crawl-delay for that host."""
        engine = self.crawler.engine
        rp = getattr(robotparser, "rp", None)
        if rp is None or engine is None:
            return
        if self.ctx.follow_sitemaps:
            for url in getattr(rp, "sitemaps", ()):
                normal = normalise_url(str(url))
                if normal and in_domains(normal, self.domains):
                    engine.crawl(self.sitemap_request(normal))
        delay = robotparser.crawl_delay(self.settings.get("USER_AGENT", "*"))
        if delay:
            key, slot = engine.downloader._get_slot(request)
            slot.delay = max(slot.delay, min(float(delay), 60.0))
            log.info("crawl-delay %.1f s for %s (robots.txt)", slot.delay, key)

    def parse_sitemap(self, response: Response) -> Iterator[Request]:
        body = response.body
        if body[:2] == b"\x1f\x8b":
            body = gunzip(body, max_size=self.settings.getint("DOWNLOAD_MAXSIZE"))
        try:
            sitemap = Sitemap(body)
        except Exception:  # lxml raises several kinds on a body that is not XML
            self.crawler.stats.inc_value("fimum/sitemaps_unreadable")
            return
        for entry in sitemap:
            url = normalise_url(str(entry.get("loc", "")), response.url)
            if url is None or not in_domains(url, self.domains):
                continue
            if sitemap.type == "sitemapindex":
                yield self.sitemap_request(url)
            else:
                yield self.page_request(url, depth_reset=True, lastmod=entry.get("lastmod"))

    def sitemap_failed(self, failure: Failure) -> None:
        self.crawler.stats.inc_value("fimum/sitemaps_missing")

    # ------------------------------------------------------------------------ pages

    async def parse_page(self, response: Response) -> AsyncIterator[Any]:
        stats = self.crawler.stats
        if not response.meta.get("fimum_not_fetched"):
            stats.inc_value("fimum/fetched")
        url = normalise_url(response.url) or response.url
        depth = int(response.meta.get("depth", 0))
        if response.status == 304:
            # Unchanged since the stored copy: keep it as the original of its copies, and visit
            # the pages it linked to last time.
            stats.inc_value("fimum/unchanged")
            known = response.meta.get("fimum_known_fingerprint")
            if known:
                self.ctx.near_duplicates.claim(url, int(known))
            for request in self._follow(self.ctx.links.recall(url), depth):
                yield request
            return
        content_type = response.headers.get(b"Content-Type")
        filetype = filetype_of(content_type.decode("latin-1") if content_type else None, url)
        if filetype is None:
            stats.inc_value("fimum/skipped")
            stats.inc_value("fimum/skipped_type")
            return
        encoding = response.encoding if isinstance(response, TextResponse) else None
        try:
            extracted = await self.ctx.extractors.extract(filetype, response.body, url, encoding)
        except UnsupportedDocument as exc:
            stats.inc_value("fimum/errors")
            stats.inc_value("fimum/errors_extraction")
            log.info("could not extract %s: %s", url, exc)
            return
        x_robots = (response.headers.get(b"X-Robots-Tag") or b"").decode("latin-1").lower()
        follow = [] if extracted.nofollow or "nofollow" in x_robots else extracted.links
        if filetype == "html":
            self.ctx.links.remember(url, follow)
        for request in self._follow(follow, depth):
            yield request
        if extracted.noindex or "noindex" in x_robots:
            stats.inc_value("fimum/skipped")
            stats.inc_value("fimum/skipped_noindex")
            return
        if not extracted.text.strip():
            stats.inc_value("fimum/skipped")
            stats.inc_value("fimum/skipped_empty")
            return
        canonical = extracted.canonical
        if canonical is None or host_of(canonical) != host_of(url):
            canonical = url  # a canonical link to another host is a claim we do not take on trust
        last_modified = response.headers.get(b"Last-Modified")
        etag = response.headers.get(b"ETag")
        yield Page(
            url=canonical,
            title=extracted.title or url,
            text=extracted.text,
            lang=extracted.lang,
            published=extracted.published or http_date(last_modified),
            fetched_at=datetime.now(UTC),
            filetype=filetype,
            links=tuple(extracted.links),
            author=extracted.author,
            publisher=_real_publisher(extracted.publisher, url),
            etag=etag.decode("latin-1") if etag else None,
            last_modified=last_modified.decode("latin-1") if last_modified else None,
            fingerprint=extracted.fingerprint,
        )

    def _follow(self, links: list[str], depth: int) -> Iterator[Request]:
        if depth < self.ctx.options.depth and not self._budget_spent:
            for link in links:
                if in_domains(link, self.domains):
                    yield self.page_request(link)

    def page_failed(self, failure: Failure) -> list[Gone]:
        stats = self.crawler.stats
        if isinstance(failure.value, IgnoreRequest) and not isinstance(failure.value, HttpError):
            reason = str(failure.value)
            if reason == "max_pages reached":
                return []
            stats.inc_value("fimum/skipped")
            if "robots.txt" in reason:
                stats.inc_value("fimum/skipped_robots")
            else:
                stats.inc_value("fimum/skipped_other")
            return []
        if isinstance(failure.value, DownloadCancelledError) and "max size" in str(failure.value):
            stats.inc_value("fimum/skipped")
            stats.inc_value("fimum/skipped_too_large")  # over crawler.max_page_bytes: dropped unread
            return []
        stats.inc_value("fimum/errors")
        response = getattr(failure.value, "response", None)
        if response is not None:
            stats.inc_value(f"fimum/errors_http_{response.status}")
            if response.status in (404, 410):  # gone: out of the index if it was in it
                return [Gone(normalise_url(response.url) or response.url)]
        else:
            stats.inc_value(f"fimum/errors_{failure.type.__name__ if failure.type else 'unknown'}")
        return []

    def budget_spent(self) -> None:
        if not self._budget_spent:
            self._budget_spent = True
            engine = self.crawler.engine
            if engine is not None:
                from scrapy.utils.defer import deferred_from_coro

                deferred_from_coro(engine.close_spider_async(reason="max_pages"))

    # ------------------------------------------------------------------------ the end

    def _idle(self) -> None:
        """With a shared frontier, an idle worker waits while others still work (they may queue
        more) and for `idle_close_s` after that, then leaves."""
        frontier = self.ctx.frontier
        if frontier.kind != "redis" or self._budget_spent:
            return
        import time

        now = time.monotonic()
        if frontier.others_busy():
            self._idle_since = None
            raise DontCloseSpider
        if self._idle_since is None:
            self._idle_since = now
        if now - self._idle_since < self.ctx.idle_close_s:
            raise DontCloseSpider


def _real_publisher(name: str | None, url: str) -> str | None:
    """trafilatura falls back to the host name when a page names no site; that is no publisher."""
    if not name:
        return None
    netloc = urlsplit(url).netloc.lower()
    bare = name.strip().lower()
    return (
        None
        if bare in (netloc, host_of(url), netloc.removeprefix("www."), host_of(url).removeprefix("www."))
        else name
    )
