"""The crawler's parts on their own: URL normalisation, SimHash and the near-duplicate stores (in
memory, SQLite and a real Redis), extraction of HTML, PDF, DOCX and TXT, language detection."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fimum_ai.search.crawler.extract import (
    UnsupportedDocument,
    detect_language,
    extract_docx,
    extract_html,
    extract_pdf,
    extract_txt,
    filetype_of,
    http_date,
)
from fimum_ai.search.crawler.fingerprint import (
    MemoryNearDuplicates,
    RedisNearDuplicates,
    bands,
    hamming,
    simhash64,
)
from fimum_ai.search.crawler.memory import RedisLinkMemory, SqliteLinkMemory
from fimum_ai.search.crawler.urls import in_domains, normalise_url
from tests.conftest import REDIS_URL
from tests.search_site import WORDS, make_docx, make_pdf, sentence


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://Example.COM:80/a/./b/../c?b=2&a=1#frag", "http://example.com/a/c?a=1&b=2"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com:443/x", "https://example.com/x"),
        ("http://example.com/p?utm_source=news&id=3&fbclid=abc", "http://example.com/p?id=3"),
        ("http://example.com/%7euser/a b", "http://example.com/~user/a%20b"),
        ("/relative/../page.html", "http://base.example/page.html"),
        ("mailto:someone@example.com", None),
        ("javascript:void(0)", None),
        ("ftp://example.com/file", None),
        ("   ", None),
    ],
)
def test_urls_are_normalised_to_one_spelling(raw: str, expected: str | None) -> None:
    assert normalise_url(raw, "http://base.example/dir/") == expected


def test_allowed_domains_include_subdomains_only() -> None:
    domains = frozenset({"example.com"})
    assert in_domains("http://example.com/", domains)
    assert in_domains("https://docs.example.com/a", domains)
    assert not in_domains("http://notexample.com/", domains)
    assert not in_domains("http://example.com.evil.net/", domains)


def _text(seed: int, words: int = 400) -> str:
    return sentence(random.Random(seed), "en", words)


def test_simhash_separates_copies_from_different_texts() -> None:
    text = _text(1)
    assert simhash64(text) == simhash64(text)
    assert simhash64("") == 0
    assert -(2**63) <= simhash64(text) < 2**63  # fits a signed BIGINT
    edited = text.replace("the", "a", 1) + " Updated."
    assert hamming(simhash64(text), simhash64(edited)) <= 5
    distances = [hamming(simhash64(_text(i)), simhash64(_text(i + 100))) for i in range(20)]
    assert min(distances) > 12, distances
    # Scripts without spaces: character n-grams.
    rng = random.Random(3)
    zh, zh_other = ("".join(rng.choice(WORDS["zh"]) for _ in range(800)) for _ in range(2))
    assert hamming(simhash64(zh), simhash64(zh + "。")) <= 5
    assert hamming(simhash64(zh), simhash64(zh_other)) > 12


def test_bands_catch_every_pair_within_the_distance() -> None:
    rng = random.Random(7)
    for max_bits in (0, 3, 5):
        for _ in range(200):
            a = rng.getrandbits(64)
            b = a
            for bit in rng.sample(range(64), max_bits):
                b ^= 1 << bit
            assert set(bands(a, max_bits)) & set(bands(b, max_bits)), (max_bits, a, b)


@pytest.fixture
def redis_client(redis_prefix: str) -> Iterator[object]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.mark.parametrize("store", ["memory", "sqlite", "redis"])
def test_near_duplicate_store_claims_the_first_copy_only(
    store: str, tmp_path: Path, redis_prefix: str, request: pytest.FixtureRequest
) -> None:
    def open_store() -> MemoryNearDuplicates | RedisNearDuplicates:
        if store == "redis":
            import redis

            return RedisNearDuplicates(redis.Redis.from_url(REDIS_URL), redis_prefix, 5)
        return MemoryNearDuplicates(5, tmp_path / "fp.sqlite3" if store == "sqlite" else None)

    original = simhash64(_text(1))
    copy = original ^ (1 << 3) ^ (1 << 60) ^ (1 << 33)  # 3 bits away
    other = simhash64(_text(2))
    dups = open_store()
    assert dups.claim("http://a/1", original) is None
    assert dups.claim("http://a/1", original) is None  # the same page again is no copy of itself
    assert dups.claim("http://b/copy", copy) == "http://a/1"
    assert dups.claim("http://c/other", other) is None
    assert dups.claim("http://d/empty", 0) is None  # no text, no fingerprint: never a copy
    dups.close()
    if store != "memory":  # a later crawl remembers what earlier crawls kept
        again = open_store()
        assert again.claim("http://e/late-copy", copy) == "http://a/1"
        again.close()


def test_a_changed_page_no_longer_shadows_its_old_copies(tmp_path: Path) -> None:
    dups = MemoryNearDuplicates(5, tmp_path / "fp.sqlite3")
    old, new = simhash64(_text(1)), simhash64(_text(9))
    assert dups.claim("http://a/page", old) is None
    assert dups.claim("http://a/page", new) is None  # the page changed
    assert dups.claim("http://b/old-copy", old) is None  # its old text is a page of its own now
    dups.close()


def test_link_memory_round_trips(tmp_path: Path, redis_prefix: str) -> None:
    import redis

    for memory in (
        SqliteLinkMemory(tmp_path / "links.sqlite3"),
        RedisLinkMemory(redis.Redis.from_url(REDIS_URL), redis_prefix),
    ):
        assert memory.recall("http://a/") == []
        memory.remember("http://a/", ["http://a/1", "http://a/2"])
        memory.remember("http://a/", ["http://a/3"])
        assert memory.recall("http://a/") == ["http://a/3"]
        memory.close()


# ------------------------------------------------------------------------------------ extraction

ARTICLE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Tab title | Site</title>
<meta property="og:title" content="Volcanic soils and vineyards">
<meta property="og:site_name" content="Field Notes"><meta name="author" content="Ines Marl">
<meta property="article:published_time" content="2024-03-05T10:00:00Z">
<link rel="canonical" href="/articles/volcanic-soils?utm_source=feed"><base href="/articles/">
</head><body><nav><a href="/">Home</a> <a href="/login" rel="nofollow">Log in</a></nav>
<article><h1>Volcanic soils and vineyards</h1>{paras}</article>
<a href="related.html#top">Related</a> <a href="mailto:x@example.com">mail</a>
<a href="https://other.example/page?fbclid=1">elsewhere</a></body></html>"""


