"""Parking: park until due, release atomically onto the Celery queue, exactly once."""

from __future__ import annotations

import json
import threading
import time

import fakeredis
import pytest

from worker.delivery.parking import WAKE_LIMIT, ParkedReleaser, ParkingLot, ready

NOW = 1_700_000_000.0


def message(member: str) -> str:
    return json.dumps({"task": "worker.tasks.drain", "args": [member]})


def queued(r: fakeredis.FakeRedis, queue: str = "celery") -> list[str]:
    """Members on the queue in the order a BRPOP consumer takes them."""
    return [json.loads(raw)["args"][0] for raw in reversed(r.lrange(queue, 0, -1))]


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def r(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=server)


@pytest.fixture
def lot(r: fakeredis.FakeRedis) -> ParkingLot:
    return ParkingLot(r)


def test_parking_again_keeps_the_earlier_due_time(lot: ParkingLot) -> None:
    lot.park("42", NOW + 60)
    lot.park("42", NOW + 3600)
    assert lot.due_time("42") == NOW + 60
    lot.park("42", NOW + 10)
    assert lot.due_time("42") == NOW + 10
    lot.park("42", NOW + 3600, replace=True)
    assert lot.due_time("42") == NOW + 3600
    assert lot.count() == 1


def test_unpark_removes(lot: ParkingLot) -> None:
    lot.park("42", NOW)
    assert lot.unpark("42")
    assert not lot.unpark("42")
    assert lot.due_time("42") is None


def test_only_due_members_are_released_in_due_order(
    r: fakeredis.FakeRedis, lot: ParkingLot
) -> None:
    lot.park("late", NOW + 1)
    lot.park("b", NOW - 5)
    lot.park("a", NOW - 10)
    lot.park("now", NOW)
    assert lot.release_due(NOW, message) == ["a", "b", "now"]
    assert queued(r) == ["a", "b", "now"]
    assert lot.count() == 1
    assert lot.release_due(NOW, message) == []
    assert queued(r) == ["a", "b", "now"]


def test_release_respects_limit_and_queue(r: fakeredis.FakeRedis, lot: ParkingLot) -> None:
    for i in range(5):
        lot.park(f"c{i}", NOW - 10 + i)
    assert lot.release_due(NOW, message, queue="other", limit=2) == ["c0", "c1"]
    assert queued(r, "other") == ["c0", "c1"]
    assert lot.count() == 3


def test_a_concurrent_releaser_never_releases_twice(
    server: fakeredis.FakeServer, r: fakeredis.FakeRedis, lot: ParkingLot
) -> None:
    for i in range(3):
        lot.park(f"c{i}", NOW - 1)
    rival = ParkingLot(fakeredis.FakeRedis(server=server))
    rival_got: list[str] = []

    def build_while_rival_releases(member: str) -> str:
        if not rival_got:  # between our read and our script, a rival takes them all
            rival_got.extend(rival.release_due(NOW, message))
        return message(member)

    mine = lot.release_due(NOW, build_while_rival_releases)
    assert sorted(mine + rival_got) == ["c0", "c1", "c2"]
    assert mine == []
    assert sorted(queued(r)) == ["c0", "c1", "c2"]


def test_a_member_parked_later_in_between_stays_parked(
    r: fakeredis.FakeRedis, lot: ParkingLot
) -> None:
    lot.park("c", NOW - 1)

    def build_after_repark(member: str) -> str:
        lot.park(member, NOW + 100, replace=True)
        return message(member)

    assert lot.release_due(NOW, build_after_repark) == []
    assert lot.due_time("c") == NOW + 100
    assert queued(r) == []


def test_a_failure_before_the_script_releases_nothing(
    r: fakeredis.FakeRedis, lot: ParkingLot
) -> None:
    lot.park("a", NOW - 1)
    lot.park("b", NOW - 1)

    def broken(member: str) -> str:
        if member == "b":
            raise RuntimeError("cannot build")
        return message(member)

    with pytest.raises(RuntimeError):
        lot.release_due(NOW, broken)
    assert lot.count() == 2
    assert queued(r) == []


def test_tick_drains_a_backlog_in_batches(r: fakeredis.FakeRedis, lot: ParkingLot) -> None:
    for i in range(250):
        lot.park(f"c{i}", NOW - 1)
    releaser = ParkedReleaser(lot, message, limit=100, clock=lambda: NOW)
    assert releaser.tick() == 250
    assert len(queued(r)) == 250
    assert releaser.tick() == 0


def test_releaser_thread_survives_redis_down_releases_then_stops(
    server: fakeredis.FakeServer, r: fakeredis.FakeRedis, lot: ParkingLot
) -> None:
    now = [NOW]
    ticks_while_down = threading.Semaphore(0)
    released = threading.Event()

    def clock() -> float:
        if not server.connected:
            ticks_while_down.release()
        return now[0]

    def build(member: str) -> str:
        released.set()
        return message(member)

    releaser = ParkedReleaser(lot, build, interval=0.01, clock=clock)
    server.connected = False
    assert not releaser.running
    releaser.start()
    with pytest.raises(RuntimeError):
        releaser.start()
    assert ticks_while_down.acquire(timeout=5)
    assert ticks_while_down.acquire(timeout=5)  # a failed tick did not end the thread
    server.connected = True
    lot.park("42", NOW + 5)
    assert not released.is_set()
    now[0] = NOW + 5
    assert released.wait(5)
    releaser.stop(timeout=5)
    assert not releaser.running
    assert queued(r) == ["42"]


def test_next_due_is_the_earliest_parked_time(lot: ParkingLot) -> None:
    assert lot.next_due() is None
    lot.park("late", NOW + 9)
    lot.park("early", NOW + 2)
    assert lot.next_due() == NOW + 2


def test_releaser_wakes_at_the_earliest_due_time_not_at_its_next_tick(
    r: fakeredis.FakeRedis, lot: ParkingLot
) -> None:
    """Work parked until a rate window's end is released at that end: the thread sleeps
    until the earliest due member, however long its interval."""
    lot.park("c1", time.time() + 0.2)
    released = threading.Event()

    def build(member: str) -> str:
        released.set()
        return message(member)

    releaser = ParkedReleaser(lot, build, interval=30.0)
    releaser.start()
    try:
        assert released.wait(5.0)
    finally:
        releaser.stop()
    assert queued(r) == ["c1"]


def test_conversations_released_as_ready_share_a_wake_message(
    lot: ParkingLot, r: fakeredis.FakeRedis
) -> None:
    for n in range(150):
        lot.park(f"c{n}", NOW - 1)
    assert len(lot.release_due(NOW, ready, limit=100)) == 100
    assert len(lot.release_due(NOW, ready, limit=100)) == 50
    assert r.llen("tw:ready") == 150
    assert r.llen("celery") == 2  # one wake per release, not one per conversation
    assert r.get("tw:wakes") == b"2"
    r.set("tw:wakes", WAKE_LIMIT)
    lot.park("late", NOW - 1)
    lot.release_due(NOW, ready)
    assert r.llen("celery") == 2  # enough wake messages wait already
