"""Timer items: a wait released into its conversation's inbox (worker.storage.timers),
turned into a delivery record of its own so that carrying it out is like any event's.

`open_timer(store, conversation, item)` returns the record of the wait the item releases,
creating it the first time (its body is a small envelope, event "timer", holding the wait
and the excerpt of the event that started it; it is decided by `engine.timers.fire`), or
None when there is nothing to carry out: a later event restarted or cancelled the wait, or
the conversation is gone (its retention passed).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from worker.delivery.parking import Release
from worker.engine.model import ConversationState, Wait
from worker.engine.timers import TIMER_EVENT
from worker.storage import keys
from worker.storage.conversations import ConversationStore
from worker.storage.records import DeliveryRecord
from worker.storage.timers import TimerItem, item_prefix, split_member

Gone = Literal["superseded", "dropped"]


def timer_body(conversation: str, wait: Wait) -> bytes:
    """The stored body of a wait's delivery: an envelope `parse_webhook` reads as the event
    "timer" of the conversation, with the fields the wait's actions need."""
    data: dict[str, Any] = dict(wait.event.get("data") or {})
    data["conversation_id"] = conversation
    body = {
        "event": TIMER_EVENT,
        "timestamp": wait.due.isoformat(),
        "data": data,
        "wait": wait.to_json(),
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def wait_of(record: DeliveryRecord) -> Wait:
    """The wait a timer delivery carries out."""
    return Wait.from_json(json.loads(record.raw)["wait"])


def open_timer(
    store: ConversationStore, conversation: str, item: str, state: ConversationState | None
) -> DeliveryRecord | Gone:
    """The delivery record that carries out the wait `item` releases (created once), or why
    there is none. `state` is the conversation's state in the item's view (None: gone)."""
    timer = TimerItem.parse(item)
    delivery_id = timer.delivery_id(conversation)
    record = store.load(delivery_id)
    if record is not None:
        return record
    if state is None:
        return "dropped"
    wait = timer.wait_in(state.waits)
    if wait is None:
        return "superseded"
    raw = timer_body(conversation, wait)
    received_at = wait.due.timestamp()
    dry_run = timer.view == "dry"
    store.create_record(
        delivery_id, raw=raw, received_at=received_at, conversation=conversation, dry_run=dry_run
    )
    return DeliveryRecord(delivery_id, raw, received_at, dry_run, conversation, None, None, {}, {})


def timer_release(member: str) -> Release:
    """How the releaser releases a due member of `tw:timers`: its item onto the
    conversation's inbox, and the conversation made ready (tw:ready)."""
    conversation = split_member(member)[2]
    return Release(inbox=keys.inbox(conversation), item=item_prefix(member), ready=conversation)
