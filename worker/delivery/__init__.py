"""Delivery building blocks, all in Redis: shared rate limits, retries, parking, dead
letters. No Celery or HTTP here; the task flow wires them."""

from worker.delivery.dlq import Attempt, DeadAction, DeadLetter, DeadLetterQueue, redact
from worker.delivery.parking import ParkedReleaser, ParkingLot
from worker.delivery.ratelimit import (
    Rate,
    RateLimiter,
    destination_for_awalchat,
    destination_for_helpwave,
    parse_rate,
)
from worker.delivery.retry import RetryPolicy

__all__ = [
    "Attempt",
    "DeadAction",
    "DeadLetter",
    "DeadLetterQueue",
    "ParkedReleaser",
    "ParkingLot",
    "Rate",
    "RateLimiter",
    "RetryPolicy",
    "destination_for_awalchat",
    "destination_for_helpwave",
    "parse_rate",
    "redact",
]
