"""One request budget per destination, shared by every worker process through Redis.

A destination is one provider budget: `awalchat:{domain}` (AwalChat counts per workspace)
or `helpwave:{host}`. Its state is one Redis hash, changed only by atomic Lua scripts, so
any number of workers on any number of machines share it without races.

How the pace is chosen, strongest source first:

1. A pause (`paused_until`) stops everyone: set by a 429 (for `Retry-After`) and by
   `X-RateLimit-Remaining: 0` (until `X-RateLimit-Reset`).
2. Learned from the headers: `limit` calls per window; the window length is inferred from
   successive resets (the smallest difference seen). Calls are spaced `window / limit`
   apart; until the length is known, the budget left is spread over the time to `reset`.
   A mirror of the provider's counter (`left` until `reset`) refuses calls beyond it.
3. The configured `Rate`, when nothing has been learned.
4. Nothing known: no pacing (the first answer teaches).

Spacing is a GCRA with no burst tolerance: a call is allowed when its theoretical arrival
time has come, which keeps any window of length `period` at `count` calls or fewer. Against
fixed windows the pause on `remaining == 0` locks the pace to the provider's windows: each
window starts `guard` after its end and its last call leaves well before its end.

A window's end is its `reset`, or sooner `window` seconds after the first answer that
carried that reset (`first`): a fixed window holding a call cannot outlast that call by
more than its length. This matters when the provider rounds `reset` up to whole seconds
and starts a window at its first call: waiting for the rounded reset would then idle
almost a second per window (phase-locked, every window starts just after a whole second),
~9% of a 10 s window. The learnt `window` (smallest difference of successive resets) is
never shorter than the real one for fixed windows, so the earlier end is never too early.
Smooth rather than bursting the whole budget at each reset: a burst lands entirely in the
old window if the provider's clock or rounding of `reset` is a little behind ours (a whole
window of 429s), and smooth pacing also fits sliding windows; phase-locked, it still uses
every slot of every window (simulated: >= 0.99 of the allowed rate, no 429).
When a 429 and `remaining == 0` disagree on the wait, the later time wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis

from worker.storage import keys

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

_RESERVE = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local count, period = tonumber(ARGV[2]), tonumber(ARGV[3])
local guard, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local f = redis.call('HMGET', key, 'tat', 'paused_until', 'limit', 'reset', 'left', 'window',
                     'ends')
local tat, paused = tonumber(f[1]) or 0, tonumber(f[2]) or 0
local limit, reset = tonumber(f[3]), tonumber(f[4]) or 0
local left, window = tonumber(f[5]), tonumber(f[6])
local ends = math.min(tonumber(f[7]) or reset, reset)
local function fmt(x) return string.format('%.6f', x) end
if now < paused then return fmt(paused - now) end
if limit and reset > 0 and now >= ends + guard then
  left = limit
  if window then
    reset = reset + (math.floor((now - reset) / window) + 1) * window
  else
    reset = 0
  end
  ends = reset
  redis.call('HSET', key, 'left', left, 'reset', fmt(reset), 'ends', fmt(ends), 'est', '1')
end
if limit and reset > 0 and left and left <= 0 then return fmt(ends + guard - now) end
if tat > now then return fmt(tat - now) end
local interval = 0
if limit and window then
  interval = window / limit
elseif limit and reset > 0 then
  interval = math.max(0, ends - now) / math.max(left or 1, 1)
elseif count and not limit then
  interval = period / count
end
-- With learned headers a caller late by under half a slot keeps the pace's phase (the
-- provider's counter guards the window); otherwise the pace restarts from now.
local base = now
if limit and tat >= now - interval / 2 then base = tat end
redis.call('HSET', key, 'tat', fmt(base + interval))
if limit and left then redis.call('HSET', key, 'left', left - 1) end
redis.call('EXPIRE', key, ttl)
return '0'
"""

