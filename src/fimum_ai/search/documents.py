"""The hand-off record between the crawler and the search index (see docs/search.md).

The crawler produces `Page`s; `SearchIndex.add` upserts them by `url`, and `Gone` pages (404 or
410 on a recrawl) leave the index through `SearchIndex.remove`. Extend only by adding optional
fields so both halves keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

FILETYPES = ("html", "pdf", "docx", "txt")


@dataclass(frozen=True, slots=True)
class Page:
    url: str  # canonical, normalised absolute URL: the document's identity
    title: str
    text: str  # extracted main text
    lang: str  # ISO 639-1 ("en", "zh", "th"...), "" when unknown
    published: datetime | None  # UTC, from page metadata / htmldate / Last-Modified
    fetched_at: datetime  # UTC crawl time
    filetype: str  # "html" | "pdf" | "docx" | "txt"
    links: tuple[str, ...] = ()  # outgoing normalised absolute URLs (PageRank input)
    author: str | None = None
    publisher: str | None = None  # og:site_name or similar
    etag: str | None = None  # for conditional recrawl
    last_modified: str | None = None
    fingerprint: int = 0  # 64-bit SimHash of the text, signed-int-safe


@dataclass(frozen=True, slots=True)
class Gone:
    """A page URL that answered 404 Not Found or 410 Gone: whatever the index holds for it goes."""

    url: str


@dataclass(frozen=True, slots=True)
class PageState:
    """What the index holds about a stored page, for the crawler's conditional recrawl."""

    url: str
    etag: str | None
    last_modified: str | None
    fingerprint: int
    fetched_at: datetime
