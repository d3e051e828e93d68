"""Replaying dead letters: put the action back in its conversation's inbox, atomically.

A replay removes the dead letter, forgets the action's failed outcome and queues the
delivery again, in one Lua script: the drainer then carries out that action (and only the
actions not yet done) under the same idempotency key. Replaying the same letter twice acts
once: the second replay finds no letter.
"""

from __future__ import annotations

import redis

from worker.delivery.dlq import DeadLetterQueue
from worker.inbox import CELERY_QUEUE, DRAIN_TASK, celery_message
from worker.store import DELIVERY_TTL, delivery_key, inbox_key

_REPLAY = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], 'done:' .. ARGV[2], 'attempts:' .. ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[3])
redis.call('RPUSH', KEYS[4], ARGV[4])
redis.call('LPUSH', KEYS[5], ARGV[5])
return 1
"""


class ReplayError(Exception):
    """A dead letter whose delivery record is gone cannot be replayed."""


def replay_one(client: redis.Redis, queue: DeadLetterQueue, letter_id: str) -> list[str]:
    """Replay one dead letter; return [letter_id], or [] when there is no such letter."""
    letter = queue.get(letter_id)
    if letter is None:
        return []
    action_key = f"{letter.action.rule}#{letter.action.index}"
    script = client.register_script(_REPLAY)
    result = script(
        keys=[
            queue.entries_key,
            queue.index_key,
            delivery_key(letter.delivery_id),
            inbox_key(letter.conversation),
            CELERY_QUEUE,
        ],
        args=[
            letter_id,
            action_key,
            DELIVERY_TTL,
            letter.delivery_id,
            celery_message(DRAIN_TASK, [letter.conversation]),
        ],
    )
    if result == -1:
        raise ReplayError(f"dead letter {letter_id}: its delivery record is gone")
    return [letter_id] if result == 1 else []


def replay_all(client: redis.Redis, queue: DeadLetterQueue) -> list[str]:
    """Replay every dead letter, oldest first; return the ids replayed."""
    replayed: list[str] = []
    for letter in reversed(queue.list(limit=queue.count() or 1)):
        replayed += replay_one(client, queue, letter.id)
    return replayed
