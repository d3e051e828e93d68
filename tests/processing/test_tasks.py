"""The drain task: a Redis error hands the message back to the broker instead of losing it."""

from __future__ import annotations

import pytest
import redis
from celery.exceptions import Reject

from worker.processing.items import DrainReport
from worker.processing.tasks import drain


class Broken:
    def drain(self, conversation: str) -> DrainReport:
        raise redis.ConnectionError("Connection refused")

    def drain_ready(self) -> DrainReport:
        raise redis.ConnectionError("Connection refused")


class Working:
    def drain(self, conversation: str) -> DrainReport:
        return DrainReport(processed=2)

    def drain_ready(self) -> DrainReport:
        return DrainReport(processed=5)


def test_a_drain_interrupted_by_redis_requeues_its_message_once_redis_answers() -> None:
    pings = []

    def ping() -> None:
        pings.append(1)
        if len(pings) < 3:
            raise redis.ConnectionError("still failing over")

    with pytest.raises(Reject) as rejected:
        drain(Broken(), "42", ping=ping, pause=0.0)
    assert getattr(rejected.value, "requeue", None) is True
    assert len(pings) == 3


def test_a_drain_hands_its_message_back_after_its_patience() -> None:
    def ping() -> None:
        raise redis.ConnectionError("down for good")

    with pytest.raises(Reject):
        drain(Broken(), "42", ping=ping, pause=0.01, patience=0.05)


def test_a_drain_reports_what_it_did() -> None:
    assert drain(Working(), "42") == {"processed": 2, "parked_until": None, "busy": False}


def test_a_drain_of_ready_conversations_reports_and_hands_back_the_same_way() -> None:
    assert drain(Working(), None) == {"processed": 5, "parked_until": None, "busy": False}
    with pytest.raises(Reject):
        drain(Broken(), None, ping=lambda: None, pause=0.0)
