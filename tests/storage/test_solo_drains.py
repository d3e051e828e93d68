"""Taking and finishing events of no conversation in batches (worker.storage.drains
`take_ready` and `finish_quiet`) against a real Lua interpreter (fakeredis)."""

from __future__ import annotations

import fakeredis
import pytest

from worker.storage.decision_index import parse_entries
from worker.storage.drain_scripts import SOLO_BATCH
from worker.storage.drains import AGAIN, Batch, DrainSteps, QuietItem


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def push(r: fakeredis.FakeRedis, conversation: str, delivery: str) -> None:
    r.hset(f"tw:delivery:{delivery}", mapping={"raw": b"{}", "dry_run": "0"})
    r.rpush(f"tw:inbox:{conversation}", delivery)
    r.rpush("tw:ready", conversation)


def solo(r: fakeredis.FakeRedis, n: int) -> None:
    """`n` events of no conversation (conversation `d:e{i}`, delivery `e{i}`), ready."""
    for i in range(n):
        push(r, f"d:e{i}", f"e{i}")


def quiet(conversation: str) -> QuietItem:
    delivery = conversation[2:]
    return QuietItem(conversation, delivery, '{"q":1}', "message.status.updated", "")


def test_take_ready_takes_events_of_no_conversation_in_one_batch(r: fakeredis.FakeRedis) -> None:
    solo(r, SOLO_BATCH + 3)
    push(r, "7", "m1")
    steps = DrainSteps(r)
    taken = steps.take_ready("tok", ttl_ms=60_000, now=1.0, woken=False)
    assert isinstance(taken, Batch)
    assert [c for c, _ in taken.heads] == [f"d:e{i}" for i in range(SOLO_BATCH)]
    assert [h.item for _, h in taken.heads] == [f"e{i}" for i in range(SOLO_BATCH)]
    assert taken.heads[0][1].fields[b"raw"] == b"{}"
    assert all(r.get(f"tw:lock:d:e{i}") == b"tok" for i in range(SOLO_BATCH))
    assert r.zcard("tw:active") == SOLO_BATCH  # each recovered if this drain dies now
    assert r.llen("tw:ready") == 4
    taken = steps.take_ready("tok2", ttl_ms=60_000, now=1.0, woken=False)
    assert isinstance(taken, Batch)
    assert len(taken.heads) == 3  # a batch stops at the first conversation
    taken = steps.take_ready("tok3", ttl_ms=60_000, now=1.0, woken=False)
    assert isinstance(taken, tuple)
    assert taken[:2] == ("c", "7")


def test_a_batch_skips_events_whose_lock_is_held(r: fakeredis.FakeRedis) -> None:
    solo(r, 3)
    r.set("tw:lock:d:e1", "someone-else")
    taken = DrainSteps(r).take_ready("tok", ttl_ms=60_000, now=1.0, woken=False)
    assert isinstance(taken, Batch)
    assert [c for c, _ in taken.heads] == ["d:e0", "d:e2"]
    assert r.get("tw:lock:d:e1") == b"someone-else"


def test_finish_quiet_stores_logs_pops_and_lets_go_in_one_step(r: fakeredis.FakeRedis) -> None:
    solo(r, 2)
    push(r, "7", "m1")
    steps = DrainSteps(r)
    taken = steps.take_ready("tok", ttl_ms=60_000, now=1.0, woken=False)
    assert isinstance(taken, Batch)
    stored, following = steps.finish_quiet(
        "tok", [quiet(c) for c, _ in taken.heads], ttl_ms=60_000, now=2.0, next_token="tok2"
    )
    assert stored == [True, True]
    for delivery in ("e0", "e1"):
        assert r.hgetall(f"tw:delivery:{delivery}") == {b"dry_run": b"0", b"decision": b'{"q":1}'}
        assert 0 < r.ttl(f"tw:delivery:{delivery}") <= 86_400
    entries = parse_entries(r.xrange("tw:decisions"))
    assert [(e.delivery_id, e.conversation, e.event, e.rules) for e in entries] == [
        ("e0", "", "message.status.updated", ()),
        ("e1", "", "message.status.updated", ()),
    ]
    assert not r.exists("tw:lock:d:e0", "tw:lock:d:e1", "tw:inbox:d:e0", "tw:inbox:d:e1")
    assert isinstance(following, tuple)  # the next ready work, taken in the same step
    assert following[:2] == ("c", "7")
    assert r.zrange("tw:active", 0, -1) == [b"7"]


def test_finish_quiet_without_a_next_token_takes_nothing(r: fakeredis.FakeRedis) -> None:
    solo(r, 1)
    push(r, "7", "m1")
    steps = DrainSteps(r)
    steps.take_ready("tok", ttl_ms=60_000, now=1.0, woken=False)
    stored, following = steps.finish_quiet("tok", [quiet("d:e0")], ttl_ms=60_000, now=2.0)
    assert (stored, following) == ([True], AGAIN)
    assert r.lrange("tw:ready", 0, -1) == [b"7"]


def test_finish_quiet_leaves_what_it_does_not_own(r: fakeredis.FakeRedis) -> None:
    solo(r, 3)
    steps = DrainSteps(r)
    steps.take_ready("tok", ttl_ms=60_000, now=1.0, woken=False)
    r.set("tw:lock:d:e1", "someone-else")  # lost (expired and taken again)
    r.hset("tw:delivery:e2", "decision", b'{"first":1}')  # decided before
    stored, _ = steps.finish_quiet(
        "tok", [quiet("d:e0"), quiet("d:e1"), quiet("d:e2")], ttl_ms=60_000, now=2.0
    )
    assert stored == [True, False, False]
    assert r.get("tw:lock:d:e1") == b"someone-else"
    assert r.llen("tw:inbox:d:e1") == 1
    assert r.zscore("tw:active", "d:e1") is not None  # its holder (or recovery) goes on
    assert r.hget("tw:delivery:e2", "decision") == b'{"first":1}'  # decided once
    assert r.llen("tw:inbox:d:e2") == 1
    assert r.lrange("tw:ready", 0, -1) == [b"d:e2"]  # an ordinary drain takes it
    assert not r.exists("tw:lock:d:e2")
    assert r.xlen("tw:decisions") == 1
