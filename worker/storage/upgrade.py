"""Give expiries to keys written before storage was bounded (earlier versions left some
without one): every worker runs `expire_legacy_keys` once at start, in the background.

    tw:state:d:*                      deleted (an event of no conversation keeps no state)
    tw:state:*, tw:inbox:*,           expire STATE_RETENTION from now
    tw:delivery:*, tw:decisions:conv:*

Only keys with no expiry are touched; it is idempotent, and cheap once nothing is left.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis

from worker.storage import keys

log = logging.getLogger(__name__)

_EXPIRE: tuple[str, ...] = (
    keys.state("*"),
    keys.inbox("*"),
    keys.delivery("*"),
    keys.conversation_log("*"),
)
_DELETE = keys.state("d:*")


def _scan(client: redis.Redis, pattern: str, batch: int) -> Iterator[list[bytes | str]]:
    cursor = 0
    while True:
        cursor, found = client.scan(cursor, match=pattern, count=batch)
        if found:
            yield list(found)
        if cursor == 0:
            return


def expire_legacy_keys(client: redis.Redis, *, retention: int, batch: int = 1000) -> int:
    """Delete or give an expiry to every listed key that has none; return how many."""
    changed = 0
    for pattern in (_DELETE, *_EXPIRE):
        for found in _scan(client, pattern, batch):
            pipe = client.pipeline(transaction=False)
            for key in found:
                pipe.ttl(key)
            ttls = pipe.execute()
            stale = [key for key, ttl in zip(found, ttls, strict=True) if ttl == -1]
            if not stale:
                continue
            pipe = client.pipeline(transaction=False)
            for key in stale:
                if pattern == _DELETE:
                    pipe.delete(key)
                else:
                    pipe.expire(key, retention, nx=True)
            pipe.execute()
            changed += len(stale)
    if changed:
        log.info("gave an expiry to %d keys written by an earlier version", changed)
    return changed
