"""Several conversations decided and carried out together: two round trips for all of them.

With a backlog, one at a time costs each event two round trips of its own: the step that
stores its decision (and takes its lane), and the step that records its action's outcome
(and takes the next conversation). Here (issue 13) `take_ready` hands a drain up to
MANY_BATCH conversations at once when more than MANY_LEAVE stay ready (each locked and
marked active, its head opened: worker.storage.drain_scripts). The drain decides every head
and sends all the decisions with their steps (`advance`) in one pipeline; carries out, one
after another, the first action of each lane those steps took for it; and sends all the
outcomes with the lanes' steps (`advance_lane`) and the taking of the next ready work in one
more. Nothing is shared between the conversations but the round trips: each script is the
one the single path runs, atomic for its own conversation or lane, so every guarantee of
that path holds (decided once, in order; each action once; recovery of a killed drain from
`tw:active` and `tw:active:lanes`).

A killed drain loses the outcomes of the calls it made and had not yet sent: recovery
carries those actions out again. AwalChat's opens and closes are safe to repeat (a 409 says
it was done), so only their outcomes wait for the closing round trip; a HelpWave lane (its
creates are not repeated, worker.storage.send_intents) is carried out and finished at once,
as on the single path.

What the calls teach the rate budget stays held by the thread until its next reservation
or the closing round trip, so the next call of the batch never waits on a lesson queued
behind it. A conversation or lane with more to do (a second item), or one that must wait
(parked), leaves the batch and goes the single path's way. When Redis fails under a batch
(a restart, a Sentinel failover), what it still holds is handed back, ready again, as soon
as Redis answers (`hand_back`), rather than left to recovery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

import redis

from worker.delivery.gate import Observations
from worker.delivery.lease import Lease, LeaseKeeper
from worker.engine import Ruleset
from worker.processing import items
from worker.processing.items import Claimed, Decided, DrainReport
from worker.processing.lane_fields import AWALCHAT_LANE
from worker.processing.lanes import Budget, FirstItem, LaneDrainer, Stop, lock_lost
from worker.storage.conversations import ConversationStore
from worker.storage.drains import AGAIN, DrainSteps, Head, Taken, read_advanced, read_taken

log = logging.getLogger(__name__)

HAND_BACK_PATIENCE: Final = 20.0  # seconds a failed batch waits for Redis to hand back
HAND_BACK_PAUSE: Final = 0.5
DrainOne = Callable[[str, str, Head, Budget, str | None], tuple[DrainReport, Taken]]


class Process(Protocol):
    """`ItemDecider.process` (worker.processing.deciding): decide a head, its writes queued
    on `writes`."""

    def __call__(
        self, conversation: str, head: Head, writes: redis.client.Pipeline, ruleset: Ruleset
    ) -> Decided: ...


class _Holds:
    """Locks a batch holds, each under a lease until it is let go (`drop`)."""

    def __init__(self, keeper: LeaseKeeper, token: str) -> None:
        self._keeper = keeper
        self._token = token
        self._leases: dict[str, Lease] = {}

    def hold(self, name: str) -> Lease:
        lease = self._leases[name] = self._keeper.start(name, self._token)
        return lease

    def lease(self, name: str) -> Lease:
        return self._leases[name]

    def drop(self, name: str) -> None:
        lease = self._leases.pop(name, None)
        if lease is not None:
            self._keeper.end(lease)

    def names(self) -> list[str]:
        return list(self._leases)


class ConversationBatches:
    """Decides and carries out conversations taken together (see the module docstring)."""

    def __init__(
        self,
        *,
        store: ConversationStore,
        steps: DrainSteps,
        leases: LeaseKeeper,
        lanes: LaneDrainer,
        rules: Callable[[], Ruleset],
        process: Process,
        drain_one: DrainOne,
        park: Callable[[str, float], None],
        clock: Callable[[], float],
        observations: Observations | None,
    ) -> None:
        self._store = store
        self._steps = steps
        self._leases = leases
        self._lanes = lanes
        self._rules = rules
        self._process = process
        self._drain_one = drain_one
        self._park = park
        self._clock = clock
        self._observations = observations

    def run(
        self,
        heads: Sequence[tuple[str, Head]],
        next_token: str | None,
        *,
        token: str,
        budget: Budget,
    ) -> tuple[int, Taken]:
        """Decide and carry out the conversations (their locks held with `token`); return
        the events decided and the next ready work the closing step took (`next_token`)."""
        rules = self._rules()  # every item of the batch is decided by this one
        if rules.shadow_rules:  # shadows are decided after each live decision
            drained = (self._drain_one(c, token, h, budget, None)[0] for c, h in heads)
            return sum(report.processed for report in drained), AGAIN
        conversations = _Holds(self._leases, token)
        lanes = _Holds(self._lanes.leases, token)
        try:
            processed, claimed, more = self._decide(heads, token, budget, conversations, rules)
            for lane in claimed:  # renewed from the moment the steps took them
                lanes.hold(lane.member)
            taken, more_lanes = self._carry_out(
                claimed, token, budget, lanes, None if more else next_token
            )
            for conversation, head in more:  # a second item: the single path
                conversations.drop(conversation)
                processed += self._drain_one(conversation, token, head, budget, None)[0].processed
            for member, head in more_lanes:
                lanes.drop(member)
                self._lanes.drain(member, token, head, budget, next_token=None)
        except (redis.RedisError, OSError):
            self._hand_back(token, conversations, lanes)
            raise
        finally:
            for conversation in conversations.names():
                conversations.drop(conversation)
                self._store.release(conversation, token)
            for member in lanes.names():
                lanes.drop(member)
                self._store.release_lane(member, token)
        return processed, taken

    def _hand_back(self, token: str, conversations: _Holds, lanes: _Holds) -> None:
        """Redis failed under the batch (a restart, a failover): once it answers again
        (waiting up to HAND_BACK_PATIENCE), let go of what the batch still held and make it
        ready again, so up to a batch of conversations and lanes are not left to recovery
        (which waits for their locks to expire). Given up after that: recovery still finds
        them."""
        held, held_lanes = conversations.names(), lanes.names()
        for name in held:
            conversations.drop(name)
        for name in held_lanes:
            lanes.drop(name)
        deadline = time.monotonic() + HAND_BACK_PATIENCE
        while held or held_lanes:
            try:
                self._steps.hand_back(
                    token, held, held_lanes, ttl_ms=self._leases.ttl_ms, now=self._clock()
                )
                return
            except (redis.RedisError, OSError):
                if time.monotonic() >= deadline:
                    log.warning(
                        "batch not handed back: Redis did not answer; recovery takes it",
                        extra={"conversations": held, "lanes": held_lanes},
                    )
                    return
                time.sleep(HAND_BACK_PAUSE)

    def _decide(
        self,
        heads: Sequence[tuple[str, Head]],
        token: str,
        budget: Budget,
        held: _Holds,
        rules: Ruleset,
    ) -> tuple[int, list[Claimed], list[tuple[str, Head]]]:
        """Decide each head and send every decision with its step in one pipeline; return
        how many, the lanes the steps took for this drain, and the conversations with more
        to decide (still held)."""
        pipe = self._store.client.pipeline(transaction=False)
        queued: list[tuple[Decided, int, int]] = []
        for conversation, head in heads:
            lease = held.hold(conversation)
            try:
                budget.check(lease)
            except Stop as stop:
                if stop.until is not None:
                    self._park(conversation, stop.until)
                held.drop(conversation)
                self._store.release(conversation, token)
                continue
            start = len(pipe)
            decided = self._process(conversation, head, pipe, rules)
            self._steps.queue_advance(
                pipe,
                conversation,
                token,
                head.item,
                ttl_ms=self._leases.ttl_ms,
                now=self._clock(),
                record_ttl=decided.record_ttl,
                pop_fields=decided.pop_fields,
                lanes=decided.lanes,
                delivery_id=decided.delivery_id,
            )
            queued.append((decided, start, len(pipe)))
        answers = pipe.execute() if queued else []
        claimed: list[Claimed] = []
        more: list[tuple[str, Head]] = []
        for decided, start, end in queued:
            step = read_advanced(answers[end - 1])
            admitted = items.settle(self._store, decided, answers[start : end - 1])
            if step.head is not None:
                more.append((decided.conversation, step.head))
                continue
            if step.lost:
                lock_lost(decided.conversation)
            held.drop(decided.conversation)  # let go by the step (or lost)
            if step.lane is not None:
                first = None
                if decided.record is not None and decided.event is not None:
                    first = FirstItem(decided.record, decided.event, admitted)
                claimed.append(Claimed(*step.lane, first))
        return len(queued), claimed, more

    def _carry_out(
        self,
        claimed: Sequence[Claimed],
        token: str,
        budget: Budget,
        held: _Holds,
        next_token: str | None,
    ) -> tuple[Taken, list[tuple[str, Head]]]:
        """Carry out the claimed lanes' heads (each held in `held`) and finish them in one
        pipeline, with the next ready work taken (`next_token`); return it and the lanes
        with more (still held)."""
        pipe = self._store.client.pipeline(transaction=False)
        finishing: list[tuple[str, int]] = []
        for lane in claimed:
            if lane.member[0] != AWALCHAT_LANE:  # a HelpWave create is not repeated: at once
                held.drop(lane.member)  # drain holds it under a lease of its own
                self._lanes.drain(
                    lane.member, token, lane.head, budget, next_token=None, first=lane.first
                )
                continue
            lease = held.lease(lane.member)
            if not self._lanes.carry_out(
                lane.member, token, lane.head, lease, budget, lane.first, pipe
            ):
                held.drop(lane.member)  # parked or stopped, and let go
                continue
            self._steps.queue_advance_lane(
                pipe,
                lane.member,
                token,
                lane.head.item,
                ttl_ms=self._leases.ttl_ms,
                now=self._clock(),
            )
            finishing.append((lane.member, len(pipe) - 1))
        if self._observations is not None:
            self._observations.queue_on(pipe)  # what the calls taught the budget, still held
        if next_token is not None:
            self._steps.queue_take(pipe, next_token, ttl_ms=self._leases.ttl_ms, now=self._clock())
        answers = pipe.execute() if len(pipe) else []
        more: list[tuple[str, Head]] = []
        for member, index in finishing:
            step = read_advanced(answers[index])
            if step.head is not None:
                more.append((member, step.head))
            else:
                held.drop(member)
        return (read_taken(answers[-1]) if next_token is not None else AGAIN), more
