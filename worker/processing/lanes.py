"""Carrying out decided actions: one lane per conversation and destination.

The drain (worker.processing.processor) decides a conversation's events one at a time, in
arrival order, against the state the earlier decisions projected, and hands each decided
delivery to the lanes of the destinations that still have actions of it to carry out:
`tw:lane:a:{conv}` (AwalChat opens and closes) and `tw:lane:h:{conv}` (HelpWave creates and
comments), lists of delivery ids (worker.storage.drains `advance`). Then it decides the next
event at once.

A lane is drained like a conversation: one drain at a time (its lock
`tw:lanelock:{d}:{conv}`, renewed by a lease while held; marked in `tw:active:lanes` for
recovery), its head a delivery id whose actions of that destination run in their decided
order, each exactly once (`action_runner`, idempotency key delivery:rule#index); when they
are done the head is popped (`advance_lane`). So:

- AwalChat actions of a conversation keep their order (a close never overtakes its open),
  HelpWave actions theirs (a comment never before the create planned ahead of it: it reads
  the ticket id the create stored when it runs; comments in message order);
- neither lane waits for the other: an action that must wait (rate budget, retry backoff)
  parks its LANE (`tw:parked:lanes`; released onto `tw:ready:lanes`), not the conversation;
- a lane writes only what an outcome teaches the state (`action_runner.taught`, merged
  into the stored state atomically with the outcome); decisions keep writing the rest.

The fast path: when a decision leaves the inbox empty, the drain takes the first lane it
made ready itself and carries the action out at once (no queue hop, no extra round trip).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import redis

from worker.delivery.lease import Lease, LeaseKeeper
from worker.engine.envelope import parse_webhook
from worker.engine.model import ConversationState, Event
from worker.errors import PayloadError
from worker.processing.action_runner import ActionRunner
from worker.processing.lane_fields import destination
from worker.storage.conversations import ConversationStore
from worker.storage.drains import AGAIN, DrainSteps, Head, Taken, head_state
from worker.storage.records import DeliveryRecord, parse_record

log = logging.getLogger(__name__)


class Stop(Exception):
    """The drain must stop here: `until` is when to come back (None: another drain owns the
    conversation or lane now, or its lock is gone)."""

    def __init__(self, until: float | None) -> None:
        super().__init__(until)
        self.until = until


def lock_lost(name: str) -> None:
    """Say that a drain stopped because its lock on `name` (a conversation or a lane) was
    lost: its lease's renewal or its own step found another holder, or none."""
    log.warning(
        "conversation lock lost; stopping, the rest is left to its next holder",
        extra={"conversation": name},
    )


@dataclass(frozen=True)
class Budget:
    """A drain's run budget: `check` raises Stop unless one more action may start."""

    started: float
    seconds: float
    clock: Callable[[], float]
    stopping: Callable[[], bool]

    def check(self, lease: Lease) -> None:
        if lease.lost:  # logged here, where it stops work (see worker.delivery.lease)
            lock_lost(lease.conversation)
            raise Stop(None)
        now = self.clock()
        if now - self.started > self.seconds or self.stopping():
            raise Stop(now)


@dataclass(frozen=True)
class FirstItem:
    """The delivery a drain just decided and handed to the lane it took itself: its record
    and event as the drain has them (not read and parsed again), and the breaker's
    verdicts asked with its decision."""

    record: DeliveryRecord
    event: Event
    admitted: Mapping[str, str | None]


class LaneLocks:
    """The lease keeper's view of lane locks (`tw:lanelock:{lane}`)."""

    def __init__(self, store: ConversationStore) -> None:
        self._store = store

    def extend(self, conversation: str, token: str, ttl_ms: int) -> bool:
        return self._store.extend_lane(conversation, token, ttl_ms)


