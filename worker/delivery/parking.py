"""Parked work: members waiting for their time, holding no worker slot.

A sorted set of members with their due Unix time as score, and a `ParkedReleaser` thread in
every worker process that moves due members, atomically, onto the Celery queue. Two sets use
it:

- `tw:parked`: conversations whose next action must wait (rate budget, retry backoff; AWALCHAT
  windows last up to an hour): released as ready conversations (`tw:ready`, see
  worker.storage.drains);
- `tw:timers`: waits of rules with `after:` (`worker.storage.timers`): released as an item
  in the conversation's inbox (`Release.inbox`, the item ends with the due time in ms) and
  the conversation made ready, in one script, so a wait takes its place in the
  conversation's order. Ten thousand waits due in the same second cost the broker a few
  wake messages, not ten thousand.

The releaser sleeps until the earliest due member (at most its interval): work parked until
a rate window's end is released at that end, not up to an interval later.

Waits far longer than the broker's visibility timeout live here instead of in a Celery
countdown.

Parking an already parked member keeps the EARLIER due time (ZADD LT). A release that comes
too early is harmless: the drainer finds its action not due yet and parks it again. A
release that comes too late would delay every action behind it. `park(..., replace=True)`
sets the given time whatever was there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from worker.delivery.periodic import Periodic
from worker.storage import keys
from worker.storage.wire import wake_message

log = logging.getLogger(__name__)

PARKED_KEY = keys.PARKED

# KEYS: the zset, the queue list, tw:ready, tw:wakes. ARGV: now, the inboxes' TTL, a wake
# message, the wake limit, the wakes' TTL, then per member: member, message ('' for none),
# inbox key ('' for none), inbox item prefix, conversation to make ready ('' for none).
# A member is released only if it is still there and due, so a concurrent releaser (or a
# re-park with a later time) makes it skip: nothing is released twice, and a crash before
# or after the script leaves every member either waiting or queued, never neither.
# Conversations made ready share one wake message (while fewer than the limit wait): the
# drain it wakes takes them one after another and wakes more threads while work is left.
_RELEASE = """
local now = tonumber(ARGV[1])
local released = {}
local ready = false
for i = 6, #ARGV, 5 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= now then
    redis.call('ZREM', KEYS[1], ARGV[i])
    if ARGV[i + 2] ~= '' then
      redis.call('RPUSH', ARGV[i + 2], ARGV[i + 3] .. string.format('%.0f', tonumber(score) * 1000))
      redis.call('EXPIRE', ARGV[i + 2], ARGV[2])
    end
    if ARGV[i + 1] ~= '' then redis.call('LPUSH', KEYS[2], ARGV[i + 1]) end
    if ARGV[i + 4] ~= '' then
      redis.call('RPUSH', KEYS[3], ARGV[i + 4])
      ready = true
    end
    table.insert(released, ARGV[i])
  end
end
if ready and tonumber(redis.call('GET', KEYS[4]) or '0') < tonumber(ARGV[4]) then
  redis.call('INCR', KEYS[4])
  redis.call('EXPIRE', KEYS[4], ARGV[5])
  redis.call('LPUSH', KEYS[2], ARGV[3])
end
return released
"""

WAKE_LIMIT = 4


@dataclass(frozen=True)
class Release:
    """What releasing a member does: when `inbox` is set, RPUSH `item` + the member's due
    time in ms onto that inbox list; then LPUSH `message` on the queue (when set) and make
    the conversation `ready` (when set: RPUSH on tw:ready, with a wake message)."""

    message: str = ""
    inbox: str = ""
    item: str = ""
    ready: str = ""


def ready(conversation: str) -> Release:
    """Release a parked conversation as ready for any drain (tw:ready)."""
    return Release(ready=conversation)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ParkingLot:
    """The parked set. Every method is one atomic Redis operation or script."""

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        key: str = PARKED_KEY,
        inbox_ttl: int = keys.DEFAULT_STATE_RETENTION,
    ) -> None:
        self._redis = redis_client
        self.key = key
        self._inbox_ttl = inbox_ttl
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

    def next_due(self) -> float | None:
        """The earliest due time of any member, or None when nothing is parked."""
        first = self._redis.zrange(self.key, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    def count(self) -> int:
        """How many members are parked."""
        return int(self._redis.zcard(self.key))

    def release_due(
        self,
        now: float,
        build: Callable[[str], Release | str],
        queue: str = keys.CELERY_QUEUE,
        limit: int = 100,
    ) -> list[str]:
        """Release up to `limit` members due at `now`, atomically, as `build(member)` says
        (a plain string: that message on `queue`); return the members released."""
        members = [
            _text(m) for m in self._redis.zrangebyscore(self.key, "-inf", now, start=0, num=limit)
        ]
        if not members:
            return []
        args: list[str | int] = [
            repr(float(now)),
            self._inbox_ttl,
            wake_message(),
            WAKE_LIMIT,
            keys.WAKES_TTL,
        ]
        for member in members:
            release = build(member)
            if isinstance(release, str):
                release = Release(release)
            args += [member, release.message, release.inbox, release.item, release.ready]
        released = self._release(keys=[self.key, queue, keys.READY, keys.WAKES], args=args)
        return [_text(m) for m in released]


class ParkedReleaser:
    """A daemon thread calling `release_due` every `interval` seconds until `stop()`.

    Errors (Redis down) are logged and retried at the next tick; a full batch is followed at once
    by the next one, so a backlog drains without waiting for the interval.
    """

    def __init__(
        self,
        lot: ParkingLot,
        build_message: Callable[[str], Release | str],
        *,
        queue: str = keys.CELERY_QUEUE,
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
        self._periodic = Periodic(
            f"releaser-{lot.key}", interval, self.tick, next_delay=self._until_next_due
        )

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

    def _until_next_due(self) -> float:
        due = self._lot.next_due()
        return self._interval if due is None else due - self._clock()

    def tick(self) -> int:
        """Release everything due now (in batches); return how many were released."""
        total = 0
        while not self._periodic.stopping:
            released = self._lot.release_due(self._clock(), self._build, self._queue, self._limit)
            total += len(released)
            if len(released) < self._limit:
                break
        return total
