"""One item of a conversation's inbox, from its stored record to its decision: open it (a
webhook's delivery, a replay, or a wait coming due), read the state it is decided against,
decide it, and count and log the decision. The drain around it is
`worker.processing.processor`; carrying out what it decided is the lanes' work
(`worker.processing.lanes`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import redis

from worker.delivery.breaker import Verdict
from worker.engine import Ruleset, evaluate
from worker.engine.decision import Decision
from worker.engine.envelope import parse_webhook
from worker.engine.model import ConversationState, Event, Wait
from worker.engine.timers import fire
from worker.errors import PayloadError
from worker.metrics import WorkerMetrics, event_label
from worker.processing.lanes import FirstItem
from worker.processing.timer_items import open_timer
from worker.storage import keys
from worker.storage.conversations import ConversationStore
from worker.storage.drains import Head, head_state
from worker.storage.records import DeliveryRecord, parse_record
from worker.storage.timers import TimerItem, is_timer_item

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DrainReport:
    """What one drain did: events finished, and when to come back (parked) if at all."""

    processed: int = 0
    parked_until: float | None = None
    busy: bool = False


@dataclass(frozen=True)
class Decided:
    """An item decided: what the step to the next item writes first (`writes`), the lanes
    it hands the delivery to, and the new decision with the breaker's verdicts to read
    from the step's answers (None: it was decided before)."""

    conversation: str
    quiet: bool = False
    has_conversation: bool = True
    writes: redis.client.Pipeline | None = None
    lanes: str = ""
    delivery_id: str = ""
    new: Decision | None = None
    verdicts: list[tuple[str, Verdict]] = field(default_factory=list)
    record: DeliveryRecord | None = None
    event: Event | None = None

    @property
    def record_ttl(self) -> int | None:
        """The record's TTL once finished: short for an event of no conversation (None:
        kept as it is)."""
        return None if self.has_conversation else keys.QUIET_RECORD_TTL

    @property
    def pop_fields(self) -> list[str]:
        """The record's fields dropped once finished: the body of an event of no
        conversation no rule listened to."""
        return ["raw"] if self.quiet and not self.has_conversation else []


@dataclass(frozen=True)
class Claimed:
    """A lane the step that left the inbox empty took for this drain."""

    member: str
    head: Head
    first: FirstItem | None


def settle(
    store: ConversationStore, decided: Decided, answers: Sequence[object]
) -> dict[str, str | None]:
    """After the step that stored a new decision: the breaker's verdicts on its calls.
    When another drain had decided the item first (a lost lock), its lanes are given the
    item too (a lane finds what it has to do in the stored decision)."""
    if decided.new is None or not answers:
        return {}
    held = store.decision_that_holds(decided.new, answers[0])
    if held is not decided.new:
        log.warning("item decided twice", extra={"delivery_id": decided.delivery_id})
        store.hand_to_lanes(decided.conversation, decided.delivery_id, "ah")
        return {}
    verdicts = decided.verdicts
    return {key: v(a) for (key, v), a in zip(verdicts, answers[1 : 1 + len(verdicts)], strict=True)}


def state_of(
    store: ConversationStore, conversation: str, record: DeliveryRecord, head: Head
) -> tuple[ConversationState, bytes | None]:
    """The conversation's state in the record's view, as the step that opened the head
    read it (a timer item's own view may differ from the worker's), and its text as
    read (None: read elsewhere, or there was none)."""
    read_view = TimerItem.parse(head.item).view if is_timer_item(head.item) else record.view
    if read_view != record.view:
        return store.state(conversation, record.view), None
    return head_state(head) or ConversationState(), head.state


def open_item(
    store: ConversationStore,
    conversation: str,
    head: Head,
    *,
    dry_run: bool,
    metrics: WorkerMetrics,
) -> tuple[DeliveryRecord, Event, Wait | None] | None:
    """The item's record, its event, and the wait it carries out (timer items); None
    when there is nothing to do."""
    wait = None
    item = head.item
    if is_timer_item(item):
        opened = open_timer(store, conversation, item, head_state(head), dry_run=dry_run)
        if isinstance(opened, str):  # superseded, or its conversation is gone
            metrics.timers.labels(outcome=opened).inc()
            log.info("wait %s", opened, extra={"conversation": conversation, "item": item})
            return None
        record, wait = opened
    else:
        if not head.fields:
            log.error("delivery record missing", extra={"delivery_id": item})
            return None
        record = parse_record(item, head.fields)
    if dry_run and not record.dry_run:
        record = replace(record, dry_run=True)
    try:
        event = parse_webhook(record.raw)
    except PayloadError:
        event = None
    if not isinstance(event, Event):
        log.error("stored delivery is not an event", extra={"delivery_id": item})
        return None
    return record, event, wait


def decide(
    rules: Ruleset,
    conversation: str,
    record: DeliveryRecord,
    event: Event,
    wait: Wait | None,
    state: ConversationState,
    *,
    now: float,
) -> Decision:
    """Decide a webhook at the time it was received, or a wait coming due `now`."""
    if wait is not None:
        moment = datetime.fromtimestamp(now, UTC)
        return fire(rules, conversation, wait.rule, wait.due, state, now=moment)
    return evaluate(rules, event, state, now=datetime.fromtimestamp(record.received_at or now, UTC))


def observe(
    metrics: WorkerMetrics,
    record: DeliveryRecord,
    event: Event,
    wait: Wait | None,
    decision: Decision,
    *,
    now: float,
    quiet: bool = False,
) -> None:
    """Count and log a decision just stored (at DEBUG when `quiet`: no rule listened)."""
    if wait is None:
        metrics.events.labels(event=event_label(event.name)).inc()
    else:
        outcome = decision.outcomes[0].status if decision.outcomes else "due"
        metrics.timers.labels(outcome=outcome).inc()
        if outcome == "due":
            metrics.timer_lateness.observe(max(0.0, now - wait.due.timestamp()))
    for change in decision.wait_changes:
        metrics.timers.labels(outcome="scheduled" if change.due is not None else "cancelled").inc()
    for rule in decision.matched_rules:
        metrics.rule_matches.labels(rule=rule).inc()
    level = logging.DEBUG if quiet else logging.INFO
    if not log.isEnabledFor(level):
        return
    log.log(
        level,
        "event decided" if wait is None else "wait came due",
        extra={
            "delivery_id": record.delivery_id,
            "conversation": record.conversation,
            "event": event.name,
            "matched": list(decision.matched_rules),
            "actions": [a.kind for a in decision.actions if a.skip_reason is None],
            "waits": [c.reason for c in decision.wait_changes],
            "ruleset_version": decision.ruleset_version,
            "dry_run": record.dry_run,
            **({"rule": wait.rule, "due": wait.due.isoformat()} if wait else {}),
        },
    )
