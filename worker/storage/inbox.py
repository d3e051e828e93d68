"""The Redis side of accepting a webhook: dedupe, store, queue, all in one Lua script.

One `Inbox.accept()` runs `ACCEPT_SCRIPT` atomically (docs/design.md; key names and their
expiries in `worker.storage.keys`):

    SET    tw:seen:{delivery_id} 1 NX EX 86400      already there -> duplicate, nothing else
    HSET   tw:delivery:{delivery_id} raw received_at dry_run conversation
                                                      (expires STATE_RETENTION from now)
    RPUSH  tw:inbox:{conv} delivery_id                per-conversation arrival order
                                                      (expires STATE_RETENTION from now)
    RPUSH  tw:ready conv                              ready for any drain to take
    LPUSH  celery <protocol-2 message: worker.tasks.drain_ready()>
                                                      only while fewer than WAKE_LIMIT
                                                      such wake messages wait (tw:wakes)

A wake message is not one per webhook: a woken drain takes ready conversations one after
another (worker.storage.drains), so a backlog costs the broker a few messages, not one per
event, and a drain that finds more work ready than drains queued wakes one more.

`delivery_id` is the first 32 hex digits of sha256(raw body); `conv` is the event's
conversation id, or `d:{delivery_id}` for events without one. The Celery message is built in
Python by `worker.storage.wire.celery_message()`, as kombu's Redis transport stores one.

The script calls of every request that reaches the inbox in the same event-loop turn leave
together as one pipeline on the next turn (one client round trip; nothing waits for a batch
to fill). Each call still succeeds or fails on its own.

Every Redis failure (unreachable, timeout, refused write) surfaces as `QueueUnavailableError`
within about 1.1 s, whether Redis refuses connections or accepts them and never answers
(`worker.storage.clients.async_redis()`); `DEADLINE_SECONDS` caps each batch and ping
whatever happens, so the receiver answers 503 within its 2 s (interface.md, "Redis down").
The script is sent with EVALSHA and re-loaded on NOSCRIPT, so a Redis that restarts empty
keeps working.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import redis.asyncio
from redis.exceptions import NoScriptError, RedisError

from worker.engine.model import Event
from worker.errors import QueueUnavailableError
from worker.storage import keys
from worker.storage.wire import DRAIN_READY_TASK, celery_message

DEADLINE_SECONDS: Final = 1.5
WAKE_LIMIT: Final = 4  # wake messages waiting at most, from the receiver (drains add more)
REPLICA_WAIT_MS: Final = 200  # how long a batch waits for its replicas (with `replicas`)
REPLICA_CHECK_SECONDS: Final = 2.0  # how often the connected replicas are counted

ACCEPT_SCRIPT: Final = """
-- KEYS: seen, delivery, inbox, celery queue, ready, wakes
-- ARGV: delivery_id, raw, received_at, dry_run, conversation, wake message, seen_ttl,
--       retention, wake limit, wakes ttl
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[7]) then
  return 0
end
redis.call('HSET', KEYS[2], 'raw', ARGV[2], 'received_at', ARGV[3],
           'dry_run', ARGV[4], 'conversation', ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[8])
redis.call('RPUSH', KEYS[3], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[8])
redis.call('RPUSH', KEYS[5], ARGV[5])
if tonumber(redis.call('GET', KEYS[6]) or '0') < tonumber(ARGV[9]) then
  redis.call('INCR', KEYS[6])
  redis.call('EXPIRE', KEYS[6], ARGV[10])
  redis.call('LPUSH', KEYS[4], ARGV[6])
