"""Retry delays: bounded exponential backoff with full jitter."""

from __future__ import annotations

import random

import pytest

from worker.delivery.retry import RetryPolicy


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (7, 64.0)],
)
def test_backoff_is_full_jitter_under_an_exponential_ceiling(attempt: int, ceiling: float) -> None:
    policy = RetryPolicy()
    rng = random.Random(attempt)
    delays = [policy.delay(attempt, retry_after=None, elapsed=0, rng=rng) for _ in range(2000)]
    values = [d for d in delays if d is not None]
    assert len(values) == 2000
    assert min(values) >= 0
    assert max(values) <= ceiling
    assert min(values) < 0.05 * ceiling  # full jitter reaches down to zero...
    assert max(values) > 0.95 * ceiling  # ...and up to the ceiling


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(max_attempts=100, cap=300, max_total=10**9)
    rng = random.Random(1)
    delays = [policy.delay(60, retry_after=None, elapsed=0, rng=rng) for _ in range(500)]
    assert all(d is not None and d <= 300 for d in delays)


@pytest.mark.parametrize("retry_after", [0.5, 30.0, 299.0, 900.0])
def test_never_sooner_than_retry_after(retry_after: float) -> None:
    policy = RetryPolicy()
    rng = random.Random(2)
    for attempt in range(1, 8):
        wait = policy.delay(attempt, retry_after=retry_after, elapsed=0, rng=rng)
        assert wait is not None
        assert wait >= retry_after


@pytest.mark.parametrize(
    ("attempt", "retry_after", "elapsed", "gives_up"),
    [
        (7, None, 0.0, False),
        (8, None, 0.0, True),  # eight attempts made: no ninth
        (20, None, 0.0, True),
        (1, None, 3599.0, False),  # at most 1 s of backoff fits
        (1, None, 3600.5, True),
        (1, 120.0, 3500.0, True),  # the provider's wait would end past the budget
        (1, 120.0, 3400.0, False),
    ],
)
def test_gives_up_when_attempts_or_time_run_out(
    attempt: int, retry_after: float | None, elapsed: float, gives_up: bool
) -> None:
    wait = RetryPolicy().delay(
        attempt, retry_after=retry_after, elapsed=elapsed, rng=random.Random(3)
    )
    assert (wait is None) is gives_up


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        RetryPolicy().delay(0, retry_after=None, elapsed=0, rng=random.Random())
