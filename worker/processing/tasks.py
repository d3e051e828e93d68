"""The drain task: decode, call the processor, report. Thin on purpose.

A drain that fails on a Redis error (Redis restarting, a Sentinel failover) hands its
message back to the queue instead of being acknowledged as done: nothing else would drain
the conversation. It first waits until Redis answers again (up to REDIS_PATIENCE seconds,
asking every REDIS_ERROR_PAUSE): handing the message back is itself a Redis call, and one
that fails leaves the worker's only prefetch slot taken, so it would stop consuming. If
Redis does not come back in time, the message stays unacknowledged and the broker restores
it after its visibility timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final, Protocol

import redis
from celery import Celery
from celery.exceptions import Reject

from worker.processing.items import DrainReport
from worker.storage.wire import DRAIN_READY_TASK, DRAIN_TASK

log = logging.getLogger(__name__)

REDIS_ERROR_PAUSE: Final = 1.0
REDIS_PATIENCE: Final = 30.0


class Drainer(Protocol):
    def drain(self, conversation: str) -> DrainReport: ...

    def drain_ready(self) -> DrainReport: ...


def drain(
    processor: Drainer,
    conversation: str | None,
    *,
    ping: Callable[[], object] = lambda: None,
    pause: float = REDIS_ERROR_PAUSE,
    patience: float = REDIS_PATIENCE,
) -> dict[str, object]:
    """Process one conversation's inbox, or (None) the conversations ready for any drain
    (see worker.processing.processor); safe to run any number of times. Raise
    Reject(requeue=True) when Redis fails under it, once `ping` (a Redis round trip)
    succeeds again or `patience` seconds have passed."""
    try:
        report = processor.drain(conversation) if conversation else processor.drain_ready()
    except (redis.RedisError, OSError) as exc:
        log.warning(
            "drain interrupted by a Redis error; handing the message back once Redis answers",
            extra={"conversation": conversation, "error": type(exc).__name__},
        )
        deadline = time.monotonic() + patience
        while True:
            time.sleep(pause)
            try:
                ping()
                break
            except (redis.RedisError, OSError):
                if time.monotonic() >= deadline:
                    break
        raise Reject(exc, requeue=True) from exc
    return {
        "processed": report.processed,
        "parked_until": report.parked_until,
        "busy": report.busy,
    }


def register_drain(app: Celery, processor: Drainer, ping: Callable[[], object]) -> None:
    """Register the drain tasks on `app`, under the names their messages carry."""

    @app.task(name=DRAIN_TASK, ignore_result=True)
    def drain_task(conversation: str) -> dict[str, object]:
        return drain(processor, conversation, ping=ping)

    @app.task(name=DRAIN_READY_TASK, ignore_result=True)
    def drain_ready_task() -> dict[str, object]:
        return drain(processor, None, ping=ping)
