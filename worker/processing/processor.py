"""Drains a conversation's inbox: decide each event once, in arrival order, and hand what
it decided to the conversation's lanes (one per destination: `worker.processing.lanes`).

One drain at a time holds a conversation (a Redis lock with a token, renewed by
`worker.delivery.lease`), so its events are decided one at a time against the state the
earlier decisions projected (`ticket:` conditions). Each item (a webhook's delivery, a
replay `r...`, a wait coming due `t...`) is opened and decided by `deciding` and `items`;
its decision, the breaker's verdicts and the hand-over to its lanes leave in one round trip
with the step to the next item (`worker.storage.drains`). When that step leaves the inbox
empty, the drain takes the first lane itself and carries its action out at once
(`action_runner`: once, under the idempotency key delivery:rule#index); a lane that must
wait parks alone. A woken drain (`drain_ready`) takes ready lanes and conversations (with a
backlog, several at once: quiet events of no conversation by `solo_batch`, the others by
`conversation_batch`) until its run budget is spent.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from worker.delivery.breaker import RunawayBreaker
from worker.delivery.dlq import DeadLetterQueue
from worker.delivery.gate import Observations
from worker.delivery.lease import Lease, LeaseKeeper
from worker.delivery.parking import ParkingLot
from worker.delivery.retry import RetryPolicy
from worker.engine import Ruleset
from worker.metrics import WorkerMetrics
from worker.processing import items
from worker.processing.action_runner import ActionRunner
from worker.processing.actions import ActionExecutor
from worker.processing.conversation_batch import ConversationBatches
from worker.processing.deciding import ItemDecider
from worker.processing.items import Claimed, DrainReport
from worker.processing.lanes import Budget, FirstItem, LaneDrainer, LaneLocks, Stop, lock_lost
from worker.processing.solo_batch import SoloBatches
from worker.storage import keys
from worker.storage.conversations import ConversationStore
from worker.storage.drains import AGAIN, CONVERSATION, Batch, DrainSteps, Head, Taken


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
        observations: Observations | None = None,
    ) -> None:
        self._store = store
        self._rules = rules
        self._park = park
        self._clock = clock
        self._leases = leases if leases is not None else LeaseKeeper(store, ttl=lock_ttl)
        self._run_budget = run_budget
        self._stopping = stopping
        self._metrics = metrics or WorkerMetrics()
        self._steps = DrainSteps(store.client, dry_run=dry_run, retention=store.retention)
        self._solo = SoloBatches(
            steps=self._steps,
            rules=rules,
            dry_run=dry_run,
            ttl_ms=self._leases.ttl_ms,
            metrics=self._metrics,
            clock=clock,
        )
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
            observations=observations,
        )
        self._decider = ItemDecider(
            store=store,
            rules=rules,
            runner=self._runner,
            dry_run=dry_run,
            metrics=self._metrics,
            clock=clock,
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

        self._batches = ConversationBatches(
            store=store,
            steps=self._steps,
            leases=self._leases,
            lanes=self._lanes,
            rules=rules,
            process=self._decider.process,
            drain_one=self._drain_from,
            park=park,
            clock=clock,
            observations=observations,
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
            while isinstance(taken, tuple | Batch):
                in_time = self._clock() - started <= self._run_budget and not self._stopping()
                following = secrets.token_hex(8) if in_time else None
                if isinstance(taken, Batch):  # several: solo_batch, conversation_batch
                    ordinary = partial(self._batches.run, token=token, budget=budget)
                    solo, taken = self._solo.run(taken, token, following, ordinary)
                    processed += solo.quiet + solo.ordinary
                elif taken[0] == CONVERSATION:
                    report, taken = self._drain_from(taken[1], token, taken[2], budget, following)
                    processed += report.processed
                else:
                    _, name, head = taken
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
        if isinstance(taken, Claimed):
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
    ) -> tuple[DrainReport, bool, Taken | Claimed]:
        """Work through the inbox from `head`; return the report, whether the last step
        released the lock (the inbox was left empty), and what it took next."""
        processed = 0
        while True:
            try:
                budget.check(lease)
                decided = self._decider.process(conversation, head)
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
                record_ttl=decided.record_ttl,
                pop_fields=decided.pop_fields,
                next_token=next_token,
                after=decided.writes,
                lanes=decided.lanes,
                delivery_id=decided.delivery_id,
            )
            if step.lost:
                lock_lost(conversation)
            elif step.head is None:
                lease.let_go()  # the step released the lock
            admitted = items.settle(self._store, decided, step.answers)
            if step.lane is not None:
                member, lane_head = step.lane
                first = None
                if decided.record is not None and decided.event is not None:
                    first = FirstItem(decided.record, decided.event, admitted)
                return DrainReport(processed), True, Claimed(member, lane_head, first)
            if step.head is None:
                report = DrainReport(processed)
                return report, not step.lost, step.taken if step.asked else AGAIN
            head = step.head
