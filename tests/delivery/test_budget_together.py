"""Several slots or several answers in one script call learn exactly what as many calls of
one would (worker.delivery.budget_scripts RESERVE's n, OBSERVE's lessons one after another):
the batch path sends them together to save round trips and script runs, never to change
what the budget knows."""

from __future__ import annotations

import random
from typing import cast

import fakeredis
import pytest

from worker.delivery.budget_scripts import RESERVE
from worker.delivery.gate import Observations
from worker.delivery.ratelimit import RateLimiter
from worker.storage.pipelined import register_script

DEST = "awalchat:shop"
NOW = 1_800_000_000.0


def budget(limiter: RateLimiter) -> dict[bytes, bytes]:
    return cast(dict[bytes, bytes], limiter._redis.hgetall(limiter.key(DEST)))


def answers(seed: int) -> list[dict[str, float | int | None]]:
    """A mixed run of answers: windows of 20 per 5 s, some late, some stale, a 429."""
    rng = random.Random(seed)
    out: list[dict[str, float | int | None]] = []
    now = NOW
    left = 20
    reset = NOW + 5
    for n in range(60):
        now += rng.uniform(0.0, 0.4)
        if now >= reset:
            reset += 5 * ((now - reset) // 5 + 1)
            left = 20
        left = max(0, left - 1)
        status = 429 if n == 37 else 200
        stale = rng.random() < 0.1
        out.append(
            {
                "status": status,
                "limit": 20,
                "remaining": 0 if status == 429 else left,
                "reset": reset - 5 if stale else reset,
                "retry_after": 1.0 if status == 429 else None,
                "now": now,
            }
        )
    return out


@pytest.mark.parametrize("seed", range(5))
def test_lessons_taught_together_learn_what_one_at_a_time_learns(seed: int) -> None:
    one, together = RateLimiter(fakeredis.FakeRedis()), RateLimiter(fakeredis.FakeRedis())
    run = answers(seed)
    for start in range(0, len(run), 7):  # groups of 7, as a batch's closing step sends them
        group = run[start : start + 7]
        for a in group:
            one.observe(DEST, **a)  # type: ignore[arg-type]
        together.teach([together.lesson(DEST, **a) for a in group])  # type: ignore[arg-type]
        assert budget(together) == budget(one)


def test_held_lessons_go_as_one_call_per_budget_in_their_order() -> None:
    server = fakeredis.FakeRedis()
    limiter = RateLimiter(server)
    observations = Observations(server)
    for n in range(3):
        observations.hold(
            limiter.lesson(
                DEST,
                status=200,
                limit=20,
                remaining=19 - n,
                reset=NOW + 5,
                retry_after=None,
                now=NOW + n / 10,
            )
        )
        observations.hold(
            limiter.lesson(
                "helpwave:hw",
                status=200,
                limit=9,
                remaining=8 - n,
                reset=NOW + 60,
                retry_after=None,
                now=NOW + n / 10,
            )
        )
    pipe = server.pipeline(transaction=False)
    observations.queue_on(pipe)
    assert len(pipe) == 2  # one script call per destination
    pipe.execute()
    assert budget(limiter)[b"low"] == b"17"
    assert server.hget(limiter.key("helpwave:hw"), "low") == b"6"
    assert not observations.pending()


@pytest.mark.parametrize("n", [1, 3, 8])
def test_n_slots_in_one_call_are_n_calls_of_one(n: int) -> None:
    limiters = [RateLimiter(fakeredis.FakeRedis()) for _ in range(2)]
    for limiter in limiters:  # a learnt window with 10 left
        limiter.observe(
            DEST, status=200, limit=20, remaining=10, reset=NOW + 5, retry_after=None, now=NOW
        )
    one, together = limiters
    script_one = register_script(one._redis, RESERVE)
    script_together = register_script(together._redis, RESERVE)
    args = [repr(NOW + 0.1), "", "", "0.05", "3600", "1.0", "0.01", "1.0"]
    for _ in range(3):  # 3 rounds of n: the last ones refused once the window is spent
        singles = []
        for _ in range(n):
            singles += script_one(keys=[one.key(DEST)], args=[*args, 1])
            if singles[-1] != b"0":
                break
        batch = script_together(keys=[together.key(DEST)], args=[*args, n])
        assert batch == singles
        assert budget(together) == budget(one)
