"""`fimum crawl` against the generated test website on 127.0.0.1: what is indexed and what is not.

Slow (each crawl is a real `fimum crawl` process: ~3 s of Scrapy start-up plus the crawl of ~240
URLs); the site is kept to a few hundred pages so the whole file stays well under a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fimum_ai.search.crawler.fingerprint import hamming
from fimum_ai.search.index import SearchIndex, open_index
from fimum_ai.search.store import url_key
from fimum_ai.search.tables import pages
from fimum_ai.settings import load_settings
from tests.search_site import Site, SiteServer, make_site

# Seconds on an idle machine; minutes when other jobs share its two cores.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

FIMUM = str(Path(sys.executable).with_name("fimum"))
N_ARTICLES = 200
MAX_PAGE_BYTES = 200_000  # the site's huge.txt (600 kB) is over it


def crawl(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> dict[str, Any]:
    result = subprocess.run(
        [FIMUM, "crawl", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | {"FIMUM_CRAWLER__MAX_PAGE_BYTES": str(MAX_PAGE_BYTES)} | (env or {}),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    start = result.stdout.index("{")
    data: dict[str, Any] = json.loads(result.stdout[start:])
    return data


@pytest.fixture
def sites() -> Iterator[tuple[SiteServer, SiteServer]]:
    """The site under test on 127.0.0.1 and another site ("localhost") that it links to."""
    other = SiteServer(make_site(3), name="localhost")
    with other, SiteServer(make_site(N_ARTICLES, offsite=other.url)) as main:
        yield main, other


def stored(index: SearchIndex, base: str, paths: list[str]) -> dict[str, Any]:
    rows = index.rows([url_key(base + p) for p in paths])
    by_url = {row["url"]: row for row in rows.values()}
    return {p: by_url[base + p] for p in paths if base + p in by_url}


def test_crawl_indexes_the_site_and_nothing_else(sites: tuple[SiteServer, SiteServer]) -> None:
    main, other = sites
    site: Site = main.site
    result = crawl(main.url + "/", "--depth", "6")
    assert result["state"] == "finished"

    index = open_index(load_settings())
    try:
        base = main.url
        # Every article, the sitemap-only pages and the page linked from a noindex page are in.
        wanted = [p for p in site.articles if p != site.duplicate_of]
        got = stored(index, base, [*wanted, *site.sitemap_only, "/hidden/followed.html"])
        missing = sorted((set(wanted) | set(site.sitemap_only) | {"/hidden/followed.html"}) - set(got))
        assert not missing, missing[:10]

        # robots.txt: never fetched, never indexed.
        assert all(main.hits[p] == 0 for p in site.forbidden)
        assert not stored(index, base, site.forbidden)
        # Never leaves the allowed domain: the other site got no request at all.
        assert sum(other.hits.values()) == 0
        # Duplicates collapsed: of the article and its exact and near copies, one is indexed.
        copies = [site.duplicate_of, site.exact_duplicate, site.near_duplicate]
        assert len(stored(index, base, copies)) == 1
        assert result["duplicates"] >= 2
        # noindex, broken links, redirects' old addresses, oversized files: not in the index.
        assert not stored(index, base, [site.noindex, *site.broken, *site.redirects, site.oversized])
        assert result["errors"] >= len(site.broken)  # 404s count as errors, and nothing else failed
        assert result["breakdown"]["errors_http_404"] == len(site.broken)
        assert result["breakdown"]["skipped_robots"] == len(site.forbidden)
        assert result["breakdown"]["skipped_noindex"] == 1
        assert result["breakdown"]["skipped_too_large"] == 1
        assert result["errors"] == len(site.broken), result["breakdown"]
        # Redirect targets are indexed under their own URL; tracking parameters were dropped.
        assert all(target in got or target == site.duplicate_of for target in site.redirects.values())
        assert not [row for row in index.rows([url_key(f"{base}/articles/2.html?utm_source=test")]).values()]

        # PDF, DOCX and TXT: text, type, title, date.
        files = stored(index, base, list(site.files))
        assert {p: r["filetype"] for p, r in files.items()} == site.files
        assert files["/files/report.pdf"]["title"] == "Gardening annual report"
        assert files["/files/report.pdf"]["published"] == site.published["/files/report.pdf"]
        assert files["/files/notes.docx"]["title"] == "Chess opening notes"
        assert files["/files/readme.txt"]["title"] == "Beekeeping readme"
        pdf_text = index.snapshot(files["/files/report.pdf"]["snapshot_id"])
        assert pdf_text is not None and "pollination" in pdf_text["text"]

        # Languages, dates (page metadata, else Last-Modified), publisher and author metadata.
        rows = stored(index, base, site.articles[1:60])
        langs = {p: r["lang"] for p, r in rows.items()}
        right = sum(langs[p] == site.article_lang[p] for p in rows)
        assert right == len(rows), {
            p: (langs[p], site.article_lang[p]) for p in rows if langs[p] != site.article_lang[p]
        }
        for path, row in rows.items():
            if path in site.published:
                assert row["published"] == site.published[path], path
        assert rows["/articles/5.html"]["publisher"] == "Test Gazette"
        assert rows["/articles/5.html"]["author"] == "Ann Writer"
        assert rows["/articles/6.html"]["publisher"] is None  # no site name: the host is no publisher
        # Outgoing links are recorded normalised (no fragment, no tracking parameters).
        with index.store.engine.connect() as connection:  # type: ignore[attr-defined]
            links = json.loads(
                connection.execute(
                    select(pages.c.links).where(pages.c.url == f"{base}/articles/7.html")
                ).scalar_one()
            )
        assert f"{base}/articles/9.html" in links and f"{base}/missing/7.html" in links
        assert not [link for link in links if "#" in link or "utm_" in link]
    finally:
        index.close()


def test_recrawl_fetches_only_what_changed(sites: tuple[SiteServer, SiteServer]) -> None:
    main, _ = sites
    site = main.site
    first = crawl(main.url + "/", "--depth", "6")
    assert first["unchanged"] == 0 and first["indexed"] > N_ARTICLES * 0.9
    changed, same = "/articles/50.html", "/articles/51.html"
    sitemap_listed = site.sitemap_only[0]
    index = open_index(load_settings())
    before = index.state(main.url + changed)
    index.close()
    assert before is not None
    site.set_html(changed, "Rewritten article", "kayaking " * 50 + "the page now talks about kayaking")
    gone = "/articles/52.html"
    index = open_index(load_settings())
    gone_snapshot = stored(index, main.url, [gone])[gone]["snapshot_id"]
    index.close()
    del site.resources[gone]  # the site took it down: 404 from now on
    hits_before = main.hits.copy()

    second = crawl(main.url + "/", "--depth", "6")
    assert second["state"] == "finished"
    # Unchanged pages were asked conditionally and answered 304 ...
    assert main.not_modified[same] == 1 and second["unchanged"] >= N_ARTICLES * 0.8
    # ... pages the sitemap dates before the stored copy were not asked at all ...
    assert main.hits[sitemap_listed] == hits_before[sitemap_listed]
    # ... and the changed page was fetched again and re-indexed.
    assert main.not_modified[changed] == 0 and main.conditional[changed] == 1
    index = open_index(load_settings())
    try:
        after = index.state(main.url + changed)
        assert after is not None and after.etag != before.etag
        assert hamming(after.fingerprint, before.fingerprint) > 10
        row = stored(index, main.url, [changed])[changed]
        assert row["title"] == "Rewritten article"
        assert after.fetched_at > before.fetched_at
        # The page that went away was asked again (a remembered link), answered 404 and left the
        # index; the snapshot a citation points to is still there.
        assert main.hits[gone] == hits_before[gone] + 1
        assert index.state(main.url + gone) is None
        snapshot = index.snapshot(gone_snapshot)
        assert snapshot is not None and snapshot["url"] == main.url + gone
    finally:
        index.close()
    assert second["removed"] == 1
    assert second["indexed"] < 10  # the changed page (and pages without validators, e.g. the home page)


def test_max_pages_and_depth_bound_the_crawl(sites: tuple[SiteServer, SiteServer]) -> None:
    main, _ = sites
    result = crawl(main.url + "/", "--max-pages", "25")
    assert result["state"] == "finished" and result["reason"] == "max_pages"
    assert 20 <= result["fetched"] <= 25  # page requests that failed (404) took their share too
    not_pages = ("/robots.txt", "/sitemap.xml", "/sitemap-pages.xml")
    requests = sum(n for p, n in main.hits.items() if p not in not_pages and not p.startswith("/old/"))
    assert requests <= 25  # whatever was queued or in flight: the site saw at most 25 page requests

    shallow = crawl(main.url + "/", "--depth", "0", env={"FIMUM_CRAWLER__FOLLOW_SITEMAPS": "false"})
    assert shallow["fetched"] == 1  # the seed only


def test_bad_input_is_refused_clearly(tmp_path: Path) -> None:
    result = subprocess.run(
        [FIMUM, "crawl", "ftp://example.com/"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "not an http(s) URL" in result.stderr
    result = subprocess.run(
        [FIMUM, "crawl", "http://127.0.0.1:9/", "--max-pages", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "max-pages" in result.stderr


def test_crawl_time_is_utc(sites: tuple[SiteServer, SiteServer]) -> None:
    main, _ = sites
    before = datetime.now(UTC)
    crawl(main.url + "/files/readme.txt", "--depth", "0", env={"FIMUM_CRAWLER__FOLLOW_SITEMAPS": "false"})
    index = open_index(load_settings())
    try:
        state = index.state(main.url + "/files/readme.txt")
        assert state is not None and before <= state.fetched_at <= datetime.now(UTC)
    finally:
        index.close()
