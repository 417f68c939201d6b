"""URL normalisation: one spelling per document, so the index, the seen-set and PageRank agree."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urljoin, urlsplit

from url_normalize import url_normalize
from w3lib.url import canonicalize_url, url_query_cleaner

# Click-tracking parameters never change what a page says.
TRACKING_PARAMS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "utm_id",
    "gclid",
    "fbclid",
    "msclkid",
    "mc_cid",
    "mc_eid",
)


def normalise_url(url: str, base: str | None = None) -> str | None:
    """The canonical absolute form of `url` (resolved against `base`), or None when it is not an
    http(s) URL. Lower-case scheme and host, no default port, no dot segments, one percent-encoding,
    sorted query arguments without tracking parameters, no fragment."""
    url = url.strip()
    if not url:
        return None
    return _normalise_absolute(urljoin(base, url) if base else url)


@lru_cache(maxsize=65536)
def _normalise_absolute(absolute: str) -> str | None:
    # Cached: the same links (navigation, "next", the home page) appear on page after page, and
    # normalising one costs ~0.3 ms (IDNA, percent-encoding, query sorting).
    parts = urlsplit(absolute)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    try:
        normal = url_normalize(absolute)
    except (ValueError, UnicodeError):
        return None
    if normal is None:
        return None
    cleaned = url_query_cleaner(normal, TRACKING_PARAMS, remove=True, keep_fragments=False)
    return canonicalize_url(cleaned, keep_fragments=False)


def host_of(url: str) -> str:
    """The host name without port, lower-case ("" when there is none)."""
    return (urlsplit(url).hostname or "").lower()


def in_domains(url: str, domains: frozenset[str]) -> bool:
    """Whether the URL's host is one of `domains` or a sub-domain of one (empty set: any host)."""
    if not domains:
        return True
    host = host_of(url)
    return any(host == d or host.endswith("." + d) for d in domains)
