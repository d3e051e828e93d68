"""Events of no conversation taken, decided and finished in batches
(worker.processing.solo_batch), with the ordinary path for any a rule listens to."""

from __future__ import annotations

import json

import pytest

from tests.processing.support import World, build
from worker.processing.worker_process import conversation_recovery
from worker.storage import keys
from worker.storage.drains import Batch, DrainSteps
from worker.storage.keys import QUIET_RECORD_TTL


def status(n: int, state: str = "delivered") -> bytes:
    data = {"message_id": f"wamid.out.{n}", "status": state}
    return json.dumps({"event": "message.status.updated", "data": data}).encode()


@pytest.fixture
def world() -> World:
    return build()


def decided_counts(world: World) -> dict[str, float]:
    return {
        s.labels["event"]: s.value
        for metric in world.processor._metrics.registry.collect()
        if metric.name == "ticket_worker_events_decided"
        for s in metric.samples
        if s.name.endswith("_total")
    }


def assert_quiet_record(world: World, delivery: str) -> None:
    record = world.store.load(delivery)
    assert record is not None
    assert record.decision is not None  # in the decision log
    assert record.raw == b""  # no rule listens: the body is not kept
    assert 0 < world.redis.ttl(f"tw:delivery:{delivery}") <= QUIET_RECORD_TTL


def test_a_woken_drain_decides_quiet_events_in_a_batch_and_others_in_turn(world: World) -> None:
    quiet = [world.accept_raw(status(n)) for n in range(3)]
    world.accept(1, "help me")
    quiet += [world.accept_raw(status(n)) for n in range(3, 5)]
    report = world.processor.drain_ready()
    assert report.processed == 6
    for delivery in quiet:
        assert_quiet_record(world, delivery)
    logged = world.store.recent_deliveries(conversation=None, limit=10)
    assert len(logged) == 6
    assert set(quiet) <= set(logged)
    assert decided_counts(world) == {"message.status.updated": 5.0, "message.received": 1.0}
    assert world.provider.routes().count("openTicket") == 1
    assert world.redis.keys("tw:inbox:*") == []
    assert world.redis.keys("tw:lock:*") == []
    assert world.redis.keys("tw:state:d:*") == []
    assert world.redis.zcard("tw:active") == 0
    assert world.redis.llen("tw:ready") == 0


def test_an_event_a_rule_listens_to_takes_the_ordinary_path() -> None:
    world = build(
        rules="""\
version: 1
rules:
  - name: failed-sends
    on: message.status.updated
    when: {data.status: failed}
    then: [open_ticket]
"""
    )
    delivered = world.accept_raw(status(1))
    failed = world.accept_raw(status(2, "failed"))
    broken = world.accept_raw(status(3))
    world.redis.hset(f"tw:delivery:{broken}", "raw", b"not json")  # no longer parses
    assert world.processor.drain_ready().processed == 3
    assert world.redis.keys("tw:inbox:*") == []
    record = world.store.load(failed)
    assert record is not None
    assert record.decision is not None
    assert record.raw  # a rule listened: the body is kept with its decision
    assert [a.skip_reason for a in record.decision.actions] == ["event has no conversation"]
    listened = world.store.load(delivered)
    assert listened is not None
    assert listened.raw  # the rule listens to its event, though it did not match
    unreadable = world.store.load(broken)
    assert unreadable is not None
    assert unreadable.decision is None
    assert world.provider.calls == []


def test_a_batch_taken_and_never_finished_is_recovered_and_decided_once(world: World) -> None:
    deliveries = [world.accept_raw(status(n)) for n in range(4)]
    steps = DrainSteps(world.redis)
    taken = steps.take_ready("dead", ttl_ms=60_000, now=world.clock(), woken=True)
    assert isinstance(taken, Batch)
    assert len(taken.heads) == 4  # then the worker is killed: nothing finished
    # the worker's lock expires; recovery finds the stale active marks
    world.redis.delete(*(keys.lock(c) for c, _ in taken.heads))
    world.redis.delete(keys.CELERY_QUEUE)
    recovery = conversation_recovery(world.redis)
    requeued = recovery.sweep(world.clock() + 3600)
    assert sorted(requeued) == sorted(c for c, _ in taken.heads)
    assert world.redis.llen(keys.CELERY_QUEUE) == 4
    for conversation in requeued:  # what each queued drain message does
        assert world.processor.drain(conversation).processed == 1
        assert world.processor.drain(conversation).processed == 0  # a second one: nothing
    for delivery in deliveries:
        assert_quiet_record(world, delivery)
    assert world.redis.xlen(keys.DECISIONS) == 4  # each decided once
    assert world.redis.zcard(keys.ACTIVE) == 0
    assert recovery.sweep(world.clock() + 7200) == []


def test_a_dry_worker_decides_quiet_events_in_a_batch_too() -> None:
    world = build(dry_run=True)
    deliveries = [world.accept_raw(status(n)) for n in range(3)]
    assert world.processor.drain_ready().processed == 3
    for delivery in deliveries:
        assert_quiet_record(world, delivery)
    assert world.redis.keys("tw:dry:state:*") == []
