"""A drain's Redis steps, one round trip each: take a conversation and open its first item;
finish an item and open the next, or let the conversation go.

A drain (worker.processing.processor) used to spend a dozen round trips per event: lock,
mark active, read the head, load its record, load the state, and after the actions pop the
head, read the next head, release the lock and check the backlog. Here those are two
scripts:

- `begin`: take the lock (`tw:lock:{conv}`, SET NX PX with a fresh token), mark the
  conversation active (`tw:active`), and open the inbox's head: its delivery record and the
  conversation state of its view (live, or dry-run when the worker or the delivery is dry).
  An empty inbox lets the lock go at once.
- `advance`: while the lock is still ours, pop the finished item (and trim its record as
  the decision log needs: `pop_fields`), then open the next head the same way; when the
  inbox is empty, the conversation stops being active and the lock is released in the
  same script, so an event pushed a moment later always finds the lock free (its own
  drain message takes it) and none is left behind.

A woken drain (the `drain_ready` task: the receiver queues one while few are waiting, see
worker.storage.inbox) takes conversations from `tw:ready` with `take_ready`: pop one, take
its lock and open its head, in one script, so a drain killed right after still leaves the
conversation marked active for recovery. A conversation whose lock is held is skipped: the
drain holding it sees the new item (its `advance` checks the inbox before letting go). When
more conversations are ready and no wake message waits, `take_ready` queues one, so idle
threads join in; `nudge` does the same when a drain stops with work left. A woken drain's
`advance` that leaves its conversation empty takes the next ready one in the same script
(`next_token`): one round trip from one conversation to the next.

A timer item (`t...`, worker.storage.timers) is opened with the state of its own view only:
its delivery record is made when it is carried out (worker.processing.timer_items).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, cast

import redis

from worker.engine.model import ConversationState
from worker.storage import keys
from worker.storage.timers import TIMER_ITEM
from worker.storage.wire import wake_message

# Every script: KEYS active, ready, wakes, queue (+ the finished item's record for advance).
# ARGV 1 token, 2 lock ttl ms, 3 now, 4 delivery prefix, 5 live and 6 dry state prefixes,
# 7 dry flag (the worker runs dry), 8 a wake message, 9 wakes ttl, 10 lock prefix,
# 11 inbox prefix, then each script's own (12...).
_FUNCTIONS: Final = (
    """
local A = ARGV
-- nil for an empty inbox, else {item, record fields (flat), state JSON or ''}
local function open_head(conv)
  local item = redis.call('LINDEX', A[11] .. conv, 0)
  if not item then return nil end
  if string.sub(item, 1, 1) == '"""
    + TIMER_ITEM
    + """' then
    local prefix = string.sub(item, 2, 2) == 'd' and A[6] or A[5]
    return {item, {}, redis.call('GET', prefix .. conv) or ''}
  end
  local fields = redis.call('HGETALL', A[4] .. item)
  local dry = A[7] == '1'
  if not dry then
    for i = 1, #fields, 2 do
      if fields[i] == 'dry_run' then dry = fields[i + 1] == '1' end
    end
  end
  return {item, fields, redis.call('GET', (dry and A[6] or A[5]) .. conv) or ''}
end
local function wakes() return tonumber(redis.call('GET', KEYS[3]) or '0') end
-- {}: nothing ready; {''}: only held or finished conversations popped; {conv, head}
local function take_ready(token)
  for _ = 1, 50 do
    local conv = redis.call('LPOP', KEYS[2])
    if not conv then return {} end
    local lock = A[10] .. conv
    if redis.call('SET', lock, token, 'NX', 'PX', A[2]) then
      local head = open_head(conv)
      if head then
        redis.call('ZADD', KEYS[1], A[3], conv)
        if redis.call('LLEN', KEYS[2]) > 0 and wakes() == 0 then
          redis.call('INCR', KEYS[3])
          redis.call('EXPIRE', KEYS[3], A[9])
          redis.call('LPUSH', KEYS[4], A[8])
        end
        return {conv, head}
      end
      redis.call('DEL', lock)
    end
  end
  return {''}
end
"""
)

# ARGV 12 conversation. false: locked by another drain; {}: empty; else the head.
_BEGIN: Final = (
    _FUNCTIONS
    + """
local conv = A[12]
local lock = A[10] .. conv
if not redis.call('SET', lock, A[1], 'NX', 'PX', A[2]) then return false end
local head = open_head(conv)
if not head then
  redis.call('DEL', lock)
  redis.call('ZREM', KEYS[1], conv)
  return {}
end
redis.call('ZADD', KEYS[1], A[3], conv)
return head
"""
)

# ARGV 12 woken ('1': the drain's first call: one wake message is used up).
_TAKE_READY: Final = (
    _FUNCTIONS
    + """
if A[12] == '1' and wakes() > 0 then redis.call('DECR', KEYS[3]) end
return take_ready(A[1])
"""
)

# KEYS 5 the finished item's record. ARGV 12 conversation, 13 item, 14 its record's new
# TTL ('' keeps it), 15 the next conversation's token ('': take none), 16... record fields
# to drop. false: the lock is lost; {'head', head}; {'empty'}; {'taken', take_ready(...)}.
_ADVANCE: Final = (
    _FUNCTIONS
    + """
local conv, item = A[12], A[13]
local lock, inbox = A[10] .. conv, A[11] .. conv
if redis.call('GET', lock) ~= A[1] then return false end
if redis.call('LINDEX', inbox, 0) == item then
  redis.call('LPOP', inbox)
  if #A > 15 then redis.call('HDEL', KEYS[5], unpack(A, 16)) end
  if A[14] ~= '' then redis.call('EXPIRE', KEYS[5], A[14]) end
end
local head = open_head(conv)
if head then return {'head', head} end
redis.call('ZREM', KEYS[1], conv)
redis.call('DEL', lock)
if A[15] == '' then return {'empty'} end
return {'taken', take_ready(A[15])}
"""
)

