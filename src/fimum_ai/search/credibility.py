"""Credibility score 0-100 for a search result, with its breakdown (FR-SEA-004).

score = sum over signals of weight * value, each value in 0..1, weights summing to 100:

| signal     | weight | value |
|------------|--------|-------|
| authority  | 30 | PageRank of the page in the crawl graph, as a percentile among crawled pages |
| reputation | 20 | the configured domain reputation (FIMUM_SEARCH__DOMAIN_REPUTATION), 0.5 if unknown |
| agreement  | 15 | other sites among the candidates saying the same (cosine >= 0.75): min(n / 3, 1) |
| freshness  | 15 | 0.5 ** (age in days / 365), age from the published date (else crawl time) |
| metadata   | 10 | author named 0.4 + publisher named 0.3 + published date given 0.3 |
| https      | 10 | 1 if the page was served over HTTPS |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

WEIGHTS: dict[str, float] = {
    "authority": 30.0,
    "reputation": 20.0,
    "agreement": 15.0,
    "freshness": 15.0,
    "metadata": 10.0,
    "https": 10.0,
}
AGREEMENT_COSINE = 0.75
FRESHNESS_HALF_LIFE_DAYS = 365.0


@dataclass(frozen=True, slots=True)
class Signals:
    authority: float  # 0..1
    https: bool
    author: bool
    publisher: bool
    has_date: bool
    age_days: float
    agreeing_sites: int
    reputation: float  # 0..1


def reputation_of(site: str, table: dict[str, float]) -> float:
    labels = site.split(".")
    for i in range(len(labels)):
        score = table.get(".".join(labels[i:]))
        if score is not None:
            return score
    return 0.5


def signal_values(signals: Signals) -> dict[str, float]:
    return {
        "authority": min(max(signals.authority, 0.0), 1.0),
        "reputation": min(max(signals.reputation, 0.0), 1.0),
        "agreement": min(signals.agreeing_sites / 3.0, 1.0),
        "freshness": 0.5 ** (max(signals.age_days, 0.0) / FRESHNESS_HALF_LIFE_DAYS),
        "metadata": 0.4 * signals.author + 0.3 * signals.publisher + 0.3 * signals.has_date,
        "https": 1.0 if signals.https else 0.0,
    }


def score(signals: Signals) -> dict[str, object]:
    """`{"score": 0..100, "breakdown": {signal: {"value", "weight", "points"}}}`."""
    values = signal_values(signals)
    breakdown = {
        name: {"value": round(value, 3), "weight": WEIGHTS[name], "points": round(WEIGHTS[name] * value, 1)}
        for name, value in values.items()
    }
    total = sum(WEIGHTS[name] * value for name, value in values.items())
    return {"score": round(total, 1), "breakdown": breakdown}


def age_days(moment: datetime, now: datetime | None = None) -> float:
    now = now or datetime.now(UTC)
    return (now - moment).total_seconds() / 86400.0
