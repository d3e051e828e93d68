"""The Redis side of accepting a webhook: dedupe, store, queue, all in one Lua script.

One `Inbox.accept()` is one round trip running `ACCEPT_SCRIPT` atomically (docs/design.md):

    SET    tw:seen:{delivery_id} 1 NX EX 86400      already there -> duplicate, nothing else
    HSET   tw:delivery:{delivery_id} raw received_at dry_run conversation   (TTL 7 days)
    RPUSH  tw:inbox:{conv} delivery_id                per-conversation arrival order
    LPUSH  celery <protocol-2 message: worker.tasks.drain(conv)>

`delivery_id` is the first 32 hex digits of sha256(raw body); `conv` is the event's
conversation id, or `d:{delivery_id}` for events without one. The Celery message is built in
Python by `celery_message()` exactly as kombu's Redis transport stores one.

Every Redis failure (unreachable, timeout, refused write) surfaces as `QueueUnavailableError`;
the client's own timeouts and retries bound how long that takes (`redis_client()`). The script
is sent with EVALSHA and re-loaded on NOSCRIPT, so a Redis that restarts empty keeps working.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from worker.engine.model import Event
from worker.errors import QueueUnavailableError

DRAIN_TASK: Final = "worker.tasks.drain"
CELERY_QUEUE: Final = "celery"
SEEN_TTL_SECONDS: Final = 24 * 3600
DELIVERY_TTL_SECONDS: Final = 7 * 24 * 3600

ACCEPT_SCRIPT: Final = """
-- KEYS: seen, delivery, inbox, celery queue
-- ARGV: delivery_id, raw, received_at, dry_run, conversation, message, seen_ttl, delivery_ttl
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[7]) then
  return 0
end
redis.call('HSET', KEYS[2], 'raw', ARGV[2], 'received_at', ARGV[3],
           'dry_run', ARGV[4], 'conversation', ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[8])
redis.call('RPUSH', KEYS[3], ARGV[1])
redis.call('LPUSH', KEYS[4], ARGV[6])
return 1
"""

_ORIGIN = f"gen{os.getpid()}@{socket.gethostname()}"


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


def celery_message(task_name: str, args: list[str], queue: str = CELERY_QUEUE) -> str:
    """A Celery protocol-2 message calling `task_name(*args)`, as kombu's Redis transport
    stores it in the list named `queue` (LPUSH it there; workers BRPOP the other end).

    Each call has a fresh task id and delivery tag.
    """
    task_id = _uuid4()
    body = f"[{json.dumps(args)}, {{}}, {_EMBED}]".encode()
    return _message_template(task_name, queue) % {
        "id": task_id,
        "tag": _uuid4(),
        "body": base64.b64encode(body).decode("ascii"),
        "argsrepr": json.dumps(repr(args))[1:-1],
    }


_EMBED: Final = json.dumps({"callbacks": None, "errbacks": None, "chain": None, "chord": None})


def _uuid4() -> str:
    """str(uuid.uuid4()), at a fraction of its cost (this is on the request path)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


@functools.lru_cache(maxsize=32)
def _message_template(task_name: str, queue: str) -> str:
    """The message serialised once, its per-call fields left as %(name)s slots."""
    message = {
        "body": "@body@",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task_name,
            "id": "@id@",
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": "@id@",
            "parent_id": None,
            "argsrepr": "@argsrepr@",
            "kwargsrepr": "{}",
            "origin": _ORIGIN,
            "ignore_result": False,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": "@id@",
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": "@tag@",
        },
    }
    template = json.dumps(message).replace("%", "%%")
    for slot in ("body", "id", "argsrepr", "tag"):
        template = template.replace(f'"@{slot}@"', f'"%({slot})s"')
    return template


def redis_client(url: str, *, timeout: float = 0.5) -> redis.asyncio.Redis:
    """An asyncio client whose every command fails within about 2 s when Redis is down.

    One retry after a short backoff: connect (`timeout`) + 0.1 s + connect (`timeout`).
    """
    return redis.asyncio.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.05), 1),
        health_check_interval=30,
    )


class Inbox:
    """Accepts webhooks into Redis; the only writer of `tw:seen`, `tw:delivery`, `tw:inbox`.

    `now` stamps `received_at` (Unix seconds); `deadline` caps each call in seconds whatever
    the client's own timeouts (an answer lost past it may still have been accepted: the
    sender's retry is then answered as a duplicate).
    """

    def __init__(
        self,
        redis: redis.asyncio.Redis,
        *,
        now: Callable[[], float] = time.time,
        queue: str = CELERY_QUEUE,
        deadline: float = 1.8,
    ) -> None:
        self._redis = redis
        self._deadline = deadline
        self._now = now
        self._queue = queue
        self._script = redis.register_script(ACCEPT_SCRIPT)

    async def accept(self, raw: bytes, event: Event, *, dry_run: bool) -> AcceptResult:
        """Store and queue one delivery once; a body seen in the last 24 h is a duplicate.

        Raise QueueUnavailableError when Redis cannot be reached or refuses the write; then
        nothing was accepted, or (if the answer was lost) a retry is answered as a duplicate.
        """
        delivery_id = delivery_id_for(raw)
        conv = conversation_key(event, delivery_id)
        keys = [
            f"tw:seen:{delivery_id}",
            f"tw:delivery:{delivery_id}",
            f"tw:inbox:{conv}",
            self._queue,
        ]
        args: list[str | bytes | int] = [
            delivery_id,
            raw,
            repr(self._now()),
            "1" if dry_run else "0",
            conv,
            celery_message(DRAIN_TASK, [conv], self._queue),
            SEEN_TTL_SECONDS,
            DELIVERY_TTL_SECONDS,
        ]
        try:
            async with asyncio.timeout(self._deadline):
                created = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise QueueUnavailableError(f"queue unavailable: {type(exc).__name__}") from exc
        return AcceptResult(delivery_id=delivery_id, duplicate=not created)

    async def ping(self) -> None:
        """Return when Redis answers; else raise QueueUnavailableError."""
        try:
            async with asyncio.timeout(self._deadline):
                await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise QueueUnavailableError(f"queue unavailable: {type(exc).__name__}") from exc
