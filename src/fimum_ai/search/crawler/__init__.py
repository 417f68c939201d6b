"""The web crawler (FR-SEA-001): a Scrapy project that fills the search index. docs/crawling.md.

`run_crawl` runs one crawl in this process (the CLI); `CrawlJobs` runs crawls in their own
processes for the admin API, because Scrapy's Twisted reactor must not share uvicorn's loop.
"""
