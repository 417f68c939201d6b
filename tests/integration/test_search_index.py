"""The SearchIndex contract on both backends (embedded tantivy, distributed PostgreSQL): the same
cases through the `backend` fixture. Keyword search needs no model; the semantic cases load the
bundled all-MiniLM-L6-v2 once per session."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fimum_ai.search.documents import Page
from fimum_ai.search.embedder import Embedder
from fimum_ai.search.encoder import QueryEncoder, encode, load_model
from fimum_ai.search.index import SearchIndex, open_index
from fimum_ai.search.query import Filters
from fimum_ai.search.service import SearchService
from fimum_ai.search.store import url_key
from fimum_ai.settings import load_settings
from tests.integration.search_corpus import LIGHTHOUSE, NOW, lighthouse_pages, topic_pages

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def index(backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SearchIndex]:
    monkeypatch.setenv("FIMUM_SEARCH__REFRESH_S", "0.05")
    opened = open_index(load_settings())
    assert opened.backend == ("tantivy" if backend == "embedded" else "postgresql")
    yield opened
    opened.close()


def keys(index: SearchIndex, query: str, filters: Filters | None = None, limit: int = 20) -> list[int]:
    return [key for key, _ in index.keyword(query, filters or Filters(), limit).hits]


def key_of(url_part: str, pages: list[Page]) -> int:
    return url_key(next(page.url for page in pages if url_part in page.url))


def test_a_query_in_each_language_finds_its_page(index: SearchIndex) -> None:
    pages = lighthouse_pages()
    index.add(pages)
    missed = []
    for (lang, _, word), page in zip(LIGHTHOUSE, pages, strict=True):
        found = keys(index, word)
        if not found or found[0] != url_key(page.url):
            missed.append((lang, word, len(found)))
        elif url_key(page.url) not in keys(index, word, Filters(langs=(lang,))):
            missed.append((lang, word, "lang filter"))
    assert not missed, f"{len(missed)} of {len(LIGHTHOUSE)} languages missed: {missed}"
    # Unspaced scripts match inside a run of characters (bigrams), not only whole runs.
    assert keys(index, "看守")[:1] == [key_of("/zh/", pages)]
    assert keys(index, "ดูแล")[:1] == [key_of("/th/", pages)]
    assert keys(index, "守っ")[:1] == [key_of("/ja/", pages)]


def test_stemming_finds_other_forms_of_a_word(index: SearchIndex) -> None:
    pages = topic_pages()
    index.add(pages)
    # "posting" and "saturate" are not in any text: only their stems are ("postings", "saturating").
    assert keys(index, "posting") == [key_of("indexing", pages)]
    assert keys(index, "saturate") == [key_of("bm25", pages)]
    assert set(keys(index, "run")) == {key_of("indexing", pages), key_of("bm25", pages)}
    assert keys(index, "teiges") == [key_of("kochen", pages)]  # German: Teig
    # Every word must match; query syntax is taken as plain words.
    assert keys(index, "flour crust") and set(keys(index, "flour crust")) == {
        key_of("bread", pages),
        key_of("baguette", pages),
    }
    assert keys(index, 'flour AND "crust" OR title:(nothing') == []
    assert keys(index, "  ...  ") == []


def test_filters(index: SearchIndex) -> None:
    pages = topic_pages()
    index.add(pages)
    bread, baguette = key_of("bread", pages), key_of("baguette", pages)
    indexing, bm25 = key_of("indexing", pages), key_of("bm25", pages)
    assert set(keys(index, "flour")) == {bread, baguette}
    assert keys(index, "flour", Filters(date_from=datetime(2024, 1, 1, tzinfo=UTC))) == [baguette]
    assert keys(index, "flour", Filters(date_to=datetime(2024, 1, 1, tzinfo=UTC))) == [bread]
    assert keys(index, "documents", Filters(date_to=datetime(2024, 12, 31, tzinfo=UTC))) == [bm25]
    assert keys(index, "documents", Filters(filetypes=("pdf",))) == [bm25]
    assert keys(index, "flour", Filters(filetypes=("txt", "docx"))) and set(
        keys(index, "flour", Filters(filetypes=("txt", "docx")))
    ) == {bread, baguette}
    assert keys(index, "flour", Filters(filetypes=("html",))) == []
    assert set(keys(index, "documents", Filters(domains=("python.example",)))) == {indexing}
    # A domain covers its subdomains; exclusion wins.
    assert keys(index, "documents", Filters(domains=("search.example",))) == [bm25]
    assert keys(index, "documents", Filters(exclude_domains=("search.example",))) == [indexing]
    assert keys(index, "backen", Filters(langs=("de",))) == [key_of("kochen", pages)]
    assert keys(index, "backen", Filters(langs=("en",))) == []
    # The semantic path filters candidates with the same rules.
    rows = index.rows([bm25])
    row = rows[bm25]
    assert Filters(domains=("search.example",)).accepts(
        site=row["site"], lang=row["lang"], filetype=row["filetype"], date=row["published"]
    )
    assert not Filters(exclude_domains=("sub.search.example",)).accepts(
        site=row["site"], lang=row["lang"], filetype=row["filetype"], date=row["published"]
    )


def test_pagination_and_total(index: SearchIndex) -> None:
    pages = [
        Page(
            url=f"https://many.example/{i}",
            title=f"Page {i}",
            text="common words " * (i + 1),
            lang="en",
            published=None,
            fetched_at=NOW,
            filetype="html",
        )
        for i in range(25)
    ]
    index.add(pages)
    first = index.keyword("common", Filters(), 10)
    second = index.keyword("common", Filters(), 10, offset=10)
    third = index.keyword("common", Filters(), 10, offset=20)
    assert first.total == second.total == 25
    seen = [k for k, _ in first.hits + second.hits + third.hits]
    assert len(seen) == len(set(seen)) == 25


def test_upsert_keeps_old_snapshots_and_state(index: SearchIndex) -> None:
    page = Page(
        url="https://news.example/story",
        title="Harbour closed",
        text="The harbour closed because of the storm.",
        lang="en",
        published=datetime(2025, 1, 1, tzinfo=UTC),
        fetched_at=NOW,
        filetype="html",
        etag='"v1"',
        last_modified="Wed, 01 Jan 2025 00:00:00 GMT",
        fingerprint=1234,
    )
    index.add([page])
    key = url_key(page.url)
    state = index.state(page.url)
    assert state is not None and state.etag == '"v1"' and state.fingerprint == 1234
    assert index.state("https://news.example/never-crawled") is None
    first_snapshot = index.rows([key])[key]["snapshot_id"]

    index.add([replace(page, fetched_at=datetime.now(UTC))])  # unchanged content: same snapshot
    assert index.rows([key])[key]["snapshot_id"] == first_snapshot

    changed = replace(page, text="The harbour reopened after the storm.", fingerprint=5678, etag='"v2"')
    index.add([changed])
    second_snapshot = index.rows([key])[key]["snapshot_id"]
    assert second_snapshot != first_snapshot
    old = index.snapshot(first_snapshot)
    assert old is not None and old["text"] == page.text  # the citation still shows what was read
    new = index.snapshot(second_snapshot)
    assert new is not None and new["text"] == changed.text
    assert keys(index, "reopened") == [key]
    assert keys(index, "because") == []  # only the old text had it
    state = index.state(page.url)
    assert state is not None and state.etag == '"v2"'
    assert index.stats().documents == 1
    assert index.snapshot("no-such-snapshot") is None


def test_a_gone_page_leaves_the_index_but_its_snapshot_stays(index: SearchIndex) -> None:
    pages = lighthouse_pages()
    index.add(pages)
    gone, kept = pages[0], pages[1]
    gone_key = url_key(gone.url)
    snapshot_id = index.rows([gone_key])[gone_key]["snapshot_id"]
    gone_word = gone.text.split()[-1].strip(".")
    assert gone_key in keys(index, gone_word)

    assert index.remove([gone.url, "https://never-crawled.example/"]) == 1
    time.sleep(0.1)  # searchers reload within search.refresh_s (0.05 s here)
    assert gone_key not in keys(index, gone_word)
    assert index.state(gone.url) is None and index.rows([gone_key]) == {}
    assert index.stats().documents == len(pages) - 1
    snapshot = index.snapshot(snapshot_id)  # a citation made before still shows what was read
    assert snapshot is not None and snapshot["text"] == gone.text
    assert index.state(kept.url) is not None
    assert index.remove([gone.url]) == 0  # already gone: nothing to do

    index.add([gone])  # back again (the site restored it): searchable again
    time.sleep(0.1)
    assert gone_key in keys(index, gone_word)


@pytest.mark.slow  # starts a second Python process that imports the index (~5 s on 2 shared cores)
def test_another_process_writes_and_this_one_sees_it(index: SearchIndex) -> None:
    """`fimum crawl` in another process writes to the index the running server reads (and two
    writers take the index lock in turn)."""
    script = (
        "import sys; from datetime import UTC, datetime\n"
        "from fimum_ai.search.documents import Page\n"
        "from fimum_ai.search.index import open_index\n"
        "from fimum_ai.settings import load_settings\n"
        "index = open_index(load_settings())\n"
        "for i in range(5):\n"
        "    index.add([Page(url=f'https://crawler.example/{i}', title='From the crawler',\n"
        "        text=f'zeppelin number {i}', lang='en', published=None,\n"
        "        fetched_at=datetime.now(UTC), filetype='html')])\n"
        "index.close()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", script], env=env)
    index.add(topic_pages())  # meanwhile, this process writes too
    assert child.wait(timeout=60) == 0
    deadline = time.monotonic() + 5
    while len(keys(index, "zeppelin")) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(keys(index, "zeppelin")) == 5
    assert index.stats().documents == 5 + len(topic_pages())


def test_link_authority_follows_the_crawl_graph(index: SearchIndex) -> None:
    pages = topic_pages()
    index.add(pages)
    assert index.refresh_authority() == len(pages)
    rows = index.rows([url_key(page.url) for page in pages])
    authority = {row["url"]: row["authority"] for row in rows.values()}
    linked_by_three = authority["https://docs.python.example/tutorial/indexing"]
    linked_by_one = authority["https://blog.sub.search.example/bm25"]
    linked_by_none = authority["http://recipes.example/bread"]
    assert linked_by_three > linked_by_one > linked_by_none
    assert linked_by_three == 1.0 and linked_by_none == 0.0


# --- semantic and hybrid ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def minilm() -> Any:
    return load_model()


class InProcessEncoder(QueryEncoder):
    """The same model and `encode` as the query encoder's child process, loaded in the test process
    once per session (the child process itself is covered in test_search_api.py)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def encode(self, query: str) -> np.ndarray[Any, Any]:
        return encode(self.model, [query])[0]

    def close(self) -> None:
        pass


