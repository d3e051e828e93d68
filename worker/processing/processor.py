"""Drains one conversation's inbox: decide each event once, carry out its actions in order.

One process at a time drains a conversation (a Redis lock with a token and a TTL, renewed
while the drain works: `worker.delivery.lease`), so a conversation's events are decided one
at a time, in arrival order, and its actions happen in that order. Before each action the
drain checks that it still holds the lock and that its run budget is not spent (then it
parks the rest, due at once): one drain's work is bounded by the budget plus one action.
An event is decided when it reaches the head of the inbox: every earlier action of the
conversation has then completed, so `ticket:` conditions see the state they lead to.

Each action runs at most once to completion (`action_runner`: its outcome is recorded
atomically with the state it leads to, under the idempotency key delivery:rule#index). An
action that must wait (rate budget, retry backoff) parks the whole conversation in Redis and
frees the worker; the parked releaser puts it back on the queue when its time comes.

Besides webhook deliveries, an inbox holds replays (`r...`, worker.processing.failures) and
waits coming due (`t...`, worker.processing.timer_items): each is decided once (a wait by
`engine.timers.fire`) and carried out the same way.

A dry run (`DRY_RUN`, or an event accepted under it) decides against its own view of the
tickets (`tw:dry:state:{conv}`) and never changes what a live run believes. Shadow rules
decide each item in views of their own, never carried out (`shadow_runner`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from worker.delivery.breaker import RunawayBreaker
from worker.delivery.dlq import DeadLetterQueue
from worker.delivery.lease import Lease, LeaseKeeper
from worker.delivery.retry import RetryPolicy
from worker.engine import Ruleset, evaluate
from worker.engine.decision import Decision
from worker.engine.envelope import parse_webhook
from worker.engine.model import ConversationState, Event, Wait
from worker.engine.timers import fire
from worker.errors import PayloadError
from worker.metrics import WorkerMetrics, event_label
from worker.processing.action_runner import ActionRunner
from worker.processing.actions import ActionExecutor
from worker.processing.shadow_runner import ShadowRunner
from worker.processing.timer_items import open_timer, wait_of
from worker.storage.conversations import ConversationStore
from worker.storage.records import DeliveryRecord, is_quiet
from worker.storage.timers import is_timer_item

log = logging.getLogger(__name__)


class _Stop(Exception):
    """The drain must stop here: `until` is when to come back (None: another drain owns the
    conversation now, or its lock is gone)."""

    def __init__(self, until: float | None) -> None:
        super().__init__(until)
        self.until = until


@dataclass(frozen=True)
class DrainReport:
    """What one drain did: events finished, and when to come back (parked) if at all."""

    processed: int = 0
    parked_until: float | None = None
    busy: bool = False


class ConversationProcessor:
    """Decides and carries out the events of one conversation at a time (see module doc)."""

    def __init__(
        self,
        *,
        store: ConversationStore,
        rules: Callable[[], Ruleset],
        executor: ActionExecutor,
        retry: RetryPolicy,
        dead_letters: DeadLetterQueue,
        park: Callable[[str, float], None],
        dry_run: bool,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        lock_ttl: float = 60.0,
        leases: LeaseKeeper | None = None,
        run_budget: float = 20.0,
        stopping: Callable[[], bool] = lambda: False,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._store = store
        self._rules = rules
        self._park = park
        self._dry_run = dry_run
        self._clock = clock
        self._leases = leases if leases is not None else LeaseKeeper(store, ttl=lock_ttl)
        self._run_budget = run_budget
        self._stopping = stopping
        self._metrics = metrics or WorkerMetrics()
        self._shadows = ShadowRunner(store, clock=clock)
        self._runner = ActionRunner(
            store=store,
            executor=executor,
            retry=retry,
            dead_letters=dead_letters,
            clock=clock,
            rng=rng or random.Random(),
            metrics=self._metrics,
            breaker=RunawayBreaker(store.client),
            limits=lambda: rules().limits,
        )

    def drain(self, conversation: str) -> DrainReport:
        """Process the conversation's inbox until it is empty, it must wait, or time is up."""
        processed = 0
        while True:
            token = self._store.acquire(conversation, self._leases.ttl_ms)
            if token is None:
                return DrainReport(processed, busy=True)
            try:
                with self._leases.hold(conversation, token) as lease:
                    report = self._drain_locked(conversation, lease)
            finally:
                self._store.release(conversation, token)
            processed += report.processed
            if report.parked_until is not None or self._store.backlog(conversation) == 0:
                return DrainReport(processed, report.parked_until)
            # An event arrived while we held the lock; its own task may have found us busy.

    def _drain_locked(self, conversation: str, lease: Lease) -> DrainReport:
        started = self._clock()
        self._store.mark_active(conversation, started)
        processed = 0
        while (item := self._store.head(conversation)) is not None:
            try:
                quiet, has_conversation = self._process(conversation, item, lease, started)
            except _Stop as stop:
                if stop.until is None:
                    return DrainReport(processed)
                self._park(conversation, stop.until)
                return DrainReport(processed, parked_until=stop.until)
            self._store.pop_head(conversation, item, has_conversation=has_conversation, quiet=quiet)
            processed += 1
        return DrainReport(processed)

    def _check(self, lease: Lease, started: float) -> None:
        """Raise _Stop unless this drain may start one more action."""
        if lease.lost:
            raise _Stop(None)
        now = self._clock()
        if now - started > self._run_budget or self._stopping():
            raise _Stop(now)

    def _process(
        self, conversation: str, item: str, lease: Lease, started: float
    ) -> tuple[bool, bool]:
        """Decide the item (once) and carry out its actions; return (quiet: no rule
        listened, has a conversation). Raise _Stop when the drain must stop first."""
        self._check(lease, started)
        opened = self._open(conversation, item)
        if opened is None:
            return False, True
        record, event, wait = opened
        decision = record.decision
        if decision is None:
            state = self._store.state(conversation, record.view)
            decision = self._decide(conversation, record, event, wait, state)
            decision = self._store.store_decision(record, decision, state)
            record = replace(record, decision=decision, state_before=state)
            self._observe(record, event, wait, decision)
        self._shadows.run(self._rules(), record, event, wait, decision)
        for action in decision.actions:
            if action.key in record.done:
                continue
            self._check(lease, started)
            until = self._runner.run(record, event, action)
            if until is not None:
                raise _Stop(until)
        return is_quiet(decision), event.conversation_id is not None

    def _open(
        self, conversation: str, item: str
    ) -> tuple[DeliveryRecord, Event, Wait | None] | None:
        """The item's record, its event, and the wait it carries out (timer items); None
        when there is nothing to do."""
        wait = None
        if is_timer_item(item):
            opened = open_timer(self._store, conversation, item)
            if isinstance(opened, str):  # superseded, or its conversation is gone
                self._metrics.timers.labels(outcome=opened).inc()
                log.info("wait %s", opened, extra={"conversation": conversation, "item": item})
                return None
            record, wait = opened, wait_of(opened)
        else:
            loaded = self._store.load(item)
            if loaded is None:
                log.error("delivery record missing", extra={"delivery_id": item})
                return None
            record = loaded
        if self._dry_run and not record.dry_run:
            record = replace(record, dry_run=True)
        try:
            event = parse_webhook(record.raw)
        except PayloadError:
            event = None
        if not isinstance(event, Event):
            log.error("stored delivery is not an event", extra={"delivery_id": item})
            return None
        return record, event, wait

    def _decide(
        self,
        conversation: str,
        record: DeliveryRecord,
        event: Event,
        wait: Wait | None,
        state: ConversationState,
    ) -> Decision:
        if wait is not None:
            now = datetime.fromtimestamp(self._clock(), UTC)
            return fire(self._rules(), conversation, wait.rule, wait.due, state, now=now)
        now = datetime.fromtimestamp(record.received_at or self._clock(), UTC)
        return evaluate(self._rules(), event, state, now=now)

    def _observe(
        self, record: DeliveryRecord, event: Event, wait: Wait | None, decision: Decision
    ) -> None:
        """Count and log a decision just stored."""
        if wait is None:
            self._metrics.events.labels(event=event_label(event.name)).inc()
        else:
            outcome = decision.outcomes[0].status if decision.outcomes else "due"
            self._metrics.timers.labels(outcome=outcome).inc()
            if outcome == "due":
                self._metrics.timer_lateness.observe(max(0.0, self._clock() - wait.due.timestamp()))
        for change in decision.wait_changes:
            self._metrics.timers.labels(
                outcome="scheduled" if change.due is not None else "cancelled"
            ).inc()
        for rule in decision.matched_rules:
            self._metrics.rule_matches.labels(rule=rule).inc()
        log.info(
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
