"""The receiver's Prometheus metrics, in a registry of their own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

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