@pytest.mark.slow  # loads the embedding model (~5 s) once for the session
def test_semantic_and_hybrid(index: SearchIndex, minilm: Any) -> None:
    bread = next(page for page in topic_pages() if "bread" in page.url)
    mirrors = [replace(bread, url=f"https://mirror-{name}.example/bread") for name in ("a", "b")]
    pages = topic_pages() + lighthouse_pages()[:3] + mirrors
    index.add(pages)
    assert index.stats().pending_embeddings == len(pages)
    embedded = Embedder(index.store, batch=8, model=minilm).run_until_empty()
    assert embedded == len(pages)
    assert index.stats().pending_embeddings == 0
    settings = load_settings(search={"domain_reputation": {"recipes.example": 0.95, "kochen.example": 0.05}})
    service = SearchService(settings, index, InProcessEncoder(minilm))

    # Credibility signals as the service computes them from the stored pages.
    by_url = {r["url"]: r for r in service.search("bread", mode="keyword")["results"]}
    breakdown = {url: r["credibility"]["breakdown"] for url, r in by_url.items()}
    assert breakdown["http://recipes.example/bread"]["https"]["value"] == 0.0
    assert breakdown["https://mirror-a.example/bread"]["https"]["value"] == 1.0
    # Two other sites carry the same text: agreement 2/3; the German page stands alone.
    assert breakdown["http://recipes.example/bread"]["agreement"]["value"] == pytest.approx(2 / 3, abs=0.01)
    backen = service.search("brot", mode="keyword")["results"][0]["credibility"]["breakdown"]
    assert backen["agreement"]["value"] == 0.0
    assert breakdown["http://recipes.example/bread"]["reputation"]["value"] == 0.95
    assert breakdown["https://mirror-a.example/bread"]["reputation"]["value"] == 0.5
    assert backen["reputation"]["value"] == 0.05

    # No word in common with the pages: only meaning connects them.
    semantic = service.search("how do search engines score results", mode="semantic")["results"]
    assert {r["url"] for r in semantic[:2]} == {
        "https://docs.python.example/tutorial/indexing",
        "https://blog.sub.search.example/bm25",
    }
    assert service.search("how do search engines score results", mode="keyword")["total"] == 0
    loaf = service.search("making a loaf with yeast", mode="semantic")["results"]
    assert loaf[0]["url"].endswith(("/bread", "/baguette"))
    filtered = service.search(
        "making a loaf with yeast", mode="semantic", filters=Filters(filetypes=("docx",))
    )
    assert [r["url"] for r in filtered["results"]] == ["https://recipes.example/baguette"]

    # Hybrid: the keyword match and the semantic neighbours, fused; keyword-only results too.
    hybrid = service.search("bm25 ranking of documents", mode="hybrid")
    assert hybrid["results"][0]["url"] == "https://blog.sub.search.example/bm25"
    assert hybrid["total"] >= 1
    assert "<mark>BM25</mark>" in hybrid["results"][0]["snippet"]

    # A changed page goes back into the queue and gets a new vector.
    changed = replace(pages[2], text="Quantum entanglement links distant particles.", fingerprint=99)
    index.add([changed])
    assert index.stats().pending_embeddings == 1
    Embedder(index.store, model=minilm).run_until_empty()
    # Searchers take in new vectors within search.refresh_s (0.05 s here); embedding one page can
    # take less than that since their last look.
    time.sleep(0.1)
    physics = service.search("physics of particles", mode="semantic")["results"]
    assert physics[0]["url"] == changed.url
