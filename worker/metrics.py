"""Prometheus metrics of each process, each in a registry of its own.

    ReceiverMetrics   the receiver's, served on its `/metrics`
    WorkerMetrics     a worker process's, served on WORKER_METRICS_PORT (0: off); counters
                      updated by the processor, the rate gate and the rule source, and gauges
                      of shared state (queue depth, parked conversations, dead letters) read
                      from Redis when Prometheus scrapes

Event names are labels only when AwalChat documents them (`event_label`): any other name a
sender signs is `other`, so a label's values stay bounded.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from worker.engine.model import KNOWN_EVENTS

_KNOWN = frozenset(KNOWN_EVENTS)


def event_label(name: str | None) -> str:
    """A bounded label for an event name: documented names as they are, others `other`."""
    if name is None:
        return "none"
    return name if name in _KNOWN else "other"


class ReceiverMetrics:
    """Counters and the latency histogram of `POST /webhooks/awalchat`.

    `webhooks{event, outcome}`: outcome is `queued`, `duplicate`, `handshake`, or the
    refusal's error code (`bad_signature`, `bad_payload`, `request_timeout`,
    `payload_too_large`, `queue_unavailable`).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.webhooks = Counter(
            "ticket_worker_webhooks",
            "Webhook requests answered, by event type and outcome.",
            ["event", "outcome"],
            registry=self.registry,
        )
        self.signature_failures = Counter(
            "ticket_worker_webhook_signature_failures",
            "Webhook requests refused for a missing, malformed, stale or wrong signature.",
            ["reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ticket_worker_webhook_request_seconds",
            "Time to answer a webhook request.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )

        self._webhook_children: dict[tuple[str | None, str], Counter] = {}

    def count(self, event: str | None, outcome: str) -> None:
        """Count one answered webhook."""
        try:
            child = self._webhook_children[event, outcome]
        except KeyError:
            child = self.webhooks.labels(event_label(event), outcome)
            if event is None or event in _KNOWN:  # bounded: unknown names share `other`
                self._webhook_children[event, outcome] = child
        child.inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


disable_created_metrics()  # type: ignore[no-untyped-call]  # `*_created`: noise


class SharedStateCollector(Collector):
    """Gauges read from Redis at scrape time: the same figures from every worker."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        queue: str,
        parked: str,
        dlq: str,
        timers: str,
        ready: str,
        parked_lanes: str | None = None,
    ) -> None:
        self._redis = client
        self._keys = (queue, parked, dlq, timers, ready, parked_lanes)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queue, parked, dlq, timers, ready, parked_lanes = self._keys
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.llen(queue)
            pipe.zcard(parked)
            pipe.hlen(dlq)
            pipe.zcard(timers)
            pipe.llen(ready)
            if parked_lanes:
                pipe.zcard(parked_lanes)
            depth, parked_count, dead, pending, waiting, *lanes = pipe.execute()
        except redis.RedisError:
            return
        yield GaugeMetricFamily(
            "ticket_worker_parked_lanes",
            "lanes (a conversation's AwalChat or HelpWave actions) parked until their time "
            "comes (rate limits, retries)",
            value=sum(lanes),
        )
        yield GaugeMetricFamily(
            "ticket_worker_backlog",
            "accepted webhooks' conversations waiting for a drain to take them (tw:ready)",
            value=waiting,
        )
        yield GaugeMetricFamily(
            "ticket_worker_timers_pending", "waits of rules with after: not yet due", value=pending
        )
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
        self.runaway = Counter(
            "ticket_worker_runaway",
            "actions dead-lettered by the runaway breaker (a conversation past its cap)",
            ["action"],
            registry=r,
        )
        self.timers = Counter(
            "ticket_worker_timers",
            "waits of rules with after: scheduled, cancelled, and how each ended: due (carried "
            "out), cancelled (rule changed), cooling_down, superseded, dropped (conversation gone)",
            ["outcome"],
            registry=r,
        )
        self.timer_lateness = Histogram(
            "ticket_worker_timer_lateness_seconds",
            "how late a wait's actions started after its due time",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
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

    def watch(self, gauges: SharedStateCollector) -> None:
        """Add the shared-state gauges (read from Redis at each scrape)."""
        self.registry.register(gauges)

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        """Serve /metrics on `port` in a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)
