"""The worker's Redis records: deliveries, per-conversation inboxes, locks and state.

Key names and their expiries live in `worker.storage.keys`; the receiver's
`worker.storage.inbox` writes a delivery, its inbox entry and its Celery message. Here:

    tw:delivery:{id}     hash  raw, received_at, dry_run, conversation,
                               decision (JSON, written once), state_before (JSON),
                               done:{rule#i} (JSON outcome), attempts:{rule#i} (JSON list)
    tw:inbox:{conv}      list  delivery ids in arrival order
    tw:state:{conv}      str   ConversationState JSON (tw:dry:state:{conv}: the dry-run view)
    tw:lock:{conv}       str   the token of the one process draining the conversation
    tw:decisions[:conv:{conv}]  the decision log: a stream (decision_index), id lists

Retention: a conversation's state, inbox, per-conversation log and delivery records expire
`retention` seconds (STATE_RETENTION) after its last event. A conversation keeps at most
DECISION_LOG_CONV_LIMIT decided records: the one pushed out of its log is deleted. An event
of no conversation writes no state, and once it is finished its record is kept
QUIET_RECORD_TTL only (its body is kept only when a rule listened to it).
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import redis

from worker.engine.decision import Decision
from worker.engine.model import ConversationState
from worker.storage import keys, timers
from worker.storage.decision_index import newest_ids
from worker.storage.keys import View
from worker.storage.records import DeliveryRecord, compact, parse_record, stored_form

# Store the decision once; a second caller gets the first decision back. The global log
# (KEYS[3], a stream capped near ARGV[5]; an old list log is moved to KEYS[6] for the
# upgrade) gets id, conversation, event, rules (ARGV[10..12]). With a conversation (KEYS[2]):
# its state (TTL ARGV[9]), waits (KEYS[5]: ARGV[13] adds with scores, then removals), and
# its log, whose record pushed out is deleted.
_STORE_DECISION = """
local existing = redis.call('HGET', KEYS[1], 'decision')
if existing then return existing end
redis.call('HSET', KEYS[1], 'decision', ARGV[1])
local retention = tonumber(ARGV[7])
if redis.call('TYPE', KEYS[3]).ok == 'list' then redis.call('RENAME', KEYS[3], KEYS[6]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*',
           'd', ARGV[4], 'c', ARGV[10], 'e', ARGV[11], 'r', ARGV[12])
if KEYS[2] ~= '' then
  redis.call('HSET', KEYS[1], 'state_before', ARGV[2])
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[9])
  local adds = tonumber(ARGV[13])
  for i = 14, 13 + 2 * adds, 2 do redis.call('ZADD', KEYS[5], ARGV[i + 1], ARGV[i]) end
  for i = 14 + 2 * adds, #ARGV do redis.call('ZREM', KEYS[5], ARGV[i]) end
  redis.call('LPUSH', KEYS[4], ARGV[4])
  local limit = tonumber(ARGV[6])
  local gone = redis.call('LRANGE', KEYS[4], limit, -1)
  for _, id in ipairs(gone) do redis.call('DEL', ARGV[8] .. id) end
  redis.call('LTRIM', KEYS[4], 0, limit - 1)
  redis.call('EXPIRE', KEYS[4], retention)
end
return false
"""

# Record an action's outcome once, together with the conversation state it leads to.
_COMPLETE_ACTION = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4]) end
return 1
"""

_CREATE_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'raw', ARGV[1], 'received_at', ARGV[2], 'dry_run', ARGV[3],
           'conversation', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_EXTEND_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Pop the head if it is ARGV[1]; an inbox left empty is no longer active (KEYS[2]). The
# finished delivery (KEYS[3]) keeps what the decision log needs for as long as it needs it:
# ARGV[3] is its new TTL ('' keeps the one it has), ARGV[4..] fields to drop.
_POP_HEAD = """
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then return false end
redis.call('LPOP', KEYS[1])
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[2]) end
if #ARGV > 3 then redis.call('HDEL', KEYS[3], unpack(ARGV, 4)) end
if ARGV[3] ~= '' then redis.call('EXPIRE', KEYS[3], ARGV[3]) end
return 1
"""


