"""Pending waits (rules with `after:`) as Redis keeps them.

A wait lives in two places, written together by the decision that starts, restarts or
cancels it (`ConversationStore.store_decision`):

- the conversation's state (`tw:state:{conv}`, `ConversationState.waits`): what it is;
- `tw:timers`, one sorted set for every wait of every conversation: member
  `{view}{rule tag}{conv}` (view `l` or `d`, then 6 hex), score its due time (Unix
  seconds). It is what releases a wait when its time comes, with the parked-conversation
  machinery (`delivery/parking.py`): the releaser moves a due member, atomically, to the
  conversation's inbox as the item `t{view}{rule tag}:{due in ms}` and queues a drain, so
  the wait is carried out in the conversation's order, behind the events that arrived
  before its time.

The rule tag is 6 hex of the rule name's SHA-1: members stay short whatever the rule's name
(the state maps a tag back to its rule; a conversation has few waits, so tags of its rules
do not collide). A drain that takes a timer item carries the wait
out (once: it gets a delivery record of its own, `timer_delivery_id`), unless the state
says a later event restarted or cancelled it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import redis

from worker.engine.model import Wait
from worker.storage import keys
from worker.storage.keys import View

TIMER_ITEM: Final = "t"
TAG: Final = 6
_VIEW_TAGS: Final[Mapping[View, str]] = {"live": "l", "dry": "d"}
_VIEWS: Final[Mapping[str, View]] = {tag: view for view, tag in _VIEW_TAGS.items()}


def rule_tag(rule: str) -> str:
    """TAG hex characters naming `rule` in timer members and items."""
    return hashlib.sha1(rule.encode("utf-8"), usedforsecurity=False).hexdigest()[:TAG]


def member(view: View, rule: str, conversation: str) -> str:
    """The `tw:timers` member of the wait of `rule` in `conversation`."""
    return f"{_VIEW_TAGS[view]}{rule_tag(rule)}{conversation}"


def split_member(value: str) -> tuple[View, str, str]:
    """(view, rule tag, conversation) of a member."""
    return _VIEWS[value[0]], value[1 : 1 + TAG], value[1 + TAG :]


def item_prefix(value: str) -> str:
    """The inbox item a released member becomes, without its due time (the script adds it)."""
    return f"{TIMER_ITEM}{value[: 1 + TAG]}:"


def is_timer_item(item: str) -> bool:
    return item.startswith(TIMER_ITEM)


@dataclass(frozen=True)
class TimerItem:
    """A released wait in a conversation's inbox: its view, rule tag and due time (ms)."""

    view: View
    tag: str
    due_ms: int

    @classmethod
    def parse(cls, item: str) -> TimerItem:
        view, rest = _VIEWS[item[1]], item[2:]
        tag, due = rest.split(":", 1)
        return cls(view, tag, int(due))

    def delivery_id(self, conversation: str) -> str:
        """The id of the delivery record carrying this wait out (32 characters)."""
        key = f"{self.view}|{self.tag}|{self.due_ms}|{conversation}".encode()
        return "t" + hashlib.sha256(key).hexdigest()[:31]

    def wait_in(self, waits: Mapping[str, Wait]) -> Wait | None:
        """The pending wait this item releases, or None when a later event restarted or
        cancelled it."""
        for wait in waits.values():
            if rule_tag(wait.rule) == self.tag and due_ms(wait) == self.due_ms:
                return wait
        return None


def due_ms(wait: Wait) -> int:
    return round(wait.due.timestamp() * 1000)


def changes(
    view: View, conversation: str, before: Mapping[str, Wait], after: Mapping[str, Wait]
) -> tuple[dict[str, float], list[str]]:
    """What a decision changes in `tw:timers`: members to set to a due time, members to
    remove."""
    added = {
        member(view, rule, conversation): wait.due.timestamp()
        for rule, wait in after.items()
        if before.get(rule) != wait
    }
    removed = [member(view, rule, conversation) for rule in before if rule not in after]
    return added, removed


@dataclass(frozen=True)
class PendingWait:
    """A pending wait as `ticket-worker timers` (and the console) show it."""

    conversation: str
    view: View
    wait: Wait


def pending_waits(
    client: redis.Redis, *, conversation: str | None = None, limit: int = 50
) -> list[PendingWait]:
    """Pending waits, soonest first: of every conversation (`tw:timers`, at most `limit`),
    or of one (read from its states)."""
    if conversation is not None:
        found = []
        for view in _VIEW_TAGS:
            raw = client.get(keys.state(conversation, view))
            if raw is not None:
                state = json.loads(raw)
                found += [
                    PendingWait(conversation, view, Wait.from_json(w))
                    for w in state.get("waits", ())
                ]
        return sorted(found, key=lambda p: p.wait.due)[:limit]
    members = [_text(m) for m in client.zrange(keys.TIMERS, 0, limit - 1)]
    parsed = [split_member(m) for m in members]
    pipe = client.pipeline(transaction=False)
    for view, _, conv in parsed:
        pipe.get(keys.state(conv, view))
    states = pipe.execute()
    result = []
    for (view, tag, conv), raw in zip(parsed, states, strict=True):
        waits = json.loads(raw).get("waits", ()) if raw else ()
        for item in waits:
            wait = Wait.from_json(item)
            if rule_tag(wait.rule) == tag:
                result.append(PendingWait(conv, view, wait))
    return result


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
