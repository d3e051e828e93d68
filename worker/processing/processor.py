"""Drains one conversation's inbox: decide each event once, carry out its actions in order.

One process at a time drains a conversation (a Redis lock with a token and a TTL, renewed
while the drain works: `worker.delivery.lease`), so a conversation's events are decided one
at a time, in arrival order, and its actions happen in that order. Before each action the
drain checks that it still holds the lock and that its run budget is not spent (then it
parks the rest, due at once): one drain's work is bounded by the budget plus one action.
An event is decided when it reaches the head of the inbox: every earlier action of the
conversation has then completed, so `ticket:` conditions see the state they lead to.

Each action runs at most once to completion (its outcome is recorded atomically with the
state it leads to, under the idempotency key delivery:rule#index). An action that must wait
(rate budget, retry backoff) parks the whole conversation in Redis and frees the worker;
the parked releaser puts it back on the queue when its time comes.

A dry run (`DRY_RUN`, or an event accepted under it) decides against its own view of the
tickets (`tw:dry:state:{conv}`) and never changes what a live run believes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from worker.delivery.dlq import DeadLetterQueue
from worker.delivery.lease import Lease, LeaseKeeper
from worker.delivery.retry import RetryPolicy
from worker.engine import Ruleset, evaluate
from worker.engine.envelope import parse_webhook
from worker.engine.model import AWALCHAT_ACTIONS, ConversationState, Event, PlannedAction
from worker.errors import ActionError, ConfigError, HelpdeskError, PayloadError, ThrottledError
from worker.metrics import WorkerMetrics, event_label
from worker.processing.actions import ActionExecutor
from worker.processing.failures import attempt_record, dead_letter, verdict
from worker.storage.conversations import ConversationStore
from worker.storage.records import DeliveryRecord, is_quiet

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
        self._executor = executor
        self._retry = retry
        self._dlq = dead_letters
        self._park = park
        self._dry_run = dry_run
        self._clock = clock
        self._rng = rng or random.Random()
        self._leases = leases if leases is not None else LeaseKeeper(store, ttl=lock_ttl)
        self._run_budget = run_budget
        self._stopping = stopping
        self._metrics = metrics or WorkerMetrics()

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
        self, conversation: str, delivery_id: str, lease: Lease, started: float
    ) -> tuple[bool, bool]:
        """Decide the delivery (once) and carry out its actions; return (quiet: no rule
        listened, has a conversation). Raise _Stop when the drain must stop first."""
        self._check(lease, started)
        record = self._store.load(delivery_id)
        if record is None:
            log.error("delivery record missing", extra={"delivery_id": delivery_id})
            return False, True
        if self._dry_run and not record.dry_run:
            record = replace(record, dry_run=True)
        try:
            event = parse_webhook(record.raw)
        except PayloadError:
            event = None
        if not isinstance(event, Event):
            log.error("stored delivery is not an event", extra={"delivery_id": delivery_id})
            return False, True
        decision = record.decision
        if decision is None:
            state = self._store.state(conversation, record.view)
            now = datetime.fromtimestamp(record.received_at or self._clock(), UTC)
            decision = evaluate(self._rules(), event, state, now=now)
            decision = self._store.store_decision(record, decision, state)
            record = replace(record, decision=decision, state_before=state)
            self._metrics.events.labels(event=event_label(event.name)).inc()
            for rule in decision.matched_rules:
                self._metrics.rule_matches.labels(rule=rule).inc()
            log.info(
                "event decided",
                extra={
                    "delivery_id": delivery_id,
                    "conversation": conversation,
                    "event": event.name,
                    "matched": list(decision.matched_rules),
                    "actions": [a.kind for a in decision.actions if a.skip_reason is None],
                    "ruleset_version": decision.ruleset_version,
                    "dry_run": record.dry_run,
                },
            )
        for action in decision.actions:
            if action.key in record.done:
                continue
            self._check(lease, started)
            until = self._carry_out(record, event, action)
            if until is not None:
                raise _Stop(until)
        return is_quiet(decision), event.conversation_id is not None

    def _complete(
        self,
        record: DeliveryRecord,
        action: PlannedAction,
        outcome: dict[str, Any],
        state: ConversationState | None,
    ) -> None:
        self._store.complete(record, action.key, outcome, state=state)
        self._metrics.actions.labels(action=action.kind, outcome=outcome.get("result", "")).inc()
        log.info(
            "action %s",
            outcome.get("result"),
            extra={
                "delivery_id": record.delivery_id,
                "conversation": record.conversation,
                "rule": action.rule,
                "action": action.kind,
                **{k: v for k, v in outcome.items() if k in ("reason", "dead_letter")},
            },
        )

    def _carry_out(
        self, record: DeliveryRecord, event: Event, action: PlannedAction
    ) -> float | None:
        if action.skip_reason is not None:
            self._complete(
                record, action, {"result": "skipped", "reason": action.skip_reason}, None
            )
            return None
        if record.dry_run:
            self._complete(record, action, {"result": "dry_run"}, None)
            return None
        attempts = list(record.attempts.get(action.key, []))
        now = self._clock()
        if attempts and float(attempts[-1].get("not_before", 0.0)) > now:
            return float(attempts[-1]["not_before"])
        state = self._store.state(record.conversation, record.view)
        try:
            outcome = self._executor.execute(action, event, state)
        except ThrottledError as exc:
            return exc.until
        except (HelpdeskError, ActionError, ConfigError) as exc:
            attempts.append(attempt_record(exc, now))
            next_step = verdict(exc, action, attempts, now=now, policy=self._retry, rng=self._rng)
            if next_step.retry_at is None:
                self._bury(record, event, action, attempts, next_step.reason, state)
                return None
            attempts[-1]["not_before"] = next_step.retry_at
            self._metrics.retries.labels(action=action.kind).inc()
            self._store.record_attempts(record.delivery_id, action.key, attempts)
            return next_step.retry_at
        self._complete(record, action, outcome.to_json(), outcome.state)
        return None

    def _bury(
        self,
        record: DeliveryRecord,
        event: Event,
        action: PlannedAction,
        attempts: list[dict[str, Any]],
        reason: str,
        state: ConversationState,
    ) -> None:
        """Dead-letter the action and mark it finished; the state the decision projected
        for it goes back to what it was (a replay projected nothing)."""
        reverted = state
        if action.kind in AWALCHAT_ACTIONS and record.state_before is not None:
            reverted = state.evolve(ticket_open=record.state_before.ticket_open)
        letter = dead_letter(record, event, action, attempts, reason, now=self._clock())
        letter_id = self._dlq.add(letter)
        self._complete(
            record,
            action,
            {"result": "failed", "reason": reason, "dead_letter": letter_id},
            reverted,
        )
        return
