"""The runaway breaker: per-conversation caps on actions, shared by every worker.

rules.md ("the runaway breaker"): a ruleset caps the actions carried out for one
conversation, by default 6 ticket actions (AwalChat opens and closes, HelpWave creates) and
60 HelpWave comments per 10 minutes. An action past a cap is not carried out: it goes to the
dead-letter queue with the reason "runaway: more than 6 ticket actions in 10m" (the
processor does that), and a replay of it is not capped again (an operator chose to send it).

Each cap is a sliding window kept in Redis: `tw:caps:{kind}:{conv}`, a sorted set of the
times of the actions admitted in the window (each by its idempotency key), at most `count`
members and expiring one window after the last one. `admit` is one Lua script: prune what
left the window, admit an action admitted before, refuse at the cap, else record the
action: an action that waits (rate budget) or is retried is counted once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import redis

from worker.engine.model import (
    CLOSE_TICKET,
    HELPWAVE_ADD_COMMENT,
    HELPWAVE_CREATE_TICKET,
    OPEN_TICKET,
)
from worker.engine.ruleset import Cap, Limits
from worker.storage import keys
from worker.storage.pipelined import register_script

TICKETS: Final = "tickets"
COMMENTS: Final = "comments"
_KIND_OF: Final = {
    OPEN_TICKET: TICKETS,
    CLOSE_TICKET: TICKETS,
    HELPWAVE_CREATE_TICKET: TICKETS,
    HELPWAVE_ADD_COMMENT: COMMENTS,
}

# KEYS[1] the window's zset; ARGV: now, window seconds, cap, the action's idempotency key.
# 1 admitted (an action admitted before is admitted again, not counted twice), 0 refused.
_ADMIT = """
local now, window, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= cap then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(window))
return 1
"""


def capped_kind(action_kind: str) -> str | None:
    """Which cap an action kind counts against (None: no cap)."""
    return _KIND_OF.get(action_kind)


def cap_of(limits: Limits, kind: str) -> Cap:
    return limits.tickets_per_conversation if kind == TICKETS else limits.comments_per_conversation


def runaway_reason(kind: str, cap: Cap) -> str:
    """The dead letter's reason: "runaway: more than 6 ticket actions in 10m"."""
    what = "ticket actions" if kind == TICKETS else "comments"
    count, window = cap.describe().split(" in ")
    return f"runaway: more than {count} {what} in {window}"


Verdict = Callable[[object], str | None]
"""Turns an admit script's answer into None (admitted) or the reason it was refused."""


class RunawayBreaker:
    """Admits actions under the caps (see the module docstring)."""

    def __init__(self, client: redis.Redis) -> None:
        self._admit = register_script(client, _ADMIT)

    def admit(
        self, conversation: str, action_kind: str, action_id: str, limits: Limits, now: float
    ) -> str | None:
        """None when the action `action_id` (its idempotency key) may be carried out (and
        it is counted), else the reason it may not."""
        verdict = self.queue_admit(None, conversation, action_kind, action_id, limits, now)
        return verdict(None) if verdict is not None else None

    def queue_admit(
        self,
        pipe: redis.client.Pipeline | None,
        conversation: str,
        action_kind: str,
        action_id: str,
        limits: Limits,
        now: float,
    ) -> Verdict | None:
        """`admit`, queued on `pipe` (sent at once without one): None when the action kind
        has no cap (nothing queued), else what turns the script's answer into the verdict
        (without a pipe, the answer is already in)."""
        kind = capped_kind(action_kind)
        if kind is None:
            return None
        cap = cap_of(limits, kind)
        answer = self._admit(
            keys=[keys.caps(kind, conversation)],
            args=[repr(now), cap.window.total_seconds(), cap.count, action_id],
            client=pipe,
        )

        def verdict(result: object) -> str | None:
            admitted = answer if pipe is None else result
            return None if admitted == 1 else runaway_reason(kind, cap)

        return verdict
