"""What the crawler remembers between crawls besides the index: each page's outgoing links.

A recrawl asks conditionally, and a 304 Not Modified (or a sitemap `lastmod` older than the stored
copy) comes without a body, yet the pages it links to must still be visited. So the links of every
parsed page are kept here: SQLite under the data folder for one crawler process, Redis for crawler
processes sharing a frontier.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol


class LinkMemory(Protocol):
    def remember(self, url: str, links: list[str]) -> None: ...

    def recall(self, url: str) -> list[str]: ...

    def close(self) -> None: ...


class SqliteLinkMemory:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS links (url TEXT PRIMARY KEY, links TEXT NOT NULL)")
        self._lock = threading.Lock()

    def remember(self, url: str, links: list[str]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO links VALUES (?, ?)", (url, json.dumps(links)))

    def recall(self, url: str) -> list[str]:
        with self._lock:
            row = self._db.execute("SELECT links FROM links WHERE url = ?", (url,)).fetchone()
        return list(json.loads(row[0])) if row else []

    def close(self) -> None:
        self._db.close()


class RedisLinkMemory:
    """One hash, `{prefix}crawler:links`: url -> JSON list."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.key = f"{prefix}crawler:links"

    def remember(self, url: str, links: list[str]) -> None:
        self.client.hset(self.key, url, json.dumps(links))

    def recall(self, url: str) -> list[str]:
        raw = self.client.hget(self.key, url)
        return list(json.loads(raw)) if raw else []

    def close(self) -> None:
        self.client.close()
