"""Result snippets: the passage of a page's text that holds the most query words, HTML-escaped,
with the query words (and their inflected forms) wrapped in <mark>...</mark>.

One implementation for both backends, so the web page renders the same markup whatever the index.
"""

from __future__ import annotations

import functools
import html
import re

from fimum_ai.search.languages import bigrams, needs_ngrams
from fimum_ai.search.query import query_words

SNIPPET_CHARS = 240


@functools.lru_cache(maxsize=256)
def _patterns(words: tuple[str, ...]) -> list[re.Pattern[str]]:
    patterns = []
    for word in words:
        if needs_ngrams(word):
            # Unspaced scripts: the word itself, else its bigrams.
            for part in dict.fromkeys([word, *bigrams(word)]):
                patterns.append(re.compile(re.escape(part)))
        else:
            # The word and forms sharing its stem ("index" finds "indexes", "indexing").
            stem = word if len(word) <= 4 else word[: max(4, len(word) - 2)]
            patterns.append(re.compile(rf"(?<!\w){re.escape(stem)}\w*", re.IGNORECASE))
    return patterns


def make_snippet(text: str, query: str, size: int = SNIPPET_CHARS) -> str:
    text = " ".join(text.split())
    patterns = _patterns(tuple(query_words(query)))
    spans = sorted({m.span() for p in patterns for m in p.finditer(text)})
    if not spans:
        cut = text[:size]
        return html.escape(cut) + ("…" if len(text) > size else "")
    # The window of `size` characters starting a little before the match that has most matches after it.
    best_start, best_count = 0, -1
    for start, _ in spans:
        count = sum(1 for s, e in spans if start <= s and e <= start + size)
        if count > best_count:
            best_start, best_count = start, count
    begin = max(0, best_start - size // 4)
    if begin > 0:  # start at a word boundary
        space = text.find(" ", begin)
        begin = space + 1 if 0 <= space < best_start else begin
    end = min(len(text), begin + size)
    out: list[str] = ["…"] if begin > 0 else []
    position = begin
    for start, stop in spans:
        if start < position or stop > end:
            continue
        out.append(html.escape(text[position:start]))
        out.append(f"<mark>{html.escape(text[start:stop])}</mark>")
        position = stop
    out.append(html.escape(text[position:end]))
    if end < len(text):
        out.append("…")
    return "".join(out)
