"""Parked work: conversations waiting for their time, holding no worker slot.

A sorted set (`tw:parked`: member = conversation key, score = due Unix time). Waits far
longer than the broker's visibility timeout (AwalChat windows last up to an hour) live here
instead of in a Celery countdown. A `ParkedReleaser` thread in every worker process moves
due members back onto the Celery queue.

Parking an already parked member keeps the EARLIER due time (ZADD LT). A release that comes
too early is harmless: the drainer finds its action not due yet and parks it again. A
release that comes too late would delay every action behind it. `park(..., replace=True)`
sets the given time whatever was there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from worker.delivery.periodic import Periodic
from worker.storage import keys

log = logging.getLogger(__name__)

PARKED_KEY = keys.PARKED

# KEYS[1] parked zset, KEYS[2] queue list; ARGV: now, then member/message pairs.
# A member is released only if it is still parked and due, so a concurrent releaser (or a
# re-park with a later time) makes it skip: nothing is released twice, and a crash before
# or after the script leaves every member either parked or queued, never neither.
_RELEASE = """
local now = tonumber(ARGV[1])
local released = {}
for i = 2, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= now then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('LPUSH', KEYS[2], ARGV[i + 1])
    table.insert(released, ARGV[i])
  end
end
return released
"""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ParkingLot:
    """The parked set. Every method is one atomic Redis operation or script."""

    def __init__(self, redis_client: redis.Redis, *, key: str = PARKED_KEY) -> None:
        self._redis = redis_client
        self.key = key
        self._release = redis_client.register_script(_RELEASE)

    def park(self, member: str, due: float, *, replace: bool = False) -> None:
        """Park `member` until `due`; an earlier due time already set is kept unless
        `replace`."""
        if replace:
            self._redis.zadd(self.key, {member: due})
        else:
            self._redis.zadd(self.key, {member: due}, lt=True)

    def unpark(self, member: str) -> bool:
        """Remove `member`; True if it was parked."""
        return bool(self._redis.zrem(self.key, member))

    def due_time(self, member: str) -> float | None:
        """When `member` is due, or None if it is not parked."""
        score = self._redis.zscore(self.key, member)
        return None if score is None else float(score)

    def count(self) -> int:
        """How many members are parked."""
        return int(self._redis.zcard(self.key))

    def release_due(
        self,
        now: float,
        build_message: Callable[[str], str],
        queue: str = "celery",
        limit: int = 100,
    ) -> list[str]:
        """Move up to `limit` members due at `now` onto `queue` (LPUSH of
        `build_message(member)`), atomically; return the members released."""
        members = [
            _text(m) for m in self._redis.zrangebyscore(self.key, "-inf", now, start=0, num=limit)
        ]
        if not members:
            return []
        args: list[str] = [repr(float(now))]
        for member in members:
            args += [member, build_message(member)]
        released = self._release(keys=[self.key, queue], args=args)
        return [_text(m) for m in released]


class ParkedReleaser:
    """A daemon thread calling `release_due` every `interval` seconds until `stop()`.

    Errors (Redis down) are logged and retried at the next tick; a full batch is followed at once
    by the next one, so a backlog drains without waiting for the interval.
    """

    def __init__(
        self,
        lot: ParkingLot,
        build_message: Callable[[str], str],
        *,
        queue: str = "celery",
        interval: float = 0.5,
        limit: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lot = lot
        self._build = build_message
        self._queue = queue
        self._interval = interval
        self._limit = limit
        self._clock = clock
        self._periodic = Periodic("parked-releaser", interval, self.tick)

    def start(self) -> None:
        """Start the thread (once)."""
        self._periodic.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the thread to stop and wait up to `timeout` seconds for it."""
        self._periodic.stop(timeout)

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._periodic.running

    def tick(self) -> int:
        """Release everything due now (in batches); return how many were released."""
        total = 0
        while not self._periodic.stopping:
            released = self._lot.release_due(self._clock(), self._build, self._queue, self._limit)
            total += len(released)
            if len(released) < self._limit:
                break
        return total
