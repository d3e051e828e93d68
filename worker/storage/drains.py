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
threads join in; `nudge` does the same when a drain stops with work left.

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

# open_head(inbox, delivery prefix, live state key, dry state key, dry flag):
# nil for an empty inbox, else {item, record fields (flat), state JSON or ''}.
_OPEN_HEAD: Final = (
    """
local function open_head(inbox, prefix, live_key, dry_key, dry_flag)
  local item = redis.call('LINDEX', inbox, 0)
  if not item then return nil end
  if string.sub(item, 1, 1) == '"""
    + TIMER_ITEM
    + """' then
    local key = string.sub(item, 2, 2) == 'd' and dry_key or live_key
    return {item, {}, redis.call('GET', key) or ''}
  end
  local fields = redis.call('HGETALL', prefix .. item)
  local dry = dry_flag == '1'
  if not dry then
    for i = 1, #fields, 2 do
      if fields[i] == 'dry_run' then dry = fields[i + 1] == '1' end
    end
  end
  return {item, fields, redis.call('GET', dry and dry_key or live_key) or ''}
end
"""
)

# KEYS: lock, active, inbox. ARGV: token, ttl ms, conversation, now, delivery prefix,
# live state key, dry state key, dry flag. false: locked by another drain; {}: empty.
_BEGIN: Final = (
    _OPEN_HEAD
    + """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local head = open_head(KEYS[3], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
if not head then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[3])
  return {}
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
return head
"""
)

# KEYS: lock, active, inbox, the finished item's record. ARGV: token, conversation, item,
# its record's new TTL ('' keeps it), delivery prefix, live and dry state keys, dry flag,
# then record fields to drop. false: the lock is lost; {}: empty, lock released.
_ADVANCE: Final = (
    _OPEN_HEAD
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
if redis.call('LINDEX', KEYS[3], 0) == ARGV[3] then
  redis.call('LPOP', KEYS[3])
  if #ARGV > 8 then redis.call('HDEL', KEYS[4], unpack(ARGV, 9)) end
  if ARGV[4] ~= '' then redis.call('EXPIRE', KEYS[4], ARGV[4]) end
end
local head = open_head(KEYS[3], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
if not head then
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('DEL', KEYS[1])
  return {}
end
return head
"""
)


# KEYS: ready, wakes, active, queue. ARGV: token, ttl ms, now, delivery prefix, live and
# dry state prefixes, dry flag, woken ('1': this drain's first call: one wake is used up),
# a wake message, wakes ttl, lock prefix, inbox prefix. {}: nothing ready; {''}: only
# conversations other drains hold or with nothing left (call again); {conv, head}.
_TAKE_READY: Final = (
    _OPEN_HEAD
    + """
local function wakes() return tonumber(redis.call('GET', KEYS[2]) or '0') end
if ARGV[8] == '1' and wakes() > 0 then redis.call('DECR', KEYS[2]) end
for _ = 1, 50 do
  local conv = redis.call('LPOP', KEYS[1])
  if not conv then return {} end
  local lock = ARGV[11] .. conv
  if redis.call('SET', lock, ARGV[1], 'NX', 'PX', ARGV[2]) then
    local head = open_head(ARGV[12] .. conv, ARGV[4], ARGV[5] .. conv, ARGV[6] .. conv, ARGV[7])
    if head then
      redis.call('ZADD', KEYS[3], ARGV[3], conv)
      if redis.call('LLEN', KEYS[1]) > 0 and wakes() == 0 then
        redis.call('INCR', KEYS[2])
        redis.call('EXPIRE', KEYS[2], ARGV[10])
        redis.call('LPUSH', KEYS[4], ARGV[9])
      end
      return {conv, head}
    end
    redis.call('DEL', lock)
  end
end
return {''}
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


Opened = Head | None | bool
"""What a step found: a Head; None when the inbox is empty (the lock is released); False
when the lock is held by another drain (`begin`) or was lost (`advance`)."""


def _opened(reply: object) -> Opened:
    if reply is None:
        return False
    parts = cast(list[object], reply)
    if not parts:
        return None
    item, flat, state = cast(tuple[bytes, list[bytes], bytes], tuple(parts))
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    return Head(item.decode(), fields, state or None)


class DrainSteps:
    """The two scripts of a drain (see the module docstring)."""

    def __init__(self, client: redis.Redis) -> None:
        self._begin = client.register_script(_BEGIN)
        self._advance = client.register_script(_ADVANCE)
        self._take_ready = client.register_script(_TAKE_READY)
        self._nudge = client.register_script(_NUDGE)

    def take_ready(
        self, token: str, *, ttl_ms: int, now: float, dry_run: bool, woken: bool
    ) -> tuple[str, Head] | str | None:
        """Take a ready conversation and open its head: (conversation, head); AGAIN when
        only held or finished conversations were popped (call again); None when none is
        ready. `woken`: the drain's first call (it used up one wake message)."""
        reply = self._take_ready(
            keys=[keys.READY, keys.WAKES, keys.ACTIVE, keys.CELERY_QUEUE],
            args=[
                token,
                ttl_ms,
                repr(now),
                keys.delivery(""),
                keys.state("", "live"),
                keys.state("", "dry"),
                "1" if dry_run else "0",
                "1" if woken else "0",
                wake_message(),
                keys.WAKES_TTL,
                keys.lock(""),
                keys.inbox(""),
            ],
        )
        parts = cast(list[object], reply)
        if not parts:
            return None
        if len(parts) == 1:
            return AGAIN
        head = _opened(parts[1])
        assert isinstance(head, Head)
        return cast(bytes, parts[0]).decode(), head

    def nudge(self) -> bool:
        """Queue a wake message when conversations are ready and none waits."""
        reply = self._nudge(
            keys=[keys.READY, keys.WAKES, keys.CELERY_QUEUE], args=[wake_message(), keys.WAKES_TTL]
        )
        return bool(reply)

    @staticmethod
    def _state_keys(conversation: str, dry_run: bool) -> list[str]:
        return [
            keys.delivery(""),
            keys.state(conversation, "live"),
            keys.state(conversation, "dry"),
            "1" if dry_run else "0",
        ]

    def begin(
        self, conversation: str, token: str, *, ttl_ms: int, now: float, dry_run: bool
    ) -> Opened:
        """Take the conversation and open its first item (see `Opened`)."""
        reply = self._begin(
            keys=[keys.lock(conversation), keys.ACTIVE, keys.inbox(conversation)],
            args=[token, ttl_ms, conversation, repr(now), *self._state_keys(conversation, dry_run)],
        )
        return _opened(reply)

    def advance(
        self,
        conversation: str,
        token: str,
        item: str,
        *,
        record_ttl: int | None,
        pop_fields: Sequence[str],
        dry_run: bool,
    ) -> Opened:
        """Finish `item` (the head) and open the next one (see `Opened`)."""
        reply = self._advance(
            keys=[
                keys.lock(conversation),
                keys.ACTIVE,
                keys.inbox(conversation),
                keys.delivery(item),
            ],
            args=[
                token,
                conversation,
                item,
                "" if record_ttl is None else str(record_ttl),
                *self._state_keys(conversation, dry_run),
                *pop_fields,
            ],
        )
        return _opened(reply)
