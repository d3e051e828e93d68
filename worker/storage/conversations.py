"""The worker's Redis records: deliveries, per-conversation inboxes, locks and state.

Key names and their expiries live in `worker.storage.keys`; the receiver's
`worker.storage.inbox` writes a delivery, its inbox entry and its Celery message. Here:

    tw:delivery:{id}     hash  raw, received_at, dry_run, conversation,
                               decision (JSON, written once), state_before (JSON),
                               done:{rule#i} (JSON outcome), attempts:{rule#i} (JSON list)
    tw:inbox:{conv}      list  delivery ids in arrival order
    tw:state:{conv}      str   ConversationState JSON (tw:dry:state:{conv}: the dry-run view)
    tw:lock:{conv}       str   the token of the one process draining the conversation
    tw:lane:{d}:{conv}   list  delivery ids whose actions for destination d wait
                               (worker.processing.lanes)
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
from worker.storage import conversation_scripts as scripts
from worker.storage import keys, timers
from worker.storage.decision_index import newest_ids
from worker.storage.keys import View
from worker.storage.pipelined import register_script
from worker.storage.records import (
    DeliveryRecord,
    compact,
    parse_record,
    read_decision,
    stored_texts,
)


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
        self._store_decision = register_script(client, scripts.STORE_DECISION)
        self._complete = register_script(client, scripts.COMPLETE_ACTION)
        self._release = register_script(client, scripts.RELEASE_LOCK)
        self._extend = register_script(client, scripts.EXTEND_LOCK)
        self._pop_head = register_script(client, scripts.POP_HEAD)
        self._create = register_script(client, scripts.CREATE_RECORD)

    @property
    def retention(self) -> int:
        """STATE_RETENTION in seconds."""
        return self._retention

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

    def extend_lane(self, member: str, token: str, ttl_ms: int) -> bool:
        """Push a lane lock's expiry out; False when it was lost."""
        return bool(self._extend(keys=[keys.lane_lock(member)], args=[token, ttl_ms]))

    def release_lane(self, member: str, token: str) -> None:
        self._release(keys=[keys.lane_lock(member)], args=[token])

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

    def hand_to_lanes(self, conversation: str, delivery_id: str, lanes: str) -> None:
        """Put a delivery at the end of the conversation's `lanes` (destination letters) and
        make them ready: for a delivery whose stored decision a drain did not make."""
        pipe = self._redis.pipeline(transaction=True)
        for letter in lanes:
            member = keys.lane_member(letter, conversation)
            pipe.rpush(keys.lane(member), delivery_id)
            pipe.expire(keys.lane(member), self._retention)
            pipe.rpush(keys.READY_LANES, member)
        pipe.execute()

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
        """Store a delivery as the receiver stores a webhook's, kept STATE_RETENTION (a wait
        coming due is written by `store_decision` instead, with its decision). An existing
        record is left as it is."""
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
        *,
        before_text: bytes | None = None,
        pipe: redis.client.Pipeline | None = None,
    ) -> Decision:
        """Store the decision and, for an event of a conversation, the state it projects
        (in the record's view), unless a decision was stored before; a record built in
        memory (`stored` False: a wait coming due) is written with it, in the same script.
        `before_text`: the state before as it was read from Redis (stored as it is instead
        of encoded again).

        Returns the decision that holds: the stored one when a decision already existed.
        With `pipe`, the script is only queued on it (its answer, given to
        `decision_that_holds`, says which decision holds) and `decision` is returned.
        """
        conversation = decision.conversation_id is not None
        after = decision.state_after
        added, removed = timers.changes(
            record.view, record.conversation, state_before.waits, after.waits
        )
        decision_text, after_text = stored_texts(decision)
        existing = self._store_decision(
            client=pipe,
            keys=[
                keys.delivery(record.delivery_id),
                keys.state(record.conversation, record.view) if conversation else "",
                keys.DECISIONS,
                keys.conversation_log(record.conversation) if conversation else "",
                keys.TIMERS,
                keys.LEGACY_DECISIONS,
            ],
            args=[
                decision_text,
                before_text if before_text is not None else compact(state_before.to_json()),
                after_text,
                record.delivery_id,
                keys.DECISION_LOG_LIMIT,
                keys.DECISION_LOG_CONV_LIMIT,
                self._retention,
                keys.delivery(""),
                self.state_ttl(after),
                decision.conversation_id or "",
                decision.event,
                ",".join(decision.matched_rules),
                *self._unstored(record),
                len(added),
                *(part for pair in added.items() for part in (pair[0], repr(pair[1]))),
                *removed,
            ],
        )
        if pipe is not None:
            return decision
        return self.decision_that_holds(decision, existing)

    @staticmethod
    def _unstored(record: DeliveryRecord) -> tuple[bytes | str, ...]:
        """The fields `store_decision` writes first for a record built in memory (none for
        one stored already)."""
        if record.stored:
            return ("", "", "", "")
        dry_run = "1" if record.dry_run else "0"
        return (record.raw, repr(record.received_at), dry_run, record.conversation)

    @staticmethod
    def decision_that_holds(decision: Decision, existing: object) -> Decision:
        """`store_decision`'s answer: the decision stored before, if there was one."""
        if existing:
            return read_decision(json.loads(cast(bytes, existing)))
        return decision

    def complete(
        self,
        record: DeliveryRecord,
        action_key: str,
        outcome: Mapping[str, Any],
        *,
        changes: Mapping[str, Any] | None = None,
        unless_lane_moved: str = "",
        pipe: redis.client.Pipeline | None = None,
    ) -> bool:
        """Record an action's outcome once, atomically with what it teaches the state:
        `changes`, fields merged into the stored state (the rest of it is the decisions'),
        left out when the lane `unless_lane_moved` (a lane member) holds more than this
        item. With `pipe`: queued on it, sent with what follows; True."""
        return bool(
            self._complete(
                client=pipe,
                keys=[
                    keys.delivery(record.delivery_id),
                    keys.state(record.conversation, record.view),
                    keys.lane(unless_lane_moved) if unless_lane_moved else "",
                ],
                args=[
                    f"done:{action_key}",
                    compact(dict(outcome)),
                    compact(dict(changes)) if changes else "",
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