end
return 1
"""

_ScriptArgs = tuple[str | bytes | int, ...]


@dataclass(frozen=True)
class AcceptResult:
    """What `accept` did: `duplicate` is True when the same body was accepted before."""

    delivery_id: str
    duplicate: bool


def delivery_id_for(raw: bytes) -> str:
    """The delivery id of a raw webhook body: the same bytes are the same delivery."""
    return hashlib.sha256(raw).hexdigest()[:32]


def conversation_key(event: Event, delivery_id: str) -> str:
    """The inbox a delivery queues in: its conversation, or one of its own."""
    return event.conversation_id if event.conversation_id else f"d:{delivery_id}"


class Inbox:
    """Accepts webhooks into Redis; the only writer of `tw:seen`, `tw:delivery`, `tw:inbox`.

    `now` stamps `received_at` (Unix seconds); `retention` (STATE_RETENTION, seconds) is how
    long a delivery and its inbox are kept for the worker; `deadline` caps each batch in
    seconds whatever the client's own timeouts (an answer lost past it may still have been
    accepted: the sender's retry is then answered as a duplicate).
    """

    def __init__(
        self,
        redis: redis.asyncio.Redis,
        *,
        now: Callable[[], float] = time.time,
        queue: str = keys.CELERY_QUEUE,
        deadline: float = DEADLINE_SECONDS,
        retention: int = keys.DEFAULT_STATE_RETENTION,
        replicas: int = 0,
    ) -> None:
        self._redis = redis
        self._retention = retention
        self._replicas = replicas
        self._connected = 0
        self._counted_at = float("-inf")
        self._deadline = deadline
        self._now = now
        self._queue = queue
        self._sha = hashlib.sha1(ACCEPT_SCRIPT.encode()).hexdigest()
        self._pending: list[tuple[_ScriptArgs, asyncio.Future[object]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def accept(self, raw: bytes, event: Event, *, dry_run: bool) -> AcceptResult:
        """Store and queue one delivery once; a body seen in the last 24 h is a duplicate.

        Raise QueueUnavailableError when Redis cannot be reached or refuses the write; then
        nothing was accepted, or (if the answer was lost) a retry is answered as a duplicate.
        """
        delivery_id = delivery_id_for(raw)
        conv = conversation_key(event, delivery_id)
        created = await self._run_script(
            (
                keys.seen(delivery_id),
                keys.delivery(delivery_id),
                keys.inbox(conv),
                self._queue,
                keys.READY,
                keys.WAKES,
                delivery_id,
                raw,
                repr(self._now()),
                "1" if dry_run else "0",
                conv,
                celery_message(DRAIN_READY_TASK, [], self._queue),
                keys.SEEN_TTL,
                self._retention,
                WAKE_LIMIT,
                keys.WAKES_TTL,
            )
        )
        return AcceptResult(delivery_id=delivery_id, duplicate=not created)

    def _run_script(self, keys_and_args: _ScriptArgs) -> asyncio.Future[object]:
        """The script's answer for these 6 keys and 10 args, sent with the calls of every other
        request of this event-loop turn as one pipeline (one client round trip for the lot).

        A batch is never held back waiting for company: it leaves on the next loop turn.
        """
        future = asyncio.get_running_loop().create_future()
        if not self._pending:
            flush = asyncio.create_task(self._flush())
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)
        self._pending.append((keys_and_args, future))
        return future

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        batch = [(call, future) for call, future in batch if not future.done()]
        results: list[object] = []
        try:
            async with asyncio.timeout(self._deadline):
                results = await self._run_pipeline([call for call, _ in batch])
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            results = [exc] * len(batch)
        finally:
            # Cancelled (shutting down): whoever is still waiting hears of it.
            results += [QueueUnavailableError("queue call interrupted")] * (
                len(batch) - len(results)
            )
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    error = QueueUnavailableError(f"queue unavailable: {type(result).__name__}")
                    error.__cause__ = result
                    future.set_exception(error)
                else:
                    future.set_result(result)

    async def _run_pipeline(self, calls: list[_ScriptArgs]) -> list[object]:
        """EVALSHA each call in one pipeline; re-load the script on NOSCRIPT (Redis restarted
        empty) and run again the calls it refused. With `replicas`, the deliveries accepted
        count only once that many replicas have them, or as many as are connected (one WAIT
        for the batch): a failover cannot then lose what was answered 202; if they do not
        confirm in time, those deliveries are answered as not queued (the sender retries; a
        retry is a duplicate if the write did survive)."""
        wanted = await self._replicas_to_wait_for()
        results, confirmed = await self._evalsha_all(calls, wanted)
        missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing:
            self._sha = await self._redis.script_load(ACCEPT_SCRIPT)
            retried, confirmed = await self._evalsha_all([calls[i] for i in missing], wanted)
            for i, result in zip(missing, retried, strict=True):
                results[i] = result
        if wanted and confirmed < wanted and any(result == 1 for result in results):
            unconfirmed = QueueUnavailableError("not confirmed by a replica in time")
            results = [unconfirmed if result == 1 else result for result in results]
        return results

    async def _replicas_to_wait_for(self) -> int:
        """`replicas`, or fewer when fewer are connected (counted every few seconds): a
        master left without replica (just after a failover) still accepts, on one node."""
        if not self._replicas:
            return 0
        now = time.monotonic()
        if now - self._counted_at > REPLICA_CHECK_SECONDS:
            info = await self._redis.info("replication")
            self._connected = int(info.get("connected_slaves", 0))
            self._counted_at = now
        return min(self._replicas, self._connected)

    async def _evalsha_all(
        self, calls: list[_ScriptArgs], replicas: int
    ) -> tuple[list[object], int]:
        """The calls' answers, and how many replicas confirmed them: a WAIT sent in the same
        pipeline, so on the same connection as the writes (WAIT counts the replication of
        its own connection's writes; on another connection it would confirm nothing)."""
        pipe = self._redis.pipeline(transaction=False)
        for call in calls:
            pipe.evalsha(self._sha, 6, *call)
        if replicas:
            pipe.wait(replicas, REPLICA_WAIT_MS)
        answers: list[object] = await pipe.execute(raise_on_error=False)
        if not replicas:
            return answers, 0
        confirmed = answers.pop()
        return answers, confirmed if isinstance(confirmed, int) else 0

    async def ping(self) -> None:
        """Return when Redis answers; else raise QueueUnavailableError."""
        try:
            async with asyncio.timeout(self._deadline):
                await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise QueueUnavailableError(f"queue unavailable: {type(exc).__name__}") from exc
