"""Page requests on their way out: the page budget, and conditional recrawl (ask only for what
changed since the stored copy).

A page the index already holds is requested with `If-None-Match` / `If-Modified-Since` from the
stored copy (the server answers 304 when nothing changed), and a sitemap entry whose `lastmod` is
not newer than the stored copy's crawl time is not requested at all (a local 304 stands in).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request, Response

from fimum_ai.search.crawler.urls import normalise_url


class ConditionalRequestMiddleware:
    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> ConditionalRequestMiddleware:
        return cls(crawler)

    def process_request(self, request: Request) -> Response | None:
        if not request.meta.get("fimum_page") or request.meta.get("redirect_times"):
            return None
        spider = self.crawler.spider
        url = normalise_url(request.url) or request.url
        state = spider.ctx.index.state(url)
        if state is None:
            self._spend(spider)
            return None
        lastmod = _sitemap_date(request.meta.get("lastmod"))
        request.meta["fimum_known_fingerprint"] = state.fingerprint
        if lastmod is not None and lastmod <= state.fetched_at:
            # Not fetched: the spider treats it as a 304 (and follows the links it remembers).
            self.crawler.stats.inc_value("fimum/unchanged_lastmod")
            request.meta["fimum_not_fetched"] = True
            return Response(request.url, status=304, request=request)
        if state.etag:
            request.headers[b"If-None-Match"] = state.etag.encode("latin-1")
        if state.last_modified:
            request.headers[b"If-Modified-Since"] = state.last_modified.encode("latin-1")
        self._spend(spider)
        return None

    def _spend(self, spider: Any) -> None:
        """Every page request that goes out takes one page of the crawl's budget (`--max-pages`),
        so the site sees at most that many page requests, whatever is queued or in flight."""
        if not spider.ctx.budget.take():
            spider.budget_spent()
            raise IgnoreRequest("max_pages reached")


def _sitemap_date(value: Any) -> datetime | None:
    """A W3C datetime from a sitemap (`2024-05-01` or `2024-05-01T10:00:00+00:00`) in UTC."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
