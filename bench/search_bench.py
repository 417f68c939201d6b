"""Search benchmark (issue 8): latency p50/p95 per mode at 100k documents on the embedded backend,
tantivy vs Whoosh on the same documents and queries in the same run, embedding throughput and
embedding lag, and the query encoder's cost.

Documents: synthetic text (Zipf-distributed words of a generated vocabulary, 120-360 words each,
several sites, languages, file types and dates), identical for tantivy and Whoosh. Vectors for
the 100k documents are random unit vectors written as if the embedder had made them (embedding
100k texts with all-MiniLM-L6-v2 on 2 cores would take about an hour; HNSW cost depends on the
dimension and size, not the content): the real model is timed on a sample for throughput and lag,
and per query for the encoding cost. Hybrid/semantic latency is given without the query encoding
(query vectors precomputed, as for repeated queries in the encoder's cache) and the encoding cost
beside it.

    python bench/search_bench.py [--docs 100000] [--queries 300] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common as c
import numpy as np

GOAL_HYBRID_P95_MS = 10.0
LANGS = ("en", "de", "fr", "es", "ru", "it")
FILETYPES = ("html", "html", "html", "pdf", "docx", "txt")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--embed-sample", type=int, default=256, help="documents embedded by the real model")
    parser.add_argument("--quick", action="store_true", help="20k documents, 100 queries, 64 embedded")
    parser.add_argument("--no-whoosh", action="store_true")
    return parser.parse_args(argv)


def vocabulary(size: int, rng: random.Random) -> list[str]:
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    words: set[str] = set()
    while len(words) < size:
        n = rng.randint(2, 4)
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(n)))
    return sorted(words)


def make_pages(n: int, seed: int = 7) -> tuple[list[Any], list[str]]:
    from fimum_ai.search.documents import Page

    rng = random.Random(seed)
    words = vocabulary(30_000, rng)
    cum = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(words))))  # Zipf
    now = datetime.now(UTC)
    pages = []
    for i in range(n):
        body = rng.choices(words, cum_weights=cum, k=rng.randint(120, 360))
        site = f"site{i % 500}.example"
        pages.append(
            Page(
                url=f"https://{site}/doc/{i}",
                title=" ".join(rng.choices(words, cum_weights=cum, k=6)).capitalize(),
                text=" ".join(body),
                lang=LANGS[i % len(LANGS)],
                published=now - timedelta(days=rng.randint(0, 3000)),
                fetched_at=now,
                filetype=FILETYPES[i % len(FILETYPES)],
                links=tuple(
                    f"https://site{rng.randint(0, 499)}.example/doc/{rng.randint(0, n - 1)}" for _ in range(3)
                ),
                fingerprint=i + 1,
            )
        )
    return pages, words


def make_queries(words: list[str], count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    # Words of middling frequency (ranks 50-3000), one to three per query: selective but not empty.
    band = words[50:3000]
    return [" ".join(rng.sample(band, rng.choice((1, 2, 2, 3)))) for _ in range(count)]


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {
        "p50_ms": round(pick(0.50), 3),
        "p95_ms": round(pick(0.95), 3),
        "mean_ms": round(1000 * sum(ordered) / len(ordered), 3),
    }


def timed_queries(run: Any, queries: list[str]) -> list[float]:
    for query in queries[:10]:  # warm-up
        run(query)
    samples = []
    for query in queries:
        began = time.perf_counter()
        run(query)
        samples.append(time.perf_counter() - began)
    return samples


def build_whoosh(pages: list[Any], path: Path) -> tuple[Any, float]:
    from whoosh import index as whoosh_index
    from whoosh.fields import ID, TEXT, Schema

    path.mkdir(parents=True, exist_ok=True)
    schema = Schema(url=ID(stored=True, unique=True), title=TEXT, body=TEXT)
    index = whoosh_index.create_in(str(path), schema)
    began = time.perf_counter()
    writer = index.writer(limitmb=512)
    for page in pages:
        writer.add_document(url=page.url, title=page.title, body=page.text)
    writer.commit()
    return index, time.perf_counter() - began


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.docs, args.queries, args.embed_sample = 20_000, 100, 64
    work = Path(tempfile.mkdtemp(prefix="fimum-search-bench-"))
    os.environ["FIMUM_DATA_DIR"] = str(work / "data")
    os.environ["FIMUM_SEARCH__REFRESH_S"] = "60"  # no reloads inside the timed loops
    from sqlalchemy import bindparam, update

    from fimum_ai.search import tables
    from fimum_ai.search.embedder import Embedder
    from fimum_ai.search.encoder import QueryEncoder
    from fimum_ai.search.index import open_index
    from fimum_ai.search.query import Filters
    from fimum_ai.search.service import SearchService
    from fimum_ai.search.store import url_key
    from fimum_ai.settings import load_settings

    load_before = c.load_average()
    c.log(f"generating {args.docs:,} documents")
    pages, words = make_pages(args.docs)
    queries = make_queries(words, args.queries)
    settings = load_settings()
    index = open_index(settings)

    c.log("indexing (tantivy + SQLite)")
    began = time.perf_counter()
    for start in range(0, len(pages), 2000):
        index.add(pages[start : start + 2000])
    index_s = time.perf_counter() - began

    c.log("writing random unit vectors for every document")
    rng = np.random.default_rng(3)
    began = time.perf_counter()
    with index.store.engine.begin() as connection:
        for start in range(0, len(pages), 5000):
            chunk = pages[start : start + 5000]
            vectors = rng.standard_normal((len(chunk), 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            connection.execute(
                update(tables.pages)
                .where(tables.pages.c.key == bindparam("k"))
                .values(embedding=bindparam("e"), embedded_at=datetime.now(UTC)),
                [{"k": url_key(p.url), "e": v.tobytes()} for p, v in zip(chunk, vectors, strict=True)],
            )
    vectors_write_s = time.perf_counter() - began
    began = time.perf_counter()
    index.vectors.refresh(force=True)  # type: ignore[attr-defined]
    hnsw_build_s = time.perf_counter() - began
    c.log(f"authority over {index.refresh_authority():,} pages")
    if hasattr(index.fulltext, "index"):  # type: ignore[attr-defined]
        index.fulltext.index.reload()  # type: ignore[attr-defined]

    # Query vectors precomputed (as cached in the query encoder), random like the documents'.
    query_vectors = {
        q: v / np.linalg.norm(v)
        for q, v in zip(queries, rng.standard_normal((len(queries), 384)).astype(np.float32), strict=True)
    }

    class CachedEncoder(QueryEncoder):
        def encode(self, query: str) -> Any:
            return query_vectors[query]

    service = SearchService(settings, index, CachedEncoder())
    results: dict[str, Any] = {}
    c.log("timing tantivy raw keyword queries")
    results["tantivy_raw"] = percentiles(timed_queries(lambda q: index.keyword(q, Filters(), 10), queries))
    for mode in ("keyword", "semantic", "hybrid"):
        c.log(f"timing service {mode}")
        results[f"service_{mode}"] = percentiles(
            timed_queries(lambda q, m=mode: service.search(q, mode=m), queries)
        )
    filters = Filters(
        langs=("en", "de"), filetypes=("html",), date_from=datetime.now(UTC) - timedelta(days=1500)
    )
    results["service_hybrid_filtered"] = percentiles(
        timed_queries(lambda q: service.search(q, mode="hybrid", filters=filters), queries)
    )
    hits = [index.keyword(q, Filters(), 10).total for q in queries]

    whoosh: dict[str, Any] = {}
    if not args.no_whoosh:
        c.log("building the Whoosh index on the same documents")
        from whoosh.qparser import AndGroup, MultifieldParser

        whoosh_index, whoosh_build_s = build_whoosh(pages, work / "whoosh")
        parser = MultifieldParser(["title", "body"], whoosh_index.schema, group=AndGroup)
        with whoosh_index.searcher() as searcher:
            whoosh_samples = timed_queries(lambda q: searcher.search(parser.parse(q), limit=10), queries)
        whoosh = {"build_s": round(whoosh_build_s, 2), **percentiles(whoosh_samples)}

    c.log(f"embedding throughput: {args.embed_sample} documents through the real model")
    sample = [replace_text(page, i) for i, page in enumerate(pages[: args.embed_sample])]
    index.add(sample)  # changed text: back in the queue
    embedder = Embedder(index.store, batch=32, max_chars=settings.search.embed_max_chars)
    began = time.perf_counter()
    embedder.run_once()  # includes the model load
    first_batch_s = time.perf_counter() - began
    began = time.perf_counter()
    done = embedder.run_until_empty()
    embed_s = time.perf_counter() - began
    docs_per_s = done / embed_s if embed_s > 0 and done else float("nan")

    c.log("embedding lag: pages arriving at crawl speed (5,000/min) while the embedder runs")
    lag = measure_lag(index, embedder, pages, min(args.embed_sample, 200))

    c.log("query encoder: child process start and uncached query cost")
    encoder = QueryEncoder()
    began = time.perf_counter()
    encoder.start()
    encoder_start_s = time.perf_counter() - began
    encode_samples = []
    for q in queries[:50]:
        began = time.perf_counter()
        encoder.encode(q + " fresh")
        encode_samples.append(time.perf_counter() - began)
    encoder.close()
    encode = percentiles(encode_samples)

    load_after = c.load_average()
    index.close()
    shutil.rmtree(work, ignore_errors=True)

    rows = [
        [
            "tantivy BM25 (raw, top 10)",
            results["tantivy_raw"]["p50_ms"],
            results["tantivy_raw"]["p95_ms"],
            "",
            "",
        ],
    ]
    if whoosh:
        rows.append(["Whoosh BM25F (raw, top 10)", whoosh["p50_ms"], whoosh["p95_ms"], "", ""])
    for mode in ("keyword", "semantic", "hybrid", "hybrid_filtered"):
        r = results[f"service_{mode}"]
        goal = f"p95 ≤ {GOAL_HYBRID_P95_MS:.0f} ms" if mode == "hybrid" else ""
        verdict = ("met" if r["p95_ms"] <= GOAL_HYBRID_P95_MS else "missed") if goal else ""
        rows.append(
            [f"service {mode} (page of 10, snippets, credibility)", r["p50_ms"], r["p95_ms"], goal, verdict]
        )
    rows.append(
        ["query encoding, uncached (child process round trip)", encode["p50_ms"], encode["p95_ms"], "", ""]
    )
    c.print_table(
        f"Search latency at {args.docs:,} documents, {len(queries)} queries (ms)",
        ["measure", "p50", "p95", "goal", "verdict"],
        rows,
    )
    ratio = whoosh["p50_ms"] / results["tantivy_raw"]["p50_ms"] if whoosh else None
    c.print_table(
        "Indexing and embedding",
        ["measure", "value"],
        [
            ["tantivy + SQLite indexing", f"{index_s:.1f} s ({args.docs / index_s:,.0f} docs/s)"],
            ["Whoosh indexing (same docs)", f"{whoosh['build_s']} s" if whoosh else "-"],
            ["Whoosh p50 / tantivy p50", f"{ratio:.1f}x" if ratio else "-"],
            ["HNSW build from stored vectors", f"{hnsw_build_s:.1f} s"],
            [
                "embedding throughput (all-MiniLM-L6-v2)",
                f"{docs_per_s:.1f} docs/s (first batch incl. load {first_batch_s:.1f} s)",
            ],
            [
                "embedding lag at 5,000 pages/min",
                f"p50 {lag['p50_lag_s']} s, max {lag['max_lag_s']} s, queue peak {lag['peak_queue']}",
            ],
            ["query encoder start (model load)", f"{encoder_start_s:.1f} s"],
            ["matches per query (median)", f"{sorted(hits)[len(hits) // 2]}"],
        ],
    )
    payload = {
        "machine": c.machine_info(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "docs": args.docs,
        "queries": len(queries),
        "latency": results,
        "whoosh": whoosh,
        "whoosh_over_tantivy_p50": ratio,
        "index_s": index_s,
        "vectors_write_s": vectors_write_s,
        "hnsw_build_s": hnsw_build_s,
        "embedding": {
            "docs": done,
            "seconds": embed_s,
            "docs_per_s": docs_per_s,
            "first_batch_s": first_batch_s,
        },
        "lag": lag,
        "query_encoder": {"start_s": encoder_start_s, **encode},
        "goals": [
            {
                "measure": f"search hybrid p95 at {args.docs:,} docs (ms, embedded)",
                "value": f"{results['service_hybrid']['p95_ms']:.2f}",
                "goal": f"≤ {GOAL_HYBRID_P95_MS:.0f}",
                "verdict": "met" if results["service_hybrid"]["p95_ms"] <= GOAL_HYBRID_P95_MS else "missed",
            },
            {
                "measure": "tantivy vs Whoosh p50 (same docs, queries)",
                "value": f"{ratio:.1f}x faster" if ratio else "not run",
                "goal": "info",
                "verdict": "–",
            },
        ],
    }
    c.log(f"wrote {c.write_json('search_bench', payload)}")
    return 0


def replace_text(page: Any, i: int) -> Any:
    from dataclasses import replace

    return replace(page, text=page.text + f" revision {i}", fingerprint=-(i + 1))


def measure_lag(index: Any, embedder: Any, pages: list[Any], count: int) -> dict[str, Any]:
    """Add `count` changed pages at 5,000 pages/min in one thread while the embedder drains the
    queue in another; a page's lag is the time from its add to its stored embedding."""
    import threading

    from sqlalchemy import select

    from fimum_ai.search import tables

    added: dict[str, float] = {}
    stop = threading.Event()
    peak = 0

    def crawl() -> None:
        for i, page in enumerate(pages[1000 : 1000 + count]):
            index.add([replace_text(page, 10_000 + i)])
            added[page.url] = time.time()
            time.sleep(60 / 5000)

    crawler = threading.Thread(target=crawl)
    worker = threading.Thread(target=lambda: embedder.run_forever(stop, idle_s=0.05))
    crawler.start()
    worker.start()
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        pending = index.stats().pending_embeddings
        peak = max(peak, pending)
        if pending == 0 and not crawler.is_alive():
            break
        time.sleep(0.2)
    stop.set()
    crawler.join()
    worker.join()
    with index.store.read_engine.connect() as connection:
        rows = connection.execute(
            select(tables.pages.c.url, tables.pages.c.embedded_at).where(tables.pages.c.url.in_(list(added)))
        ).all()
    lags = sorted(row.embedded_at.timestamp() - added[row.url] for row in rows if row.embedded_at is not None)
    if not lags:
        return {"pages": count, "embedded": 0, "p50_lag_s": None, "max_lag_s": None, "peak_queue": peak}
    return {
        "pages": count,
        "embedded": len(lags),
        "p50_lag_s": round(lags[len(lags) // 2], 2),
        "max_lag_s": round(lags[-1], 2),
        "peak_queue": peak,
    }


if __name__ == "__main__":
    sys.exit(main())