class ConversationStore:
    """Typed access to the worker's Redis records (module docstring); `retention` is
    STATE_RETENTION in seconds."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        retention: int = keys.DEFAULT_STATE_RETENTION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        self._retention = retention
        self._clock = clock
        self._store_decision = client.register_script(_STORE_DECISION)
        self._complete = client.register_script(_COMPLETE_ACTION)
        self._release = client.register_script(_RELEASE_LOCK)
        self._extend = client.register_script(_EXTEND_LOCK)
        self._pop_head = client.register_script(_POP_HEAD)
        self._create = client.register_script(_CREATE_RECORD)

    @property
    def client(self) -> redis.Redis:
        """The Redis client the store uses."""
        return self._redis

    def state_ttl(self, state: ConversationState) -> int:
        """How long a state is kept: STATE_RETENTION, or longer while a wait is pending (an
        hour past its due time: its conversation must still be there when it comes due)."""
        if not state.waits:
            return self._retention
        last_due = max(wait.due.timestamp() for wait in state.waits.values())
        return max(self._retention, math.ceil(last_due - self._clock()) + 3600)

    # locks -----------------------------------------------------------------
    def acquire(self, conversation: str, ttl_ms: int) -> str | None:
        """Take the conversation's lock; return its token, or None when someone holds it."""
        token = secrets.token_hex(8)
        ok = self._redis.set(keys.lock(conversation), token, nx=True, px=ttl_ms)
        return token if ok else None

    def extend(self, conversation: str, token: str, ttl_ms: int) -> bool:
        """Push the lock's expiry out; False when the lock was lost."""
        return bool(self._extend(keys=[keys.lock(conversation)], args=[token, ttl_ms]))

    def release(self, conversation: str, token: str) -> None:
        self._release(keys=[keys.lock(conversation)], args=[token])

    # inbox -----------------------------------------------------------------
    def head(self, conversation: str) -> str | None:
        value = cast(bytes | None, self._redis.lindex(keys.inbox(conversation), 0))
        return value.decode() if value is not None else None

    def pop_head(
        self, conversation: str, item: str, *, has_conversation: bool = True, quiet: bool = False
    ) -> None:
        """Remove the finished `item` from the inbox's head (nothing if the head is something
        else), and keep of its record what the decision log needs, as long as it needs it:
        an event of no conversation QUIET_RECORD_TTL, without its body when `quiet` (no rule
        listened to it)."""
        ttl = "" if has_conversation else str(keys.QUIET_RECORD_TTL)
        drop = ["raw"] if quiet and not has_conversation else []
        self._pop_head(
            keys=[keys.inbox(conversation), keys.ACTIVE, keys.delivery(item)],
            args=[item, conversation, ttl, *drop],
        )

    def mark_active(self, conversation: str, now: float) -> None:
        """A drain works on the conversation (see worker.delivery.recovery)."""
        self._redis.zadd(keys.ACTIVE, {conversation: now})

    def backlog(self, conversation: str) -> int:
        return int(self._redis.llen(keys.inbox(conversation)))

    # deliveries ------------------------------------------------------------
    def create_record(
        self,
        delivery_id: str,
        *,
        raw: bytes,
        received_at: float,
        conversation: str,
        dry_run: bool,
    ) -> None:
        """Store a delivery the worker makes itself (a wait coming due), as the receiver
        stores a webhook's; kept STATE_RETENTION. An existing record is left as it is."""
        key = keys.delivery(delivery_id)
        self._create(
            keys=[key],
            args=[raw, repr(received_at), "1" if dry_run else "0", conversation, self._retention],
        )

    def exists(self, conversation: str, view: View = "live") -> bool:
        """Does the conversation's state exist (it expires STATE_RETENTION after its last)?"""
        return bool(self._redis.exists(keys.state(conversation, view)))

    def load(self, delivery_id: str) -> DeliveryRecord | None:
        fields = cast(dict[bytes, bytes], self._redis.hgetall(keys.delivery(delivery_id)))
        if not fields:
            return None
        return parse_record(delivery_id, fields)

    def store_decision(
        self,
        record: DeliveryRecord,
        decision: Decision,
        state_before: ConversationState,
    ) -> Decision:
        """Store the decision and, for an event of a conversation, the state it projects
        (in the record's view), unless a decision was stored before.

        Returns the decision that holds: the stored one when a decision already existed.
        """
        conversation = decision.conversation_id is not None
        after = decision.state_after
        added, removed = timers.changes(
            record.view, record.conversation, state_before.waits, after.waits
        )
        existing = self._store_decision(
            keys=[
                keys.delivery(record.delivery_id),
                keys.state(record.conversation, record.view) if conversation else "",
                keys.DECISIONS,
                keys.conversation_log(record.conversation) if conversation else "",
                keys.TIMERS,
                keys.LEGACY_DECISIONS,
            ],
            args=[
                compact(stored_form(decision)),
                compact(state_before.to_json()),
                compact(after.to_json()),
                record.delivery_id,
                keys.DECISION_LOG_LIMIT,
                keys.DECISION_LOG_CONV_LIMIT,
                self._retention,
                keys.delivery(""),
                self.state_ttl(after),
                decision.conversation_id or "",
                decision.event,
                ",".join(decision.matched_rules),
                len(added),
                *(part for pair in added.items() for part in (pair[0], repr(pair[1]))),
                *removed,
            ],
        )
        if existing:
            return Decision.from_json(json.loads(existing))
        return decision

    def complete(
        self,
        record: DeliveryRecord,
        action_key: str,
        outcome: Mapping[str, Any],
        *,
        state: ConversationState | None,
    ) -> bool:
        """Record an action's outcome and the state it leads to, atomically, once."""
        state_json = compact(state.to_json()) if state is not None else ""
        return bool(
            self._complete(
                keys=[
                    keys.delivery(record.delivery_id),
                    keys.state(record.conversation, record.view),
                ],
                args=[
                    f"done:{action_key}",
                    compact(dict(outcome)),
                    state_json,
                    self.state_ttl(state) if state is not None else self._retention,
                ],
            )
        )

    def record_attempts(
        self, delivery_id: str, action_key: str, attempts: list[dict[str, Any]]
    ) -> None:
        self._redis.hset(keys.delivery(delivery_id), f"attempts:{action_key}", compact(attempts))

    # state -----------------------------------------------------------------
    def state(self, conversation: str, view: View = "live") -> ConversationState:
        raw = cast(bytes | None, self._redis.get(keys.state(conversation, view)))
        if raw is None:
            return ConversationState()
        return ConversationState.from_json(json.loads(raw))

    def recent_deliveries(self, *, conversation: str | None, limit: int) -> list[str]:
        if conversation is None:
            return newest_ids(self._redis, limit)
        ids = self._redis.lrange(keys.conversation_log(conversation), 0, limit - 1)
        return [v.decode() for v in cast(list[bytes], ids)]
