"""The worker's Redis records: deliveries, per-conversation inboxes, locks and state.

Key layout (prefix `tw:`; the receiver's `worker.inbox` writes the first three):

    tw:delivery:{id}     hash  raw, received_at, dry_run, conversation,
                               decision (JSON, written once), state_before (JSON),
                               done:{rule#i} (JSON outcome), attempts:{rule#i} (JSON list)
    tw:inbox:{conv}      list  delivery ids (or "r:{dlq id}" replays) in arrival order
    tw:state:{conv}      str   ConversationState JSON
    tw:lock:{conv}       str   the token of the one process draining the conversation
    tw:decisions         list  newest delivery ids first (bounded: the decision log)
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

import redis

from worker.delivery.recovery import ACTIVE_KEY
from worker.engine.model import ConversationState, Decision

PREFIX: Final = "tw:"
DECISION_LOG_KEY: Final = f"{PREFIX}decisions"
DECISION_LOG_CONV_PREFIX: Final = f"{PREFIX}decisions:conv:"
DECISION_LOG_LIMIT: Final = 10_000
DECISION_LOG_CONV_LIMIT: Final = 200
DELIVERY_TTL: Final = 7 * 24 * 3600


def delivery_key(delivery_id: str) -> str:
    return f"{PREFIX}delivery:{delivery_id}"


def inbox_key(conversation: str) -> str:
    return f"{PREFIX}inbox:{conversation}"


def state_key(conversation: str) -> str:
    return f"{PREFIX}state:{conversation}"


def lock_key(conversation: str) -> str:
    return f"{PREFIX}lock:{conversation}"


@dataclass(frozen=True)
class DeliveryRecord:
    """One accepted webhook as stored by the receiver, plus what the worker added."""

    delivery_id: str
    raw: bytes
    received_at: float
    dry_run: bool
    conversation: str
    decision: Decision | None
    state_before: ConversationState | None
    done: Mapping[str, Mapping[str, Any]]
    attempts: Mapping[str, list[dict[str, Any]]]


def _decode(value: bytes | None) -> str:
    return value.decode() if value is not None else ""


def parse_record(delivery_id: str, fields: Mapping[bytes, bytes]) -> DeliveryRecord:
    """A delivery record from its Redis hash fields."""
    done: dict[str, Mapping[str, Any]] = {}
    attempts: dict[str, list[dict[str, Any]]] = {}
    for name, value in fields.items():
        text = name.decode()
        if text.startswith("done:"):
            done[text[5:]] = json.loads(value)
        elif text.startswith("attempts:"):
            attempts[text[9:]] = json.loads(value)
    decision = fields.get(b"decision")
    before = fields.get(b"state_before")
    return DeliveryRecord(
        delivery_id=delivery_id,
        raw=fields.get(b"raw", b""),
        received_at=float(_decode(fields.get(b"received_at")) or 0.0),
        dry_run=fields.get(b"dry_run") == b"1",
        conversation=_decode(fields.get(b"conversation")),
        decision=Decision.from_json(json.loads(decision)) if decision else None,
        state_before=ConversationState.from_json(json.loads(before)) if before else None,
        done=done,
        attempts=attempts,
    )


# Store the decision once; a second caller gets the first decision back.
_STORE_DECISION = """
local existing = redis.call('HGET', KEYS[1], 'decision')
if existing then return existing end
redis.call('HSET', KEYS[1], 'decision', ARGV[1], 'state_before', ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
redis.call('LPUSH', KEYS[3], ARGV[4])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
if KEYS[4] ~= '' then
  redis.call('LPUSH', KEYS[4], ARGV[4])
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[6]) - 1)
  redis.call('EXPIRE', KEYS[4], 604800)
