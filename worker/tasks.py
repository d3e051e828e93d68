"""Thin Celery tasks: decode, call the processor, report.

A drain that fails on a Redis error (Redis restarting, say) hands its message back to the
queue instead of being acknowledged as done: nothing else would drain the conversation. It
waits a moment first so that a Redis that is down is not asked in a tight loop; if Redis is
still down, the message stays unacknowledged and the broker restores it after its
visibility timeout.
"""

from __future__ import annotations

import logging
import time
from typing import Final

import redis
from celery import shared_task
from celery.exceptions import Reject

from worker import runtime

log = logging.getLogger(__name__)

REDIS_ERROR_PAUSE: Final = 1.0


@shared_task(name="worker.tasks.drain", ignore_result=True)
def drain(conversation: str) -> dict[str, object]:
    """Process one conversation's inbox (see worker.processor). Safe to run any number of times."""
    try:
        report = runtime.current().processor.drain(conversation)
    except (redis.RedisError, OSError) as exc:
        log.warning(
            "drain interrupted by a Redis error; handing the message back",
            extra={"conversation": conversation, "error": type(exc).__name__},
        )
        time.sleep(REDIS_ERROR_PAUSE)
        raise Reject(exc, requeue=True) from exc
    return {
        "processed": report.processed,
        "parked_until": report.parked_until,
        "busy": report.busy,
    }
