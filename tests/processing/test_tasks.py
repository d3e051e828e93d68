"""The drain task: a Redis error hands the message back to the broker instead of losing it."""

from __future__ import annotations

import pytest
import redis
from celery.exceptions import Reject

from worker.processing.processor import DrainReport
from worker.processing.tasks import drain


class Broken:
    def drain(self, conversation: str) -> DrainReport:
        raise redis.ConnectionError("Connection refused")


class Working:
    def drain(self, conversation: str) -> DrainReport:
        return DrainReport(processed=2)


def test_a_drain_interrupted_by_redis_requeues_its_message() -> None:
    with pytest.raises(Reject) as rejected:
        drain(Broken(), "42", pause=0.0)
    assert getattr(rejected.value, "requeue", None) is True


def test_a_drain_reports_what_it_did() -> None:
    assert drain(Working(), "42") == {"processed": 2, "parked_until": None, "busy": False}
