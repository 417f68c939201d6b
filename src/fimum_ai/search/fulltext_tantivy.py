"""Embedded full text: a tantivy index under data_dir/search/tantivy (BM25).

Writers in several processes (the server's crawl API, `fimum crawl`) take tantivy's index lock in
turn, one batch at a time; readers reload at most every `refresh_s`, so a commit is searchable
within about a second everywhere without a restart.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import tantivy

from fimum_ai.search.languages import TANTIVY_STEMMERS, needs_ngrams, unspaced_runs
from fimum_ai.search.query import Filters, KeywordHits, query_words
from fimum_ai.search.store import StoredPage, domain_suffixes

STEM_FIELDS = {lang: f"stem_{name}" for lang, name in TANTIVY_STEMMERS.items()}
_WRITER_HEAP = 64_000_000
_LOCK_WAIT_S = 60.0


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("key", stored=False, indexed=True, fast=True)
    builder.add_text_field("title", tokenizer_name="words")
    builder.add_text_field("body", tokenizer_name="words")
    for name in sorted(set(TANTIVY_STEMMERS.values())):
        builder.add_text_field(f"stem_{name}", tokenizer_name=f"stem_{name}")
    builder.add_text_field("cjk", tokenizer_name="bigram")
    builder.add_text_field("lang", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("filetype", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("domain", tokenizer_name="raw", index_option="basic")
    builder.add_date_field("date", indexed=True, fast=True)
    return builder.build()


def _register_analyzers(index: tantivy.Index) -> None:
    def words() -> tantivy.TextAnalyzerBuilder:
        return (
            tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.remove_long(60))
            .filter(tantivy.Filter.lowercase())
        )

    index.register_tokenizer("words", words().build())
    for name in set(TANTIVY_STEMMERS.values()):
        index.register_tokenizer(f"stem_{name}", words().filter(tantivy.Filter.stemmer(name)).build())
    index.register_tokenizer("bigram", tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.ngram(2, 2)).build())


class TantivyFullText:
    def __init__(self, path: Path, refresh_s: float = 1.0) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.schema = _schema()
        self.index = tantivy.Index(self.schema, path=str(path), reuse=True)
        _register_analyzers(self.index)
        self._refresh_s = refresh_s
        self._loaded_at = 0.0
        self._reload_lock = threading.Lock()
        self._stem_fields = sorted({f"stem_{name}" for name in TANTIVY_STEMMERS.values()})

    # --- writing -------------------------------------------------------------------------------

    def write(self, stored: Sequence[StoredPage]) -> None:
        changed = [item for item in stored if item.changed]
        if not changed:
            return
        with self._writing() as writer:
            for item in changed:
                writer.delete_documents_by_term("key", item.key)
                writer.add_document(self._document(item))

    def remove(self, keys: Sequence[int]) -> None:
        if not keys:
            return
        with self._writing() as writer:
            for key in keys:
                writer.delete_documents_by_term("key", key)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[tantivy.IndexWriter]:
        """One commit, or a rollback if anything failed; the index lock is free afterwards."""
        writer = self._writer()
        try:
            yield writer
            writer.commit()
        except BaseException:
            writer.rollback()
            raise
        finally:
            writer.wait_merging_threads()  # releases the index lock for the next process

    def _writer(self) -> tantivy.IndexWriter:
        deadline = time.monotonic() + _LOCK_WAIT_S
        while True:
            try:
                return self.index.writer(heap_size=_WRITER_HEAP, num_threads=1)
            except ValueError as exc:
                if "LockBusy" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _document(self, item: StoredPage) -> tantivy.Document:
        page = item.page
        doc = tantivy.Document()
        doc.add_integer("key", item.key)
        doc.add_text("title", page.title)
        doc.add_text("body", page.text)
        stem_field = STEM_FIELDS.get(item.lang)
        if stem_field:
            doc.add_text(stem_field, f"{page.title}\n{page.text}")
        if needs_ngrams(page.title) or needs_ngrams(page.text):
            doc.add_text("cjk", unspaced_runs(f"{page.title} {page.text}"))
        doc.add_text("lang", item.lang)
        doc.add_text("filetype", page.filetype)
        for suffix in domain_suffixes(item.site):
            doc.add_text("domain", suffix)
        doc.add_date("date", _utc(page.published or page.fetched_at))
        return doc

    # --- searching -----------------------------------------------------------------------------

    def _searcher(self) -> tantivy.Searcher:
        now = time.monotonic()
        if now - self._loaded_at >= self._refresh_s:
            with self._reload_lock:
                if now - self._loaded_at >= self._refresh_s:
                    self.index.reload()
                    self._loaded_at = now
        return self.index.searcher()

    def search(self, query: str, filters: Filters, limit: int, offset: int = 0) -> KeywordHits:
        words = query_words(query)
        if not words:
            return KeywordHits()
        fields = ["title", "body", *self._stem_fields]
        text = " ".join(words)
        if needs_ngrams(text):
            fields.append("cjk")
        parsed = self.index.parse_query(
            text, fields, field_boosts={"title": 2.0}, conjunction_by_default=True
        )
        clauses = [(tantivy.Occur.Must, parsed), *self._filter_clauses(filters)]
        searcher = self._searcher()
        result = searcher.search(tantivy.Query.boolean_query(clauses), limit=limit, offset=offset, count=True)
        found = list(result.hits)
        keys = searcher.fast_field_values("key", [address for _, address in found]) if found else []
        hits = [(int(key or 0), float(score)) for key, (score, _) in zip(keys, found, strict=True)]
        return KeywordHits(hits, int(getattr(result, "count", 0) or 0))

    def _filter_clauses(self, filters: Filters) -> list[tuple[tantivy.Occur, tantivy.Query]]:
        Q, Occur = tantivy.Query, tantivy.Occur
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
        if filters.domains:
            clauses.append((Occur.Must, Q.term_set_query(self.schema, "domain", list(filters.domains))))
        if filters.exclude_domains:
            clauses.append(
                (Occur.MustNot, Q.term_set_query(self.schema, "domain", list(filters.exclude_domains)))
            )
        if filters.filetypes:
            clauses.append((Occur.Must, Q.term_set_query(self.schema, "filetype", list(filters.filetypes))))
        if filters.langs:
            clauses.append((Occur.Must, Q.term_set_query(self.schema, "lang", list(filters.langs))))
        if filters.date_from or filters.date_to:
            clauses.append(
                (
                    Occur.Must,
                    Q.range_query(
                        self.schema,
                        "date",
                        tantivy.FieldType.Date,
                        _utc(filters.date_from) if filters.date_from else None,
                        _utc(filters.date_to) if filters.date_to else None,
                    ),
                )
            )
        return clauses

    def num_docs(self) -> int:
        return int(self._searcher().num_docs)

    def close(self) -> None:
        pass


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
