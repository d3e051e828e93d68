"""A drain's Redis steps (worker.storage.drains) against a real Lua interpreter (fakeredis)."""

from __future__ import annotations

import fakeredis
import pytest

from worker.storage.drains import AGAIN, DrainSteps, Head


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def push(r: fakeredis.FakeRedis, conversation: str, delivery: str, *, ready: bool = True) -> None:
    r.hset(f"tw:delivery:{delivery}", mapping={"raw": b"{}", "dry_run": "0"})
    r.rpush(f"tw:inbox:{conversation}", delivery)
    if ready:
        r.rpush("tw:ready", conversation)


def test_begin_opens_the_head_with_its_record_and_state(r: fakeredis.FakeRedis) -> None:
    push(r, "7", "d1", ready=False)
    r.set("tw:state:7", b'{"ticket_open": true}')
    head = DrainSteps(r).begin("7", "tok", ttl_ms=60_000, now=1.0)
    assert isinstance(head, Head)
    assert (head.item, head.fields[b"raw"], head.state) == ("d1", b"{}", b'{"ticket_open": true}')
    assert r.get("tw:lock:7") == b"tok"
    assert r.zscore("tw:active", "7") == 1.0
    assert DrainSteps(r).begin("7", "other", ttl_ms=60_000, now=1.0) is False  # held


def test_begin_on_an_empty_inbox_takes_nothing(r: fakeredis.FakeRedis) -> None:
    assert DrainSteps(r).begin("7", "tok", ttl_ms=60_000, now=1.0) is True
    assert not r.exists("tw:lock:7")


def test_a_dry_worker_reads_the_dry_view(r: fakeredis.FakeRedis) -> None:
    push(r, "7", "d1", ready=False)
    r.set("tw:state:7", b"live")
    r.set("tw:dry:state:7", b"dry")
    head = DrainSteps(r, dry_run=True).begin("7", "tok", ttl_ms=60_000, now=1.0)
    assert isinstance(head, Head)
    assert head.state == b"dry"


def test_advance_pops_then_opens_the_next_item(r: fakeredis.FakeRedis) -> None:
    push(r, "7", "d1", ready=False)
    push(r, "7", "d2", ready=False)
    steps = DrainSteps(r)
    steps.begin("7", "tok", ttl_ms=60_000, now=1.0)
    step = steps.advance("7", "tok", "d1", ttl_ms=60_000, now=2.0, record_ttl=None, pop_fields=[])
    assert step.head is not None
    assert step.head.item == "d2"
    assert r.lrange("tw:inbox:7", 0, -1) == [b"d2"]


def test_advance_that_empties_the_inbox_lets_go_and_takes_the_next_ready(
    r: fakeredis.FakeRedis,
) -> None:
    push(r, "7", "d1")
    push(r, "8", "d2")
    steps = DrainSteps(r)
    taken = steps.take_ready("tok", ttl_ms=60_000, now=1.0, woken=False)
    assert isinstance(taken, tuple)
    assert taken[0] == "7"
    step = steps.advance(
        "7",
        "tok",
        "d1",
        ttl_ms=60_000,
        now=2.0,
        record_ttl=86_400,
        pop_fields=["raw"],
        next_token="tok2",
    )
    assert step.head is None
    assert step.asked
    assert isinstance(step.taken, tuple)
    assert step.taken[0] == "8"
    assert not r.exists("tw:lock:7", "tw:inbox:7")
    assert r.get("tw:lock:8") == b"tok2"
    assert r.hgetall("tw:delivery:d1") == {b"dry_run": b"0"}  # body dropped, kept a day
    assert 0 < r.ttl("tw:delivery:d1") <= 86_400
    assert r.zrange("tw:active", 0, -1) == [b"8"]


def test_advance_after_the_lock_was_lost_changes_nothing(r: fakeredis.FakeRedis) -> None:
    push(r, "7", "d1", ready=False)
    r.set("tw:lock:7", "someone-else")
    step = DrainSteps(r).advance(
        "7", "tok", "d1", ttl_ms=60_000, now=2.0, record_ttl=None, pop_fields=[]
    )
    assert step.lost
    assert r.llen("tw:inbox:7") == 1


def test_take_ready_skips_held_and_finished_conversations(r: fakeredis.FakeRedis) -> None:
    push(r, "7", "d1")
    r.set("tw:lock:7", "someone-else")
    r.rpush("tw:ready", "9")  # its inbox is already empty
    steps = DrainSteps(r)
    assert steps.take_ready("tok", ttl_ms=60_000, now=1.0, woken=False) is None
    assert not r.exists("tw:lock:9")
    for _ in range(60):
        r.rpush("tw:ready", "9")
    assert steps.take_ready("tok", ttl_ms=60_000, now=1.0, woken=False) == AGAIN
