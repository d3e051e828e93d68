"""The drain task: a Redis error hands the message back to the broker instead of losing it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import redis
from celery.exceptions import Reject

from worker import runtime, tasks


def test_a_drain_interrupted_by_redis_requeues_its_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(conversation: str) -> None:
        raise redis.ConnectionError("Connection refused")

    current = SimpleNamespace(processor=SimpleNamespace(drain=broken))
    monkeypatch.setattr(runtime, "current", lambda: current)
    monkeypatch.setattr(tasks, "REDIS_ERROR_PAUSE", 0.0)
    with pytest.raises(Reject) as rejected:
        tasks.drain.run("42")
    assert getattr(rejected.value, "requeue", None) is True
