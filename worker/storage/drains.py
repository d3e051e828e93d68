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

A timer item (`t...`, worker.storage.timers) is opened with the state of its own view only:
its delivery record is built in memory and written with its decision
(worker.processing.timer_items).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Final, cast

import redis

from worker.engine.model import ConversationState
from worker.storage import drain_scripts as scripts
from worker.storage import keys
from worker.storage.pipelined import register_script
from worker.storage.wire import wake_message

AGAIN: Final = "again"


@dataclass(frozen=True)
class Head:
    """The inbox's first item, opened: its record's fields (empty for a timer item or a
    record that is gone) and the state of its view as stored (None: no state yet)."""

    item: str
    fields: dict[bytes, bytes]
    state: bytes | None

    @cached_property
    def parsed_state(self) -> ConversationState | None:
        """`state` parsed, once however many steps of the item read it."""
        return ConversationState.from_json(json.loads(self.state)) if self.state else None


def head_state(head: Head) -> ConversationState | None:
    """The state the step read with the head (None: the conversation has none)."""
    return head.parsed_state


CONVERSATION: Final = "c"
LANE: Final = "l"

Taken = tuple[str, str, Head] | str | None
"""What taking ready work found: (CONVERSATION, conversation, its inbox's head) or (LANE,
lane member, the lane's head); AGAIN when only held or finished work was popped (take
again); None when nothing is ready."""


@dataclass(frozen=True)
class Advanced:
    """What `advance` did: `head` is the conversation's next item (None: it is finished and
    its lock released; `lost`: the lock was lost); `lane`: the lane (member, head) it took
    for the drain instead; `taken` what it then took from the ready lists when asked to
    (`asked`)."""

    head: Head | None = None
    lost: bool = False
    asked: bool = False
    taken: Taken = None
    lane: tuple[str, Head] | None = None
    answers: Sequence[object] = ()


def _head(reply: object) -> Head:
    item, flat, state = cast(tuple[bytes, list[bytes], bytes], tuple(cast(list[object], reply)))
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    return Head(item.decode(), fields, state or None)


def _taken(reply: object) -> Taken:
    parts = cast(list[object], reply)
    if not parts:
        return None
    if len(parts) == 1:
        return AGAIN
    kind, name, head = parts
    return cast(bytes, kind).decode(), cast(bytes, name).decode(), _head(head)


def _advanced(reply: object) -> Advanced:
    if reply is None:
        return Advanced(lost=True)
    kind, *rest = cast(list[object], reply)
    if kind == b"head":
        return Advanced(head=_head(rest[0]))
    if kind == b"empty":
        return Advanced()
    if kind == b"lane":
        return Advanced(lane=(cast(bytes, rest[0]).decode(), _head(rest[1])))
    return Advanced(asked=True, taken=_taken(rest[0]))


class DrainSteps:
    """The scripts of a drain (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        dry_run: bool = False,
        retention: int = keys.DEFAULT_STATE_RETENTION,
    ) -> None:
        self._dry_run = dry_run
        self._retention = retention
        self._begin = register_script(client, scripts.BEGIN)
        self._advance = register_script(client, scripts.ADVANCE)
        self._lane_advance = register_script(client, scripts.LANE_ADVANCE)
        self._begin_lane = register_script(client, scripts.BEGIN_LANE)
        self._take_ready = register_script(client, scripts.TAKE_READY)
        self._nudge = register_script(client, scripts.NUDGE)

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
        return _head(reply) if reply else True

    def begin_lane(self, member: str, token: str, *, ttl_ms: int, now: float) -> Head | None:
        """Take a lane's lock and open its head; None when it is held or empty."""
        args = [*self._common(token, ttl_ms, now, wake=False), member]
        reply = self._begin_lane(keys=self._KEYS, args=args)
        return _head(reply) if reply else None

    def take_ready(self, token: str, *, ttl_ms: int, now: float, woken: bool) -> Taken:
        """Take a ready conversation and open its head (see `Taken`). `woken`: the drain's
        first call (it used up one wake message)."""
        reply = self._take_ready(
            keys=self._KEYS,
            args=[*self._common(token, ttl_ms, now, wake=True), "1" if woken else "0"],
        )
        return _taken(reply)

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
        script_keys = [*self._KEYS, keys.delivery(item)]
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
        if after is None:
            return _advanced(self._advance(keys=script_keys, args=args))
        self._advance(keys=script_keys, args=args, client=after)
        answers = after.execute()
        return replace(_advanced(answers[-1]), answers=answers[:-1])

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
        common = self._common(token, ttl_ms, now, wake=bool(next_token))
        args = [*common, member, delivery_id, next_token or ""]
        if after is None:
            return _advanced(self._lane_advance(keys=self._KEYS, args=args))
        self._lane_advance(keys=self._KEYS, args=args, client=after)
        return _advanced(after.execute()[-1])

    def nudge(self) -> bool:
        """Queue a wake message when work is ready and none waits."""
        reply = self._nudge(
            keys=[keys.READY, keys.WAKES, keys.CELERY_QUEUE, keys.READY_LANES],
            args=[wake_message(), keys.WAKES_TTL],
        )
        return bool(reply)
