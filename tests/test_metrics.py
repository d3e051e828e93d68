"""The worker's shared-state gauges, read from Redis at scrape time."""

from __future__ import annotations

import fakeredis
from prometheus_client import generate_latest

from worker.metrics import SharedStateCollector, WorkerMetrics


def test_the_gauges_show_the_backlog_queue_parked_dead_letters_and_waits() -> None:
    client = fakeredis.FakeRedis()
    client.rpush("tw:ready", "1", "2", "3")
    client.lpush("celery", "wake")
    client.zadd("tw:parked", {"9": 1.0})
    client.hset("tw:dlq", "x", "{}")
    client.zadd("tw:timers", {"l123456" + "7": 2.0, "l654321" + "7": 3.0})
    metrics = WorkerMetrics()
    metrics.watch(
        SharedStateCollector(
            client,
            queue="celery",
            parked="tw:parked",
            dlq="tw:dlq",
            timers="tw:timers",
            ready="tw:ready",
        )
    )
    text = generate_latest(metrics.registry).decode()
    for line in (
        "ticket_worker_backlog 3.0",
        "ticket_worker_queue_depth 1.0",
        "ticket_worker_parked_conversations 1.0",
        "ticket_worker_dead_letters 1.0",
        "ticket_worker_timers_pending 2.0",
    ):
        assert line in text.splitlines(), text
