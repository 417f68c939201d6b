"""Crawl throughput (issue 8, FR-SEA-001): pages/min of `fimum crawl` with extraction and indexing
against the generated test website on 127.0.0.1 (goal >= 5,000 pages/min on a 2-core machine).

Variants, each a real crawler process against the same site, in the same run:
- `fetch only`: a bare Scrapy spider with the crawler's settings that fetches pages and follows
  links (lxml), nothing else: the floor of what Scrapy costs here (the same-run baseline);
- `crawl + index (embedded)`: `fimum crawl` into the embedded index (tantivy + SQLite);
- `crawl + index, 1 extraction process`: the same with `crawler.extract_workers=1`;
- `2 workers, Redis frontier (distributed)`: two `fimum crawl` processes sharing one frontier,
  writing the PostgreSQL index (skipped with --no-distributed or without PostgreSQL/Redis).
The site server runs in this process, on the same cores: its CPU time is part of every variant.
Pages/min counts page responses handled over the crawl's own time (process start-up excluded;
it is reported beside as wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import _common as c

sys.path.insert(0, str(c.REPO_ROOT))  # tests.search_site: the generated website

GOAL_PAGES_PER_MIN = 5000.0
FIMUM = str(Path(sys.executable).with_name("fimum"))
POSTGRES_URL = os.environ.get("FIMUM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FIMUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=3000, help="articles on the site (default 3000)")
    parser.add_argument("--quick", action="store_true", help="1,000 articles, one repeat")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each variant, interleaved")
    parser.add_argument(
        "--no-distributed", action="store_true", help="skip the 2-worker Redis/PostgreSQL run"
    )
    parser.add_argument("--fetch-only-worker", metavar="URL", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------- baseline


def fetch_only(url: str) -> None:
    """The baseline spider (runs in its own process): fetch, follow in-site links, nothing else."""
    from scrapy import Request, Spider
    from scrapy.crawler import CrawlerProcess
    from scrapy.linkextractors import LinkExtractor

    from fimum_ai.search.crawler.context import Frontier
    from fimum_ai.search.crawler.runner import scrapy_settings
    from fimum_ai.settings import load_settings

    host = url.split("//", 1)[1].split(":", 1)[0]
    links = LinkExtractor()  # off-site links are dropped by the offsite middleware (allowed_domains)
    counts = {"pages": 0}
    started = time.perf_counter()

    class FetchOnly(Spider):
        name = "fetch-only"
        allowed_domains: ClassVar[list[str]] = [host]

        async def start(self) -> Any:
            yield Request(url)

        def parse(self, response: Any) -> Any:
            counts["pages"] += 1
            if hasattr(response, "text"):
                for link in links.extract_links(response):
                    yield Request(link.url)

    values = scrapy_settings(load_settings(), Frontier("memory"))
    values |= {"ITEM_PIPELINES": {}, "EXTENSIONS": {}, "DOWNLOADER_MIDDLEWARES": {}}
    process = CrawlerProcess(values)
    process.crawl(FetchOnly)
    process.start()
    elapsed = time.perf_counter() - started
    print(json.dumps({"fetched": counts["pages"], "elapsed_s": elapsed, "state": "finished"}))


# ---------------------------------------------------------------------------------- variants


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_crawlers(commands: list[list[str]], env: dict[str, str]) -> dict[str, Any]:
    """Run crawler processes to the end. Besides the rate, the CPU seconds they used (their own,
    from rusage) and the site server's (this process), which other sessions' load does not inflate."""
    started = time.perf_counter()
    children_cpu, server_cpu = _children_cpu_s(), time.process_time()
    procs = [
        subprocess.Popen(cmd, env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd in commands
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"crawler failed ({proc.returncode}): {err[-2000:]}")
        results.append(json.loads(out[out.index("{") :]))
    wall = time.perf_counter() - started
    crawler_cpu = _children_cpu_s() - children_cpu
    server_cpu = time.process_time() - server_cpu
    fetched = sum(int(r["fetched"]) for r in results)
    crawl_s = max(float(r["elapsed_s"]) for r in results)
    return {
        "crawler_cpu_s": round(crawler_cpu, 2),
        "server_cpu_s": round(server_cpu, 2),
        "crawler_cpu_ms_per_page": round(crawler_cpu / max(fetched, 1) * 1000, 2),
        "server_cpu_ms_per_page": round(server_cpu / max(fetched, 1) * 1000, 2),
        "fetched": fetched,
        "indexed": sum(int(r.get("indexed", 0)) for r in results),
        "crawl_s": round(crawl_s, 2),
        "wall_s": round(wall, 2),
        "pages_per_min": round(fetched / crawl_s * 60, 1),
        "per_worker": [int(r["fetched"]) for r in results],
        "load_average_after": c.load_average(),
    }


def variant_env(name: str, work: Path) -> dict[str, str]:
    data = work / f"data-{uuid.uuid4().hex[:8]}"
    env = {"FIMUM_DATA_DIR": str(data), "FIMUM_CRAWLER__MAX_PAGES": "1000000", "FIMUM_CRAWLER__DEPTH": "20"}
    if name == "distributed":
        env |= {
            "FIMUM_MODE": "distributed",
            "FIMUM_DATABASE_URL": POSTGRES_URL,
            "FIMUM_DATABASE_SCHEMA": f"bench_{uuid.uuid4().hex[:12]}",
            "FIMUM_REDIS_URL": REDIS_URL,
            "FIMUM_REDIS_PREFIX": f"fimum-bench-{uuid.uuid4().hex[:8]}:",
            "FIMUM_JWT_SECRET": "bench-secret-for-distributed-mode-0123456789",
            "FIMUM_CRAWLER__CRAWL_NAME": "bench",
        }
    return env


def prepare_distributed(env: dict[str, str]) -> None:
    """Create the schema once (two processes would race the migration)."""
    os.environ.update(env)
    try:
        from fimum_ai.search.index import open_index
        from fimum_ai.settings import load_settings

        open_index(load_settings()).close()
    finally:
        for key in env:
            os.environ.pop(key, None)


def drop_schema(schema: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def drop_redis_prefix(prefix: str) -> None:
    """The crawl's Redis state (near-duplicate fingerprints, remembered links) outlives a crawl on
    purpose; a benchmark run's goes with it."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        for keys in _batched(client.scan_iter(match=f"{prefix}*", count=1000), 1000):
            client.delete(*keys)
    finally:
        client.close()


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    from itertools import islice  # itertools.batched needs Python 3.12

    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def distributed_available() -> bool:
    try:
        import redis
        from sqlalchemy import create_engine, text

        redis.Redis.from_url(REDIS_URL).ping()
        engine = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception:
        return False
    return True


