"""A search request's parts shared by every backend: the query words and the filters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from fimum_ai.search.store import domain_suffixes

# Everything that is query syntax in tantivy or PostgreSQL, or punctuation between words.
_SEPARATORS = re.compile(r"[\s\"'`()\[\]{}:^+\-!~*?\\/<>=&|,;.@#$%]+")


def query_words(query: str) -> list[str]:
    """The words of a user's query, lower-cased, without any query syntax (a query is plain words:
    every word must match, in any of its forms)."""
    return [word for word in _SEPARATORS.split(query.lower()) if word]


@dataclass(frozen=True, slots=True)
class Filters:
    date_from: datetime | None = None  # on the published date (crawl time when a page has none)
    date_to: datetime | None = None
    domains: tuple[str, ...] = ()  # include: the site or any subdomain of it
    exclude_domains: tuple[str, ...] = ()
    filetypes: tuple[str, ...] = ()
    langs: tuple[str, ...] = ()

    def accepts(self, *, site: str, lang: str, filetype: str, date: datetime) -> bool:
        """The same rules as the backends' own filters, for candidates found by vector search."""
        suffixes = set(domain_suffixes(site))
        if self.domains and not suffixes.intersection(self.domains):
            return False
        if suffixes.intersection(self.exclude_domains):
            return False
        if self.filetypes and filetype not in self.filetypes:
            return False
        if self.langs and lang not in self.langs:
            return False
        if self.date_from is not None and date < self.date_from:
            return False
        return self.date_to is None or date <= self.date_to


@dataclass(frozen=True, slots=True)
class KeywordHits:
    hits: list[tuple[int, float]] = field(default_factory=list)  # (page key, BM25 / ts_rank score)
    total: int = 0