class LaneDrainer:
    """Drains lanes (see the module docstring)."""

    def __init__(
        self,
        *,
        store: ConversationStore,
        steps: DrainSteps,
        runner: ActionRunner,
        leases: LeaseKeeper,
        park: Callable[[str, float], None],
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._steps = steps
        self._runner = runner
        self._leases = leases
        self._park = park
        self._clock = clock

    def drain(
        self,
        member: str,
        token: str,
        head: Head,
        budget: Budget,
        *,
        next_token: str | None,
        first: FirstItem | None = None,
    ) -> tuple[int, float | None, Taken]:
        """Drain the lane whose lock `token` holds, from `head`: return the deliveries
        finished, when it was parked until (None: not parked), and what the step that
        finished it took next (with `next_token`). `first`: the head's delivery as the
        drain that just decided it has it."""
        released = False
        try:
            with self._leases.hold(member, token) as lease:
                processed, parked, released, taken = self._drain_locked(
                    member, token, lease, head, budget, next_token, first
                )
        finally:
            if not released:
                self._store.release_lane(member, token)
        return processed, parked, taken

    @property
    def leases(self) -> LeaseKeeper:
        return self._leases

    def carry_out(
        self,
        member: str,
        token: str,
        head: Head,
        lease: Lease,
        budget: Budget,
        first: FirstItem | None,
        pipe: redis.client.Pipeline,
    ) -> bool:
        """Carry out the lane's head (its lock held with `token` under `lease`), its last
        outcome queued on `pipe`, for a caller that finishes several lanes in one round
        trip. False when the lane must wait (parked) or stop: its lock is let go here."""
        try:
            self._carry_out(member, head, lease, budget, first, pipe)
        except Stop as stop:
            if stop.until is not None:
                self._park(member, stop.until)
            self._store.release_lane(member, token)
            return False
        return True

    def _drain_locked(
        self,
        member: str,
        token: str,
        lease: Lease,
        head: Head,
        budget: Budget,
        next_token: str | None,
        first: FirstItem | None,
    ) -> tuple[int, float | None, bool, Taken]:
        processed = 0
        while True:
            try:
                outcomes = self._carry_out(member, head, lease, budget, first)
            except Stop as stop:
                if stop.until is not None:
                    self._park(member, stop.until)
                return processed, stop.until, False, AGAIN
            first = None
            processed += 1
            step = self._steps.advance_lane(
                member,
                token,
                head.item,
                ttl_ms=self._leases.ttl_ms,
                now=self._clock(),
                next_token=next_token,
                after=outcomes,
            )
            if step.head is None:
                if step.lost:
                    lock_lost(member)
                else:
                    lease.let_go()  # the step released the lock
                return processed, None, not step.lost, step.taken if step.asked else AGAIN
            head = step.head

    def _carry_out(
        self,
        member: str,
        head: Head,
        lease: Lease,
        budget: Budget,
        first: FirstItem | None,
        pipe: redis.client.Pipeline | None = None,
    ) -> redis.client.Pipeline | None:
        """Run the head delivery's actions of the lane's destination not yet done, in
        order; return the pipeline holding the last outcome (sent with the step to the
        next head; `pipe` when given). Raise Stop when the lane must wait or stop first.
        (Skipped actions were recorded before the delivery was handed over.)"""
        admitted = None
        if first is not None and first.record.delivery_id == head.item:
            record, event, admitted = first.record, first.event, first.admitted
        else:
            opened = _open(member, head)
            if opened is None:
                return None
            record, event = opened
        if record.decision is None:
            return None
        lane = member[0]
        pending = [
            action
            for action in record.decision.actions
            if destination(action.kind) == lane
            and action.key not in record.done
            and action.skip_reason is None
        ]
        state = head_state(head) or ConversationState()
        outcomes = None
        for action in pending:
            budget.check(lease)
            if action is pending[-1]:
                outcomes = (
                    pipe if pipe is not None else self._store.client.pipeline(transaction=False)
                )
            until, state = self._runner.run(
                record, event, action, state, admitted, outcomes, hold_lessons=pipe is not None
            )
            if until is not None:
                raise Stop(until)
        return outcomes


def _open(member: str, head: Head) -> tuple[DeliveryRecord, Event] | None:
    """The lane head's record and event; None (logged) when there is nothing to carry out."""
    if not head.fields:
        log.error("delivery record missing", extra={"delivery_id": head.item, "lane": member})
        return None
    record = parse_record(head.item, head.fields)
    try:
        event = parse_webhook(record.raw)
    except PayloadError:
        event = None
    if not isinstance(event, Event) or record.decision is None:
        log.error("lane item is not a decided event", extra={"delivery_id": head.item})
        return None
    return record, event
