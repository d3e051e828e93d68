"""Thin Celery tasks: decode, call the processor, report."""

from __future__ import annotations

import logging

from celery import shared_task

from worker import runtime

log = logging.getLogger(__name__)


@shared_task(name="worker.tasks.drain", ignore_result=True)
def drain(conversation: str) -> dict[str, object]:
    """Process one conversation's inbox (see worker.processor). Safe to run any number of times."""
    report = runtime.current().processor.drain(conversation)
    return {
        "processed": report.processed,
        "parked_until": report.parked_until,
        "busy": report.busy,
    }