def test_html_extraction_reads_text_title_metadata_and_links() -> None:
    paras = "".join(f"<p>{_text(i, 60)}</p>" for i in range(5))
    got = extract_html(ARTICLE.format(paras=paras).encode(), "https://site.example/articles/x")
    assert got.title == "Volcanic soils and vineyards"
    assert _text(0, 60)[:50] in got.text and "Log in" not in got.text
    assert got.lang == "en"
    assert got.published == datetime(2024, 3, 5, tzinfo=UTC)
    assert got.publisher == "Field Notes" and got.author == "Ines Marl"
    assert got.canonical == "https://site.example/articles/volcanic-soils"
    assert got.links == [
        "https://site.example/",
        "https://site.example/articles/related.html",
        "https://other.example/page",
    ]  # nofollow and mailto left out; <base> applied; fragment and tracking dropped
    assert not got.noindex and not got.nofollow


def test_html_robots_meta_is_read() -> None:
    html = b'<html><head><meta name="ROBOTS" content="noindex, nofollow"></head>'
    html += b'<body><a href="/a">a</a></body></html>'
    got = extract_html(html, "http://x.example/")
    assert got.noindex and got.nofollow and got.links == []


def test_pdf_docx_and_txt_are_extracted() -> None:
    created = datetime(2023, 3, 4, 5, 6, 7, tzinfo=UTC)
    pdf = extract_pdf(make_pdf("Annual report", ["Pollination grew by a third.", _text(4, 30)], created))
    assert pdf.title == "Annual report" and "Pollination grew" in pdf.text
    assert pdf.published == created and pdf.author == "Test Author" and pdf.lang == "en"
    docx = extract_docx(make_docx("Opening notes", [_text(5, 50)], created))
    assert docx.title == "Opening notes" and _text(5, 50)[:40] in docx.text
    assert docx.published == created and docx.author == "Docx Author"
    txt = extract_txt(b"Beekeeping readme\n\nHives need space.\n", "utf-8")
    assert txt.title == "Beekeeping readme" and "Hives need space." in txt.text
    with pytest.raises(UnsupportedDocument):
        extract_pdf(b"%PDF-1.4 this is not really a pdf")
    with pytest.raises(UnsupportedDocument):
        extract_docx(b"PK\x03\x04 not a zip")


@pytest.mark.parametrize(
    ("content_type", "url", "expected"),
    [
        ("text/html; charset=utf-8", "http://x/a", "html"),
        ("application/pdf", "http://x/a", "pdf"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "http://x/a", "docx"),
        ("text/plain", "http://x/a.txt", "txt"),
        ("application/octet-stream", "http://x/report.PDF", "pdf"),
        ("image/png", "http://x/a.png", None),
        ("application/zip", "http://x/a.zip", None),
        (None, "http://x/notes.docx", "docx"),
    ],
)
def test_file_types(content_type: str | None, url: str, expected: str | None) -> None:
    assert filetype_of(content_type, url) == expected


@pytest.mark.parametrize("lang", sorted(WORDS))
def test_languages_are_detected(lang: str) -> None:
    words = list(WORDS[lang]) if lang == "zh" else WORDS[lang].split()
    rng = random.Random(11)
    text = ("" if lang in ("zh", "ja") else " ").join(rng.choice(words) for _ in range(60))
    assert detect_language(text) == lang


def test_short_texts_fall_back_to_the_declared_language() -> None:
    assert detect_language("Hallo", hint="de-DE") == "de"
    assert detect_language("Hallo", hint="not a language!") == ""


def test_http_dates() -> None:
    assert http_date(b"Wed, 21 Oct 2015 07:28:00 GMT") == datetime(2015, 10, 21, 7, 28, tzinfo=UTC)
    assert http_date("yesterday") is None and http_date(None) is None


def test_extraction_in_a_worker_process_gives_the_same_result() -> None:
    import asyncio

    from fimum_ai.search.crawler.extract import extract_document
    from fimum_ai.search.crawler.extractors import Extractors

    paras = "".join(f"<p>{_text(i, 60)}</p>" for i in range(5))
    body = ARTICLE.format(paras=paras).encode()
    url = "https://site.example/articles/x"
    here = extract_document("html", body, url, "utf-8")
    assert here.fingerprint == simhash64(here.text) != 0
    pool = Extractors(1)
    try:
        there = asyncio.run(pool.extract("html", body, url, "utf-8"))
        with pytest.raises(UnsupportedDocument):
            asyncio.run(pool.extract("pdf", b"%PDF-1.4 broken", url, None))
    finally:
        pool.close()
    assert there == here
