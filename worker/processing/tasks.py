"""The drain task: decode, call the processor, report. Thin on purpose.

A drain that fails on a Redis error (Redis restarting, say) hands its message back to the
queue instead of being acknowledged as done: nothing else would drain the conversation. It
waits a moment first so that a Redis that is down is not asked in a tight loop; if Redis is
still down, the message stays unacknowledged and the broker restores it after its
visibility timeout.
"""

from __future__ import annotations

import logging
import time
from typing import Final, Protocol

import redis
from celery import Celery
from celery.exceptions import Reject

from worker.processing.processor import DrainReport
from worker.storage.wire import DRAIN_TASK

log = logging.getLogger(__name__)

REDIS_ERROR_PAUSE: Final = 1.0


class Drainer(Protocol):
    def drain(self, conversation: str) -> DrainReport: ...


def drain(
    processor: Drainer, conversation: str, *, pause: float = REDIS_ERROR_PAUSE
) -> dict[str, object]:
    """Process one conversation's inbox (see worker.processing.processor); safe to run any
    number of times. Raise Reject(requeue=True) when Redis fails under it."""
    try:
        report = processor.drain(conversation)
    except (redis.RedisError, OSError) as exc:
        log.warning(
            "drain interrupted by a Redis error; handing the message back",
            extra={"conversation": conversation, "error": type(exc).__name__},
        )
        time.sleep(pause)
        raise Reject(exc, requeue=True) from exc
    return {
        "processed": report.processed,
        "parked_until": report.parked_until,
        "busy": report.busy,
    }


def register_drain(app: Celery, processor: Drainer) -> None:
    """Register the drain task on `app`, under the name its messages carry (DRAIN_TASK)."""

    @app.task(name=DRAIN_TASK, ignore_result=True)
    def drain_task(conversation: str) -> dict[str, object]:
        return drain(processor, conversation)
