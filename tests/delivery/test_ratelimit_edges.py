"""The shared budget where answers come late and out of order across processes: calls in
flight across a window's edge, a reservation never answered (a killed worker), answers out
of order, stale resets, a 429. Never more calls than the provider allows in a window."""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from dataclasses import dataclass, field

import fakeredis
import pytest

from worker.delivery.ratelimit import RateLimiter

DEST = "awalchat:edges.example"
END = 1_700_000_010.0  # the end of the provider's current window (10 s, on the clock's grid)
LIMIT = 5


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def limiter(server: fakeredis.FakeServer) -> RateLimiter:
    return RateLimiter(fakeredis.FakeRedis(server=server))


def teach(
    rl: RateLimiter, remaining: int | None, reset: float, now: float, status: int = 200
) -> None:
    rl.observe(
        DEST,
        status=status,
        limit=LIMIT,
        remaining=remaining,
        reset=reset,
        retry_after=1.0 if status == 429 else None,
        now=now,
    )


def granted(rl: RateLimiter, now: float, tries: int = 10) -> int:
    """How many of `tries` reservations at `now` are granted."""
    return sum(1 for _ in range(tries) if rl.reserve(DEST, now) == 0.0)


def field_of(rl: RateLimiter, name: str) -> float:
    """A field of the budget's hash (`worker.delivery.budget_scripts` names them)."""
    value = rl._redis.hget(rl.key(DEST), name)
    return float(value) if value is not None else math.nan


def a_window_known(rl: RateLimiter) -> None:
    """One call answered early in the window ending at END: LIMIT - 1 left."""
    assert rl.reserve(DEST, END - 9.5) == 0.0  # the first call: the probe
    teach(rl, LIMIT - 1, END, END - 9.4)


def test_calls_in_flight_across_the_edge_are_charged_to_the_new_window(
    server: fakeredis.FakeServer,
) -> None:
    a, b = limiter(server), limiter(server)
    a_window_known(a)
    assert granted(a, END - 5, tries=2) == 2
    teach(a, 2, END, END - 4.9)
    teach(a, 3, END, END - 4.9)
    assert granted(b, END - 0.2, tries=2) == 2  # late: they land after the edge
    assert granted(b, END - 0.1) == 0  # the window is spent
    assert granted(a, END + 0.05) == 1  # the probe of the next window
    teach(a, LIMIT - 1, END + 10, END + 0.1)  # it landed before b's two calls
    # b's two calls are still on their way: the provider will count them in this window
    assert granted(a, END + 0.11) == LIMIT - 1 - 2
    teach(b, 1, END + 10, END + 0.2)
    teach(b, 0, END + 10, END + 0.2)
    assert granted(b, END + 0.2) == 0


def test_late_calls_answered_in_their_own_window_give_their_slots_back(
    server: fakeredis.FakeServer,
) -> None:
    rl = limiter(server)
    a_window_known(rl)
    assert granted(rl, END - 0.2, tries=2) == 2
    assert granted(rl, END + 0.05) == 1  # the probe
    assert field_of(rl, "carried") == 2
    teach(rl, 2, END, END + 0.06)  # stale: counted in the old window
    teach(rl, LIMIT - 1, END + 10, END + 0.1)
    assert field_of(rl, "carried") == 1
    teach(rl, 1, END, END + 0.12)
    assert granted(rl, END + 0.12) == LIMIT - 1


def test_a_reservation_never_answered_costs_at_most_the_next_window(
    server: fakeredis.FakeServer,
) -> None:
    rl = limiter(server)
    a_window_known(rl)
    assert granted(rl, END - 5, tries=1) == 1  # its worker is killed: no answer, ever
    assert granted(rl, END - 0.5, tries=1) == 1  # this one's too, late in the window
    assert granted(rl, END + 0.05) == 1  # the probe
    teach(rl, LIMIT - 1, END + 10, END + 0.1)
    assert granted(rl, END + 0.1) == LIMIT - 2  # the late one may still land here
    assert granted(rl, END + 10.05) == 1  # the next window's probe
    teach(rl, LIMIT - 1, END + 20, END + 10.1)
    assert granted(rl, END + 10.1) == LIMIT - 1  # nothing carried any more


def test_answers_out_of_order_trust_the_lowest_remaining(server: fakeredis.FakeServer) -> None:
    rl = limiter(server)
    a_window_known(rl)
    assert granted(rl, END - 5, tries=3) == 3  # the provider counts them: 3, 2, 1 left
    teach(rl, 1, END, END - 4.9)  # the last one's answer first
    assert granted(limiter(server), END - 4.9) == 0  # the two others may not be counted yet
    teach(rl, 3, END, END - 4.8)
    teach(rl, 2, END, END - 4.8)
    assert field_of(rl, "left") == 1
    assert granted(rl, END - 4.8) == 1


def test_other_clients_calls_are_not_ours_to_spend(server: fakeredis.FakeServer) -> None:
    rl = limiter(server)
    a_window_known(rl)
    assert granted(rl, END - 5, tries=1) == 1
    teach(rl, 1, END, END - 4.9)  # someone else took two of the window's calls
    assert granted(rl, END - 4.9) == 1


