"""What the drain scripts (worker.storage.drain_scripts) answer, read into Python values:
an opened item (`Head`), ready work taken (`Taken`: a conversation, a lane, or a batch of
events of no conversation), and what a step to the next item did (`Advanced`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final, cast

from worker.engine.model import ConversationState

AGAIN: Final = "again"
CONVERSATION: Final = "c"
LANE: Final = "l"
BATCH: Final = "b"


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


@dataclass(frozen=True)
class Batch:
    """Conversations of no conversation (`d:{delivery}`, one event each) taken together,
    each with its lock held by the same token and its inbox's head opened."""

    heads: tuple[tuple[str, Head], ...]


Taken = tuple[str, str, Head] | Batch | str | None
"""What taking ready work found: (CONVERSATION, conversation, its inbox's head), (LANE,
lane member, the lane's head), or a Batch of events of no conversation; AGAIN when only
held or finished work was popped (take again); None when nothing is ready."""


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


def read_head(reply: object) -> Head:
    item, flat, state = cast(tuple[bytes, list[bytes], bytes], tuple(cast(list[object], reply)))
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    return Head(item.decode(), fields, state or None)


def read_taken(reply: object) -> Taken:
    parts = cast(list[object], reply)
    if not parts:
        return None
    if len(parts) == 1:
        return AGAIN
    if parts[0] == BATCH.encode():
        flat = cast(list[object], parts[1])
        return Batch(
            tuple(
                (cast(bytes, conv).decode(), read_head(head))
                for conv, head in zip(flat[::2], flat[1::2], strict=True)
            )
        )
    kind, name, head = parts
    return cast(bytes, kind).decode(), cast(bytes, name).decode(), read_head(head)


def read_advanced(reply: object) -> Advanced:
    if reply is None:
        return Advanced(lost=True)
    kind, *rest = cast(list[object], reply)
    if kind == b"head":
        return Advanced(head=read_head(rest[0]))
    if kind == b"empty":
        return Advanced()
    if kind == b"lane":
        return Advanced(lane=(cast(bytes, rest[0]).decode(), read_head(rest[1])))
    return Advanced(asked=True, taken=read_taken(rest[0]))
