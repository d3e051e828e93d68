"""The one retry layer: bounded exponential backoff with full jitter.

Which errors are retried is the error tree's business (worker.errors: HelpdeskUnavailableError
and RateLimitedError are, HelpdeskRejectedError is not; the processor maps them);
`RetryPolicy.delay` says how long to wait before the next attempt, or that it is time to give
up. It is pure: the caller owns the clock, the random source and the count of attempts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_attempts` attempts in all, and no retry that would start more than
    `max_total` seconds after the first attempt. Backoff before retry n is uniform in
    [0, min(cap, base * 2**(n-1))] ("full jitter"), raised to `retry_after` when the
    provider named a wait."""

    max_attempts: int = 8
    base: float = 1.0
    cap: float = 300.0
    max_total: float = 3600.0

    def delay(
        self,
        attempt: int,
        *,
        retry_after: float | None,
        elapsed: float,
        rng: random.Random,
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up.

        `attempt` is the number of attempts already made (1 after the first failure);
        `elapsed` the seconds since the first attempt started.
        """
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        if attempt >= self.max_attempts:
            return None
        ceiling = min(self.cap, self.base * 2.0 ** min(attempt - 1, 64))
        wait = rng.uniform(0.0, ceiling)
        if retry_after is not None:
            wait = max(wait, retry_after)
        if elapsed + wait > self.max_total:
            return None
        return wait
