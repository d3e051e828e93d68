"""The safety net: conversations with a backlog that no queued task, lock or parking covers.

A drain marks its conversation active (`tw:active`: member = conversation key, score = last
sign of life) and removes the mark when it leaves the inbox empty. A drain that died in a
way the broker does not redeliver (its task failed on a Redis error, say) leaves the mark
behind; `Recovery.sweep` finds marks older than `stale_after` seconds and, for those that are
neither locked nor parked and still have a backlog, queues a drain again. Lanes have the
same net (`tw:active:lanes`, `tw:lanelock:`, `tw:lane:`, `tw:parked:lanes`): a stale lane
with a backlog is pushed back onto `tw:ready:lanes` (the "message" is its member). Queuing a drain
that turns out not to be needed is harmless: drains are idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import redis

from worker.storage import keys

ACTIVE_KEY: Final = keys.ACTIVE
STALE_AFTER: Final = 90.0  # seconds; a worker passes 1.5 of its lock TTLs (60 s by default)

# KEYS[1] active zset, KEYS[2] parked zset, KEYS[3] queue; ARGV: now, then per member:
# member, its lock key, its inbox key, its drain message.
_SWEEP = """
local requeued = {}
local now = ARGV[1]
for i = 2, #ARGV, 4 do
  local member, lock, inbox, message = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('LLEN', inbox) == 0 then
    redis.call('ZREM', KEYS[1], member)
  elseif redis.call('EXISTS', lock) == 1 or redis.call('ZSCORE', KEYS[2], member) then
    redis.call('ZADD', KEYS[1], now, member)
  else
    redis.call('LPUSH', KEYS[3], message)
    redis.call('ZADD', KEYS[1], now, member)
    requeued[#requeued + 1] = member
  end
end
return requeued
"""


class Recovery:
    """Finds stale active conversations and queues a drain for each (see module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        lock_key: Callable[[str], str],
        inbox_key: Callable[[str], str],
        parked_key: str,
        queue: str,
        build_message: Callable[[str], str],
        stale_after: float = STALE_AFTER,
        active_key: str = ACTIVE_KEY,
    ) -> None:
        self._active_key = active_key
        self._redis = client
        self._lock_key = lock_key
        self._inbox_key = inbox_key
        self._parked_key = parked_key
        self._queue = queue
        self._build = build_message
        self._stale_after = stale_after
        self._sweep = client.register_script(_SWEEP)

    def sweep(self, now: float, limit: int = 100) -> list[str]:
        """Queue a drain for stale conversations nobody covers; return those requeued."""
        stale = self._redis.zrangebyscore(
            self._active_key, "-inf", now - self._stale_after, start=0, num=limit
        )
        if not stale:
            return []
        args: list[str] = [repr(now)]
        for raw in stale:
            member = raw.decode() if isinstance(raw, bytes) else str(raw)
            args += [member, self._lock_key(member), self._inbox_key(member), self._build(member)]
        requeued = self._sweep(keys=[self._active_key, self._parked_key, self._queue], args=args)
        return [m.decode() if isinstance(m, bytes) else str(m) for m in requeued]
