"""A drain's Redis steps, one round trip each: take a conversation and open its first item;
finish an item and open the next, or let the conversation go.

A drain (worker.processing.processor) used to spend a dozen round trips per event: lock,
mark active, read the head, load its record, load the state, and after the actions pop the
head, read the next head, release the lock and check the backlog. Here those are two
scripts:

- `begin`: take the lock (`tw:lock:{conv}`, SET NX PX with a fresh token), mark the
  conversation active (`tw:active`), and open the inbox's head: its delivery record and the
  conversation state of its view (live, or dry-run when the worker or the delivery is dry).
  An empty inbox lets the lock go at once.
- `advance`: while the lock is still ours, pop the finished item (and trim its record as
  the decision log needs: `pop_fields`), then open the next head the same way; when the
  inbox is empty, the conversation stops being active and the lock is released in the
  same script, so an event pushed a moment later always finds the lock free (its own
  drain message takes it) and none is left behind.

A woken drain (the `drain_ready` task: the receiver queues one while few are waiting, see
worker.storage.inbox) takes conversations from `tw:ready` with `take_ready`: pop one, take
its lock and open its head, in one script, so a drain killed right after still leaves the
conversation marked active for recovery. A conversation whose lock is held is skipped: the
drain holding it sees the new item (its `advance` checks the inbox before letting go). When
more conversations are ready and no wake message waits, `take_ready` queues one, so idle
threads join in; `nudge` does the same when a drain stops with work left. A woken drain's
`advance` that leaves its conversation empty takes the next ready one in the same script
(`next_token`): one round trip from one conversation to the next.

Lanes (worker.processing.lanes): `advance` also hands the finished item's delivery id to
the lanes of the destinations that still have actions of it to carry out
(`tw:lane:{d}:{conv}`, d = a AwalChat, h HelpWave); a lane that was empty is made ready
(`tw:ready:lanes`), or, when the conversation's inbox is left empty, taken by the drain
itself (its lock `tw:lanelock:{d}:{conv}`): one round trip from a decision to carrying it
out. Ready lanes are taken before ready conversations (`take_ready`), and a lane's
`advance_lane` pops its finished head and opens the next, or lets the lane go and takes
the next ready work, like `advance`.

Events of no conversation (`d:{delivery}`, one event each: `message.status.updated`) are
taken in batches: when `take_ready` takes one, it takes more (SOLO_BATCH in all) from the
front of `tw:ready` in the same script (each locked and marked active alike), and
`finish_quiet` finishes those no rule listens to in one script
(worker.processing.solo_batch). Replies are read by `worker.storage.drain_replies`.

A timer item (`t...`, worker.storage.timers) is opened with the state of its own view only:
its delivery record is built in memory and written with its decision
(worker.processing.timer_items).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

import redis

from worker.storage import drain_scripts as scripts
from worker.storage import keys
from worker.storage.drain_replies import (
    AGAIN,
    BATCH,
    CONVERSATION,
    LANE,
    Advanced,
    Batch,
    Head,
    Taken,
    head_state,
    read_advanced,
    read_head,
    read_taken,
)
from worker.storage.pipelined import register_script
from worker.storage.wire import wake_message

__all__ = [
    "AGAIN",
    "BATCH",
    "CONVERSATION",
    "LANE",
    "Advanced",
    "Batch",
    "DrainSteps",
    "Head",
    "QuietItem",
    "Taken",
    "head_state",
    "read_advanced",
    "read_taken",
]


@dataclass(frozen=True)
class QuietItem:
    """An event of no conversation no rule listens to, decided: its conversation key, its
    delivery id, the decision as stored (text), the event's name and the matched rules
    (comma-separated, as the decision log keeps them)."""

    conversation: str
    item: str
    decision: str
    event: str
    rules: str


class DrainSteps:
    """The scripts of a drain (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        dry_run: bool = False,
        retention: int = keys.DEFAULT_STATE_RETENTION,
    ) -> None:
        self._client = client
        self._dry_run = dry_run
        self._retention = retention
        self._begin = register_script(client, scripts.BEGIN)
        self._advance = register_script(client, scripts.ADVANCE)
        self._lane_advance = register_script(client, scripts.LANE_ADVANCE)
        self._begin_lane = register_script(client, scripts.BEGIN_LANE)
        self._take_ready = register_script(client, scripts.TAKE_READY)
        self._nudge = register_script(client, scripts.NUDGE)
        self._finish_quiet = register_script(client, scripts.FINISH_QUIET)
        self._hand_back = register_script(client, scripts.HAND_BACK)

    def _common(self, token: str, ttl_ms: int, now: float, *, wake: bool) -> list[str | int]:
        """The arguments every script takes; a wake message (a fresh Celery message) only
        for a step that may queue one (`wake`): building it is not free, and most steps
        never do."""
        return [
            token,
            ttl_ms,
            repr(now),
            keys.delivery(""),
            keys.state("", "live"),
            keys.state("", "dry"),
            "1" if self._dry_run else "0",
            wake_message() if wake else "",
            keys.WAKES_TTL,
            keys.lock(""),
            keys.inbox(""),
            keys.lane(""),
            keys.lane_lock(""),
            self._retention,
        ]

    _KEYS: Final = [
        keys.ACTIVE,
        keys.READY,
        keys.WAKES,
        keys.CELERY_QUEUE,
        keys.READY_LANES,
        keys.ACTIVE_LANES,
    ]

    def begin(self, conversation: str, token: str, *, ttl_ms: int, now: float) -> Head | bool:
        """Take the conversation's lock and open its first item: the Head; True when the
        inbox is empty (nothing taken); False when another drain holds the lock."""
        args = [*self._common(token, ttl_ms, now, wake=False), conversation]
        reply = self._begin(keys=self._KEYS, args=args)
        if reply is None:
            return False
        return read_head(reply) if reply else True

    def begin_lane(self, member: str, token: str, *, ttl_ms: int, now: float) -> Head | None:
        """Take a lane's lock and open its head; None when it is held or empty."""
        args = [*self._common(token, ttl_ms, now, wake=False), member]
        reply = self._begin_lane(keys=self._KEYS, args=args)
        return read_head(reply) if reply else None

    def take_ready(self, token: str, *, ttl_ms: int, now: float, woken: bool) -> Taken:
        """Take a ready conversation and open its head (see `Taken`). `woken`: the drain's
        first call (it used up one wake message)."""
        reply = self._take_ready(
            keys=self._KEYS,
            args=[*self._common(token, ttl_ms, now, wake=True), "1" if woken else "0"],
        )
        return read_taken(reply)

    def advance(
        self,
        conversation: str,
        token: str,
        item: str,
        *,
        ttl_ms: int,
        now: float,
        record_ttl: int | None,
        pop_fields: Sequence[str],
        next_token: str | None = None,
        after: redis.client.Pipeline | None = None,
        lanes: str = "",
        delivery_id: str = "",
    ) -> Advanced:
        """Finish `item` (the head): hand `delivery_id` to the `lanes` (destination letters,
        in the order their actions run) and open the next item. When the conversation is
        left empty, the first lane that was empty is taken for this drain (`lane`), else,
        with `next_token`, the next ready work. `after`: a pipeline holding writes that go
        first (the decision, the item's outcomes), sent together."""
        pipe = after if after is not None else self._client.pipeline(transaction=False)
        self.queue_advance(
            pipe,
            conversation,
            token,
            item,
            ttl_ms=ttl_ms,
            now=now,
            record_ttl=record_ttl,
            pop_fields=pop_fields,
            next_token=next_token,
            lanes=lanes,
            delivery_id=delivery_id,
        )
        answers = pipe.execute()
        return replace(read_advanced(answers[-1]), answers=answers[:-1])

    def queue_advance(
        self,
        pipe: redis.client.Pipeline,
        conversation: str,
        token: str,
        item: str,
        *,
        ttl_ms: int,
        now: float,
        record_ttl: int | None,
        pop_fields: Sequence[str],
        next_token: str | None = None,
        lanes: str = "",
        delivery_id: str = "",
    ) -> None:
        """`advance` queued on `pipe` (its answer read with `read_advanced`): the steps of
        several conversations sent in one round trip."""
        args = [
            *self._common(token, ttl_ms, now, wake=bool(lanes or next_token)),
            conversation,
            item,
            "" if record_ttl is None else str(record_ttl),
            next_token or "",
            delivery_id,
            lanes,
            *pop_fields,
        ]
        self._advance(keys=[*self._KEYS, keys.delivery(item)], args=args, client=pipe)

    def advance_lane(
        self,
        member: str,
        token: str,
        delivery_id: str,
        *,
        ttl_ms: int,
        now: float,
        next_token: str | None = None,
        after: redis.client.Pipeline | None = None,
    ) -> Advanced:
        """Finish the lane's head `delivery_id` and open the next one (`head`), or let the
        lane go and, with `next_token`, take the next ready work. `after` as for `advance`."""
        pipe = after if after is not None else self._client.pipeline(transaction=False)
        self.queue_advance_lane(
            pipe, member, token, delivery_id, ttl_ms=ttl_ms, now=now, next_token=next_token
        )
        return read_advanced(pipe.execute()[-1])

    def queue_advance_lane(
        self,
        pipe: redis.client.Pipeline,
        member: str,
        token: str,
        delivery_id: str,
        *,
        ttl_ms: int,
        now: float,
        next_token: str | None = None,
    ) -> None:
        """`advance_lane` queued on `pipe` (its answer read with `read_advanced`)."""
        common = self._common(token, ttl_ms, now, wake=bool(next_token))
        args = [*common, member, delivery_id, next_token or ""]
        self._lane_advance(keys=self._KEYS, args=args, client=pipe)

    def queue_take(
        self, pipe: redis.client.Pipeline, token: str, *, ttl_ms: int, now: float
    ) -> None:
        """`take_ready` (not woken) queued on `pipe` (its answer read with `read_taken`)."""
        args = [*self._common(token, ttl_ms, now, wake=True), "0"]
        self._take_ready(keys=self._KEYS, args=args, client=pipe)

    def finish_quiet(
        self,
        token: str,
        decided: Sequence[QuietItem],
        *,
        ttl_ms: int,
        now: float,
        next_token: str | None = None,
    ) -> tuple[list[bool], Taken]:
        """Finish a batch's quiet events of no conversation (their locks held with `token`)
        in one step, as `advance` finishes one: for each, whether its decision was stored
        here (False: its lock was lost, or a decision was there first: left for an ordinary
        drain); then, with `next_token`, the next ready work taken (else AGAIN)."""
        args = [
            *self._common(token, ttl_ms, now, wake=True),
            next_token or "",
            keys.QUIET_RECORD_TTL,
            keys.DECISION_LOG_LIMIT,
        ]
        for q in decided:
            args += [q.conversation, q.item, q.decision, q.event, q.rules]
        reply = self._finish_quiet(
            keys=[*self._KEYS, keys.DECISIONS, keys.LEGACY_DECISIONS], args=args
        )
        kind, stored, *rest = reply
        taken = read_taken(rest[0]) if kind == b"taken" else AGAIN
        return [bool(s) for s in stored], taken

    def hand_back(
        self,
        token: str,
        conversations: Sequence[str],
        lanes: Sequence[str],
        *,
        ttl_ms: int,
        now: float,
    ) -> None:
        """Let go of what a drain held with `token` when Redis failed under it (each lock
        still ours, or gone) and make it ready again, with a wake message."""
        args = [*self._common(token, ttl_ms, now, wake=True)]
        for kind, names in (("c", conversations), ("l", lanes)):
            for name in names:
                args += [kind, name]
        self._hand_back(keys=self._KEYS, args=args)

    def nudge(self) -> bool:
        """Queue a wake message when work is ready and none waits."""
        reply = self._nudge(
            keys=[keys.READY, keys.WAKES, keys.CELERY_QUEUE, keys.READY_LANES],
            args=[wake_message(), keys.WAKES_TTL],
        )
        return bool(reply)
