"""`python -m fimum_ai.search.crawler.job ID`: run one crawl the admin API started.

The settings come as JSON on stdin (the API's own, secrets included); the job record and its
progress live in the job store (see jobs.py).
"""

from __future__ import annotations

import json
import logging
import sys

from fimum_ai.search.crawler.context import CrawlOptions, CrawlProgress
from fimum_ai.search.crawler.jobs import JobReporter, open_job_store
from fimum_ai.settings import Settings, load_settings

log = logging.getLogger("fimum_ai.search.crawler.job")


def main(job_id: str, settings: Settings) -> int:
    from fimum_ai.logs import configure_logging
    from fimum_ai.search.crawler.runner import run_crawl

    configure_logging(settings.log_level, settings.log_format)
    store = open_job_store(settings)
    job = store.get(job_id)
    if job is None:
        log.error("no crawl job %s", job_id)
        return 2
    # Each API crawl has a frontier of its own (a Redis frontier is named after the job).
    crawler = settings.crawler.model_copy(update={"crawl_name": job_id})
    settings = settings.model_copy(update={"crawler": crawler})
    options = CrawlOptions(
        seeds=tuple(job["seeds"]),
        allow_domains=tuple(job["allow_domains"]),
        max_pages=int(job["max_pages"]),
        depth=int(job["depth"]),
    )
    reporter = JobReporter(store, job)
    try:
        result = run_crawl(settings, options, reporter)
    except Exception as exc:
        log.exception("crawl %s failed", job_id)
        reporter.report(CrawlProgress(state="failed", reason=f"{exc.__class__.__name__}: {exc}"))
        return 1
    return 0 if result.state != "failed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], load_settings(**json.loads(sys.stdin.read()))))
