"""The shared limiter, driven by a fake clock and simulated workers and providers."""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from dataclasses import dataclass, field

import fakeredis
import pytest

from worker.delivery.ratelimit import (
    Rate,
    RateLimiter,
    destination_for_awalchat,
    destination_for_helpwave,
    parse_rate,
)

T0 = 1_700_000_003.25  # deliberately not aligned with the provider's windows
DEST = "awalchat:acme.example"


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def limiter(server: fakeredis.FakeServer) -> RateLimiter:
    """One worker process's limiter; every one built on `server` shares the budget."""
    return RateLimiter(fakeredis.FakeRedis(server=server))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("60/10s", Rate(60, 10.0)),
        ("100/1m", Rate(100, 60.0)),
        ("5/1s", Rate(5, 1.0)),
        ("5/s", Rate(5, 1.0)),
        ("3600/1h", Rate(3600, 3600.0)),
        (" 10 / 1.5s ", Rate(10, 1.5)),
        ("1000/1d", Rate(1000, 86400.0)),
    ],
)
def test_parse_rate_reads_count_and_period(text: str, expected: Rate) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["", "60", "60/10", "60/10x", "-1/1s", "0/1s", "60/0s", "a/1s"])
def test_parse_rate_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is for people
        parse_rate(text)


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://acme.helpwave.io", "helpwave:acme.helpwave.io"),
        ("https://ACME.helpwave.io/api/v1/", "helpwave:acme.helpwave.io"),
        ("http://127.0.0.1:8081", "helpwave:127.0.0.1:8081"),
        ("acme.helpwave.io", "helpwave:acme.helpwave.io"),
    ],
)
def test_helpwave_budget_is_per_host(base_url: str, expected: str) -> None:
    assert destination_for_helpwave(base_url) == expected


def test_awalchat_budget_is_per_workspace() -> None:
    assert destination_for_awalchat(" Acme.Example ") == "awalchat:acme.example"


def test_unknown_destination_is_not_paced_once_a_first_answer_came(
    server: fakeredis.FakeServer,
) -> None:
    rl = limiter(server)
    assert rl.reserve(DEST, T0) == 0.0  # the first call ever: a probe
    assert rl.reserve(DEST, T0) == pytest.approx(0.01)
    rl.observe(DEST, status=200, limit=None, remaining=None, reset=None, retry_after=None, now=T0)
    assert [rl.reserve(DEST, T0) for _ in range(5)] == [0.0] * 5


def answered(rl: RateLimiter, now: float = T0) -> None:
    """A first answer without rate-limit headers (the probe is over)."""
    rl.observe(DEST, status=200, limit=None, remaining=None, reset=None, retry_after=None, now=now)


def test_configured_rate_spaces_calls_and_a_refusal_takes_nothing(
    server: fakeredis.FakeServer,
) -> None:
    rl = limiter(server)
    rl.configure(DEST, Rate(5, 1.0))
    answered(rl)
    assert rl.reserve(DEST, T0) == 0.0
    assert rl.reserve(DEST, T0 + 0.05) == pytest.approx(0.15)
    assert rl.reserve(DEST, T0 + 0.1) == pytest.approx(0.1)
    assert rl.reserve(DEST, T0 + 0.2) == 0.0
    rl.configure(DEST, None)
    assert rl.reserve(DEST, T0 + 0.2) == pytest.approx(0.2)  # the slot taken still counts
    assert rl.reserve(DEST, T0 + 0.4) == 0.0
    assert rl.reserve(DEST, T0 + 0.4) == 0.0


def test_a_429_pauses_every_worker_for_retry_after(server: fakeredis.FakeServer) -> None:
    seen_429, other = limiter(server), limiter(server)
    other.configure(DEST, Rate(100, 1.0))
    seen_429.observe(
        DEST, status=429, limit=None, remaining=None, reset=None, retry_after=30, now=T0
    )
    assert other.reserve(DEST, T0 + 1) == pytest.approx(29)
    assert seen_429.reserve(DEST, T0 + 29.5) == pytest.approx(0.5)
    assert other.paused_until(DEST) == pytest.approx(T0 + 30)
    assert other.reserve(DEST, T0 + 30) == 0.0


