"""/api/v1/admin/crawls: start, list, watch and stop crawls (administrators only).

Admin means the account's `is_admin` flag (the accounts issue's `AdminUser`), not a tier: an
enterprise customer's ordinary users must not point the server's crawler at arbitrary sites.
Each crawl runs in its own process (see search/crawler/jobs.py); these routes only talk to the
job store.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fimum_ai.accounts.auth import AdminUser
from fimum_ai.errors import (
    MALFORMED_BODY,
    NOT_SIGNED_IN,
    RATE_LIMITED,
    VALIDATION_FAILED,
    Conflict,
    ErrorDoc,
    Forbidden,
    NotFound,
    error_responses,
)
from fimum_ai.search.crawler.context import CrawlOptions
from fimum_ai.search.crawler.jobs import CrawlJobs
from fimum_ai.search.crawler.urls import normalise_url

router = APIRouter(
    prefix="/api/v1/admin/crawls", tags=["admin", "search"], responses=error_responses(RATE_LIMITED)
)

_ADMIN_ERRORS = (*NOT_SIGNED_IN, ErrorDoc.of(Forbidden, "administrators only"))
_NO_SUCH_CRAWL = ErrorDoc.of(NotFound, "no such crawl", {"id": "3f0c1d0e-8e0a-4c55-9a43-0d6f4f1f9b8e"})


class CrawlRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # as the schema says: `"depth": false` is refused, not read as 0
        json_schema_extra={
            "examples": [
                {"seeds": ["https://docs.python.org/3/"], "allow_domains": [], "max_pages": 500, "depth": 3}
            ]
        },
    )

    seeds: list[str] = Field(min_length=1, max_length=100, description="Start URLs (http or https).")
    allow_domains: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Host names the crawl stays within (sub-domains included); empty: the seeds' hosts.",
    )
    max_pages: int | None = Field(None, ge=1, le=10_000_000, description="Default: crawler.max_pages.")
    depth: int | None = Field(
        None, ge=0, le=100, description="Link hops from a seed; default: crawler.depth."
    )

    @field_validator("seeds")
    @classmethod
    def _http_urls(cls, seeds: list[str]) -> list[str]:
        normal = []
        for seed in seeds:
            url = normalise_url(seed)
            if url is None:
                raise ValueError(f"{seed!r} is not an http(s) URL")
            normal.append(url)
        return normal

    @field_validator("allow_domains")
    @classmethod
    def _host_names(cls, domains: list[str]) -> list[str]:
        hosts = []
        for domain in domains:
            host = domain.strip().lower().lstrip(".")
            if not host or any(c in host for c in "/:@ ?#"):
                raise ValueError(f"{domain!r} is not a host name (no scheme, port or path)")
            hosts.append(host)
        return hosts


class CrawlProgressView(BaseModel):
    state: str
    fetched: int
    indexed: int
    unchanged: int
    removed: int = Field(0, description="pages taken out of the index: they answered 404 or 410")
    duplicates: int
    skipped: int
    errors: int
    queue: int
    in_flight: int
    elapsed_s: float
    pages_per_min: float
    average_pages_per_min: float
    reason: str
    breakdown: dict[str, int] = Field(
        default_factory=dict,
        description="Why pages were skipped or failed: skipped_robots, errors_http_404...",
    )


class CrawlView(BaseModel):
    id: str
    state: str = Field(description="starting | running | finished | stopped | failed")
    seeds: list[str]
    allow_domains: list[str]
    max_pages: int
    depth: int
    started_by: str
    created_at: str
    finished_at: str | None
    updated_at: str | None = Field(None, description="The crawl's last progress report (twice a second).")
    progress: CrawlProgressView
    stop_requested: bool = False


class CrawlList(BaseModel):
    crawls: list[CrawlView]


def get_crawl_jobs(request: Request) -> CrawlJobs:
    """One CrawlJobs per app, made on first use (the app factory only includes this router)."""
    jobs: CrawlJobs | None = getattr(request.app.state, "crawl_jobs", None)
    if jobs is None:
        jobs = request.app.state.crawl_jobs = CrawlJobs(request.app.state.settings)
    return jobs


JobsDep = Annotated[CrawlJobs, Depends(get_crawl_jobs)]


def _ok(model: type[BaseModel], status: int, description: str = "Success") -> dict[int | str, dict[str, Any]]:
    return {status: {"model": model, "description": description}}


@router.post(
    "",
    status_code=202,
    summary="Start a crawl",
    response_model=None,
    responses=_ok(CrawlView, 202, "Started; watch it at GET /api/v1/admin/crawls/{id}")
    | error_responses(
        *_ADMIN_ERRORS,
        ErrorDoc.of(Conflict, "4 crawls are running on this server already; stop one first"),
        MALFORMED_BODY,
        VALIDATION_FAILED,
    ),
)
async def start_crawl(body: CrawlRequest, admin: AdminUser, jobs: JobsDep) -> dict[str, Any]:
    cfg = jobs.settings.crawler
    options = CrawlOptions(
        seeds=tuple(body.seeds),
        allow_domains=tuple(body.allow_domains),
        max_pages=body.max_pages or cfg.max_pages,
        depth=cfg.depth if body.depth is None else body.depth,
    )
    return await asyncio.to_thread(jobs.start, options, admin.user_id)


@router.get(
    "",
    summary="Crawls, newest first",
    response_model=None,
    responses=_ok(CrawlList, 200) | error_responses(*_ADMIN_ERRORS),
)
async def list_crawls(_: AdminUser, jobs: JobsDep) -> dict[str, Any]:
    return {"crawls": await asyncio.to_thread(jobs.list)}


@router.get(
    "/{crawl_id}",
    summary="One crawl and its live progress (pages/min, queue, errors...)",
    response_model=None,
    responses=_ok(CrawlView, 200) | error_responses(*_ADMIN_ERRORS, _NO_SUCH_CRAWL, VALIDATION_FAILED),
)
async def get_crawl(crawl_id: str, _: AdminUser, jobs: JobsDep) -> dict[str, Any]:
    return await asyncio.to_thread(jobs.get, crawl_id)


@router.post(
    "/{crawl_id}/stop",
    status_code=202,
    summary="Ask a crawl to stop (what it indexed so far stays)",
    response_model=None,
    responses=_ok(CrawlView, 202, "Stop requested")
    | error_responses(
        *_ADMIN_ERRORS,
        _NO_SUCH_CRAWL,
        ErrorDoc.of(Conflict, "the crawl is finished already"),
        VALIDATION_FAILED,
    ),
)
async def stop_crawl(crawl_id: str, _: AdminUser, jobs: JobsDep) -> dict[str, Any]:
    return await asyncio.to_thread(jobs.stop, crawl_id)
