"""Waits coming due in the worker: released from `tw:timers` into the conversation's inbox,
carried out once, in order, against the state of that moment.

The waits are put in place as a decision that schedules them would (the engine's side of
`after:` has tests of its own): in the conversation's state and in `tw:timers`, together.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

from tests.processing.support import World, build, ok, status
from worker.delivery.parking import ParkingLot
from worker.engine import load_ruleset_from_texts
from worker.engine.decision import Decision
from worker.engine.model import ConversationState, Wait
from worker.engine.timers import fire
from worker.processing.timer_items import open_timer, timer_release
from worker.storage import keys
from worker.storage.records import DeliveryRecord
from worker.storage.timers import member

RULES = """
version: 1
rules:
  - name: close-later
    on: message.received
    then: [close_ticket]
"""


def world() -> World:
    return build(rules=RULES)


def schedule(world: World, conversation: str, due: float, *, ticket_open: bool = True) -> Wait:
    """Store, as a decision would, a pending wait of close-later due at `due`."""
    before = world.store.state(conversation)
    [rule] = load_ruleset_from_texts({"rules.yaml": RULES}).rules
    wait = Wait("close-later", datetime.fromtimestamp(due, UTC), definition=rule.definition)
    after = ConversationState(ticket_open=ticket_open, waits={**before.waits, "close-later": wait})
    record = DeliveryRecord(
        f"{len(world.redis.keys('tw:delivery:*')):032d}",
        b"{}",
        0.0,
        False,
        conversation,
        None,
        None,
        {},
        {},
    )
    decision = Decision("v", "message.received", conversation, (), (), after)
    world.store.store_decision(record, decision, before)
    return wait


def release(world: World) -> list[str]:
    timers = ParkingLot(world.redis, key=keys.TIMERS)
    return timers.release_due(world.clock.now, timer_release)


def came_due(conversation: str, *, ticket_open: bool = True) -> World:
    """A world in which the conversation's wait of close-later came due and was released
    into its inbox (its clock stands at the due time)."""
    w = world()
    due = w.clock.now + 60
    schedule(w, conversation, due, ticket_open=ticket_open)
    w.clock.now = due
    release(w)
    return w


def released_item(world: World, conversation: str) -> bytes:
    """The inbox's one item: the released wait."""
    [item] = cast(list[bytes], world.redis.lrange(f"tw:inbox:{conversation}", 0, -1))
    return item


def test_a_due_wait_is_released_into_the_inbox_and_carried_out_once() -> None:
    w = world()
    due = w.clock.now + 60
    schedule(w, "1", due)
    assert w.redis.zscore(keys.TIMERS, member("live", "close-later", "1")) == due
    assert release(w) == []  # not yet
    w.clock.now = due + 0.2
    assert release(w) == [member("live", "close-later", "1")]
    item = released_item(w, "1")
    assert item.startswith(b"tl")
    assert w.redis.llen("celery") == 1
    w.processor.drain("1")
    w.processor.drain("1")  # a second drain, or a redelivered task, repeats nothing
    assert w.provider.routes() == ["closeTicket"]
    state = w.store.state("1")
    assert state.waits == {}
    assert state.ticket_open is False
    assert w.redis.zcard(keys.TIMERS) == 0
    [delivery] = w.store.recent_deliveries(conversation="1", limit=1)
    record = w.store.load(delivery)
    assert record is not None
    assert record.decision is not None
    assert record.decision.event == "timer"
    assert [o.status for o in record.decision.outcomes] == ["due"]
    assert record.done["close-later#0"]["result"] == "done"


def test_a_wait_restarted_before_its_item_is_taken_is_not_carried_out() -> None:
    w = came_due("2")
    due = w.clock.now
    schedule(w, "2", due + 30)  # a later event restarted it (debounce)
    w.processor.drain("2")
    assert w.provider.routes() == []
    assert w.store.state("2").waits["close-later"].due.timestamp() == due + 30
    assert w.redis.zscore(keys.TIMERS, member("live", "close-later", "2")) == due + 30