_OBSERVE = """
local key = KEYS[1]
local now, status = tonumber(ARGV[1]), tonumber(ARGV[2])
local hlimit, hleft, hreset = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local retry_after, guard = tonumber(ARGV[6]), tonumber(ARGV[7])
local ttl, fallback, same = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local f = redis.call('HMGET', key, 'paused_until', 'limit', 'reset', 'left', 'window',
                     'est', 'seen', 'first', 'ends')
local paused, limit, reset = tonumber(f[1]) or 0, tonumber(f[2]), tonumber(f[3]) or 0
local left, window, est, seen = tonumber(f[4]), tonumber(f[5]), f[6] == '1', tonumber(f[7]) or 0
local first, ends = tonumber(f[8]), tonumber(f[9])
local function fmt(x) return string.format('%.6f', x) end
if hlimit and hlimit > 0 then limit = hlimit end
local stale = false
if hreset then
  if seen > 0 and hreset > seen + same then
    local candidate = hreset - seen
    if not window or candidate < window then window = candidate end
  end
  -- `first`: the earliest answer carrying the newest reset (the window ends by first + window)
  if hreset > seen + same or not first then
    first = now
  elseif hreset >= seen - same then
    first = math.min(first, now)
  end
  if hreset > seen then seen = hreset end
  if reset > 0 and hreset < reset - same then
    stale = true
  elseif reset > 0 and hreset <= reset + same then
    if hleft then left = math.min(left or hleft, hleft) end
    reset = hreset
  else
    if hleft and est and left then left = math.min(left, hleft)
    elseif hleft then left = hleft
    else left = left or limit end
    reset = hreset
  end
  est = false
end
if reset > 0 and (not ends or not stale) then
  ends = reset
  if window and first and math.abs(reset - seen) <= same then
    ends = math.min(reset, first + window)
  end
end
if not stale and hleft == 0 and hreset then paused = math.max(paused, ends + guard) end
if status == 429 then
  redis.call('HINCRBY', key, 'n429', 1)
  redis.call('HSET', key, 'last429', fmt(now))
  local wait = retry_after
  if not wait and hreset and hreset > now then wait = hreset + guard - now end
  paused = math.max(paused, now + (wait or fallback))
  if left then left = 0 end
end
local fields = {'paused_until', fmt(paused), 'reset', fmt(reset), 'seen', fmt(seen),
                'est', est and '1' or '0'}
if first then table.insert(fields, 'first'); table.insert(fields, fmt(first)) end
if ends then table.insert(fields, 'ends'); table.insert(fields, fmt(ends)) end
if limit then table.insert(fields, 'limit'); table.insert(fields, limit) end
if left then table.insert(fields, 'left'); table.insert(fields, left) end
if window then table.insert(fields, 'window'); table.insert(fields, fmt(window)) end
redis.call('HSET', key, (table.unpack or unpack)(fields))
redis.call('EXPIRE', key, ttl)
return 1
"""


def _arg(value: float | None) -> str:
    return "" if value is None else repr(float(value))


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
    ) -> None:
        self._redis = redis_client
        self._prefix = prefix
        self._guard = guard
        self._fallback = pause_without_retry_after
        self._ttl = ttl
        self._rates: dict[str, Rate] = {}
        self._reserve = redis_client.register_script(_RESERVE)
        self._observe = redis_client.register_script(_OBSERVE)

    def key(self, destination: str) -> str:
        """The Redis hash holding the destination's shared state."""
        return self._prefix + destination

    def configure(self, destination: str, rate: Rate | None) -> None:
        """Set (or with None, remove) this process's configured rate for `destination`."""
        if rate is None:
            self._rates.pop(destination, None)
        else:
            self._rates[destination] = rate

    def reserve(self, destination: str, now: float) -> float:
        """Take one call slot: 0.0 means call now; otherwise the seconds to wait before
        asking again (nothing was taken). Atomic across every worker."""
        rate = self._rates.get(destination)
        args = [
            _arg(now),
            str(rate.count) if rate else "",
            _arg(rate.period if rate else None),
            _arg(self._guard),
            str(self._ttl),
        ]
        answer = self._reserve(keys=[self.key(destination)], args=args)
        return max(0.0, float(answer))

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
    ) -> None:
        """Learn from a provider answer (its status and rate-limit headers, None if absent).

        429 pauses the whole destination for `retry_after` (else until `reset`, else
        `pause_without_retry_after`); `remaining == 0` pauses it until `reset`; `limit` and
        `reset` replace any configured rate. `reset` is absolute Unix time.
        """
        args = [
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
        ]
        self._observe(keys=[self.key(destination)], args=args)

    def paused_until(self, destination: str) -> float | None:
        """The Unix time the destination is paused until, or None if never paused."""
        value = self._redis.hget(self.key(destination), "paused_until")
        return None if value is None else float(value)