def test_a_stale_reset_changes_nothing_of_the_new_window(server: fakeredis.FakeServer) -> None:
    rl = limiter(server)
    a_window_known(rl)
    assert granted(rl, END + 0.05) == 1  # the probe
    teach(rl, 0, END, END + 0.06, status=429)  # an old call's answer, after the edge
    assert field_of(rl, "est") == 1  # not confirmed by it
    teach(rl, LIMIT - 1, END + 10, END + 1.2)
    assert granted(rl, END + 1.2) == LIMIT - 1


def test_a_429_empties_the_window_for_every_process_at_once(
    server: fakeredis.FakeServer,
) -> None:
    a, b = limiter(server), limiter(server)
    a_window_known(a)
    assert granted(a, END - 5, tries=2) == 2
    teach(a, None, END, END - 4.9, status=429)  # another client spent the window
    assert b.reserve(DEST, END - 4.9) == pytest.approx(1.0)  # Retry-After
    teach(a, 3, END, END - 4.8)  # an earlier call's answer, out of order
    assert b.reserve(DEST, END - 3.5) == pytest.approx(3.55)  # nothing until the edge
    teach(a, 0, END, END - 3.5, status=429)  # with the headers: until the window's end
    assert b.reserve(DEST, END - 3.5) == pytest.approx(3.55)


def test_a_wait_is_never_zero(server: fakeredis.FakeServer) -> None:
    rl = limiter(server)
    a_window_known(rl)
    rl._redis.hset(rl.key(DEST), "paused_until", repr(END - 5 + 2.5e-7))
    assert rl.reserve(DEST, END - 5) > 0.0
    assert field_of(rl, "charged") == 1


@dataclass
class Provider:
    """Fixed windows on the clock's grid; counts a call when it lands."""

    limit: int
    window: float
    counts: Counter[int] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    def land(self, at: float) -> tuple[int, int, float]:
        index = math.floor(at / self.window)
        reset = (index + 1) * self.window
        if self.counts[index] >= self.limit:
            self.statuses[429] += 1
            return 429, 0, reset
        self.counts[index] += 1
        self.statuses[200] += 1
        return 200, self.limit - self.counts[index], reset


@pytest.mark.parametrize("seed", range(6))
def test_workers_with_stalls_kills_and_late_answers_never_exceed_the_budget(
    server: fakeredis.FakeServer, seed: int
) -> None:
    """Calls that stall on their way, answers held or lost with a killed worker: the
    provider never counts more than its limit in a window, and never answers 429."""
    rng = random.Random(seed)
    provider = Provider(limit=10, window=2.0)
    rls = [limiter(server) for _ in range(6)]
    start = END + rng.uniform(-1, 1)
    events: list[tuple[float, int, int, str, tuple[int, int, float] | None]] = []
    for seq, worker in enumerate(range(len(rls))):
        heapq.heappush(events, (start + rng.uniform(0, 0.01), seq, worker, "reserve", None))
    seq, calls = len(rls), 0
    while events and calls < 300:
        now, _, worker, kind, answer = heapq.heappop(events)
        seq += 1
        if kind == "reserve":
            wait = rls[worker].reserve(DEST, now)
            if wait > 0:
                heapq.heappush(
                    events, (now + wait + rng.uniform(0, 0.002), seq, worker, kind, None)
                )
                continue
            calls += 1
            stall = rng.uniform(0.1, 0.6) if rng.random() < 0.15 else rng.uniform(0.002, 0.03)
            heapq.heappush(events, (now + stall, seq, worker, "land", None))
        elif kind == "land":
            answer = provider.land(now)
            if rng.random() < 0.03:  # killed mid-call: the answer is never seen
                rls[worker] = limiter(server)
                heapq.heappush(events, (now + 0.5, seq, worker, "reserve", None))
                continue
            late = 0.1 + (rng.uniform(0.1, 0.4) if rng.random() < 0.2 else 0.0)
            heapq.heappush(events, (now + late, seq, worker, "answer", answer))
        else:
            assert answer is not None
            status, remaining, reset = answer
            rls[worker].observe(
                DEST,
                status=status,
                limit=provider.limit,
                remaining=remaining,
                reset=reset,
                retry_after=None,
                now=now,
            )
            heapq.heappush(events, (now, seq, worker, "reserve", None))
    assert provider.statuses[429] == 0
    assert max(provider.counts.values()) <= provider.limit
    busy = sorted(provider.counts)[1:-1]
    assert sum(provider.counts[w] for w in busy) >= 0.7 * provider.limit * len(busy)


def test_a_new_window_ending_sooner_than_guessed_is_confirmed_by_its_probe(
    server: fakeredis.FakeServer,
) -> None:
    rl = limiter(server)
    a_window_known(rl)
    teach(rl, LIMIT - 2, END + 10, END + 0.1)  # a call of the next window: 10 s windows
    assert granted(rl, END + 10.05) == 1  # the probe of the window guessed to end at END + 20
    teach(rl, LIMIT - 1, END + 19, END + 10.1)  # the provider's ends a second sooner
    assert field_of(rl, "est") == 0
    assert field_of(rl, "reset") == END + 19
    assert granted(rl, END + 10.1) == LIMIT - 1