def test_a_wait_whose_conversation_expired_is_dropped() -> None:
    w = world()
    due = w.clock.now + 60
    schedule(w, "3", due)
    w.redis.delete("tw:state:3")  # STATE_RETENTION passed
    w.clock.now = due
    release(w)
    w.processor.drain("3")
    assert w.provider.routes() == []
    assert w.redis.llen("tw:inbox:3") == 0


def test_a_due_wait_is_decided_against_the_state_of_that_moment() -> None:
    w = came_due("4", ticket_open=False)  # the ticket was closed meanwhile
    w.processor.drain("4")
    assert w.provider.routes() == []  # skipped: nothing to change
    [delivery] = w.store.recent_deliveries(conversation="4", limit=1)
    record = w.store.load(delivery)
    assert record is not None
    assert record.done["close-later#0"] == {"result": "skipped", "reason": "ticket already closed"}


def test_a_failing_due_action_is_retried_in_its_turn() -> None:
    w = came_due("5")
    w.provider.answers = [status(503), ok]
    report = w.processor.drain("5")
    assert report.parked_until is not None
    w.clock.now = report.parked_until
    w.processor.drain("5")
    assert w.provider.routes() == ["closeTicket", "closeTicket"]
    assert json.loads(w.redis.get("tw:state:5") or b"{}")["ticket_open"] is False


def test_a_due_wait_is_stored_with_its_decision_in_one_step() -> None:
    w = came_due("6")
    due = w.clock.now
    item = released_item(w, "6")
    opened = open_timer(w.store, "6", item.decode(), w.store.state("6"))
    assert not isinstance(opened, str)
    record = opened[0]
    assert not record.stored  # built in memory: no round trip to load or create it
    assert not w.redis.exists(keys.delivery(record.delivery_id))
    w.processor.drain("6")
    stored = w.store.load(record.delivery_id)
    assert stored is not None
    assert (stored.raw, stored.received_at, stored.conversation) == (record.raw, due, "6")
    assert 0 < w.redis.ttl(keys.delivery(record.delivery_id)) <= w.store.retention


def test_a_wait_decided_by_a_drain_killed_before_its_next_step_is_carried_out_once() -> None:
    w = came_due("7")
    item = released_item(w, "7")
    state = w.store.state("7")
    opened = open_timer(w.store, "7", item.decode(), state)
    assert not isinstance(opened, str)
    record = opened[0]
    w.store.store_decision(record, decision_of(record, state), state)  # the drain dies here
    assert w.store.state("7").waits == {}
    w.processor.drain("7")  # the next drain finds the stored decision and carries it out
    w.processor.drain("7")
    assert w.provider.routes() == ["closeTicket"]
    assert w.redis.llen("tw:inbox:7") == 0
    stored = w.store.load(record.delivery_id)
    assert stored is not None
    assert stored.done["close-later#0"]["result"] == "done"


def test_a_dry_run_worker_deciding_a_live_wait_loads_its_record() -> None:
    w = came_due("8")
    item = released_item(w, "8")
    state = w.store.state("8")
    opened = open_timer(w.store, "8", item.decode(), state, dry_run=True)
    assert not isinstance(opened, str)
    record = replace(opened[0], dry_run=True)
    w.store.store_decision(record, decision_of(record, state), state)
    again = open_timer(w.store, "8", item.decode(), w.store.state("8"), dry_run=True)
    assert not isinstance(again, str)
    assert again[0].stored
    assert again[0].decision is not None  # the live state still holds the wait: loaded


def decision_of(record: DeliveryRecord, state: ConversationState) -> Decision:
    ruleset = load_ruleset_from_texts({"rules.yaml": RULES})
    wait = state.waits["close-later"]
    return fire(ruleset, record.conversation, wait.rule, wait.due, state, now=wait.due)
