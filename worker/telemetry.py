"""Prometheus metrics of a worker process, served on WORKER_METRICS_PORT (0: off).

Counters are updated by the processor, the rate gate and the rule source; the gauges of
shared state (queue depth, parked conversations, dead letters) are read from Redis when
Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

disable_created_metrics()  # type: ignore[no-untyped-call]  # `*_created`: noise


class SharedStateCollector(Collector):
    """Gauges read from Redis at scrape time: the same figures from every worker."""

    def __init__(self, client: redis.Redis, *, queue: str, parked: str, dlq: str) -> None:
        self._redis = client
        self._keys = (queue, parked, dlq)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queue, parked, dlq = self._keys
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.llen(queue)
            pipe.zcard(parked)
            pipe.hlen(dlq)
            depth, parked_count, dead = pipe.execute()
        except redis.RedisError:
            return
        yield GaugeMetricFamily(
            "ticket_worker_queue_depth", "Celery messages waiting in the queue", value=depth
        )
        yield GaugeMetricFamily(
            "ticket_worker_parked_conversations",
            "conversations parked until their time comes (rate limits, retries)",
            value=parked_count,
        )
        yield GaugeMetricFamily(
            "ticket_worker_dead_letters", "actions in the dead-letter queue", value=dead
        )


class WorkerMetrics:
    """The worker's counters, on a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "ticket_worker_events_decided",
            "events decided, by type (documented names; others are `other`)",
            ["event"],
            registry=r,
        )
        self.rule_matches = Counter(
            "ticket_worker_rule_matches", "rules that matched an event", ["rule"], registry=r
        )
        self.actions = Counter(
            "ticket_worker_actions",
            "actions finished, by kind and outcome (done, already, skipped, dry_run, failed)",
            ["action", "outcome"],
            registry=r,
        )
        self.retries = Counter(
            "ticket_worker_retries", "failed attempts scheduled again", ["action"], registry=r
        )
        self.rate_limited = Counter(
            "ticket_worker_rate_limited", "429 answers, by destination", ["destination"], registry=r
        )
        self.rate_wait = Counter(
            "ticket_worker_rate_limit_wait_seconds",
            "seconds slept waiting for a destination's shared budget",
            ["destination"],
            registry=r,
        )
        self.throttled = Counter(
            "ticket_worker_throttled",
            "times work was parked for a destination's shared budget",
            ["destination"],
            registry=r,
        )
        self.dead_letters_dropped = Counter(
            "ticket_worker_dead_letters_dropped",
            "dead letters dropped past DLQ_MAX (reason=max) or DLQ_RETENTION (reason=retention)",
            ["reason"],
            registry=r,
        )
        self.rules_refused = Counter(
            "ticket_worker_rules_refused", "changed rule files refused (last good kept)", registry=r
        )
        self.rules_version = Gauge(
            "ticket_worker_rules_version_info",
            "the ruleset version in use",
            ["version"],
            registry=r,
        )

    def use_rules_version(self, version: str) -> None:
        self.rules_version.clear()
        self.rules_version.labels(version=version).set(1)

    def watch(self, client: redis.Redis, *, queue: str, parked: str, dlq: str) -> None:
        """Add the shared-state gauges read from `client`."""
        self.registry.register(SharedStateCollector(client, queue=queue, parked=parked, dlq=dlq))

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        """Serve /metrics on `port` in a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)
