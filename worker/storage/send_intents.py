"""Intents to send a create that is not idempotent (HelpWave tickets and comments).

    tw:delivery:{id}   hash field  sending:{rule#i} = the Unix time the create was about to go

Right before such a create's POST the worker marks the intent in the delivery's hash (HSETNX)
and, when replicas are connected, waits (WAIT, bounded) for one of them to hold it, on the
same connection as the write. The intent is cleared when the create definitely did not
happen (throttled before sending, refused, a 4xx/5xx answer, a connection never made); it
stays when the create succeeded (its outcome, recorded with `done:`, is what counts) or may
have happened (no answer after sending: dead-lettered at once).

A redo of the action that finds an intent and no outcome cannot tell whether the create
happened: a worker was killed between the POST and recording its outcome, or a Redis
failover lost the outcome but not the intent, which a replica had confirmed. HelpWave
offers no way to look a create up, so the redo dead-letters the action instead of creating
twice (`worker.processing.action_runner`).

Without any replica connected (a single Redis, or a master just after a failover) the
intent is marked without waiting: it still protects against a killed worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum
from typing import Final

import redis

from worker.storage import keys

log = logging.getLogger(__name__)

REPLICA_WAIT_MS: Final = 200  # how long a mark waits for a replica to hold it
REPLICA_CHECK_SECONDS: Final = 2.0  # how often the connected replicas are counted


class Mark(Enum):
    """What marking an intent found."""

    MARKED = "marked"  # new, and held by a replica when one is connected: send
    FOUND = "found"  # an earlier attempt marked it and recorded no outcome: ambiguous
    UNCONFIRMED = "unconfirmed"  # no replica confirmed in time: cleared, do not send yet


def field(action_key: str) -> str:
    """The delivery hash field holding the intent of `action_key`."""
    return f"sending:{action_key}"


class SendIntents:
    """Marks and clears send intents in delivery hashes (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        replicas: int = 1,
        wait_ms: int = REPLICA_WAIT_MS,
        connected_replicas: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = client
        self._replicas = replicas
        self._wait_ms = wait_ms
        self._count = connected_replicas or self._count_connected
        self._clock = clock
        self._connected = 0
        self._counted_at = float("-inf")

    def mark(self, delivery_id: str, action_key: str, now: float) -> Mark:
        """Mark the intent to send `action_key` of `delivery_id` (see `Mark`)."""
        wanted = min(self._replicas, self._replicas_connected())
        pipe = self._redis.pipeline(transaction=False)
        pipe.hsetnx(keys.delivery(delivery_id), field(action_key), repr(now))
        if wanted:
            pipe.wait(wanted, self._wait_ms)
        results = pipe.execute()
        if not results[0]:
            return Mark.FOUND
        if wanted and int(results[1]) < wanted:
            log.warning(
                "send intent not confirmed by a replica in time",
                extra={"delivery_id": delivery_id, "action_key": action_key},
            )
            self.clear(delivery_id, action_key)
            return Mark.UNCONFIRMED
        return Mark.MARKED

    def clear(self, delivery_id: str, action_key: str) -> None:
        """Forget the intent: the create definitely did not happen."""
        self._redis.hdel(keys.delivery(delivery_id), field(action_key))

    def _replicas_connected(self) -> int:
        if not self._replicas:
            return 0
        now = self._clock()
        if now - self._counted_at > REPLICA_CHECK_SECONDS:
            self._connected = self._count()
            self._counted_at = now
        return self._connected

    def _count_connected(self) -> int:
        try:
            info = self._redis.info("replication")
        except redis.ResponseError:  # INFO disabled (some managed Redis): no replica known
            return 0
        return int(info.get("connected_slaves", 0))
