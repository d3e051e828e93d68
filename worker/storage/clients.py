"""Redis clients with bounded timeouts and retries: a dead or hung Redis fails fast, and a
Sentinel failover is followed.

    async_redis(target)   the receiver's asyncio client: every command fails within about
                          2 x timeout + 0.1 s (1.1 s by default) when Redis is down, refusing
                          connections or accepting them and never answering
    sync_redis(target)    workers and commands: (retries + 1) x timeout, 4 s by default

A target is `REDIS_URL` (`redis://...`), or Sentinel: `sentinel://h1:26379;sentinel://h2:26379`
(interface.md) with `REDIS_SENTINEL_MASTER` naming the monitored master. With Sentinel, every
client asks the sentinels for the master and asks again after a connection error, so a
failover is followed without a restart; the Celery broker does the same through kombu's
sentinel transport (`broker_options`).

No client runs a health-check PING inside a command attempt: it retried on its own, so a
hung Redis took far longer to fail (87 s for the old worker client); a dead pooled
connection fails its command and the retry reconnects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from worker.errors import ConfigError

SENTINEL_SCHEME = "sentinel://"


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: a URL, or sentinels and the name of the master they monitor."""

    url: str
    sentinel_master: str | None = None

    def __post_init__(self) -> None:
        if self.is_sentinel and not self.sentinel_master:
            raise ConfigError(
                "REDIS_SENTINEL_MASTER is not set: REDIS_URL names sentinels (sentinel://...)"
            )
        if self.is_sentinel:
            self.sentinels()  # refuse a malformed list now, named

    @property
    def is_sentinel(self) -> bool:
        return self.url.startswith(SENTINEL_SCHEME)

    def sentinels(self) -> list[tuple[str, int]]:
        """The (host, port) of each sentinel of a `sentinel://h:p;sentinel://h:p` URL."""
        found = []
        for part in self.url.split(";"):
            parts = urlsplit(part.strip())
            if parts.scheme != "sentinel" or not parts.hostname:
                raise ConfigError("REDIS_URL: expected sentinel://host:port;sentinel://host:port")
            found.append((parts.hostname, parts.port or 26379))
        return found

    def _auth(self) -> dict[str, Any]:
        """Password and database of the master, from the first sentinel URL."""
        parts = urlsplit(self.url.split(";")[0].strip())
        options: dict[str, Any] = {}
        if parts.password:
            options["password"] = unquote(parts.password)
        if parts.path.strip("/").isdigit():
            options["db"] = int(parts.path.strip("/"))
        return options

    def broker_options(self) -> dict[str, Any]:
        """kombu transport options for this target (the master's name with Sentinel)."""
        return {"master_name": self.sentinel_master} if self.is_sentinel else {}


def as_target(target: RedisTarget | str) -> RedisTarget:
    return target if isinstance(target, RedisTarget) else RedisTarget(target)


def async_redis(target: RedisTarget | str, *, timeout: float = 0.5) -> redis.asyncio.Redis:
    """An asyncio client: one retry after a short backoff, each attempt bounded by
    `timeout` (connecting, or waiting for an answer)."""
    target = as_target(target)
    options: dict[str, Any] = {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "retry": AsyncRetry(ExponentialBackoff(cap=0.1, base=0.05), 1),
    }
    if not target.is_sentinel:
        return redis.asyncio.Redis.from_url(target.url, **options)
    sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        target.sentinels(),
        sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
    )
    assert target.sentinel_master is not None
    master = sentinel.master_for(target.sentinel_master, **options, **target._auth())
    return cast(redis.asyncio.Redis, master)


def sync_redis(target: RedisTarget | str, *, timeout: float = 2.0, retries: int = 1) -> redis.Redis:
    """A client whose command waits up to `timeout` per attempt and is retried `retries`
    times after a short backoff: about (retries + 1) x timeout against a hung Redis; 0.5 s
    with `timeout=0.5, retries=0` (the receiver's rules client)."""
    target = as_target(target)
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": min(timeout, 2),
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.1), retries),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
    }
    if not target.is_sentinel:
        return redis.Redis.from_url(target.url, **options)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        target.sentinels(),
        sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": min(timeout, 2)},
    )
    assert target.sentinel_master is not None
    master = sentinel.master_for(target.sentinel_master, **options, **target._auth())  # type: ignore[no-untyped-call]
    return cast(redis.Redis, master)
