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
