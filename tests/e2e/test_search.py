"""The Search page against the real search API, in Chromium: the live server's index is filled by a
real `fimum crawl` of two small sites served on 127.0.0.1 ("127.0.0.1" and "localhost"), then the
page searches it: highlighted snippets, a site filter that narrows the results, the mode switch,
the credibility breakdown on keyboard focus, the snapshot dialog, axe-core on each state.

Only the first search is hybrid (right after the crawl, before the server's embedder has vectors, it
ranks by keyword); the rest use keyword mode, so the test never waits for the embedding model.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from html import escape
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import FIMUM, LiveServer
from tests.search_site import Resource, Site, SiteServer

EMAIL = "searcher@example.com"
# Generous: a crawl is a real process (Scrapy start-up ~3 s, more on a loaded machine).
CRAWL_TIMEOUT_S = 120


def _page(title: str, paragraphs: list[str], links: list[str], head: str = "") -> Resource:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    anchors = "".join(f'<li><a href="{escape(href)}">{escape(href)}</a></li>' for href in links)
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>{head}'
        f"</head><body><article><h1>{escape(title)}</h1>{body}</article><ul>{anchors}</ul></body></html>"
    )
    return Resource(html.encode(), last_modified=datetime(2026, 6, 1, tzinfo=UTC))


def _lighthouse_site() -> Site:
    """Three pages about lighthouses (one with author, publisher and date) and one that is not."""
    site = Site()
    meta = (
        '<meta name="author" content="Ada Keeper"><meta property="og:site_name" content="Coastal Review">'
        '<meta property="article:published_time" content="2026-03-14T09:00:00Z">'
    )
    site.resources["/"] = _page(
        "Coastal guide",
        ["A guide to the coast: lighthouses, harbours and tide tables for sailors and walkers alike."],
        ["/fresnel.html", "/keepers.html", "/tides.html"],
    )
    site.resources["/fresnel.html"] = _page(
        "How a Fresnel lens made the lighthouse visible",
        [
            "Augustin Fresnel designed a lens of concentric prisms in 1822 that bent the lamp's light "
            "into one strong beam, so a lighthouse could be seen from twenty nautical miles away.",
            "Before the Fresnel lens, a lighthouse burned many lamps behind polished reflectors and "
            "still lost most of its light to the sky.",
        ],
        ["/", "/keepers.html"],
        head=meta,
    )
    site.resources["/keepers.html"] = _page(
        "The life of lighthouse keepers",
        [
            "Keepers trimmed the wicks every four hours through the night, wound the clockwork that "
            "turned the lens and logged passing ships. A lighthouse keeper's family often lived on "
            "the rock with them for years.",
        ],
        ["/", "/fresnel.html"],
    )
    site.resources["/tides.html"] = _page(
        "Reading tide tables",
        [
            "Tide tables list the times and heights of high and low water for a harbour. Spring tides "
            "come with the new and the full moon; neap tides in between.",
        ],
        ["/"],
    )
    return site


def _second_site() -> Site:
    site = Site()
    site.resources["/"] = _page(
        "Harbour notes",
        ["Notes from the harbour master about moorings, pilots and the old lighthouse on the pier."],
        ["/automation.html"],
    )
    site.resources["/automation.html"] = _page(
        "When lighthouses were automated",
        [
            "Through the twentieth century electric lamps, timers and remote monitoring replaced the "
            "keepers; the last staffed lighthouse in many countries was automated in the 1990s.",
        ],
        ["/"],
    )
    return site


@pytest.fixture(scope="module")
def crawled(live_server: LiveServer) -> Iterator[dict[str, Any]]:
    """The two sites crawled into the live server's index by `fimum crawl` (same data dir)."""
    with SiteServer(_lighthouse_site()) as main, SiteServer(_second_site(), name="localhost") as other:
        result = subprocess.run(
            [FIMUM, "crawl", f"{main.url}/", f"{other.url}/", "--depth", "3", "--json"],
            capture_output=True,
            text=True,
            timeout=CRAWL_TIMEOUT_S,
            env=live_server.env,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        report: dict[str, Any] = json.loads(result.stdout[result.stdout.index("{") :])
        assert report["state"] == "finished", report
        yield {"report": report, "main": main.url, "other": other.url}


def _results(page: Page) -> Any:
    return page.locator(".search-result")


def test_search_page_against_the_crawled_index(
    page: Page,
    crawled: dict[str, Any],
    login: Callable[..., None],
    axe: Callable[..., list[dict[str, Any]]],
    screenshot: Callable[[Page, str], None],
) -> None:
    login(page, EMAIL)
    # Search is a normal navigation entry now (it was marked "soon" before the API existed).
    nav_link = page.get_by_role("link", name="Search", exact=True)
    expect(nav_link).to_be_visible()
    expect(nav_link).not_to_contain_text("soon")
    nav_link.click()
    page.wait_for_url("**/search")
    axe(page)

    # 1. A search, hybrid (the default): pages from both sites, the query's word forms highlighted.
    page.get_by_role("searchbox", name="Search the web index").fill("lighthouse")
    page.get_by_role("search").get_by_role("button", name="Search", exact=True).click()
    page.wait_for_url(re.compile(r"/search\?q=lighthouse$"))
    results = _results(page)
    # The index takes in another process's writes within about a second (search.refresh_s).
    expect(results).to_have_count(5, timeout=30_000)
    titles = results.locator(".search-result-title").all_inner_texts()
    assert "How a Fresnel lens made the lighthouse visible" in titles
    assert "When lighthouses were automated" in titles
    assert "Reading tide tables" not in titles
    marks = page.locator(".search-snippet mark").all_inner_texts()
    assert marks and all(m.lower().startswith("lighthouse") for m in marks), marks
    assert "lighthouses" in {m.lower() for m in marks}  # an inflected form, highlighted too
    hosts = set(results.locator(".search-result-host").all_inner_texts())
    assert hosts == {"127.0.0.1", "localhost"}, hosts
    expect(page.locator(".search-stats")).to_contain_text("5 results")
    axe(page)

    # 2. The mode switch: keyword ranking, in the URL and the request; the same matches.
    # A click, then a waiting check: check() verifies the state at once, before React has committed.
    page.get_by_role("radio", name=re.compile("^Keyword")).click()
    page.wait_for_url(re.compile(r"mode=keyword"))
    expect(page.get_by_role("radio", name=re.compile("^Keyword"))).to_be_checked()
    expect(page.locator(".search-list-stale")).to_have_count(0)
    expect(results).to_have_count(5)
    axe(page)

    # 3. A filter narrows the results: leave out the second site ("localhost").
    page.locator("summary", has_text="Filters").click()
    page.get_by_label("Leave out these sites").fill(f"{crawled['other']}/automation.html")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"domain=-localhost"))
    expect(results).to_have_count(3)
    expect(page.locator(".search-result-host")).to_have_text(["127.0.0.1"] * 3)
    expect(page.locator("summary")).to_contain_text("1 active")
    axe(page)

    # 4. The credibility breakdown on keyboard focus: the six signals, points of their weight.
    fresnel = results.filter(has_text="Fresnel lens")
    badge = fresnel.get_by_role("button", name=re.compile(r"^Credibility \d+"))
    badge.focus()
    tooltip = fresnel.get_by_role("tooltip")
    expect(tooltip).to_be_visible()
    rows = tooltip.locator(".cred-row")
    expect(rows).to_have_count(6)
    expect(rows.filter(has_text="Link authority (PageRank)")).to_contain_text(" of 30")
    # Author, publisher and a published date: all of the metadata signal; plain http: none.
    expect(rows.filter(has_text="Author, publisher")).to_have_text(re.compile(r"given\s*10 of 10$"))
    expect(rows.filter(has_text="Served over HTTPS")).to_have_text(re.compile(r"HTTPS\s*0 of 10$"))
    axe(page)
    screenshot(page, "search")
    page.keyboard.press("Escape")
    expect(tooltip).to_be_hidden()

    # 5. The snapshot dialog: the text as crawled, with its citation details; focus comes back.
    snapshot_button = fresnel.get_by_role("button", name=re.compile("^Snapshot"))
    snapshot_button.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Snapshot: How a Fresnel lens made the lighthouse visible")
    expect(dialog.get_by_role("region", name="Snapshot text")).to_contain_text("concentric prisms in 1822")
    expect(dialog).to_contain_text("By Ada Keeper")
    expect(dialog).to_contain_text("Coastal Review")
    expect(dialog).to_contain_text(f"{crawled['main']}/fresnel.html")
    axe(page)
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_have_count(0)
    expect(snapshot_button).to_be_focused()