# KEYS: ready, wakes, queue. ARGV: a wake message, wakes ttl. Queue it when conversations
# are ready and no wake message waits; 1 if queued.
_NUDGE: Final = """
if redis.call('LLEN', KEYS[1]) == 0 then return 0 end
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then return 0 end
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('LPUSH', KEYS[3], ARGV[1])
return 1
"""

AGAIN: Final = "again"


@dataclass(frozen=True)
class Head:
    """The inbox's first item, opened: its record's fields (empty for a timer item or a
    record that is gone) and the state of its view as stored (None: no state yet)."""

    item: str
    fields: dict[bytes, bytes]
    state: bytes | None


def head_state(head: Head) -> ConversationState | None:
    """The state the step read with the head (None: the conversation has none)."""
    return ConversationState.from_json(json.loads(head.state)) if head.state else None


Taken = tuple[str, Head] | str | None
"""What taking a ready conversation found: (conversation, its head); AGAIN when only held
or finished conversations were popped (take again); None when none is ready."""


@dataclass(frozen=True)
class Advanced:
    """What `advance` did: `head` is the conversation's next item (None: it is finished and
    its lock released; `lost`: the lock was lost); `taken` what it then took from
    `tw:ready` when asked to (`asked`)."""

    head: Head | None = None
    lost: bool = False
    asked: bool = False
    taken: Taken = None


def _head(reply: object) -> Head:
    item, flat, state = cast(tuple[bytes, list[bytes], bytes], tuple(cast(list[object], reply)))
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    return Head(item.decode(), fields, state or None)


def _taken(reply: object) -> Taken:
    parts = cast(list[object], reply)
    if not parts:
        return None
    if len(parts) == 1:
        return AGAIN
    return cast(bytes, parts[0]).decode(), _head(parts[1])


class DrainSteps:
    """The scripts of a drain (see the module docstring)."""

    def __init__(self, client: redis.Redis, *, dry_run: bool = False) -> None:
        self._dry_run = dry_run
        self._begin = client.register_script(_BEGIN)
        self._advance = client.register_script(_ADVANCE)
        self._take_ready = client.register_script(_TAKE_READY)
        self._nudge = client.register_script(_NUDGE)

    def _common(self, token: str, ttl_ms: int, now: float) -> list[str | int]:
        return [
            token,
            ttl_ms,
            repr(now),
            keys.delivery(""),
            keys.state("", "live"),
            keys.state("", "dry"),
            "1" if self._dry_run else "0",
            wake_message(),
            keys.WAKES_TTL,
            keys.lock(""),
            keys.inbox(""),
        ]

    _KEYS: Final = [keys.ACTIVE, keys.READY, keys.WAKES, keys.CELERY_QUEUE]

    def begin(self, conversation: str, token: str, *, ttl_ms: int, now: float) -> Head | bool:
        """Take the conversation's lock and open its first item: the Head; True when the
        inbox is empty (nothing taken); False when another drain holds the lock."""
        reply = self._begin(keys=self._KEYS, args=[*self._common(token, ttl_ms, now), conversation])
        if reply is None:
            return False
        return _head(reply) if reply else True

    def take_ready(self, token: str, *, ttl_ms: int, now: float, woken: bool) -> Taken:
        """Take a ready conversation and open its head (see `Taken`). `woken`: the drain's
        first call (it used up one wake message)."""
        reply = self._take_ready(
            keys=self._KEYS, args=[*self._common(token, ttl_ms, now), "1" if woken else "0"]
        )
        return _taken(reply)

    def advance(
        self,
        conversation: str,
        token: str,
        item: str,
        *,
        ttl_ms: int,
        now: float,
        record_ttl: int | None,
        pop_fields: Sequence[str],
        next_token: str | None = None,
        after: redis.client.Pipeline | None = None,
    ) -> Advanced:
        """Finish `item` (the head) and open the next one; when the conversation is left
        empty and `next_token` is given, take the next ready conversation with it. `after`:
        a pipeline holding writes that go first (the item's last outcome), sent together."""
        script_keys = [*self._KEYS, keys.delivery(item)]
        args = [
            *self._common(token, ttl_ms, now),
            conversation,
            item,
            "" if record_ttl is None else str(record_ttl),
            next_token or "",
            *pop_fields,
        ]
        if after is None:
            reply = self._advance(keys=script_keys, args=args)
        else:
            self._advance(keys=script_keys, args=args, client=after)
            reply = after.execute()[-1]
        if reply is None:
            return Advanced(lost=True)
        kind, *rest = cast(list[object], reply)
        if kind == b"head":
            return Advanced(head=_head(rest[0]))
        if kind == b"empty":
            return Advanced()
        return Advanced(asked=True, taken=_taken(rest[0]))

    def nudge(self) -> bool:
        """Queue a wake message when conversations are ready and none waits."""
        reply = self._nudge(
            keys=[keys.READY, keys.WAKES, keys.CELERY_QUEUE], args=[wake_message(), keys.WAKES_TTL]
        )
        return bool(reply)
