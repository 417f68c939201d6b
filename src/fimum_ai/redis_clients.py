"""asyncio Redis clients, made one way: with a bounded connect and disconnect.

redis-py's asyncio connection waits for its socket to close (`StreamWriter.wait_closed`) with no
limit unless `socket_connect_timeout` is set; closing a pub/sub connection whose read was just
cancelled can wait there forever (redis/redis-py#3941), which hung an app's shutdown for minutes
in the test suite. With the timeout a stuck close gives up after a few seconds.
"""

from __future__ import annotations

import redis.asyncio

CONNECT_TIMEOUT_S = 5.0


def async_redis(url: str) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S)
