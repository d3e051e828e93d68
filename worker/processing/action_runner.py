"""Carrying out one planned action: call, record, and on failure retry or dead-letter.

`ActionRunner.run(record, event, action)` does it exactly once to completion:

- a skipped or dry-run action is recorded;
- an action past the runaway breaker's cap for its conversation (`delivery/breaker.py`) is
  dead-lettered without a call (a replay is not capped);
- a call that succeeds records its outcome and the state it leads to, atomically, under the
  action's idempotency key;
- a call that fails follows `failures.verdict`: wait and retry in its turn, or a dead letter
  with the state the decision projected for it undone.

A HelpWave create (ticket or comment) is not idempotent: right before its POST the runner
marks the intent in the delivery (`worker.storage.send_intents`, confirmed by a replica
when one is connected) and clears it when the create definitely did not happen. A run that
finds an intent with no outcome dead-letters the action (AMBIGUOUS_CREATE) instead of
creating twice: an earlier worker may have created it and died, or a Redis failover lost
its outcome.

It runs in a lane (worker.processing.lanes): the outcome writes only what it teaches the
state (`taught`); the rest of the state is the decisions'.

It returns when to come back (the lane is parked until then), or None when the
action is finished.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

import redis

from worker.delivery.breaker import RunawayBreaker, Verdict
from worker.delivery.dlq import DeadLetterQueue
from worker.delivery.gate import Observations
from worker.delivery.retry import RetryPolicy
from worker.engine.decision import Decision
from worker.engine.model import AWALCHAT_ACTIONS, ConversationState, Event, PlannedAction
from worker.engine.ruleset import Limits
from worker.errors import (
    ActionError,
    AmbiguousCreateError,
    ConfigError,
    HelpdeskError,
    ThrottledError,
)
from worker.metrics import WorkerMetrics
from worker.processing.actions import ActionExecutor, ActionOutcome
from worker.processing.failures import (
    REPLAY_VERSION,
    attempt_record,
    dead_letter,
    is_ambiguous,
    verdict,
)
from worker.processing.lane_fields import lane_member, taught
from worker.storage.conversations import ConversationStore
from worker.storage.records import DeliveryRecord
from worker.storage.send_intents import Mark, SendIntents

log = logging.getLogger(__name__)

AMBIGUOUS_CREATE = "ambiguous: create may have happened"
REPLICA_RETRY_SECONDS = 1.0  # an intent no replica confirmed: try again this much later


class ActionRunner:
    """Carries out planned actions (see the module docstring)."""

    def __init__(
        self,
        *,
        store: ConversationStore,
        executor: ActionExecutor,
        retry: RetryPolicy,
        dead_letters: DeadLetterQueue,
        clock: Callable[[], float],
        rng: random.Random,
        metrics: WorkerMetrics,
        breaker: RunawayBreaker,
        limits: Callable[[], Limits],
        intents: SendIntents | None = None,
        observations: Observations | None = None,
    ) -> None:
        self._observations = observations
        self._intents = intents if intents is not None else SendIntents(store.client)
        self._breaker = breaker
        self._limits = limits
        self._store = store
        self._executor = executor
        self._retry = retry
        self._dlq = dead_letters
        self._clock = clock
        self._rng = rng
        self._metrics = metrics

    def queue_admissions(
        self, pipe: redis.client.Pipeline, record: DeliveryRecord, decision: Decision, now: float
    ) -> list[tuple[str, Verdict]]:
        """Ask the breaker about every action of a new decision that will make a call, on
        `pipe` (sent with the decision: no round trip of their own); the verdicts by action
        key, for `run`'s `admitted`."""
        if record.dry_run or decision.ruleset_version == REPLAY_VERSION:
            return []
        limits = self._limits()
        queued = []
        for action in decision.actions:
            if action.skip_reason is None:
                verdict = self._breaker.queue_admit(
                    pipe,
                    record.conversation,
                    action.kind,
                    f"{record.delivery_id}:{action.key}",
                    limits,
                    now,
                )
                if verdict is not None:
                    queued.append((action.key, verdict))
        return queued

    def _runaway(
        self,
        record: DeliveryRecord,
        action: PlannedAction,
        now: float,
        admitted: Mapping[str, str | None],
    ) -> str | None:
        """Why the breaker refuses the action (None: carry it out). A replay is not capped."""
        if action.key in admitted:
            return admitted[action.key]
        if record.decision is not None and record.decision.ruleset_version == REPLAY_VERSION:
            return None
        return self._breaker.admit(
            record.conversation,
            action.kind,
            f"{record.delivery_id}:{action.key}",
            self._limits(),
            now,
        )

    def _complete(
        self,
        record: DeliveryRecord,
        action: PlannedAction,
        outcome: dict[str, Any],
        changes: Mapping[str, Any] | None = None,
        pipe: redis.client.Pipeline | None = None,
        unless_lane_moved: str = "",
    ) -> None:
        self._store.complete(
            record,
            action.key,
            outcome,
            changes=changes,
            unless_lane_moved=unless_lane_moved,
            pipe=pipe,
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

    def run(
        self,
        record: DeliveryRecord,
        event: Event,
        action: PlannedAction,
        state: ConversationState,
        admitted: Mapping[str, str | None] | None = None,
        pipe: redis.client.Pipeline | None = None,
        *,
        hold_lessons: bool = False,
    ) -> tuple[float | None, ConversationState]:
        """Carry out `action` against `state` (the conversation's state as stored now);
        return when to come back (None: finished) and the state stored afterwards.
        `admitted`: the breaker's verdicts asked with the decision (`queue_admissions`);
        `pipe`: the outcome is recorded on it, sent with the caller's next step.
        `hold_lessons`: what the answer taught the rate budget stays held (sent with this
        thread's next reservation, or queued by the caller), for a caller whose `pipe`
        goes out only after more calls: the budget must not wait for it meanwhile."""
        if action.skip_reason is not None:
            self._complete(
                record, action, {"result": "skipped", "reason": action.skip_reason}, None, pipe
            )
            return None, state
        if record.dry_run:
            self._complete(record, action, {"result": "dry_run"}, None, pipe)
            return None, state
        attempts = list(record.attempts.get(action.key, []))
        now = self._clock()
        if attempts and float(attempts[-1].get("not_before", 0.0)) > now:
            return float(attempts[-1]["not_before"]), state
        refused = self._runaway(record, action, now, admitted or {})
        if refused is not None:
            self._metrics.runaway.labels(action=action.kind).inc()
            return None, self._bury(record, event, action, attempts, refused, state)
        marked: list[bool] = []

        def before_send() -> None:
            self._mark_intent(record, action, marked)

        try:
            outcome = self._execute(action, event, state, before_send, pipe, hold_lessons)
        except ThrottledError as exc:
            if marked:
                self._intents.clear(record.delivery_id, action.key)
            return exc.until, state
        except AmbiguousCreateError as exc:
            attempts.append(attempt_record(exc, now))
            return None, self._bury(record, event, action, attempts, AMBIGUOUS_CREATE, state)
        except (HelpdeskError, ActionError, ConfigError) as exc:
            if marked and not (isinstance(exc, HelpdeskError) and is_ambiguous(exc, action)):
                self._intents.clear(record.delivery_id, action.key)
            attempts.append(attempt_record(exc, now))
            next_step = verdict(exc, action, attempts, now=now, policy=self._retry, rng=self._rng)
            if next_step.retry_at is None:
                return None, self._bury(record, event, action, attempts, next_step.reason, state)
            attempts[-1]["not_before"] = next_step.retry_at
            self._metrics.retries.labels(action=action.kind).inc()
            self._store.record_attempts(record.delivery_id, action.key, attempts)
            return next_step.retry_at, state
        changes = taught(record, action, state, outcome.state)
        self._complete(record, action, outcome.to_json(), changes, pipe)
        return None, outcome.state

    def _execute(
        self,
        action: PlannedAction,
        event: Event,
        state: ConversationState,
        before_send: Callable[[], None],
        pipe: redis.client.Pipeline | None,
        hold: bool = False,
    ) -> ActionOutcome:
        """The executor's call; what its answers taught the rate budget goes with the
        outcome (`pipe`) when it succeeded, else at once (gate.Observations); with `hold`
        it stays held on success (`run`'s `hold_lessons`)."""
        try:
            outcome = self._executor.execute(action, event, state, before_send=before_send)
        except BaseException:
            if self._observations is not None:
                self._observations.send()
            raise
        if self._observations is not None and not hold:
            if pipe is None:
                self._observations.send()
            else:
                self._observations.queue_on(pipe)
        return outcome

    def _mark_intent(
        self, record: DeliveryRecord, action: PlannedAction, marked: list[bool]
    ) -> None:
        """Mark the intent to send the create now; raise when it must not go out."""
        now = self._clock()
        mark = self._intents.mark(record.delivery_id, action.key, now)
        if mark is Mark.FOUND:
            raise AmbiguousCreateError(
                "an earlier attempt was about to send this create and recorded no outcome"
            )
        if mark is Mark.UNCONFIRMED:
            raise ThrottledError("redis-replica", now + REPLICA_RETRY_SECONDS)
        marked.append(True)

    def _bury(
        self,
        record: DeliveryRecord,
        event: Event,
        action: PlannedAction,
        attempts: list[dict[str, Any]],
        reason: str,
        state: ConversationState,
    ) -> ConversationState:
        """Dead-letter the action and mark it finished; the AwalChat ticket the decision
        projected goes back to what it was before (a replay projected nothing), unless later
        decisions of the lane projected past it (their actions follow in the lane). Returns
        the state as this lane now sees it."""
        reverted = state
        changes: dict[str, Any] = {}
        lane = ""
        if action.kind in AWALCHAT_ACTIONS and record.state_before is not None:
            reverted = state.evolve(ticket_open=record.state_before.ticket_open)
            changes = {"ticket_open": record.state_before.ticket_open}
            lane = lane_member(action.kind, record.conversation)
        letter = dead_letter(record, event, action, attempts, reason, now=self._clock())
        letter_id = self._dlq.add(letter)
        self._complete(
            record,
            action,
            {"result": "failed", "reason": reason, "dead_letter": letter_id},
            changes,
            unless_lane_moved=lane,
        )
        return reverted
