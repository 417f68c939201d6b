"""/api/v1/search and /api/v1/search/snapshots/{id} (issue 8). Signed-in users only; every call
counts against the caller's per-minute request limit of their tier (limits.RateLimitMiddleware)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from fimum_ai.accounts.auth import CurrentUser
from fimum_ai.errors import (
    NOT_SIGNED_IN,
    RATE_LIMITED,
    VALIDATION_FAILED,
    ErrorDoc,
    InvalidInput,
    NotFound,
    error_responses,
)
from fimum_ai.search.credibility import WEIGHTS
from fimum_ai.search.documents import FILETYPES
from fimum_ai.search.query import Filters
from fimum_ai.search.service import SearchService, SearchUnavailable

router = APIRouter(
    prefix="/api/v1/search",
    tags=["search"],
    responses=error_responses(*NOT_SIGNED_IN, RATE_LIMITED),
)
_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}\.)*[a-z0-9-]{1,63}$")
_LANG = re.compile(r"^[a-z]{2,3}$")


def get_search(request: Request) -> SearchService:
    service: SearchService = request.app.state.search
    return service


Search = Annotated[SearchService, Depends(get_search)]


class SignalPoints(BaseModel):
    value: float = Field(description="The signal, 0..1")
    weight: float = Field(description="Its weight; the weights sum to 100")
    points: float = Field(description="value x weight: its share of the score")


class Credibility(BaseModel):
    score: float = Field(ge=0, le=100)
    breakdown: dict[str, SignalPoints] = Field(
        description="One entry per signal: " + ", ".join(WEIGHTS) + " (see docs/search.md)"
    )


class SearchResult(BaseModel):
    url: str
    title: str
    snippet: str = Field(description="HTML-escaped text; query words wrapped in <mark>...</mark>")
    lang: str = Field(description="ISO 639-1, empty when unknown")
    published: datetime | None
    credibility: Credibility
    snapshot_id: str = Field(description="The text as crawled: GET /api/v1/search/snapshots/{snapshot_id}")
    site: str
    fetched_at: datetime = Field(description="When the page was retrieved")
    filetype: str


class SearchResponse(BaseModel):
    results: list[SearchResult]
    total: int = Field(description="Documents matching (hybrid: keyword matches + semantic-only candidates)")
    took_ms: float


class Snapshot(BaseModel):
    id: str
    url: str
    title: str
    text: str
    lang: str
    filetype: str
    published: datetime | None
    fetched_at: datetime
    author: str | None
    publisher: str | None


class SearchStats(BaseModel):
    backend: str
    documents: int
    embedded: int
    pending_embeddings: int
    embedding_lag_s: float = Field(description="How long the oldest page waiting for an embedding has waited")
    embedder: str
    query_encoder_load_s: float | None


def _split(values: list[str] | None) -> list[str]:
    return [part.strip().lower() for value in values or [] for part in value.split(",") if part.strip()]


def _moment(value: str | None, name: str, end_of_day: bool) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{name}: expected a date (2025-01-31) or an ISO 8601 time", details={"field": name}
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_filters(
    date_from: str | None,
    date_to: str | None,
    domain: list[str] | None,
    filetype: list[str] | None,
    lang: list[str] | None,
) -> Filters:
    start, end = _moment(date_from, "from", False), _moment(date_to, "to", True)
    if start and end and start > end:
        raise InvalidInput("from: must not be after 'to'", details={"field": "from"})
    include: list[str] = []
    exclude: list[str] = []
    for item in _split(domain):
        name = item.removeprefix("-").removeprefix("www.")
        if not _DOMAIN.match(name):
            raise InvalidInput(f"domain: {item!r} is not a domain name", details={"field": "domain"})
        (exclude if item.startswith("-") else include).append(name)
    types = _split(filetype)
    for item in types:
        if item not in FILETYPES:
            raise InvalidInput(
                f"filetype: {item!r} is not one of {', '.join(FILETYPES)}", details={"field": "filetype"}
            )
    langs = _split(lang)
    for item in langs:
        if not _LANG.match(item):
            raise InvalidInput(f"lang: {item!r} is not an ISO 639-1 code", details={"field": "lang"})
    return Filters(start, end, tuple(include), tuple(exclude), tuple(types), tuple(langs))


_UNAVAILABLE = ErrorDoc.of(SearchUnavailable, "semantic search is unavailable: the query encoder stopped")


@router.get(
    "",
    summary="Search the crawled web: hybrid (default), keyword or semantic",
    response_model=SearchResponse,
    responses=error_responses(
        ErrorDoc.of(InvalidInput, "domain: 'not a domain' is not a domain name", {"field": "domain"}),
        ErrorDoc(422, "validation_error", "q: Field required"),
        _UNAVAILABLE,
    ),
)
async def search(
    principal: CurrentUser,
    service: Search,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Plain words; every word must match")],
    mode: Literal["hybrid", "keyword", "semantic"] = "hybrid",
    date_from: Annotated[
        str | None, Query(alias="from", description="Published on or after (date or ISO time)")
    ] = None,
    date_to: Annotated[
        str | None, Query(alias="to", description="Published on or before (a date: that whole day)")
    ] = None,
    domain: Annotated[
        list[str] | None,
        Query(
            description="Sites to search (subdomains included); '-example.com' excludes. "
            "Repeat or comma-separate."
        ),
    ] = None,
    filetype: Annotated[list[str] | None, Query(description="html, pdf, docx, txt")] = None,
    lang: Annotated[list[str] | None, Query(description="ISO 639-1 codes")] = None,
    page: Annotated[int, Query(ge=1, le=100)] = 1,
) -> dict[str, Any]:
    filters = parse_filters(date_from, date_to, domain, filetype, lang)
    if len(q) > service.config.max_query_chars:
        raise InvalidInput(f"q: at most {service.config.max_query_chars} characters", details={"field": "q"})
    return await run_in_threadpool(service.search, q, mode=mode, filters=filters, page=page)


@router.get(
    "/snapshots/{snapshot_id}",
    summary="The page's text as it was crawled (the citation's evidence)",
    response_model=Snapshot,
    responses=error_responses(ErrorDoc.of(NotFound, "no such snapshot"), VALIDATION_FAILED),
)
async def snapshot(principal: CurrentUser, service: Search, snapshot_id: str) -> dict[str, Any]:
    if len(snapshot_id) > 64:
        raise NotFound("no such snapshot", details={"snapshot_id": snapshot_id[:64]})
    return await run_in_threadpool(service.snapshot, snapshot_id)


@router.get("/stats", summary="Index size and embedding lag", response_model=SearchStats)
async def stats(principal: CurrentUser, service: Search) -> dict[str, Any]:
    return await run_in_threadpool(service.stats)
