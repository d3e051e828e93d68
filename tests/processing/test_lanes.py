"""Lanes (worker.processing.lanes), with fakes: one lane per conversation and destination,
each in its order, neither waiting for the other, each action carried out once."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.processing.support import World, build, status
from worker.delivery.parking import ParkingLot
from worker.engine.decision import Decision
from worker.engine.model import ConversationState
from worker.processing.failures import replay_one
from worker.processing.worker_process import lanes_recovery
from worker.storage.records import DeliveryRecord

RULES = """
version: 1
mode: all
rules:
  - name: mirror
    on: message.received
    then:
      - helpwave.create_ticket: {Channel: Helpwave, name: "WhatsApp {{ data.from }}"}
      - helpwave.add_comment: {text: "{{ data.body }}"}
  - name: open-on-help
    on: message.received
    when: {data.body: {contains: help}, ticket: closed}
    then: [open_ticket]
  - name: close-on-thanks
    on: message.received
    when: {data.body: {contains: thank}, ticket: open}
    then: [close_ticket]
"""


class Desk:
    """Both providers: AwalChat opens and closes; HelpWave customers, tickets (T1, T2, ...),
    look-ups (open) and comments."""

    def __init__(self) -> None:
        self.tickets = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/customers"):
            return httpx.Response(200, json={"success": True, "customer": {"id": 7}})
        if path.endswith("/tickets"):
            self.tickets += 1
            return httpx.Response(201, json={"ticket": {"id": f"T{self.tickets}"}})
        if path.endswith("/comments"):
            return httpx.Response(201, json={"success": True})
        if request.method == "GET":
            ticket = {"id": path.rsplit("/", 1)[1], "HumanTicket": {"HumanTicketStatus": "OPEN"}}
            return httpx.Response(200, json={"ticket": ticket})
        route = json.loads(request.content)["route"]
        state = "opened" if route == "openTicket" else "closed"
        return httpx.Response(200, json={"status": True, "data": {"ticket_id": 5, "status": state}})


def calls(world: World) -> list[str]:
    """AwalChat routes, and HelpWave calls as "METHOD path" (comments with their text)."""
    out = []
    for c in world.provider.calls:
        if "chat/events" in c.url.path:
            out.append(json.loads(c.content)["route"])
        elif c.url.path.endswith("/comments"):
            out.append(f"comment {c.url.path.split('/')[-2]} {json.loads(c.content)['text']}")
        else:
            out.append(f"{c.method} {c.url.path.removeprefix('/api/v1')}")
    return out


def answer_with_desk(world: World) -> Desk:
    desk = Desk()
    world.provider.answers = [desk] * 100
    return desk


def test_each_lane_keeps_its_order_and_comments_follow_their_create() -> None:
    world = build(rules=RULES)
    answer_with_desk(world)
    for body in ("help me", "thanks", "help again"):  # 6 ticket actions: the breaker's cap
        world.accept(1, body)
    assert world.processor.drain("1").processed == 3  # all decided before any lane runs
    made = calls(world)
    awalchat = [c for c in made if c in ("openTicket", "closeTicket")]
    assert awalchat == ["openTicket", "closeTicket", "openTicket"]
    helpwave = [c for c in made if c not in awalchat]
    assert helpwave == [
        "POST /customers",
        "POST /tickets",
        "comment T1 help me",  # the id the create stored, read when the comment runs
        "GET /tickets/T1",
        "comment T1 thanks",
        "GET /tickets/T1",
        "comment T1 help again",
    ]
    state = world.store.state("1")
    assert state.helpwave_ticket_id == "T1"  # what the lane learnt, kept by later decisions
    assert state.ticket_open is True
    assert not world.redis.exists("tw:lane:a:1", "tw:lane:h:1", "tw:lanelock:a:1")
    assert world.redis.zcard("tw:active:lanes") == 0


def test_a_throttled_helpwave_lane_does_not_delay_the_awalchat_lane() -> None:
    world = build(rules=RULES)
    answer_with_desk(world)
    # HelpWave's shared budget is spent for a minute (as a 429 with Retry-After leaves it)
    world.limiter.observe(
        "helpwave:hw",
        status=429,
        limit=None,
        remaining=None,
        reset=None,
        retry_after=60,
        now=world.clock(),
    )
    world.accept(2, "help me")
    world.accept(2, "thanks")
    report = world.processor.drain("2")
    assert report.parked_until is not None
    assert calls(world) == ["openTicket", "closeTicket"]  # AwalChat did not wait
    assert ParkingLot(world.redis, key="tw:parked:lanes").due_time("h:2") is not None
    assert world.redis.zscore("tw:parked", "2") is None  # the conversation is not parked
    world.clock.now += 61
    world.processor.drain("2")
    assert calls(world)[2:] == [
        "POST /customers",
        "POST /tickets",
        "comment T1 help me",
        "GET /tickets/T1",
        "comment T1 thanks",
    ]
    assert not world.redis.exists("tw:lane:h:2")


def test_a_lane_item_handed_over_twice_acts_once() -> None:
    world = build(rules=RULES)
    answer_with_desk(world)
    delivery = world.accept(3, "help me")
    world.processor.drain("3")
    made = len(world.provider.calls)
    world.store.hand_to_lanes("3", delivery, "ah")  # a redelivered hand-over
    world.store.hand_to_lanes("3", delivery, "ah")
    world.processor.drain_ready()
    world.processor.drain("3")
    assert len(world.provider.calls) == made
    assert not world.redis.exists("tw:lane:a:3", "tw:lane:h:3")
    record = world.store.load(delivery)
    assert record is not None
    assert {o["result"] for o in record.done.values()} == {"done"}


def test_a_woken_drain_takes_the_lanes_a_decision_made_ready() -> None:
    world = build(rules=RULES)
    answer_with_desk(world)
    world.accept(4, "help me")
    world.accept(4, "thanks")
    assert world.processor.drain_ready().processed == 2
    assert sorted(calls(world)) == sorted(
        [
            *("openTicket", "closeTicket", "POST /customers", "POST /tickets"),
            *("comment T1 help me", "GET /tickets/T1", "comment T1 thanks"),
        ]
    )
    assert world.redis.llen("tw:ready:lanes") == 0


def test_a_dead_lettered_open_is_replayed_through_its_lane() -> None:
    world = build(rules=RULES)
    desk = answer_with_desk(world)
    world.provider.answers = [status(404), *[desk] * 20]
    world.accept(5, "help me")
    world.processor.drain("5")
    (letter,) = world.dlq.list()
    assert letter.action.kind == "open_ticket"
    assert world.store.state("5").ticket_open is False  # reverted: the lane holds nothing after
    assert world.store.state("5").helpwave_ticket_id == "T1"  # the other lane went on
    assert replay_one(world.redis, world.dlq, letter.id) == [letter.id]
    world.processor.drain("5")
    assert calls(world).count("openTicket") == 2
    assert world.store.state("5").ticket_open is True
    record = world.store.load(f"r{letter.id}")
    assert record is not None
    assert [o["result"] for o in record.done.values()] == ["done"]


def test_a_dry_run_records_everything_at_once_and_fills_no_lane() -> None:
    world = build(rules=RULES, dry_run=True)
    delivery = world.accept(6, "help me")
    world.processor.drain("6")
    assert world.provider.calls == []
    assert not world.redis.exists("tw:lane:a:6", "tw:lane:h:6", "tw:ready:lanes")
    record = world.store.load(delivery)
    assert record is not None
    assert {o["result"] for o in record.done.values()} == {"dry_run"}


def test_a_decision_keeps_what_a_lane_wrote_meanwhile() -> None:
    world = build(rules=RULES)
    delivery = world.accept(7, "hello")
    before = ConversationState(helpwave_ticket_planned=True)
    world.store.client.set("tw:state:7", json.dumps(before.to_json()))
    record = DeliveryRecord(delivery, b"{}", 0.0, False, "7", None, None, {}, {})
    # a lane stores the create's ticket id while the next event is being decided
    world.store.complete(
        record, "mirror#0", {"result": "done"}, changes={"helpwave_ticket_id": "T9"}
    )
    decided = Decision(
        ruleset_version="v",
        event="message.received",
        conversation_id="7",
        outcomes=(),
        actions=(),
        state_after=before.evolve(ticket_open=True),  # decided from the state read before
    )
    world.store.store_decision(record, decided, before)
    state = world.store.state("7")
    assert state.helpwave_ticket_id == "T9"  # not lost
    assert state.ticket_open is True  # the decision's own change holds


def test_a_lane_whose_drain_died_is_recovered_and_acts_once() -> None:
    world = build(rules=RULES)
    desk = answer_with_desk(world)

    def dies(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("the worker dies mid-call")

    world.provider.answers = [dies, *[desk] * 20]
    delivery = world.accept(9, "help me")
    with pytest.raises(RuntimeError):
        world.processor.drain("9")
    assert world.redis.lrange("tw:lane:a:9", 0, -1) == [delivery.encode()]
    assert world.redis.zscore("tw:active:lanes", "a:9") is not None
    recovery = lanes_recovery(world.redis)
    world.clock.now += 100  # the lock's TTL and the budget's wait for a lost answer are over
    assert "a:9" in recovery.sweep(world.clock())
    world.processor.drain_ready()
    world.processor.drain("9")
    assert calls(world).count("openTicket") == 2  # the call that died, then once more
    assert calls(world).count("POST /tickets") == 1
    assert not world.redis.exists("tw:lane:a:9", "tw:lane:h:9")
    assert world.redis.zcard("tw:active:lanes") == 0
