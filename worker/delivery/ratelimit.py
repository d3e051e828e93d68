"""One request budget per destination, shared by every worker process through Redis.

A destination is one provider budget: `awalchat:{domain}` (AwalChat counts per workspace)
or `helpwave:{host}`. Its state is one Redis hash, changed only by atomic Lua scripts, so
any number of workers on any number of machines share it without races.

How the pace is chosen, strongest source first:

1. A pause (`paused_until`) stops everyone: set by a 429 (for `Retry-After`) and by
   `X-RateLimit-Remaining: 0` (until the window's end).
2. Learned from the headers: `limit` calls per window. Answers come back late and out of
   order across processes, and a killed worker's never, so the provider's `remaining` alone
   is not the budget while calls are in flight. Per window the hash counts the slots
   `charged` to it and the answers `got` for it (those carrying its reset), and keeps the
   lowest remaining they reported; what is left is
   `min(limit, lowest remaining + answers got) - charged`: a call charged and not answered
   may still be counted. Slots taken within `landing` seconds of a window's end and not
   answered at its end may land in the next window: they are charged to it too (an answer
   carrying the old reset gives one back); a reservation never answered costs at most that
   one next window. Inside a window the provider has confirmed (an answer carrying its
   reset came back), calls go at once while that lasts, so a backlog's last window is not
   spread over the whole window.
   At a new window (and before the very first answer) one call, the probe, goes first and
   the others wait (polling every `probe_poll`) for its answer, or `probe_timeout`: a burst
   never lands in a window that has not begun on the provider's side (its clock or its
   rounding of `reset` a little behind ours), and calls sent before anything was learned
   never overshoot the first window.
3. The configured `Rate`, when no limit has been learned: spaced `period / count` apart (a
   GCRA with no burst tolerance: any `period` holds `count` calls or fewer).
4. Nothing known: no pacing (the first answer teaches).

A window's end is its `reset`, or sooner `window` seconds after the first answer that
carried that reset (`first`): a fixed window holding a call cannot outlast that call by
more than its length. This matters when the provider rounds `reset` up to whole seconds
and starts a window at its first call: waiting for the rounded reset idles up to a second
a window. `window` is the smallest difference of successive resets, or the configured
period when that is shorter, the configured count equals the headers' limit and no 429
has been seen (a 429 drops that hint for good: `nohint`). Learnt from rounded resets alone,
the window can come out a second too long (each window then starts just after a whole
second, and so ends at a rounded reset): configure the rate when the provider rounds.
When a 429 and `remaining == 0` disagree on the wait, the later time wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis

from worker.delivery.budget_scripts import OBSERVE, RESERVE
from worker.delivery.spare_slots import SpareSlots
from worker.storage import keys
from worker.storage.pipelined import register_script

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([smhd])\s*$")


@dataclass(frozen=True)
class Rate:
    """At most `count` calls in any `period` seconds."""

    count: int
    period: float

    def __post_init__(self) -> None:
        if self.count <= 0 or self.period <= 0:
            raise ValueError(f"a rate needs a positive count and period, got {self}")

    @property
    def interval(self) -> float:
        """Seconds between two calls at this rate."""
        return self.period / self.count


def parse_rate(text: str) -> Rate:
    """Parse `"60/10s"`, `"100/1m"`, `"5/s"`, `"3600/1h"` (units s, m, h, d).

    Raises ValueError on anything else.
    """
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"not a rate: {text!r} (expected e.g. '60/10s', '100/1m')")
    count, amount, unit = match.groups()
    return Rate(int(count), float(amount or 1) * _UNITS[unit])


def destination_for_awalchat(domain: str) -> str:
    """The budget key of an AwalChat workspace (`X-Domain`)."""
    return f"awalchat:{domain.strip().lower()}"


def destination_for_helpwave(base_url: str) -> str:
    """The budget key of a HelpWave account host (port kept when given)."""
    parts = urlsplit(base_url if "//" in base_url else f"//{base_url}")
    host = (parts.hostname or "").lower()
    return f"helpwave:{host}:{parts.port}" if parts.port else f"helpwave:{host}"


# Resets closer than this are the same window (providers may compute them per request).
_SAME_RESET = 0.25


def _arg(value: float | None) -> str:
    return "" if value is None else repr(float(value))


@dataclass(frozen=True)
class Lesson:
    """One answer's lesson for `destination`'s budget (`RateLimiter.lesson`), not yet sent."""

    limiter: RateLimiter
    destination: str
    args: tuple[str, ...]


class RateLimiter:
    """Shared per-destination budgets; see the module docstring for the pacing rules.

    Configured rates live in this object (each process configures the same ones from its
    settings); everything learned lives in Redis under `prefix + destination`.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        prefix: str = keys.RATE_PREFIX,
        guard: float = 0.05,
        pause_without_retry_after: float = 1.0,
        ttl: int = keys.RATE_TTL,
        probe_timeout: float = 1.0,
        probe_poll: float = 0.01,
        landing: float = 1.0,
    ) -> None:
        self._redis = redis_client
        self._prefix = prefix
        self._guard = guard
        self._fallback = pause_without_retry_after
        self._ttl = ttl
        self._probe = (_arg(probe_timeout), _arg(probe_poll), _arg(landing))
        self._rates: dict[str, Rate] = {}
        self._reserve = register_script(redis_client, RESERVE)
        self._observe = register_script(redis_client, OBSERVE)
        self._spares = SpareSlots()

    def key(self, destination: str) -> str:
        """The Redis hash holding the destination's shared state."""
        return self._prefix + destination

    def configure(self, destination: str, rate: Rate | None) -> None:
        """Set (or with None, remove) this process's configured rate for `destination`."""
        if rate is None:
            self._rates.pop(destination, None)
        else:
            self._rates[destination] = rate

    def reserve(
        self,
        destination: str,
        now: float,
        *,
        first: Callable[[redis.client.Pipeline], None] | None = None,
    ) -> float:
        """Take one call slot: 0.0 means call now; otherwise the seconds to wait before
        asking again (nothing was taken; never under 1e-6, however close the wait's end).
        Atomic across every worker. A spare slot this process took earlier is used without
        a round trip (`spare_slots`). `first`: queues writes that go first, when a round
        trip is made."""
        if self._spares.take(destination, now):
            return 0.0
        rate = self._rates.get(destination)
        args = [
            _arg(now),
            str(rate.count) if rate else "",
            _arg(rate.period if rate else None),
            _arg(self._guard),
            str(self._ttl),
            *self._probe,
        ]
        key = self.key(destination)
        wanted = self._spares.want(destination)
        pipe = self._redis.pipeline(transaction=False)
        if first is not None:
            first(pipe)
        self._reserve(keys=[key], args=[*args, wanted], client=pipe)
        pipe.hmget(key, "left", "ends", "reset")
        answers, (left, ends, reset) = pipe.execute()[-2:]
        waits = [max(0.0, float(answer)) for answer in answers]
        granted = sum(1 for wait in waits if wait == 0.0)
        window_ends = min(float(ends or reset or 0), float(reset or 0)) or None
        self._spares.keep(
            destination,
            granted - 1,
            now=now,
            left=None if left is None else int(left),
            window_ends=window_ends,
            guard=self._guard,
        )
        return 0.0 if granted else waits[0]

    def observe(
        self,
        destination: str,
        *,
        status: int | None,
        limit: int | None,
        remaining: int | None,
        reset: float | None,
        retry_after: float | None,
        now: float,
        pipe: redis.client.Pipeline | None = None,
    ) -> None:
        """Learn from a provider answer (its status and rate-limit headers, None if absent);
        with `pipe`, queued on it (sent with the caller's next round trip).

        429 pauses the whole destination for `retry_after` (else until `reset`, else
        `pause_without_retry_after`); `remaining == 0` pauses it until `reset`; `limit` and
        `reset` replace any configured rate. `reset` is absolute Unix time.
        """
        lesson = self.lesson(
            destination,
            status=status,
            limit=limit,
            remaining=remaining,
            reset=reset,
            retry_after=retry_after,
            now=now,
        )
        self.teach([lesson], pipe)

    def lesson(
        self,
        destination: str,
        *,
        status: int | None,
        limit: int | None,
        remaining: int | None,
        reset: float | None,
        retry_after: float | None,
        now: float,
    ) -> Lesson:
        """What an answer teaches (see `observe`), to be taught later with others."""
        rate = self._rates.get(destination)
        args = (
            _arg(now),
            "" if status is None else str(status),
            "" if limit is None else str(limit),
            "" if remaining is None else str(remaining),
            _arg(reset),
            _arg(retry_after),
            _arg(self._guard),
            str(self._ttl),
            _arg(self._fallback),
            _arg(_SAME_RESET),
            str(rate.count) if rate else "",
            _arg(rate.period if rate else None),
        )
        return Lesson(self, destination, args)

    def teach(self, lessons: Sequence[Lesson], pipe: redis.client.Pipeline | None = None) -> None:
        """Learn `lessons` (all of this limiter and one destination) in their order, in one
        script call: exactly what as many `observe` calls would learn. With `pipe`, queued."""
        args = [arg for lesson in lessons for arg in lesson.args]
        self._observe(keys=[self.key(lessons[0].destination)], args=args, client=pipe)

    def paused_until(self, destination: str) -> float | None:
        """The Unix time the destination is paused until, or None if never paused."""
        value = self._redis.hget(self.key(destination), "paused_until")
        return None if value is None else float(value)
