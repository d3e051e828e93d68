"""Replaying dead letters: the action goes back into its conversation's inbox, atomically.

A replay takes the letter out of the queue and queues a new delivery, `r{letter id}`, whose
stored decision holds exactly that action (same rule and index, parameters as planned) and
whose body is the letter's event excerpt, in one Lua script. The drainer then carries the
action out in the conversation's order, against the state at that moment, like any
other: completed once, or dead-lettered again with a new id. Replaying the same letter
twice acts once: the second replay finds no letter. The original delivery record is not
needed (it may have expired).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import redis

from worker.delivery.dlq import DeadLetter, DeadLetterQueue
from worker.engine.model import ConversationState, Decision, Event, PlannedAction
from worker.errors import PayloadError, ReplayError
from worker.events import parse_webhook
from worker.failures import event_excerpt
from worker.inbox import CELERY_QUEUE, DRAIN_TASK, celery_message
from worker.storage import keys

# KEYS: entries, index, delivery, inbox, queue
# ARGV: letter id, raw, received_at, conversation, decision, retention, message
_REPLAY = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], 'raw', ARGV[2], 'received_at', ARGV[3], 'dry_run', '0',
           'conversation', ARGV[4], 'decision', ARGV[5])
redis.call('EXPIRE', KEYS[3], ARGV[6])
redis.call('RPUSH', KEYS[4], 'r' .. ARGV[1])
redis.call('EXPIRE', KEYS[4], ARGV[6])
redis.call('LPUSH', KEYS[5], ARGV[7])
return 1
"""


def replay_decision(letter: DeadLetter) -> Decision:
    """The decision a replay carries out: the letter's action, nothing else."""
    action = PlannedAction(
        rule=letter.action.rule,
        index=letter.action.index,
        kind=letter.action.kind,
        params=letter.action.params,
    )
    data = letter.event.get("data")
    conversation = data.get("conversation_id") if isinstance(data, dict) else None
    return Decision(
        ruleset_version="replay",
        event=str(letter.event.get("event", "")),
        conversation_id=None if conversation is None else str(conversation),
        outcomes=(),
        actions=(action,),
        state_after=ConversationState(),
    )


def replay_one(
    client: redis.Redis,
    queue: DeadLetterQueue,
    letter_id: str,
    *,
    retention: int = keys.DEFAULT_STATE_RETENTION,
) -> list[str]:
    """Replay one dead letter; return [letter_id], or [] when there is no such letter."""
    letter = queue.get(letter_id)
    if letter is None:
        return []
    if not letter.event:
        letter = replace(letter, event=_excerpt_from_delivery(client, letter))
    delivery_id = f"r{letter_id}"
    script = client.register_script(_REPLAY)
    result = script(
        keys=[
            queue.entries_key,
            queue.index_key,
            keys.delivery(delivery_id),
            keys.inbox(letter.conversation),
            CELERY_QUEUE,
        ],
        args=[
            letter_id,
            json.dumps(letter.event, separators=(",", ":"), ensure_ascii=False),
            repr(time.time()),
            letter.conversation,
            json.dumps(replay_decision(letter).to_json(), separators=(",", ":")),
            retention,
            celery_message(DRAIN_TASK, [letter.conversation]),
        ],
    )
    return [letter_id] if result == 1 else []


def _excerpt_from_delivery(client: redis.Redis, letter: DeadLetter) -> dict[str, object]:
    """The event excerpt of a letter written before letters carried one: from its delivery
    record, which such letters kept."""
    raw = client.hget(keys.delivery(letter.delivery_id), "raw")
    try:
        event = parse_webhook(raw) if isinstance(raw, bytes) else None
    except PayloadError:
        event = None
    if not isinstance(event, Event):
        raise ReplayError(f"dead letter {letter.id}: its event is gone; drop it")
    return event_excerpt(event)


def replay_all(
    client: redis.Redis, queue: DeadLetterQueue, *, retention: int = keys.DEFAULT_STATE_RETENTION
) -> list[str]:
    """Replay every dead letter, oldest first; return the ids replayed."""
    replayed: list[str] = []
    for letter in reversed(queue.list(limit=queue.count() or 1)):
        replayed += replay_one(client, queue, letter.id, retention=retention)
    return replayed
