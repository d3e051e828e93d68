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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import redis

from worker.delivery.breaker import RunawayBreaker, Verdict
from worker.delivery.dlq import DeadLetterQueue
from worker.delivery.lease import Lease, LeaseKeeper
from worker.delivery.parking import ParkingLot
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
from worker.processing.lane_fields import destination
from worker.processing.lanes import Budget, FirstItem, LaneDrainer, LaneLocks, Stop
from worker.processing.shadow_runner import ShadowRunner
from worker.processing.timer_items import open_timer, wait_of
from worker.storage import keys
from worker.storage.conversations import ConversationStore
from worker.storage.drains import AGAIN, CONVERSATION, DrainSteps, Head, Taken, head_state
from worker.storage.records import DeliveryRecord, is_quiet, parse_record
from worker.storage.timers import TimerItem, is_timer_item

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DrainReport:
    """What one drain did: events finished, and when to come back (parked) if at all."""

    processed: int = 0
    parked_until: float | None = None
    busy: bool = False


@dataclass(frozen=True)
class _Decided:
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


@dataclass(frozen=True)
class _Claimed:
    """A lane the step that left the inbox empty took for this drain."""

    member: str
    head: Head
    first: FirstItem | None


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
        park_lane: Callable[[str, float], None] | None = None,
        lane_leases: LeaseKeeper | None = None,
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
        self._steps = DrainSteps(store.client, dry_run=dry_run, retention=store.retention)
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
        self._lanes = LaneDrainer(
            store=store,
            steps=self._steps,
            runner=self._runner,
            leases=lane_leases or LeaseKeeper(LaneLocks(store), ttl=self._leases.ttl_ms / 1000),
            park=park_lane
            or ParkingLot(store.client, key=keys.PARKED_LANES, ready_key=keys.READY_LANES).park,
            clock=clock,
        )

    def drain(self, conversation: str) -> DrainReport:
        """Process the conversation's inbox until it is empty, it must wait, or time is up;
        then its lanes, each unless another drain holds it."""
        token = secrets.token_hex(8)
        started = self._clock()
        budget = self._budget(started)
        head = self._steps.begin(conversation, token, ttl_ms=self._leases.ttl_ms, now=started)
        if head is False:
            report = DrainReport(busy=True)
        elif head is True:
            report = DrainReport()
        else:
            report = self._drain_from(conversation, token, head, budget, None)[0]
        parked = [] if report.parked_until is None else [report.parked_until]
        for letter in "ah":
            member = keys.lane_member(letter, conversation)
            lane_head = self._steps.begin_lane(
                member, token, ttl_ms=self._leases.ttl_ms, now=self._clock()
            )
            if lane_head is not None:
                until = self._lanes.drain(member, token, lane_head, budget, next_token=None)[1]
                parked += [] if until is None else [until]
        return replace(report, parked_until=min(parked, default=None))

    def _budget(self, started: float) -> Budget:
        return Budget(started, self._run_budget, self._clock, self._stopping)

    def drain_ready(self) -> DrainReport:
        """Take ready lanes and conversations (worker.storage.drains) one after another and
        drain each, until none is ready or the run budget is spent (then wake another)."""
        started = self._clock()
        budget = self._budget(started)
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
                kind, name, head = taken
                in_time = self._clock() - started <= self._run_budget and not self._stopping()
                following = secrets.token_hex(8) if in_time else None
                if kind == CONVERSATION:
                    report, taken = self._drain_from(name, token, head, budget, following)
                    processed += report.processed
                else:
                    _, _, taken = self._lanes.drain(name, token, head, budget, next_token=following)
                token = following or ""
            if taken is None:
                return DrainReport(processed)

    def _drain_from(
        self, conversation: str, token: str, head: Head, budget: Budget, next_token: str | None
    ) -> tuple[DrainReport, Taken]:
        """Drain a conversation whose lock (`token`) this drain took with its first item.
        With `next_token`, the step that finishes it takes the next ready work: returned
        (with that token holding its lock); AGAIN when it took none. When the last step
        hands this drain a lane (its lock held with `token`), the lane is drained next."""
        released = False
        try:
            with self._leases.hold(conversation, token) as lease:
                report, released, taken = self._drain_locked(
                    conversation, token, lease, head, budget, next_token
                )
        finally:
            if not released:
                self._store.release(conversation, token)
        if isinstance(taken, _Claimed):
            _, parked, taken = self._lanes.drain(
                taken.member,
                token,
                taken.head,
                budget,
                next_token=next_token,
                first=taken.first,
            )
            report = DrainReport(report.processed, parked_until=parked)
        return report, taken

    def _drain_locked(
        self,
        conversation: str,
        token: str,
        lease: Lease,
        head: Head,
        budget: Budget,
        next_token: str | None,
    ) -> tuple[DrainReport, bool, Taken | _Claimed]:
        """Work through the inbox from `head`; return the report, whether the last step
        released the lock (the inbox was left empty), and what it took next."""
        processed = 0
        while True:
            try:
                budget.check(lease)
                decided = self._process(conversation, head)
            except Stop as stop:
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
                record_ttl=None if decided.has_conversation else keys.QUIET_RECORD_TTL,
                pop_fields=["raw"] if decided.quiet and not decided.has_conversation else [],
                next_token=next_token,
                after=decided.writes,
                lanes=decided.lanes,
                delivery_id=decided.delivery_id,
            )
            admitted = self._settle(decided, step.answers)
            if step.lane is not None:
                member, lane_head = step.lane
                first = None
                if decided.record is not None and decided.event is not None:
                    first = FirstItem(decided.record, decided.event, admitted)
                return DrainReport(processed), True, _Claimed(member, lane_head, first)
            if step.head is None:
                report = DrainReport(processed)
                return report, not step.lost, step.taken if step.asked else AGAIN
            head = step.head

    def _settle(self, decided: _Decided, answers: Sequence[object]) -> dict[str, str | None]:
        """After the step that stored a new decision: the breaker's verdicts on its calls.
        When another drain had decided the item first (a lost lock), its lanes are given the
        item too (a lane finds what it has to do in the stored decision)."""
        if decided.new is None or not answers:
            return {}
        held = self._store.decision_that_holds(decided.new, answers[0])
        if held is not decided.new:
            log.warning("item decided twice", extra={"delivery_id": decided.delivery_id})
            self._store.hand_to_lanes(decided.conversation, decided.delivery_id, "ah")
            return {}
        verdicts = decided.verdicts
        return {
            key: v(a) for (key, v), a in zip(verdicts, answers[1 : 1 + len(verdicts)], strict=True)
        }

    def _process(self, conversation: str, head: Head) -> _Decided:
        """Decide the item (once), record at once what needs no call (skipped actions, a
        dry run's), and say which lanes carry out the rest."""
        opened = self._open(conversation, head)
        if opened is None:
            return _Decided(conversation)
        record, event, wait = opened
        state, before_text = self._state_of(conversation, record, head)
        decision = record.decision
        writes = self._store.client.pipeline(transaction=False)
        new = None
        verdicts: list[tuple[str, Verdict]] = []
        if decision is None:
            new = self._decide(conversation, record, event, wait, state)
            self._store.store_decision(record, new, state, before_text=before_text, pipe=writes)
            verdicts = self._runner.queue_admissions(writes, record, new, self._clock())
            decision = new
            if self._rules().shadow_rules:  # shadows are decided after the live decision
                answers = writes.execute()
                decision = self._store.decision_that_holds(new, answers[0])
                new, verdicts = None, []
            record = replace(record, decision=decision, state_before=state)
            self._observe(record, event, wait, decision)
        self._shadows.run(self._rules(), record, event, wait, decision)
        lanes = set()
        for action in decision.actions:
            if action.key in record.done:
                continue
            if action.skip_reason is not None or record.dry_run:
                self._runner.run(record, event, action, state, None, writes)
            else:
                lanes.add(destination(action.kind))
        return _Decided(
            conversation,
            quiet=is_quiet(decision, self._rules()),
            has_conversation=event.conversation_id is not None,
            writes=writes,
            lanes="".join(sorted(lanes)),  # "a" first: the drain itself takes it
            delivery_id=record.delivery_id,
            new=new,
            verdicts=verdicts,
            record=record,
            event=event,
        )

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
