"""Credibility: each signal moves the score the way it should; RRF; snippets; query words."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from fimum_ai.search import credibility
from fimum_ai.search.credibility import Signals, reputation_of
from fimum_ai.search.query import query_words
from fimum_ai.search.service import rrf
from fimum_ai.search.snippets import make_snippet

BASE = Signals(
    authority=0.5,
    https=False,
    author=False,
    publisher=False,
    has_date=False,
    age_days=365.0,
    agreeing_sites=0,
    reputation=0.5,
)


def score(signals: Signals) -> float:
    value = credibility.score(signals)["score"]
    assert isinstance(value, float)
    return value


@pytest.mark.parametrize(
    ("better", "signal"),
    [
        (replace(BASE, authority=0.9), "authority"),
        (replace(BASE, https=True), "https"),
        (replace(BASE, author=True), "metadata"),
        (replace(BASE, publisher=True), "metadata"),
        (replace(BASE, has_date=True), "metadata"),
        (replace(BASE, age_days=10.0), "freshness"),
        (replace(BASE, agreeing_sites=2), "agreement"),
        (replace(BASE, reputation=0.9), "reputation"),
    ],
)
def test_each_signal_raises_the_score(better: Signals, signal: str) -> None:
    assert score(better) > score(BASE)
    before = credibility.score(BASE)["breakdown"]
    after = credibility.score(better)["breakdown"]
    assert isinstance(before, dict) and isinstance(after, dict)
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {signal}


def test_the_opposite_direction_lowers_it() -> None:
    assert score(replace(BASE, authority=0.1)) < score(BASE)
    assert score(replace(BASE, age_days=3650.0)) < score(BASE)
    assert score(replace(BASE, reputation=0.0)) < score(BASE)


def test_score_bounds_and_breakdown_sum() -> None:
    worst = Signals(0.0, False, False, False, False, 1e6, 0, 0.0)
    best = Signals(1.0, True, True, True, True, 0.0, 5, 1.0)
    assert score(worst) == pytest.approx(0.0, abs=0.1)
    assert score(best) == 100.0
    assert sum(credibility.WEIGHTS.values()) == 100.0
    result = credibility.score(BASE)
    breakdown = result["breakdown"]
    assert isinstance(breakdown, dict)
    assert sum(item["points"] for item in breakdown.values()) == pytest.approx(result["score"], abs=0.3)


def test_agreement_saturates_at_three_sites() -> None:
    values = [credibility.signal_values(replace(BASE, agreeing_sites=n))["agreement"] for n in range(5)]
    assert values == sorted(values) and values[3] == values[4] == 1.0


def test_domain_reputation_matches_subdomains() -> None:
    table = {"example.org": 0.9, "spam.example.org": 0.1}
    assert reputation_of("example.org", table) == 0.9
    assert reputation_of("news.example.org", table) == 0.9
    assert reputation_of("spam.example.org", table) == 0.1
    assert reputation_of("other.net", table) == 0.5


def test_age_days() -> None:
    now = datetime(2025, 1, 11, tzinfo=UTC)
    assert credibility.age_days(now - timedelta(days=10), now) == pytest.approx(10.0)


def test_reciprocal_rank_fusion() -> None:
    # b is second in both lists: it beats a and c, each first in one list but absent in the other.
    assert rrf([["a", "b"], ["c", "b"]], k=60)[0] == "b"  # type: ignore[list-item]
    assert rrf([[1, 2, 3], []], k=60) == [1, 2, 3]
    assert rrf([[], []], k=60) == []


def test_snippets_mark_query_words_and_escape_html() -> None:
    text = "Intro. " + "filler " * 80 + "The <b>indexes</b> are fast; indexing is cheap. " + "tail " * 50
    snippet = make_snippet(text, "index")
    assert "<mark>indexes</mark>" in snippet and "<mark>indexing</mark>" in snippet
    assert "&lt;b&gt;" in snippet and "<b>" not in snippet
    assert snippet.startswith("…")
    assert make_snippet("東京大学の研究", "大学") == "東京<mark>大学</mark>の研究"
    assert make_snippet("no match here", "zebra") == "no match here"


def test_query_words_drop_syntax() -> None:
    assert query_words('title:"Foo" AND (bar) -baz*') == ["title", "foo", "and", "bar", "baz"]
    assert query_words("प्रकाशस्तंभ तूफान") == ["प्रकाशस्तंभ", "तूफान"]


@pytest.mark.slow  # a fresh interpreter importing the app, torch's neighbours and onnxruntime (~5-20 s)
def test_the_app_and_the_nsfw_runtime_load_in_one_process() -> None:
    """The vector library must not break onnxruntime (the image NSFW check) in the server process:
    usearch did (segmentation fault on `import onnxruntime` after it)."""
    import subprocess
    import sys

    code = "import fimum_ai.app, fimum_ai.search.vectors, onnxruntime; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
