"""Redis clients with bounded timeouts and retries: a dead or hung Redis fails fast.

    async_redis(url)   the receiver's asyncio client: every command fails within about
                       2 x timeout + 0.1 s (1.1 s by default) when Redis is down, refusing
                       connections or accepting them and never answering
    sync_redis(url)    workers and commands: (retries + 1) x timeout, 4 s by default

No client runs a health-check PING inside a command attempt: it retried on its own, so a
hung Redis took far longer to fail (87 s for the old worker client); a dead pooled
connection fails its command and the retry reconnects.
"""

from __future__ import annotations

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry


def async_redis(url: str, *, timeout: float = 0.5) -> redis.asyncio.Redis:
    """An asyncio client: one retry after a short backoff, each attempt bounded by
    `timeout` (connecting, or waiting for an answer)."""
    return redis.asyncio.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=AsyncRetry(ExponentialBackoff(cap=0.1, base=0.05), 1),
    )


def sync_redis(url: str, *, timeout: float = 2.0, retries: int = 1) -> redis.Redis:
    """A client whose command waits up to `timeout` per attempt and is retried `retries`
    times after a short backoff: about (retries + 1) x timeout against a hung Redis; 0.5 s
    with `timeout=0.5, retries=0` (the receiver's rules client)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 2),
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.1), retries),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )
