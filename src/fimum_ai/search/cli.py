"""`fimum crawl`: crawl sites into the search index that the server reads, with live progress."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich import box
from rich.live import Live
from rich.table import Table

from fimum_ai._cli_common import configure_logs, err, fail, out, settings_or_exit
from fimum_ai.search.crawler.context import CrawlOptions, CrawlProgress
from fimum_ai.search.crawler.urls import host_of, normalise_url


class LiveReporter:
    """A Rich table on stderr, redrawn twice a second: pages/min, queue, errors..."""

    def __init__(self, live: Live | None) -> None:
        self.live = live
        self.last = CrawlProgress()

    def report(self, progress: CrawlProgress) -> None:
        self.last = progress
        if self.live is not None:
            self.live.update(render(progress))

    def stop_requested(self) -> bool:
        return False


def render(p: CrawlProgress) -> Table:
    title = f"crawl {p.state}" + (f" ({p.reason})" if p.reason and p.reason != p.state else "")
    table = Table(title=title, box=box.SIMPLE_HEAD)  # fits an 80-column terminal
    for column in (
        "pages/min",
        "fetched",
        "indexed",
        "unchanged",
        "dupes",
        "skipped",
        "errors",
        "queue",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        f"{p.pages_per_min:,.0f}",
        f"{p.fetched:,}",
        f"{p.indexed:,}",
        f"{p.unchanged:,}",
        f"{p.duplicates:,}",
        f"{p.skipped:,}",
        f"[red]{p.errors:,}[/]" if p.errors else "0",
        f"{p.queue:,}",
    )
    table.caption = f"{p.elapsed_s:.0f} s, {p.average_pages_per_min:,.0f} pages/min on average"
    return table


def crawl(
    seeds: Annotated[
        list[str] | None,
        typer.Argument(help="Start URLs. None: join the shared (Redis) crawl that another worker started."),
    ] = None,
    allow_domain: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-domain", help="Host names to stay within (sub-domains too); default: the seeds'."
        ),
    ] = None,
    max_pages: Annotated[
        int | None, typer.Option("--max-pages", min=1, help="Stop after this many pages (default: config).")
    ] = None,
    depth: Annotated[
        int | None, typer.Option("--depth", min=0, max=100, help="Link hops from a seed (default: config).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="No live display; print the result as JSON.")
    ] = False,
) -> None:
    """Crawl web sites into the search index (robots.txt, sitemaps, near-duplicates, recrawl)."""
    from fimum_ai.search.crawler.runner import run_crawl

    settings = settings_or_exit()
    configure_logs(settings)
    normal = []
    for seed in seeds or []:
        url = normalise_url(seed)
        if url is None:
            fail(f"{seed!r} is not an http(s) URL", code=2)
        normal.append(url)
    domains = []
    for domain in allow_domain or []:
        host = host_of(domain) if "://" in domain else domain.split(":", 1)[0].strip().lower().lstrip(".")
        if not host:
            fail(f"--allow-domain {domain!r} is not a host name", code=2)
        domains.append(host)
    options = CrawlOptions(
        seeds=tuple(normal),
        allow_domains=tuple(domains),
        max_pages=max_pages or settings.crawler.max_pages,
        depth=settings.crawler.depth if depth is None else depth,
    )
    started = time.monotonic()
    try:
        if as_json:
            result = run_crawl(settings, options, LiveReporter(None))
        else:
            with Live(render(CrawlProgress()), console=err, refresh_per_second=4) as live:
                result = run_crawl(settings, options, LiveReporter(live))
    except ValueError as exc:
        fail(str(exc), code=2)
    if as_json:
        out.print_json(json.dumps(result.as_dict() | {"wall_s": round(time.monotonic() - started, 2)}))
    else:
        out.print(
            f"{result.state}: {result.indexed:,} pages indexed, {result.unchanged:,} unchanged, "
            f"{result.removed:,} removed (gone), "
            f"{result.duplicates:,} duplicates, {result.errors:,} errors "
            f"({result.average_pages_per_min:,.0f} pages/min)"
        )
    if result.state == "failed":
        raise typer.Exit(1)
