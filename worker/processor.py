"""Drains one conversation's inbox: decide each event once, carry out its actions in order.

One process at a time drains a conversation (a Redis lock with a token and a TTL), so a
conversation's events are decided one at a time, in arrival order, and its actions happen in
that order. An event is decided when it reaches the head of the inbox: every earlier action
of the conversation has then completed, so `ticket:` conditions see the state they lead to.

Each action runs at most once to completion (its outcome is recorded atomically with the
state it leads to, under the idempotency key delivery:rule#index). An action that must wait
(rate budget, retry backoff) parks the whole conversation in Redis and frees the worker;
the parked releaser puts it back on the queue when its time comes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.actions import ActionExecutor
from worker.delivery.dlq import DeadLetterQueue
from worker.delivery.retry import RetryPolicy
from worker.engine import Ruleset, evaluate
from worker.engine.model import AWALCHAT_ACTIONS, ConversationState, Event, PlannedAction
from worker.errors import (
    ActionError,
    ConfigError,
    HelpdeskRejectedError,
    HelpdeskUnavailableError,
    PayloadError,
    RateLimitedError,
    ThrottledError,
)
from worker.events import parse_webhook
from worker.failures import attempt_record, dead_letter, is_ambiguous
from worker.store import ConversationStore, DeliveryRecord
from worker.telemetry import WorkerMetrics

log = logging.getLogger(__name__)


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
        self._lock_ttl_ms = int(lock_ttl * 1000)
        self._run_budget = run_budget
        self._stopping = stopping
        self._metrics = metrics or WorkerMetrics()

    def drain(self, conversation: str) -> DrainReport:
        """Process the conversation's inbox until it is empty, it must wait, or time is up."""
        processed = 0
        while True:
            token = self._store.acquire(conversation, self._lock_ttl_ms)
            if token is None:
                return DrainReport(processed, busy=True)
            try:
                report = self._drain_locked(conversation, token)
            finally:
                self._store.release(conversation, token)
            processed += report.processed
            if report.parked_until is not None or self._store.backlog(conversation) == 0:
                return DrainReport(processed, report.parked_until)
            # An event arrived while we held the lock; its own task may have found us busy.

    def _drain_locked(self, conversation: str, token: str) -> DrainReport:
        started = self._clock()
        self._store.mark_active(conversation, started)
        processed = 0
        while (item := self._store.head(conversation)) is not None:
            now = self._clock()
            if now - started > self._run_budget or self._stopping():
                return self._park_at(conversation, now, processed)
            until = self._process(conversation, item)
            if until is not None:
                return self._park_at(conversation, until, processed)
            self._store.pop_head(conversation, item)
            processed += 1
            if not self._store.extend(conversation, token, self._lock_ttl_ms):
                log.warning("conversation lock lost", extra={"conversation": conversation})
                break
        return DrainReport(processed)

    def _park_at(self, conversation: str, until: float, processed: int) -> DrainReport:
        self._park(conversation, until)
        return DrainReport(processed, parked_until=until)

    def _process(self, conversation: str, delivery_id: str) -> float | None:
        record = self._store.load(delivery_id)
        if record is None:
            log.error("delivery record missing", extra={"delivery_id": delivery_id})
            return None
        try:
            event = parse_webhook(record.raw)
        except PayloadError:
            event = None
        if not isinstance(event, Event):
            log.error("stored delivery is not an event", extra={"delivery_id": delivery_id})
            return None
        decision = record.decision
        if decision is None:
            state = self._store.state(conversation)
            now = datetime.fromtimestamp(record.received_at or self._clock(), UTC)
            decision = evaluate(self._rules(), event, state, now=now)
            decision = self._store.store_decision(record, decision, state)
            self._metrics.events.labels(event=event.name).inc()
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
                    "dry_run": record.dry_run or self._dry_run,
                },
            )
        for action in decision.actions:
            if action.key in record.done:
                continue
            until = self._carry_out(record, event, action)
            if until is not None:
                return until
        return None

    def _complete(
        self,
        record: DeliveryRecord,
        action: PlannedAction,
        outcome: dict[str, Any],
        state: ConversationState | None,
    ) -> None:
        self._store.complete(
            record.delivery_id,
            action.key,
            outcome,
            conversation=record.conversation,
            state=state,
        )
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
        if record.dry_run or self._dry_run:
            self._complete(record, action, {"result": "dry_run"}, None)
            return None
        attempts = list(record.attempts.get(action.key, []))
        now = self._clock()
        if attempts and float(attempts[-1].get("not_before", 0.0)) > now:
            return float(attempts[-1]["not_before"])
        state = self._store.state(record.conversation)
        try:
            outcome = self._executor.execute(action, event, state)
        except ThrottledError as exc:
            return exc.until
        except HelpdeskUnavailableError as exc:
            attempts.append(attempt_record(exc, now))
            if is_ambiguous(exc, action):
                reason = "no answer after the request was sent: it may have been applied"
                self._bury(record, action, attempts, reason, state)
                return None
            retry_after = exc.retry_after if isinstance(exc, RateLimitedError) else None
            elapsed = now - float(attempts[0]["at"])
            delay = self._retry.delay(
                len(attempts), retry_after=retry_after, elapsed=elapsed, rng=self._rng
            )
            if delay is None:
                self._bury(record, action, attempts, "out of attempts", state)
                return None
            attempts[-1]["not_before"] = now + delay
            self._metrics.retries.labels(action=action.kind).inc()
            self._store.record_attempts(record.delivery_id, action.key, attempts)
            return now + delay
        except (HelpdeskRejectedError, ActionError, ConfigError) as exc:
            attempts.append(attempt_record(exc, now))
            self._bury(record, action, attempts, f"refused: {exc}", state)
            return None
        self._complete(record, action, outcome.to_json(), outcome.state)
        return None

    def _bury(
        self,
        record: DeliveryRecord,
        action: PlannedAction,
        attempts: list[dict[str, Any]],
        reason: str,
        state: ConversationState,
    ) -> None:
        """Dead-letter the action and mark it finished; the state goes back to what it was."""
        before = record.state_before or ConversationState()
        reverted = state
        if action.kind in AWALCHAT_ACTIONS:
            reverted = state.evolve(ticket_open=before.ticket_open)
        letter = dead_letter(record, action, attempts, reason, now=self._clock())
        self._store.keep(record.delivery_id)  # the replay needs it as long as the letter lives
        letter_id = self._dlq.add(letter)
        self._complete(
            record,
            action,
            {"result": "failed", "reason": reason, "dead_letter": letter_id},
            reverted,
        )
        return
