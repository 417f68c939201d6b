"""Language handling for full text: stemmers per language, n-grams for scripts without spaces.

Every document is indexed three ways, so a query in any language finds it:
- plain words (Unicode word split, lower-cased): every language with word separators;
- stemmed words in the document's own language where a stemmer exists (tantivy: 18 Snowball
  stemmers; PostgreSQL: its text search configurations);
- character bigrams for CJK, Thai, Lao, Khmer, Myanmar and Tibetan text, which has no spaces.
"""

from __future__ import annotations

import re

# ISO 639-1 -> Snowball stemmer name, as tantivy's `Filter.stemmer` spells them.
TANTIVY_STEMMERS: dict[str, str] = {
    "ar": "arabic",
    "da": "danish",
    "nl": "dutch",
    "en": "english",
    "fi": "finnish",
    "fr": "french",
    "de": "german",
    "el": "greek",
    "hu": "hungarian",
    "it": "italian",
    "no": "norwegian",
    "nb": "norwegian",
    "nn": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "es": "spanish",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
}

# ISO 639-1 -> PostgreSQL 15 text search configuration (others use "simple").
PG_CONFIGS: dict[str, str] = {
    "ar": "arabic",
    "hy": "armenian",
    "eu": "basque",
    "ca": "catalan",
    "da": "danish",
    "nl": "dutch",
    "en": "english",
    "fi": "finnish",
    "fr": "french",
    "de": "german",
    "el": "greek",
    "hi": "hindi",
    "hu": "hungarian",
    "id": "indonesian",
    "ga": "irish",
    "it": "italian",
    "lt": "lithuanian",
    "ne": "nepali",
    "no": "norwegian",
    "nb": "norwegian",
    "nn": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "es": "spanish",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
    "yi": "yiddish",
}

# Scripts written without spaces between words: Han, Hiragana, Katakana, Hangul, Thai, Lao,
# Khmer, Myanmar, Tibetan.
_UNSPACED = (
    "\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u3190-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
    "\u0e00-\u0e7f\u0e80-\u0eff\u1780-\u17ff\u1000-\u109f\u0f00-\u0fff"
)
_UNSPACED_RUN = re.compile(f"[{_UNSPACED}]+")
NGRAM_LANGS = frozenset({"zh", "ja", "ko", "th", "lo", "km", "my", "bo"})


def needs_ngrams(text: str) -> bool:
    return _UNSPACED_RUN.search(text) is not None


def unspaced_runs(text: str) -> str:
    """Only the runs of unspaced scripts, space separated (input of the bigram analyser)."""
    return " ".join(_UNSPACED_RUN.findall(text))


def bigrams(text: str) -> list[str]:
    """Overlapping character bigrams of each unspaced run; a one-character run stays as it is."""
    grams: list[str] = []
    for run in _UNSPACED_RUN.findall(text):
        if len(run) == 1:
            grams.append(run)
        grams.extend(run[i : i + 2] for i in range(len(run) - 1))
    return grams


def base_lang(lang: str) -> str:
    return lang.lower().replace("_", "-").split("-", 1)[0]
