"""Distributed full text: PostgreSQL `tsvector` + GIN in `search_pages.tsv`.

Each page's vector holds its title (weight A) and text (B) stemmed with the text search
configuration of its language, the plain words of both (D, for languages PostgreSQL has no
stemmer for) and character bigrams of CJK/Thai runs (D). A query matches when all its words
match in one of the forms: plain words, any language's stems, or (unspaced scripts) all bigrams.
Written in the same transaction as the page row, so every API replica sees it on commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from fimum_ai.search.languages import PG_CONFIGS, bigrams
from fimum_ai.search.query import Filters, KeywordHits, query_words
from fimum_ai.search.store import StoredPage

_MAX_TEXT = 400_000  # tsvector's own limit is 1 MB of lexemes; very long texts are cut
_CONFIGS = sorted(set(PG_CONFIGS.values()))

_WRITE = text(
    """
    UPDATE search_pages SET tsv =
        setweight(to_tsvector(CAST(:config AS regconfig), :title), 'A')
        || setweight(to_tsvector(CAST(:config AS regconfig), :body), 'B')
        || setweight(to_tsvector('simple', :title || ' ' || :body), 'D')
        || setweight(to_tsvector('simple', :grams), 'D')
    WHERE key = :key
    """
)


class PostgresFullText:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # OR of the query parsed by every configuration: stems in any language, plain words.
        self._tsquery = " || ".join(
            ["plainto_tsquery('simple', :q)"] + [f"plainto_tsquery('{config}', :q)" for config in _CONFIGS]
        )

    def write(self, connection: Connection, stored: Sequence[StoredPage]) -> None:
        params = [
            {
                "key": item.key,
                "config": PG_CONFIGS.get(item.lang, "simple"),
                "title": item.page.title,
                "body": item.page.text[:_MAX_TEXT],
                "grams": " ".join(bigrams(f"{item.page.title} {item.page.text[:_MAX_TEXT]}")),
            }
            for item in stored
            if item.changed
        ]
        if params:
            connection.execute(_WRITE, params)

    def search(self, query: str, filters: Filters, limit: int, offset: int = 0) -> KeywordHits:
        words = query_words(query)
        if not words:
            return KeywordHits()
        params: dict[str, Any] = {"q": " ".join(words), "limit": limit, "offset": offset}
        tsquery = self._tsquery
        grams = bigrams(params["q"])
        if grams:
            params["grams"] = " & ".join(dict.fromkeys(gram.replace("'", "") for gram in grams))
            tsquery = f"({tsquery}) || to_tsquery('simple', :grams)"
        where, filter_params = _filter_sql(filters)
        params |= filter_params
        sql = f"""
            WITH q AS (SELECT ({tsquery}) AS query)
            SELECT key, ts_rank_cd(tsv, q.query, 1) AS score, count(*) OVER () AS total
            FROM search_pages, q
            WHERE tsv @@ q.query {where}
            ORDER BY score DESC, key
            LIMIT :limit OFFSET :offset
        """
        with self.engine.connect() as connection:
            rows = connection.execute(text(sql), params).all()
            if rows:
                total = int(rows[0].total)
            else:
                total = int(
                    connection.execute(
                        text(
                            f"WITH q AS (SELECT ({tsquery}) AS query) SELECT count(*) FROM search_pages, q "
                            f"WHERE tsv @@ q.query {where}"
                        ),
                        params,
                    ).scalar_one()
                )
        return KeywordHits([(int(row.key), float(row.score)) for row in rows], total)

    def close(self) -> None:
        pass


def _filter_sql(filters: Filters) -> tuple[str, dict[str, Any]]:
    parts: list[str] = []
    params: dict[str, Any] = {}
    if filters.domains:
        parts.append(
            "AND (site = ANY(:domains) OR EXISTS (SELECT 1 FROM unnest(CAST(:domains AS text[])) d "
            "WHERE site LIKE '%.' || d))"
        )
        params["domains"] = list(filters.domains)
    if filters.exclude_domains:
        parts.append(
            "AND NOT (site = ANY(:excluded) OR EXISTS (SELECT 1 FROM unnest(CAST(:excluded AS text[])) d "
            "WHERE site LIKE '%.' || d))"
        )
        params["excluded"] = list(filters.exclude_domains)
    if filters.filetypes:
        parts.append("AND filetype = ANY(:filetypes)")
        params["filetypes"] = list(filters.filetypes)
    if filters.langs:
        parts.append("AND lang = ANY(:langs)")
        params["langs"] = list(filters.langs)
    if filters.date_from:
        parts.append("AND coalesce(published, fetched_at) >= :date_from")
        params["date_from"] = filters.date_from
    if filters.date_to:
        parts.append("AND coalesce(published, fetched_at) <= :date_to")
        params["date_to"] = filters.date_to
    return " ".join(parts), params
