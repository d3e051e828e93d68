"""Completion records: an action with a recorded outcome is never carried out again.

One key per action, `tw:done:{delivery_id}:{rule}#{index}`, holding the outcome as JSON
for 30 days (longer than any redelivery, retry budget or sensible replay). `complete`
records it together with the conversation's new state in one Lua script, so a worker that
dies can leave both written or neither, never one without the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import redis

DONE_PREFIX = "tw:done:"
DONE_TTL = 30 * 86400

# KEYS[1] completion record, KEYS[2] state key (optional); ARGV: outcome, ttl, state json.
_COMPLETE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
if KEYS[2] then redis.call('SET', KEYS[2], ARGV[3], 'KEEPTTL') end
return 1
"""


def idempotency_key(delivery_id: str, rule: str, index: int) -> str:
    """The key of action `index` planned by `rule` for a delivery: `{delivery}:{rule}#{index}`."""
    return f"{delivery_id}:{rule}#{index}"


class IdempotencyStore:
    """Completion records in Redis, keyed by `idempotency_key(...)`."""

    def __init__(
        self, redis_client: redis.Redis, *, prefix: str = DONE_PREFIX, ttl: int = DONE_TTL
    ) -> None:
        self._redis = redis_client
        self._prefix = prefix
        self._ttl = ttl
        self._complete = redis_client.register_script(_COMPLETE)

    def redis_key(self, key: str) -> str:
        """The Redis key holding the record of `key`."""
        return self._prefix + key

    def is_done(self, key: str) -> bool:
        """True once `complete(key, ...)` has succeeded (and for 30 days after)."""
        return bool(self._redis.exists(self.redis_key(key)))

    def outcome(self, key: str) -> dict[str, object] | None:
        """The recorded outcome, or None when the action is not done."""
        raw = self._redis.get(self.redis_key(key))
        if raw is None:
            return None
        value: dict[str, object] = json.loads(raw)
        return value

    def complete(
        self,
        key: str,
        outcome: Mapping[str, object],
        state_key: str | None = None,
        state_json: str | None = None,
    ) -> bool:
        """Record `outcome` (JSON-serialisable) for `key` and, in the same atomic step, SET
        `state_key` to `state_json` (its TTL, if any, kept). False, writing nothing, when
        `key` was already completed."""
        if (state_key is None) != (state_json is None):
            raise ValueError("state_key and state_json go together")
        keys = [self.redis_key(key)] + ([state_key] if state_key is not None else [])
        args = [json.dumps(dict(outcome), separators=(",", ":")), str(self._ttl), state_json or ""]
        return bool(self._complete(keys=keys, args=args))
