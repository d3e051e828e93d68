"""Conversations taken together from a backlog, decided in one round trip and carried out
with one more (worker.processing.conversation_batch), with the single path for what is
left: a second item, a lane that must wait, a drain killed halfway."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
import redis

from tests.processing.support import World, build, ok, status
from worker.delivery.parking import ParkingLot
from worker.processing.worker_process import conversation_recovery, lanes_recovery
from worker.storage import keys
from worker.storage.drain_scripts import MANY_BATCH, MANY_LEAVE
from worker.storage.drains import Batch, DrainSteps

ONLY_OPEN = """\
version: 1
rules:
  - name: open-on-help
    on: message.received
    when: {data.body: {contains: help}, ticket: closed}
    then: [open_ticket]
  - name: close-on-thanks
    on: message.received
    when: {data.body: {contains: thank}, ticket: open}
    then: [close_ticket]
"""


@pytest.fixture
def world() -> World:
    return build(rules=ONLY_OPEN)


def backlog(world: World, count: int, first: int = 100) -> list[str]:
    """`count` conversations asking for help, one message each; their ids."""
    for n in range(first, first + count):
        world.accept(n, "help me")
    return [str(n) for n in range(first, first + count)]


def opened(world: World) -> list[str]:
    """The conversations of the AwalChat calls, in call order."""
    return [c.url.path.rsplit("/", 1)[-1] for c in world.provider.calls if "events" in c.url.path]


def routes_of(world: World, conversation: str) -> list[str]:
    return [
        json.loads(c.content)["route"]
        for c in world.provider.calls
        if c.url.path.endswith(f"/events/{conversation}")
    ]


def assert_nothing_held(world: World) -> None:
    assert world.redis.keys("tw:lock:*") == []
    assert world.redis.keys("tw:lanelock:*") == []
    assert world.redis.zcard(keys.ACTIVE) == 0
    assert world.redis.zcard(keys.ACTIVE_LANES) == 0
    assert world.redis.keys("tw:inbox:*") == []
    assert world.redis.keys("tw:lane:*") == []


def test_a_backlog_is_taken_several_at_a_time_leaving_a_short_queue_to_the_others(
    world: World,
) -> None:
    backlog(world, MANY_BATCH + MANY_LEAVE + 4)
    steps = DrainSteps(world.redis)
    taken = steps.take_ready("t", ttl_ms=60_000, now=world.clock(), woken=True)
    assert isinstance(taken, Batch)
    assert [c for c, _ in taken.heads] == [str(100 + n) for n in range(MANY_BATCH)]
    assert all(world.redis.get(keys.lock(c)) == b"t" for c, _ in taken.heads)
    assert world.redis.zcard(keys.ACTIVE) == MANY_BATCH  # each recovered if the drain dies
    taken = steps.take_ready("u", ttl_ms=60_000, now=world.clock(), woken=False)
    assert isinstance(taken, Batch)
    assert len(taken.heads) == 4  # no more than leaves MANY_LEAVE ready
    assert world.redis.llen(keys.READY) == MANY_LEAVE
    taken = steps.take_ready("v", ttl_ms=60_000, now=world.clock(), woken=False)
    assert isinstance(taken, tuple)  # a short queue: one at a time, the others join in
    assert taken[:2] == ("c", str(100 + MANY_BATCH + 4))


def test_each_conversation_of_a_backlog_is_decided_and_opened_once(world: World) -> None:
    conversations = backlog(world, 3 * MANY_BATCH + 5)
    report = world.processor.drain_ready()
    assert report.processed == len(conversations)
    assert sorted(opened(world)) == sorted(conversations)
    for conversation in conversations:
        assert world.store.state(conversation).ticket_open is True
    assert world.redis.xlen(keys.DECISIONS) == len(conversations)
    assert_nothing_held(world)
    assert world.redis.llen(keys.READY) == 0


def test_a_conversation_with_a_second_event_keeps_its_order(world: World) -> None:
    conversations = backlog(world, MANY_BATCH + MANY_LEAVE + 2)
    world.accept(100, "thank you")  # the first conversation of the first batch
    assert world.processor.drain_ready().processed == len(conversations) + 1
    assert routes_of(world, "100") == ["openTicket", "closeTicket"]
    assert world.store.state("100").ticket_open is False
    assert_nothing_held(world)


def test_a_lane_that_must_wait_is_parked_and_let_go_while_the_others_finish(
    world: World,
) -> None:
    conversations = backlog(world, MANY_BATCH + MANY_LEAVE + 1)
    world.provider.answers = [status(503)]  # the first call: retried later
    report = world.processor.drain_ready()
    assert report.processed == len(conversations)
    lanes = ParkingLot(world.redis, key=keys.PARKED_LANES)
    retry_at = lanes.due_time("a:100")
    assert retry_at is not None
    assert world.redis.get(keys.lane_lock("a:100")) is None  # let go at once
    assert sorted(set(opened(world))) == sorted(conversations)
    world.clock.now = retry_at
    world.processor.drain("100")  # what the released lane's drain does
    assert opened(world).count("100") == 2  # the 503, then the retry
    assert all(opened(world).count(c) == 1 for c in conversations[1:])
    assert_nothing_held(world)


def test_a_batch_taken_and_never_finished_is_recovered_and_decided_once(world: World) -> None:
    conversations = backlog(world, MANY_BATCH + MANY_LEAVE)
    taken = DrainSteps(world.redis).take_ready("dead", ttl_ms=60_000, now=world.clock(), woken=True)
    assert isinstance(taken, Batch)  # then the worker is killed: nothing decided
    world.redis.delete(*(keys.lock(c) for c, _ in taken.heads))  # its locks expire
    world.redis.delete(keys.CELERY_QUEUE)
    recovery = conversation_recovery(world.redis)
    requeued = recovery.sweep(world.clock() + 3600)
    assert sorted(requeued) == sorted(c for c, _ in taken.heads)
    for conversation in requeued:  # what each queued drain message does
        assert world.processor.drain(conversation).processed == 1
    world.processor.drain_ready()  # the rest of the backlog
    assert sorted(opened(world)) == sorted(conversations)
    assert world.redis.xlen(keys.DECISIONS) == len(conversations)
    assert recovery.sweep(world.clock() + 7200) == []
    assert lanes_recovery(world.redis).sweep(world.clock() + 7200) == []
    assert_nothing_held(world)


def killed(request: httpx.Request) -> httpx.Response:
    raise SystemExit("the worker process dies before it reads the answer")


def test_lanes_a_killed_batch_took_are_recovered_and_their_actions_done_once(
    world: World,
) -> None:
    conversations = backlog(world, MANY_BATCH + MANY_LEAVE)
    world.provider.answers = [ok, ok, ok, killed]
    with pytest.raises(SystemExit):
        world.processor.drain_ready()
    assert world.redis.xlen(keys.DECISIONS) == MANY_BATCH  # decided in one step, first
    assert len(world.provider.calls) == 4  # then four calls, no outcome sent
    if locks := world.redis.keys("tw:lanelock:*"):  # a real kill leaves them: they expire
        world.redis.delete(*locks)
    lanes = lanes_recovery(world.redis).sweep(world.clock() + 3600)
    assert len(lanes) == MANY_BATCH  # every lane of the batch, none finished
    world.processor.drain_ready()
    assert sorted(set(opened(world))) == sorted(conversations)
    # made again: the four whose answers were lost; AwalChat's 409 says "already open"
    assert len(opened(world)) == len(conversations) + 4
    assert world.redis.xlen(keys.DECISIONS) == len(conversations)  # none decided twice
    for conversation in conversations:
        assert world.store.state(conversation).ticket_open is True
    assert_nothing_held(world)


def test_a_helpwave_lane_is_finished_at_once_not_with_the_batch() -> None:
    world = build()  # "help" opens the ticket and creates a HelpWave ticket
    conversations = backlog(world, MANY_BATCH + MANY_LEAVE)
    assert world.processor.drain_ready().processed == len(conversations)
    creates = [c for c in world.provider.calls if c.url.path == "/api/v1/tickets"]
    assert len(creates) == len(conversations)
    for conversation in conversations:
        assert world.store.state(conversation).helpwave_ticket_id is not None
    assert_nothing_held(world)


def test_what_a_batch_held_when_redis_failed_is_handed_back_ready_once_it_answers(
    world: World,
) -> None:
    conversations = backlog(world, MANY_BATCH + MANY_LEAVE)
    calls: list[int] = []

    def then_redis_fails(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == MANY_BATCH:  # the batch's last call: its closing step will fail
            world.server.connected = False
            threading.Timer(0.3, lambda: setattr(world.server, "connected", True)).start()
        return ok(request)

    world.provider.answers = [then_redis_fails] * MANY_BATCH
    with pytest.raises(redis.ConnectionError):
        world.processor.drain_ready()
    # back at once, not after the locks expire: the batch's lanes are ready, none locked
    assert world.redis.keys("tw:lanelock:*") == []
    assert sorted(world.redis.lrange(keys.READY_LANES, 0, -1)) == sorted(
        f"a:{c}".encode() for c in conversations[:MANY_BATCH]
    )
    world.processor.drain_ready()
    assert sorted(set(opened(world))) == sorted(conversations)
    assert len(opened(world)) == len(conversations) + MANY_BATCH  # outcomes lost: 409s
    assert_nothing_held(world)
