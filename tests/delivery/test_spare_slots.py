"""Spare slots: against a large budget a process takes a batch of call slots per round trip
and spends them within a moment, inside the window; a tight budget, a window's last slots
and an unlearned budget are still one slot per round trip."""

from __future__ import annotations

import fakeredis
import pytest

from worker.delivery.ratelimit import RateLimiter
from worker.delivery.spare_slots import BATCH, HOLD, PLENTY

DEST = "awalchat:shop"
NOW = 1_800_000_000.0


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def learnt(limiter: RateLimiter, limit: int, *, window_left: float = 60.0) -> None:
    limiter.observe(
        DEST,
        status=200,
        limit=limit,
        remaining=limit - 1,
        reset=NOW + window_left,
        retry_after=None,
        now=NOW,
    )


def left(client: fakeredis.FakeRedis, limiter: RateLimiter) -> int:
    return int(client.hget(limiter.key(DEST), "left") or -1)


def test_a_large_budget_is_taken_a_batch_per_round_trip(redis_client: fakeredis.FakeRedis) -> None:
    limiter = RateLimiter(redis_client)
    learnt(limiter, 1000)
    assert limiter.reserve(DEST, NOW) == 0.0  # one slot: the next ask is a batch
    assert left(redis_client, limiter) == 998
    assert limiter.reserve(DEST, NOW) == 0.0
    assert left(redis_client, limiter) == 998 - BATCH
    for _ in range(BATCH - 1):  # the spares: no round trip, nothing more taken
        assert limiter.reserve(DEST, NOW + HOLD / 2) == 0.0
    assert left(redis_client, limiter) == 998 - BATCH
    assert limiter.reserve(DEST, NOW + HOLD / 2) == 0.0
    assert left(redis_client, limiter) == 998 - 2 * BATCH


def test_spares_are_dropped_after_a_moment(redis_client: fakeredis.FakeRedis) -> None:
    limiter = RateLimiter(redis_client)
    learnt(limiter, 1000)
    limiter.reserve(DEST, NOW)
    limiter.reserve(DEST, NOW)  # a batch: 7 spares
    assert limiter.reserve(DEST, NOW + HOLD) == 0.0  # too late for them: a new batch
    assert left(redis_client, limiter) == 998 - 2 * BATCH


def test_spares_never_outlive_their_window(redis_client: fakeredis.FakeRedis) -> None:
    limiter = RateLimiter(redis_client, guard=0.05)
    learnt(limiter, 1000, window_left=HOLD / 2)  # the window ends before HOLD is up
    limiter.reserve(DEST, NOW)
    limiter.reserve(DEST, NOW)  # a batch: its spares last until the window's end - guard
    taken = left(redis_client, limiter)
    assert limiter.reserve(DEST, NOW + HOLD / 2 - 0.05) == 0.0  # at the end: not a spare
    assert left(redis_client, limiter) < taken


@pytest.mark.parametrize("limit", [20, PLENTY])
def test_a_tight_budget_is_one_slot_per_round_trip(
    redis_client: fakeredis.FakeRedis, limit: int
) -> None:
    limiter = RateLimiter(redis_client)
    learnt(limiter, limit)
    for n in range(1, 6):
        assert limiter.reserve(DEST, NOW) == 0.0
        assert left(redis_client, limiter) == limit - 1 - n


def test_no_batch_before_anything_is_learnt(redis_client: fakeredis.FakeRedis) -> None:
    limiter = RateLimiter(redis_client)
    assert limiter.reserve(DEST, NOW) == 0.0  # the probe
    assert limiter.reserve(DEST, NOW) > 0  # the others wait for its answer
    assert limiter.reserve(DEST, NOW) > 0
