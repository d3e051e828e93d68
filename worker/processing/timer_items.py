"""Timer items: a wait released into its conversation's inbox (worker.storage.timers),
turned into a delivery record of its own so that carrying it out is like any event's.

`open_timer(store, conversation, item, state)` returns the record of the wait the item
releases (its body is a small envelope, event "timer", holding the wait and the excerpt of
the event that started it; it is decided by `engine.timers.fire`), built in memory the
first time and written together with its decision, or why there is nothing to carry out: a
later event restarted or cancelled the wait, or the conversation is gone (its retention
passed).
"""

from __future__ import annotations

import json
from typing import Any, Final, Literal

from worker.delivery.parking import Release
from worker.engine.model import ConversationState, Wait
from worker.engine.timers import TIMER_EVENT
from worker.storage import keys
from worker.storage.conversations import ConversationStore
from worker.storage.records import DeliveryRecord
from worker.storage.timers import TimerItem, item_prefix, split_member

Gone = Literal["superseded", "dropped"]

# Due waits the releaser moves per script call: ten thousand due in the same second are
# released in twenty round trips, not a hundred, while a call stays short (a few ms).
RELEASE_BATCH: Final = 500


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
    store: ConversationStore,
    conversation: str,
    item: str,
    state: ConversationState | None,
    *,
    dry_run: bool = False,
) -> tuple[DeliveryRecord, Wait] | Gone:
    """The delivery record that carries out the wait `item` releases and that wait, or why
    there is none.
    `state` is the conversation's state in the item's view (None: gone); `dry_run`: the
    worker decides every item in the dry-run view.

    While `state` still holds the wait, no decision of it can be stored: the one that is
    stores the state without it, in the same script. So the record is built in memory
    (`stored` False) and `store_decision` writes it with its decision, in the same round
    trip. Otherwise (a restarted or cancelled wait, or a decision stored before the item
    left the inbox: its drain was killed or lost its lock), the stored record is loaded.
    A dry-run worker deciding a live wait stores its decision in the dry-run view, leaving
    the wait in the live state: it always loads."""
    timer = TimerItem.parse(item)
    delivery_id = timer.delivery_id(conversation)
    wait = None if state is None else timer.wait_in(state.waits)
    if wait is None or (dry_run and timer.view == "live"):
        record = store.load(delivery_id)
        if record is not None:
            return record, wait_of(record)
        if state is None:
            return "dropped"
        if wait is None:
            return "superseded"
    raw = timer_body(conversation, wait)
    dry = timer.view == "dry"
    received_at = wait.due.timestamp()
    record = DeliveryRecord(
        delivery_id, raw, received_at, dry, conversation, None, None, {}, {}, stored=False
    )
    return record, wait


def timer_release(member: str) -> Release:
    """How the releaser releases a due member of `tw:timers`: its item onto the
    conversation's inbox, and the conversation made ready (tw:ready)."""
    conversation = split_member(member)[2]
    return Release(inbox=keys.inbox(conversation), item=item_prefix(member), ready=conversation)