end
return false
"""

# Record an action's outcome once, together with the conversation state it leads to.
_COMPLETE_ACTION = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3]) end
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

# Pop the head if it is ARGV[1]; an inbox left empty is no longer active (KEYS[2]).
_POP_HEAD = """
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then return false end
redis.call('LPOP', KEYS[1])
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[2]) end
return 1
"""


def stored_form(decision: Decision) -> dict[str, Any]:
    """The decision as the delivery keeps it: rules that do not listen to the event are left
    out (their reason says only that), so a big ruleset does not bloat every record."""
    data = decision.to_json()
    data["outcomes"] = [o for o in data["outcomes"] if o["status"] != "not_for_event"]
    return data


class ConversationStore:
    """Typed access to the worker's Redis records (see the module docstring)."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._store_decision = client.register_script(_STORE_DECISION)
        self._complete = client.register_script(_COMPLETE_ACTION)
        self._release = client.register_script(_RELEASE_LOCK)
        self._extend = client.register_script(_EXTEND_LOCK)
        self._pop_head = client.register_script(_POP_HEAD)

    # locks -----------------------------------------------------------------
    def acquire(self, conversation: str, ttl_ms: int) -> str | None:
        """Take the conversation's lock; return its token, or None when someone holds it."""
        token = secrets.token_hex(8)
        ok = self._redis.set(lock_key(conversation), token, nx=True, px=ttl_ms)
        return token if ok else None

    def extend(self, conversation: str, token: str, ttl_ms: int) -> bool:
        """Push the lock's expiry out; False when the lock was lost."""
        return bool(self._extend(keys=[lock_key(conversation)], args=[token, ttl_ms]))

    def release(self, conversation: str, token: str) -> None:
        self._release(keys=[lock_key(conversation)], args=[token])

    # inbox -----------------------------------------------------------------
    def head(self, conversation: str) -> str | None:
        value = cast(bytes | None, self._redis.lindex(inbox_key(conversation), 0))
        return value.decode() if value is not None else None

    def pop_head(self, conversation: str, item: str) -> None:
        """Remove `item` from the inbox's head (nothing if the head is something else)."""
        self._pop_head(keys=[inbox_key(conversation), ACTIVE_KEY], args=[item, conversation])

    def mark_active(self, conversation: str, now: float) -> None:
        """A drain works on the conversation (see worker.delivery.recovery)."""
        self._redis.zadd(ACTIVE_KEY, {conversation: now})

    def backlog(self, conversation: str) -> int:
        return int(self._redis.llen(inbox_key(conversation)))

    def push_inbox(self, conversation: str, item: str) -> None:
        self._redis.rpush(inbox_key(conversation), item)

    # deliveries ------------------------------------------------------------
    def load(self, delivery_id: str) -> DeliveryRecord | None:
        fields = cast(dict[bytes, bytes], self._redis.hgetall(delivery_key(delivery_id)))
        if not fields:
            return None
        return parse_record(delivery_id, fields)

    def store_decision(
        self,
        record: DeliveryRecord,
        decision: Decision,
        state_before: ConversationState,
    ) -> Decision:
        """Store the decision and the projected state, unless one was stored before.

        Returns the decision that holds: the stored one when a decision already existed.
        """
        conv_log = (
            DECISION_LOG_CONV_PREFIX + record.conversation if decision.conversation_id else ""
        )
        existing = self._store_decision(
            keys=[
                delivery_key(record.delivery_id),
                state_key(record.conversation),
                DECISION_LOG_KEY,
                conv_log,
            ],
            args=[
                json.dumps(stored_form(decision)),
                json.dumps(state_before.to_json()),
                json.dumps(decision.state_after.to_json()),
                record.delivery_id,
                DECISION_LOG_LIMIT,
                DECISION_LOG_CONV_LIMIT,
            ],
        )
        if existing:
            return Decision.from_json(json.loads(existing))
        return decision

    def complete(
        self,
        delivery_id: str,
        action_key: str,
        outcome: Mapping[str, Any],
        *,
        conversation: str,
        state: ConversationState | None,
    ) -> bool:
        """Record an action's outcome and the state it leads to, atomically, once."""
        state_json = json.dumps(state.to_json()) if state is not None else ""
        return bool(
            self._complete(
                keys=[delivery_key(delivery_id), state_key(conversation)],
                args=[f"done:{action_key}", json.dumps(dict(outcome)), state_json],
            )
        )

    def record_attempts(
        self, delivery_id: str, action_key: str, attempts: list[dict[str, Any]]
    ) -> None:
        self._redis.hset(delivery_key(delivery_id), f"attempts:{action_key}", json.dumps(attempts))

    def keep(self, delivery_id: str) -> None:
        """Keep the delivery record without expiry (a dead letter refers to it)."""
        self._redis.persist(delivery_key(delivery_id))

    # state -----------------------------------------------------------------
    def state(self, conversation: str) -> ConversationState:
        raw = cast(bytes | None, self._redis.get(state_key(conversation)))
        if raw is None:
            return ConversationState()
        return ConversationState.from_json(json.loads(raw))

    def recent_deliveries(self, *, conversation: str | None, limit: int) -> list[str]:
        key = DECISION_LOG_CONV_PREFIX + conversation if conversation else DECISION_LOG_KEY
        return [v.decode() for v in cast(list[bytes], self._redis.lrange(key, 0, limit - 1))]
