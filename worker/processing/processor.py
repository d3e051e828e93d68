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
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import redis

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
from worker.storage import keys
from worker.storage.conversations import ConversationStore
from worker.storage.drains import AGAIN, DrainSteps, Head, Taken, head_state
from worker.storage.records import DeliveryRecord, is_quiet, parse_record
from worker.storage.timers import TimerItem, is_timer_item

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
        self._steps = DrainSteps(store.client, dry_run=dry_run)
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
        token = secrets.token_hex(8)
        started = self._clock()
        head = self._steps.begin(conversation, token, ttl_ms=self._leases.ttl_ms, now=started)
        if head is False:
            return DrainReport(busy=True)
        if head is True:
            return DrainReport()
        return self._drain_from(conversation, token, head, started, next_token=None)[0]

    def drain_ready(self) -> DrainReport:
        """Take ready conversations (worker.storage.drains) one after another and drain
        each, until none is ready or the run budget is spent (then wake another drain)."""
        started = self._clock()
        processed = 0
        woken = True
        while True:
            now = self._clock()
            if now - started > self._run_budget or self._stopping():
                self._steps.nudge()
                return DrainReport(processed)
            token = secrets.token_hex(8)
            taken = self._steps.take_ready(token, ttl_ms=self._leases.ttl_ms, now=now, woken=woken)
            woken = False
            while isinstance(taken, tuple):
                conversation, head = taken
                in_time = self._clock() - started <= self._run_budget and not self._stopping()
                following = secrets.token_hex(8) if in_time else None
                report, taken = self._drain_from(
                    conversation, token, head, self._clock(), next_token=following
                )
                processed += report.processed
                token = following or ""
            if taken is None:
                return DrainReport(processed)

    def _drain_from(
        self, conversation: str, token: str, head: Head, started: float, *, next_token: str | None
    ) -> tuple[DrainReport, Taken]:
        """Drain a conversation whose lock (`token`) this drain took with its first item.
        With `next_token`, the step that finishes it takes the next ready conversation:
        returned (with that token holding its lock); AGAIN when it took none."""
        released = False
        try:
            with self._leases.hold(conversation, token) as lease:
                report, released, taken = self._drain_locked(
                    conversation, token, lease, head, started, next_token
                )
        finally:
            if not released:
                self._store.release(conversation, token)
        return report, taken

    def _drain_locked(
        self,
        conversation: str,
        token: str,
        lease: Lease,
        head: Head,
        started: float,
        next_token: str | None,
    ) -> tuple[DrainReport, bool, Taken]:
        """Work through the inbox from `head`; return the report, whether the last step
        released the lock (the inbox was left empty), and what it took next."""
        processed = 0
        while True:
            try:
                quiet, has_conversation, outcomes = self._process(
                    conversation, head, lease, started
                )
            except _Stop as stop:
                if stop.until is None:
                    return DrainReport(processed), False, AGAIN
                self._park(conversation, stop.until)
                return DrainReport(processed, parked_until=stop.until), False, AGAIN
            processed += 1
            step = self._steps.advance(
                conversation,
                token,
                head.item,
                ttl_ms=self._leases.ttl_ms,
                now=self._clock(),
                record_ttl=None if has_conversation else keys.QUIET_RECORD_TTL,
                pop_fields=["raw"] if quiet and not has_conversation else [],
                next_token=next_token,
                after=outcomes,
            )
            if step.head is None:
                report = DrainReport(processed)
                return report, not step.lost, step.taken if step.asked else AGAIN
            head = step.head

    def _check(self, lease: Lease, started: float) -> None:
        """Raise _Stop unless this drain may start one more action."""
        if lease.lost:
            raise _Stop(None)
        now = self._clock()
        if now - started > self._run_budget or self._stopping():
            raise _Stop(now)

    def _process(
        self, conversation: str, head: Head, lease: Lease, started: float
    ) -> tuple[bool, bool, redis.client.Pipeline | None]:
        """Decide the item (once) and carry out its actions; return (quiet: no rule
        listened, has a conversation, the last outcome's write still to send). Raise _Stop
        when the drain must stop first."""
        self._check(lease, started)
        opened = self._open(conversation, head)
        if opened is None:
            return False, True, None
        record, event, wait = opened
        state, before_text = self._state_of(conversation, record, head)
        decision = record.decision
        admitted: dict[str, str | None] = {}
        if decision is None:
            decided = self._decide(conversation, record, event, wait, state)
            # one round trip: the decision, and the breaker's verdicts on its calls
            pipe = self._store.client.pipeline(transaction=False)
            self._store.store_decision(record, decided, state, before_text=before_text, pipe=pipe)
            verdicts = self._runner.queue_admissions(pipe, record, decided, self._clock())
            answers = pipe.execute()
            decision = self._store.decision_that_holds(decided, answers[0])
            record = replace(record, decision=decision, state_before=state)
            if decision is decided:
                state = decision.state_after
                admitted = {
                    key: verdict(answer)
                    for (key, verdict), answer in zip(verdicts, answers[1:], strict=True)
                }
            else:  # another drain decided it first: read what it left
                state = self._store.state(conversation, record.view)
            self._observe(record, event, wait, decision)
        self._shadows.run(self._rules(), record, event, wait, decision)
        pending = [action for action in decision.actions if action.key not in record.done]
        outcomes = None
        for action in pending:
            self._check(lease, started)
            if action is pending[-1]:  # its outcome leaves with the step to the next item
                outcomes = self._store.client.pipeline(transaction=False)
            until, state = self._runner.run(record, event, action, state, admitted, outcomes)
            if until is not None:
                raise _Stop(until)
        return is_quiet(decision, self._rules()), event.conversation_id is not None, outcomes

    def _state_of(
        self, conversation: str, record: DeliveryRecord, head: Head
    ) -> tuple[ConversationState, bytes | None]:
        """The conversation's state in the record's view, as the step that opened the head
        read it (a timer item's own view may differ from the worker's), and its text as
        read (None: read elsewhere, or there was none)."""
        read_view = TimerItem.parse(head.item).view if is_timer_item(head.item) else record.view
        if read_view != record.view:
            return self._store.state(conversation, record.view), None
        return head_state(head) or ConversationState(), head.state

    def _open(
        self, conversation: str, head: Head
    ) -> tuple[DeliveryRecord, Event, Wait | None] | None:
        """The item's record, its event, and the wait it carries out (timer items); None
        when there is nothing to do."""
        wait = None
        item = head.item
        if is_timer_item(item):
            opened = open_timer(self._store, conversation, item, head_state(head))
            if isinstance(opened, str):  # superseded, or its conversation is gone
                self._metrics.timers.labels(outcome=opened).inc()
                log.info("wait %s", opened, extra={"conversation": conversation, "item": item})
                return None
            record, wait = opened, wait_of(opened)
        else:
            if not head.fields:
                log.error("delivery record missing", extra={"delivery_id": item})
                return None
            record = parse_record(item, head.fields)
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
