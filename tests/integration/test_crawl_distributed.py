"""Two `fimum crawl` processes sharing one Redis frontier (scrapy-redis) crawl each page once,
into the PostgreSQL index, configured by environment variables only.

Slow (two crawler processes, ~4 s of start-up each, then ~180 URLs between them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from fimum_ai.search.index import open_index
from fimum_ai.search.store import url_key
from fimum_ai.settings import load_settings
from tests.conftest import JWT_TEST_SECRET, POSTGRES_URL, REDIS_URL
from tests.search_site import SiteServer, make_site

# Seconds on an idle machine; minutes when other jobs share its two cores.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

FIMUM = str(Path(sys.executable).with_name("fimum"))
NOT_PAGES = {"/robots.txt"}  # each process reads robots.txt itself (Scrapy's robots middleware)


def test_two_crawlers_share_one_frontier(
    monkeypatch: pytest.MonkeyPatch, pg_schema: str, redis_prefix: str
) -> None:
    env = {
        "FIMUM_MODE": "distributed",
        "FIMUM_DATABASE_URL": POSTGRES_URL,
        "FIMUM_DATABASE_SCHEMA": pg_schema,
        "FIMUM_REDIS_URL": REDIS_URL,
        "FIMUM_REDIS_PREFIX": redis_prefix,
        "FIMUM_JWT_SECRET": JWT_TEST_SECRET,
        "FIMUM_CRAWLER__CRAWL_NAME": "shared",
        "FIMUM_CRAWLER__CONCURRENT_PER_DOMAIN": "4",
        # Each process takes at most this many requests off the shared queue at a time, so the
        # first one cannot hold every queued URL while the second one starts.
        "FIMUM_CRAWLER__CONCURRENT_REQUESTS": "4",
        "FIMUM_CRAWLER__IDLE_CLOSE_S": "1",
        # The site holds its answers until both processes have asked (see below): no time-outs
        # and retries (a retry would be a second request for the same page) while it waits.
        "FIMUM_CRAWLER__DOWNLOAD_TIMEOUT_S": "150",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.crawler.frontier == "auto"  # distributed mode alone picks the Redis frontier
    index = open_index(settings)  # the schema exists before two processes race to create it
    # Answers beyond the entry pages are held until both crawlers have asked something: they start
    # seconds apart, and the second finds its first requests in the frontier the first one filled.
    with SiteServer(make_site(150), delay_s=0.01, wait_for_agents=2, wait_s=120) as site:
        procs = [
            subprocess.Popen(
                [FIMUM, "crawl", site.url + "/", "--json"],
                env=os.environ | {"FIMUM_CRAWLER__USER_AGENT": f"FimumBot-{name}/1.0"},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in ("A", "B")
        ]
        results: list[dict[str, Any]] = []
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-3000:]
            results.append(json.loads(out[out.index("{") :]))

    pages = {path: n for path, n in site.hits.items() if path not in NOT_PAGES}
    twice = {path: n for path, n in pages.items() if n != 1}
    assert not twice, twice
    assert site.hits["/robots.txt"] == 2
    # Both did real work, and between them they fetched every page once.
    by_agent = {
        agent.split("/")[0]: sum(c.values()) - c["/robots.txt"] for agent, c in site.hits_by_agent.items()
    }
    assert set(by_agent) == {"FimumBot-A", "FimumBot-B"}
    assert min(by_agent.values()) >= 10, by_agent
    assert sum(r["fetched"] for r in results) == sum(
        n for p, n in pages.items() if not p.startswith(("/old/", "/sitemap", "/missing/"))
    )
    assert all(r["state"] == "finished" for r in results)

    try:
        stored = index.rows([url_key(site.url + p) for p in site.site.articles])
        assert len(stored) >= len(site.site.articles) - 1  # article 0 or one of its copies
    finally:
        index.close()
    # The last worker out cleared the shared queue and seen-set.
    client = redis.Redis.from_url(REDIS_URL)
    left = [k.decode() for k in client.scan_iter(match=f"{redis_prefix}crawler:shared:*")]
    client.close()
    assert left == []
