"""The drain of one conversation, with fakes (tests/processing/support.py): fakeredis for
Redis, httpx.MockTransport for AwalChat and HelpWave. Deliveries are accepted by the real
Inbox, as the receiver does."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest

from tests.processing.support import Clock, Handler, World, build, ok, status
from tests.samples import TOGGLE_RULES
from worker.delivery.parking import ParkingLot
from worker.processing.failures import replay_one
from worker.storage.drains import DrainSteps
from worker.storage.keys import DECISION_LOG_CONV_LIMIT, QUIET_RECORD_TTL


@pytest.fixture
def world() -> World:
    return build()


def test_events_are_decided_once_and_acted_on_in_order(world: World) -> None:
    world.accept(1, "help me")
    world.accept(1, "thanks!")
    report = world.processor.drain("1")
    assert report.processed == 2
    # one lane per destination: each keeps its order, neither waits for the other
    assert world.provider.routes() == [
        "openTicket",
        "closeTicket",
        "/api/v1/customers",
        "/api/v1/tickets",
    ]
    state = world.store.state("1")
    assert state.ticket_open is False
    assert state.helpwave_ticket_id == "987654321012345678"


def test_a_redelivered_drain_repeats_nothing(world: World) -> None:
    world.accept(2, "help")
    world.processor.drain("2")
    calls = len(world.provider.calls)
    world.processor.drain("2")
    world.accept(2, "help")  # a duplicate delivery: the receiver does not queue it again
    world.processor.drain("2")
    assert len(world.provider.calls) == calls


def test_a_409_on_open_means_the_ticket_is_open(world: World) -> None:
    world.provider.answers = [status(409)]
    delivery = world.accept(3, "help")
    world.processor.drain("3")
    record = world.store.load(delivery)
    assert record is not None
    assert record.done["open-on-help#0"]["result"] == "already"
    assert world.store.state("3").ticket_open is True


def test_a_503_parks_the_lane_and_the_retry_waits_its_turn(world: World) -> None:
    world.provider.answers = [status(503)]
    delivery = world.accept(4, "help")
    world.accept(4, "thanks")
    report = world.processor.drain("4")
    assert report.parked_until is not None
    lanes = ParkingLot(world.redis, key="tw:parked:lanes")
    assert lanes.due_time("a:4") == report.parked_until
    assert world.parking.due_time("4") is None  # the conversation is not held
    # the AwalChat lane waits; the HelpWave lane does not wait for it
    assert world.provider.routes() == ["openTicket", "/api/v1/customers", "/api/v1/tickets"]
    world.processor.drain("4")  # too early: no call, parked again
    assert world.provider.routes().count("openTicket") == 1
    world.clock.now = report.parked_until
    world.processor.drain("4")
    assert world.provider.routes() == [
        "openTicket",
        "/api/v1/customers",
        "/api/v1/tickets",
        "openTicket",
        "closeTicket",
    ]
    record = world.store.load(delivery)
    assert record is not None
    assert len(record.attempts["open-on-help#0"]) == 1


def test_a_429_pauses_the_destination_for_retry_after(world: World) -> None:
    world.provider.answers = [status(429, **{"Retry-After": "30"})]
    world.accept(5, "help")
    report = world.processor.drain("5")
    assert report.parked_until is not None
    assert report.parked_until >= world.clock.now + 30
    assert world.limiter.paused_until("awalchat:shop") is not None


def limited(code: int, remaining: int) -> Handler:
    headers = {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": str(remaining)}

    def answer(request: httpx.Request) -> httpx.Response:
        reply = ok(request) if code == 200 else httpx.Response(code, json={"error": "x"})
        reply.headers.update({**headers, "X-RateLimit-Reset": str(int(time.time()) + 60)})
        return reply

    return answer


@pytest.mark.parametrize("code", [200, 404, 500])
def test_what_an_answer_teaches_the_budget_is_never_left_behind(world: World, code: int) -> None:
    """The lesson of an ordinary answer goes with the outcome's step (or at once when the
    call failed): after the drain the shared budget knows the provider's counter. The
    answer is the drain's last call's (the HelpWave ticket create): no later call of the
    thread can have carried its lesson."""
    world.provider.answers = [ok, ok, limited(code, remaining=41)]
    world.accept(5, "help")
    world.processor.drain("5")
    assert world.provider.routes()[-1] == "/api/v1/tickets"
    budget = world.redis.hgetall(world.limiter.key("helpwave:hw"))
    assert budget[b"limit"] == b"50"
    assert int(budget[b"left"]) <= 41


def test_a_refused_action_is_dead_lettered_and_a_replay_acts_once(world: World) -> None:
    world.provider.answers = [status(404)]
    world.accept(6, "help")
    world.processor.drain("6")
    letters = world.dlq.list()
    assert [(letter.action.kind, letter.attempts[0].status) for letter in letters] == [
        ("open_ticket", 404)
    ]
    assert world.store.state("6").ticket_open is False  # reverted: the open did not happen
    assert replay_one(world.redis, world.dlq, letters[0].id) == [letters[0].id]
    assert replay_one(world.redis, world.dlq, letters[0].id) == []
    world.processor.drain("6")
    assert world.provider.routes().count("openTicket") == 2
    assert world.dlq.count() == 0
    assert world.store.state("6").ticket_open is True


def test_a_lost_answer_to_a_helpwave_create_is_dead_lettered_not_repeated(world: World) -> None:
    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    world.provider.answers = [ok, ok, lost]  # open, customer, then the ticket create
    world.accept(7, "help")
    world.processor.drain("7")
    letters = world.dlq.list()
    assert len(letters) == 1
    assert "may have been applied" in letters[0].reason
    assert world.provider.routes().count("/api/v1/tickets") == 1


def test_dry_run_decides_and_records_but_never_calls() -> None:
    world = build(dry_run=True)
    delivery = world.accept(8, "help")
    world.processor.drain("8")
    assert world.provider.calls == []
    record = world.store.load(delivery)
    assert record is not None
    assert {o["result"] for o in record.done.values()} == {"dry_run"}


def test_an_event_accepted_under_dry_run_is_never_acted_on(world: World) -> None:
    world.accept(9, "help", dry_run=True)
    world.processor.drain("9")
    assert world.provider.calls == []


def test_a_spent_budget_parks_without_counting_an_attempt() -> None:
    world = build(rate="1/60s")
    world.accept(10, "help")
    world.accept(11, "help")
    world.processor.drain("10")
    report = world.processor.drain("11")
    assert report.parked_until is not None
    assert world.provider.routes().count("openTicket") == 1
    waiting = world.redis.lindex("tw:lane:a:11", 0)
    assert isinstance(waiting, bytes)
    record = world.store.load(waiting.decode())
    assert record is not None
    assert record.attempts == {}


def test_a_dry_run_keeps_its_own_view_and_a_live_run_never_inherits_it(world: World) -> None:
    world.accept(12, "help", dry_run=True)
    world.processor.drain("12")
    assert world.store.state("12", "dry").ticket_open is True  # what the dry run imagined
    assert world.store.state("12").ticket_open is False
    world.accept(12, "help again")  # the same Redis, now live
    world.processor.drain("12")
    assert world.provider.routes().count("openTicket") == 1


def test_a_drain_past_its_budget_parks_between_actions_not_only_between_events() -> None:
    world = build(run_budget=5.0)
    world.provider.answers = [advance(world.clock, 6.0, ok)]  # the open takes 6 s
    delivery = world.accept(13, "help")
    report = world.processor.drain("13")
    assert report.parked_until == world.clock.now  # due at once, for any worker
    assert world.provider.routes() == ["openTicket"]
    record = world.store.load(delivery)
    assert record is not None
    assert list(record.done) == ["open-on-help#0"]
    world.processor.drain("13")
    assert world.provider.routes()[1:] == ["/api/v1/customers", "/api/v1/tickets"]


def test_a_lane_whose_lock_was_lost_stops_before_its_next_action(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    def steal(request: httpx.Request) -> httpx.Response:
        world.redis.set("tw:lanelock:a:14", "another worker")  # our lock expired, was taken
        world.processor._lanes._leases.renew()
        return ok(request)

    world.provider.answers = [steal]
    world.accept(14, "help")
    world.accept(14, "thanks")
    with caplog.at_level(logging.WARNING):
        report = world.processor.drain("14")
    assert "conversation lock lost; stopping" in caplog.text
    assert "closeTicket" not in world.provider.routes()  # the close was not started
    assert world.provider.routes().count("/api/v1/tickets") == 1  # the other lane ran
    assert report.parked_until is None
    assert world.redis.get("tw:lanelock:a:14") == b"another worker"  # not released by us


def advance(clock: Clock, seconds: float, then: Handler) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        clock.now += seconds
        return then(request)

    return answer


STATUS = b'{"event":"message.status.updated","data":{"message_id":"wamid.1","status":"read"}}'


def test_an_event_of_no_conversation_writes_no_state_and_leaves_a_short_record(
    world: World,
) -> None:
    delivery = world.accept_raw(STATUS)
    world.processor.drain(f"d:{delivery}")
    assert world.redis.keys("tw:state:*") == []
    assert world.redis.keys("tw:inbox:*") == []
    assert 0 < world.redis.ttl(f"tw:delivery:{delivery}") <= QUIET_RECORD_TTL
    record = world.store.load(delivery)
    assert record is not None
    assert record.decision is not None  # still in the decision log
    assert record.raw == b""  # no rule listens to it: its body is not kept
    assert world.store.recent_deliveries(conversation=None, limit=1) == [delivery]


def test_a_conversation_keeps_state_and_records_for_the_retention_and_a_bounded_log() -> None:
    world = build(retention=7200)
    first = world.accept(15, "hello")
    world.processor.drain("15")
    assert 0 < world.redis.ttl("tw:state:15") <= 7200
    assert 0 < world.redis.ttl("tw:decisions:conv:15") <= 7200
    record = world.store.load(first)
    assert record is not None
    assert record.raw  # the event is kept with its decision
    for n in range(DECISION_LOG_CONV_LIMIT):
        world.accept(15, f"message {n}")
    world.processor.drain("15")
    assert world.redis.llen("tw:decisions:conv:15") == DECISION_LOG_CONV_LIMIT
    assert world.store.load(first) is None  # pushed out of its log: deleted


def test_a_replay_needs_no_delivery_record(world: World) -> None:
    world.provider.answers = [status(404)]
    delivery = world.accept(16, "help")
    world.processor.drain("16")
    [letter] = world.dlq.list()
    world.redis.delete(f"tw:delivery:{delivery}")  # expired since
    assert replay_one(world.redis, world.dlq, letter.id) == [letter.id]
    world.processor.drain("16")
    assert world.provider.routes().count("openTicket") == 2
    assert world.store.state("16").ticket_open is True
    assert world.dlq.count() == 0


def test_worker_metrics_label_unknown_event_names_other(world: World) -> None:
    for name in ("message.received", "order.updated", "x" * 300):
        world.accept_raw(json.dumps({"event": name, "data": {"conversation_id": 17}}).encode())
    world.processor.drain("17")
    samples = {
        s.labels["event"]: s.value
        for metric in world.processor._metrics.registry.collect()
        if metric.name == "ticket_worker_events_decided"
        for s in metric.samples
        if s.name.endswith("_total")
    }
    assert samples == {"message.received": 1.0, "other": 2.0}


def test_two_rules_toggling_a_ticket_forever_are_stopped_by_the_breaker() -> None:
    world = build(rules=TOGGLE_RULES)
    for n in range(10):  # a sender repeating the event with new bytes
        world.accept(18, f"again {n}")
    world.processor.drain("18")
    assert len(world.provider.calls) == 6  # the default cap: 6 ticket actions in 10m
    letters = world.dlq.list(limit=10)
    assert len(letters) == 4
    assert {letter.reason for letter in letters} == {"runaway: more than 6 ticket actions in 10m"}
    replayed = replay_one(world.redis, world.dlq, letters[-1].id)  # an operator's choice
    assert replayed == [letters[-1].id]
    world.processor.drain("18")
    assert len(world.provider.calls) == 7  # a replay is not capped


def test_a_woken_drain_takes_every_ready_conversation_in_turn(world: World) -> None:
    world.accept(1, "help me")
    world.accept(2, "help me")
    world.accept(1, "thanks!")
    assert world.redis.lrange("tw:ready", 0, -1) == [b"1", b"2", b"1"]
    report = world.processor.drain_ready()
    assert report.processed == 3
    assert world.redis.llen("tw:ready") == 0
    assert world.redis.get("tw:wakes") == b"2"  # 3 queued by the receiver, 1 used up
    assert not world.redis.exists("tw:lock:1", "tw:lock:2", "tw:inbox:1", "tw:inbox:2")
    assert world.redis.zcard("tw:active") == 0
    opens = [r for r in world.provider.routes() if r in ("openTicket", "closeTicket")]
    assert opens == ["openTicket", "closeTicket", "openTicket"]  # 1 in order, then 2


def test_a_woken_drain_skips_a_conversation_another_drain_holds(world: World) -> None:
    world.accept(1, "help me")
    world.accept(2, "help me")
    world.redis.set("tw:lock:1", "someone-else", px=60_000)
    assert world.processor.drain_ready().processed == 1
    assert world.redis.llen("tw:inbox:1") == 1  # left to the drain that holds it
    assert world.redis.llen("tw:ready") == 0


def test_a_woken_drain_with_more_ready_than_wakes_queues_one_more(world: World) -> None:
    for conversation in range(1, 4):
        world.accept(conversation, "help me")
    world.redis.delete("celery")
    world.redis.set("tw:wakes", 0)
    steps = DrainSteps(world.redis)
    taken = steps.take_ready("t", ttl_ms=60_000, now=world.clock(), woken=True)
    assert isinstance(taken, tuple)
    assert taken[:2] == ("c", "1")
    assert world.redis.llen("celery") == 1  # two more are ready: an idle thread joins in
    assert world.redis.get("tw:wakes") == b"1"
    assert world.redis.zscore("tw:active", "1") is not None  # a crash now is recovered


def test_a_drain_that_stops_with_conversations_ready_wakes_another(world: World) -> None:
    world.accept(1, "help me")
    world.redis.delete("celery")
    world.redis.set("tw:wakes", 0)
    assert DrainSteps(world.redis).nudge()
    assert world.redis.llen("celery") == 1
    assert not DrainSteps(world.redis).nudge()  # one waits already
