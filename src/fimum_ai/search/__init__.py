"""Web search: crawler (search.crawler) and hybrid index (see docs/search.md)."""