def stage_costs(site: Any, work: Path, pages: int = 300) -> dict[str, float]:
    """CPU milliseconds per page of each stage in this process (process time, so other sessions'
    load inflates it far less than wall time): extraction of the site's HTML, and the index write."""
    from datetime import UTC, datetime

    from fimum_ai.search.crawler.extract import extract_document
    from fimum_ai.search.documents import Page
    from fimum_ai.search.index import open_index
    from fimum_ai.settings import load_settings

    paths = site.articles[:pages]
    bodies = [(p, site.resources[p].body) for p in paths]
    extract_document("html", bodies[0][1], "http://bench.example" + bodies[0][0])  # warm: lazy imports
    started = time.process_time()
    extracted = [extract_document("html", body, "http://bench.example" + path) for path, body in bodies]
    extract_ms = (time.process_time() - started) / len(bodies) * 1000
    now = datetime.now(UTC)
    docs = [
        Page(
            url="http://bench.example" + path,
            title=e.title,
            text=e.text,
            lang=e.lang,
            published=e.published,
            fetched_at=now,
            filetype="html",
            links=tuple(e.links),
            fingerprint=e.fingerprint,
        )
        for (path, _), e in zip(bodies, extracted, strict=True)
    ]
    os.environ["FIMUM_DATA_DIR"] = str(work / "stages")
    try:
        index = open_index(load_settings())
        started = time.process_time()
        for i in range(0, len(docs), 200):
            index.add(docs[i : i + 200])
        index_ms = (time.process_time() - started) / len(docs) * 1000
        index.close()
    finally:
        os.environ.pop("FIMUM_DATA_DIR", None)
    return {"extract_cpu_ms_per_page": round(extract_ms, 2), "index_cpu_ms_per_page": round(index_ms, 2)}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.fetch_only_worker:
        fetch_only(args.fetch_only_worker)
        return 0
    from tests.search_site import SiteServer, make_site

    articles = 1000 if args.quick else args.articles
    repeats = 1 if args.quick else args.repeats
    variants = ["fetch only", "crawl + index (embedded)", "crawl + index, 1 extraction process"]
    if not args.no_distributed and distributed_available():
        variants.append("2 workers, Redis frontier (distributed)")
    c.log(f"building a site of {articles} articles")
    site = make_site(articles, per_section=100)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="crawl-bench-") as tmp, SiteServer(site) as server:
        work = Path(tmp)
        stages = stage_costs(site, work)
        extract_ms, index_ms = stages["extract_cpu_ms_per_page"], stages["index_cpu_ms_per_page"]
        c.log(f"CPU per page: extraction {extract_ms} ms, index write {index_ms} ms")
        seed = server.url + "/"
        for repeat in range(repeats):
            for variant in variants:
                load_before = c.load_average()
                c.log(f"run {repeat + 1}/{repeats}: {variant} (load {load_before[0]:.1f})")
                if variant == "fetch only":
                    env = variant_env("embedded", work)
                    result = run_crawlers([[sys.executable, __file__, "--fetch-only-worker", seed]], env)
                elif variant.startswith("crawl"):
                    env = variant_env("embedded", work)
                    if "extraction process" in variant:
                        env["FIMUM_CRAWLER__EXTRACT_WORKERS"] = "1"
                    result = run_crawlers([[FIMUM, "crawl", seed, "--json"]], env)
                else:
                    env = variant_env("distributed", work)
                    prepare_distributed(env)
                    try:
                        cmd = [FIMUM, "crawl", seed, "--json"]
                        result = run_crawlers([cmd, cmd], env)
                    finally:
                        drop_schema(env["FIMUM_DATABASE_SCHEMA"])
                        drop_redis_prefix(env["FIMUM_REDIS_PREFIX"])
                result["load_average_before"] = load_before
                runs[variant].append(result)
                rate = result["pages_per_min"]
                c.log(f"  {result['fetched']} pages in {result['crawl_s']} s: {rate:,.0f}/min")
    rows = []
    summary: dict[str, Any] = {}
    base = c.summarize([r["pages_per_min"] for r in runs["fetch only"]])
    for variant, results in runs.items():
        rate = c.summarize([r["pages_per_min"] for r in results])
        ratio = c.paired_ratios(
            [r["pages_per_min"] for r in results], [r["pages_per_min"] for r in runs["fetch only"]]
        )
        cpu_ms = c.summarize([r["crawler_cpu_ms_per_page"] for r in results]).median
        summary[variant] = {
            "pages_per_min": rate.as_dict(),
            "over_fetch_only": ratio.as_dict(),
            # What the crawler's own CPU time allows: one core per crawler process, no one else on it.
            "cpu_bound_pages_per_min_per_process": round(60_000 / cpu_ms, 1) if cpu_ms else None,
            "runs": results,
        }
        goal = "info" if variant == "fetch only" else f">= {GOAL_PAGES_PER_MIN:,.0f}"
        verdict = (
            "–" if variant == "fetch only" else ("met" if rate.median >= GOAL_PAGES_PER_MIN else "missed")
        )
        rows.append(
            [
                variant,
                f"{rate.median:,.0f} [{rate.min:,.0f}–{rate.max:,.0f}]",
                f"{ratio.median:.2f}",
                f"{results[-1]['fetched']:,}",
                f"{c.summarize([r['crawler_cpu_ms_per_page'] for r in results]).median:.2f}",
                f"{c.summarize([r['server_cpu_ms_per_page'] for r in results]).median:.2f}",
                f"{results[-1]['wall_s']:.1f}",
                goal,
                verdict,
            ]
        )
    c.print_table(
        f"Crawl throughput, {articles:,}-article site on 127.0.0.1 "
        f"(pages/min, median [min–max] of {repeats})",
        [
            "variant",
            "pages/min",
            "÷ fetch only",
            "pages",
            "crawler CPU ms/page",
            "server CPU ms/page",
            "wall s",
            "goal",
            "verdict",
        ],
        rows,
    )
    payload = {
        "machine": c.machine_info(),
        "articles": articles,
        "repeats": repeats,
        "goal_pages_per_min": GOAL_PAGES_PER_MIN,
        "fetch_only_pages_per_min": base.as_dict(),
        "stage_cpu_ms_per_page": stages,
        "variants": summary,
        "goals": [
            {"measure": f"crawl {r[0]} (pages/min)", "value": r[1], "goal": r[7], "verdict": r[8]}
            for r in rows
            if r[0] != "fetch only"
        ],
    }
    c.log(f"wrote {c.write_json('crawl_bench', payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