def test_a_429_without_retry_after_waits_for_reset(server: fakeredis.FakeServer) -> None:
    rl = limiter(server)
    rl.observe(DEST, status=429, limit=60, remaining=0, reset=T0 + 12, retry_after=None, now=T0)
    assert rl.reserve(DEST, T0) == pytest.approx(12.05)


def test_remaining_zero_makes_everyone_wait_until_reset(server: fakeredis.FakeServer) -> None:
    a, b = limiter(server), limiter(server)
    a.observe(DEST, status=200, limit=60, remaining=0, reset=T0 + 7, retry_after=None, now=T0)
    assert b.reserve(DEST, T0 + 1) == pytest.approx(6.05)
    assert b.reserve(DEST, T0 + 7.05) == 0.0


def test_a_late_answer_from_an_older_window_does_not_pause(server: fakeredis.FakeServer) -> None:
    rl = limiter(server)
    rl.observe(DEST, status=200, limit=60, remaining=59, reset=T0 + 10, retry_after=None, now=T0)
    rl.observe(DEST, status=200, limit=60, remaining=0, reset=T0, retry_after=None, now=T0 + 1)
    assert rl.paused_until(DEST) == pytest.approx(0.0)


def test_a_confirmed_window_spends_what_the_provider_says_is_left(
    server: fakeredis.FakeServer,
) -> None:
    rl = limiter(server)
    rl.observe(DEST, status=200, limit=60, remaining=3, reset=T0 + 10, retry_after=None, now=T0)
    assert [rl.reserve(DEST, T0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rl.reserve(DEST, T0) == pytest.approx(10.05)  # until the window's end + guard


def test_a_new_window_sends_one_probe_first_then_the_rest_at_once(
    server: fakeredis.FakeServer,
) -> None:
    a, b = limiter(server), limiter(server)
    a.observe(DEST, status=200, limit=3, remaining=0, reset=T0 + 5, retry_after=None, now=T0)
    a.observe(DEST, status=200, limit=3, remaining=0, reset=T0 + 5, retry_after=None, now=T0)
    assert b.reserve(DEST, T0 + 1) == pytest.approx(4.05)
    start = T0 + 5.05
    assert a.reserve(DEST, start) == 0.0  # the probe
    assert b.reserve(DEST, start) == pytest.approx(0.01)  # waits for the probe's answer
    a.observe(DEST, status=200, limit=3, remaining=2, reset=T0 + 10, retry_after=None, now=start)
    assert [b.reserve(DEST, start + 0.01) for _ in range(2)] == [0.0, 0.0]
    assert b.reserve(DEST, start + 0.01) == pytest.approx(10.05 - 5.06)


def test_a_probe_whose_answer_never_comes_is_replaced(server: fakeredis.FakeServer) -> None:
    rl = limiter(server)
    rl.observe(DEST, status=200, limit=3, remaining=0, reset=T0 + 5, retry_after=None, now=T0)
    assert rl.reserve(DEST, T0 + 5.05) == 0.0
    assert rl.reserve(DEST, T0 + 5.5) == pytest.approx(0.01)
    assert rl.reserve(DEST, T0 + 6.05) == 0.0  # a second probe after probe_timeout (1 s)


def test_a_late_answer_of_the_old_window_does_not_confirm_the_new_one(
    server: fakeredis.FakeServer,
) -> None:
    rl = limiter(server)
    rl.observe(DEST, status=200, limit=3, remaining=2, reset=T0 + 5, retry_after=None, now=T0)
    rl.observe(DEST, status=200, limit=3, remaining=2, reset=T0 + 10, retry_after=None, now=T0 + 5)
    assert [rl.reserve(DEST, T0 + 5) for _ in range(2)] == [0.0, 0.0]
    assert rl.reserve(DEST, T0 + 10.05) == 0.0  # the probe of the window ending at T0 + 15
    rl.observe(
        DEST, status=200, limit=3, remaining=0, reset=T0 + 10, retry_after=None, now=T0 + 10.06
    )
    assert rl.reserve(DEST, T0 + 10.07) == pytest.approx(0.01)


@dataclass
class FixedWindowProvider:
    """Counts calls in fixed windows aligned on multiples of `window`, like the benchmark."""

    limit: int
    window: float
    headers: bool = True
    counts: Counter[int] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    def answer(self, at: float) -> tuple[int, int | None, int | None, float | None, float | None]:
        index = math.floor(at / self.window)
        reset = (index + 1) * self.window
        if self.counts[index] >= self.limit:
            self.statuses[429] += 1
            return 429, self.limit, 0, reset, math.ceil(reset - at)
        self.counts[index] += 1
        self.statuses[200] += 1
        if not self.headers:
            return 200, None, None, None, None
        return 200, self.limit, self.limit - self.counts[index], reset, None


@dataclass
class FirstCallWindowProvider:
    """Fixed windows starting at a window's first call, `reset` rounded UP to whole seconds
    (as tests/fakes' AwalChat does): waiting for that reset idles up to a second a window."""

    limit: int
    window: float
    end: float = 0.0
    count: int = 0
    counts: Counter[float] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    def answer(self, at: float) -> tuple[int, int | None, int | None, float | None, float | None]:
        if at >= self.end:
            self.end, self.count = at + self.window, 0
        reset = float(math.ceil(self.end))
        if self.count >= self.limit:
            self.statuses[429] += 1
            return 429, self.limit, 0, reset, max(1, math.ceil(self.end - at))
        self.count += 1
        self.counts[self.end] += 1
        self.statuses[200] += 1
        return 200, self.limit, self.limit - self.count, reset, None


@dataclass
class Simulation:
    """`workers` processes, each with its own limiter, draining `backlog` calls."""

    server: fakeredis.FakeServer
    provider: FixedWindowProvider | FirstCallWindowProvider
    workers: int
    rate: Rate | None = None
    seed: int = 7
    sent: list[float] = field(default_factory=list)
    successes: list[float] = field(default_factory=list)

    def run(self, backlog: int) -> None:
        rng = random.Random(self.seed)
        limiters = [limiter(self.server) for _ in range(self.workers)]
        for rl in limiters:
            rl.configure(DEST, self.rate)
        events: list[tuple[float, int, int, str]] = []
        seq = 0
        for worker in range(self.workers):
            heapq.heappush(events, (T0 + rng.uniform(0, 0.01), seq, worker, "reserve"))
            seq += 1
        todo = backlog
        answers: dict[int, tuple[int, int | None, int | None, float | None, float | None]] = {}
        while events:
            now, _, worker, kind = heapq.heappop(events)
            rl = limiters[worker]
            if kind == "reserve":
                if todo == 0:
                    continue
                wait = rl.reserve(DEST, now)
                if wait > 0:
                    # a woken worker is a little late, as a real sleep is
                    nxt, nkind = now + wait + rng.uniform(0, 0.002), "reserve"
                else:
                    todo -= 1
                    self.sent.append(now)
                    nxt, nkind = now + rng.uniform(0.005, 0.05), "arrive"
            elif kind == "arrive":
                answers[worker] = self.provider.answer(now)
                nxt, nkind = now + rng.uniform(0.005, 0.05), "answer"
            else:
                status, lim, rem, reset, retry_after = answers.pop(worker)
                rl.observe(
                    DEST,
                    status=status,
                    limit=lim,
                    remaining=rem,
                    reset=reset,
                    retry_after=retry_after,
                    now=now,
                )
                if status == 429:
                    todo += 1
                else:
                    self.successes.append(now)
                nxt, nkind = now, "reserve"
            heapq.heappush(events, (nxt, seq, worker, nkind))
            seq += 1

    def utilization(self) -> float:
        allowed = self.provider.limit / self.provider.window
        return len(self.successes) / (max(self.successes) - T0) / allowed


def test_many_workers_never_exceed_a_configured_rate(server: fakeredis.FakeServer) -> None:
    provider = FixedWindowProvider(limit=1000, window=10, headers=False)
    sim = Simulation(server, provider, workers=25, rate=Rate(60, 10.0))
    sim.run(backlog=300)
    sent = sorted(sim.sent)
    assert len(sent) == 300
    # any sliding 10 s window, not only the provider's: at most 60 calls
    assert max(len([t for t in sent[i:] if t < start + 10]) for i, start in enumerate(sent)) <= 60
    assert sim.utilization() >= 0.95 * 60 / 1000


@pytest.mark.parametrize("workers", [1, 4, 16])
@pytest.mark.parametrize("rate", [None, Rate(1000, 10.0), Rate(10, 10.0)])
def test_learning_converges_on_the_header_limit(
    server: fakeredis.FakeServer, workers: int, rate: Rate | None
) -> None:
    provider = FixedWindowProvider(limit=60, window=10)
    sim = Simulation(server, provider, workers=workers, rate=rate)
    sim.run(backlog=500)
    assert provider.statuses[200] == 500
    assert provider.statuses[429] <= 0.01 * 500
    full_windows = sorted(provider.counts)[1:-1]
    assert [provider.counts[w] for w in full_windows] == [60] * len(full_windows)
    assert sim.utilization() >= 0.95


def test_headers_win_over_a_configured_rate(server: fakeredis.FakeServer) -> None:
    rl = limiter(server)
    rl.configure(DEST, Rate(1, 60.0))
    rl.observe(DEST, status=200, limit=60, remaining=59, reset=T0 + 10, retry_after=None, now=T0)
    assert [rl.reserve(DEST, T0) for _ in range(59)] == [0.0] * 59
    assert rl.reserve(DEST, T0) == pytest.approx(10.05)


@pytest.mark.parametrize("workers", [1, 4])
@pytest.mark.parametrize(("rate", "expected"), [(None, 0.93), (Rate(60, 10.0), 0.99)])
def test_a_reset_rounded_up_does_not_idle_each_window(
    server: fakeredis.FakeServer, workers: int, rate: Rate | None, expected: float
) -> None:
    """With a configured rate agreeing with the headers' limit, its period bounds the window
    (first answer + period); from headers alone the window is learnt from rounded resets,
    which can overestimate it by up to a second (about 6% of a 10 s window)."""
    provider = FirstCallWindowProvider(limit=60, window=10)
    sim = Simulation(server, provider, workers=workers, rate=rate)
    sim.run(backlog=500)
    assert provider.statuses[200] == 500
    assert provider.statuses[429] == 0
    assert sim.utilization() >= expected


def perfect_drain(
    provider: FixedWindowProvider | FirstCallWindowProvider, first: float, n: int
) -> float:
    """How long a client knowing the windows exactly needs from its first call to its
    `n`th success: `limit` calls at the start of each window (answers take no time)."""
    windows = math.ceil(n / provider.limit) - 1
    if isinstance(provider, FirstCallWindowProvider):
        return windows * provider.window
    start = (math.floor(first / provider.window) + windows) * provider.window
    return max(0.0, start - first)


@pytest.mark.parametrize("aligned", ["grid", "first_call"])
@pytest.mark.parametrize("workers", [4, 8])
def test_a_backlog_drains_nearly_as_fast_as_a_perfect_client(
    server: fakeredis.FakeServer, aligned: str, workers: int
) -> None:
    """The issue's case: 150 calls against 20 per 5 s; the remaining budget of a window the
    provider confirmed goes at once, so the last window is not spread out."""
    provider: FixedWindowProvider | FirstCallWindowProvider
    if aligned == "grid":
        provider = FixedWindowProvider(limit=20, window=5)
    else:
        provider = FirstCallWindowProvider(limit=20, window=5)
    sim = Simulation(server, provider, workers=workers, rate=Rate(20, 5.0))
    sim.run(backlog=150)
    first = min(sim.sent)
    assert provider.statuses == Counter({200: 150})
    ratio = perfect_drain(provider, first, 150) / (max(sim.successes) - first)
    assert ratio >= 0.97
