"""The Lua scripts of `worker.storage.conversations` (each one atomic step of the store)."""

from __future__ import annotations

from typing import Final

# Store the decision once; a second caller gets the first decision back. A record the
# worker built in memory (a wait coming due: ARGV[13] raw, '' when the record is stored
# already) is written first, with ARGV[14..16] received_at, dry_run and conversation, kept
# ARGV[7] seconds. The global log (KEYS[3], a stream capped near ARGV[5]; an old list log is moved
# to KEYS[6] for the upgrade) gets id, conversation, event, rules (ARGV[10..12]). With a
# conversation (KEYS[2]): its state (TTL ARGV[9]), waits (KEYS[5]: ARGV[17] adds with
# scores, then removals), and its log, whose record pushed out is deleted.
STORE_DECISION: Final = (
    """
-- Lanes write a few fields of the state while the next events are decided (LANE_FIELDS):
-- when the stored state is no longer the one the decision read, a field the decision did
-- not change keeps its stored value.
local function merged_state(key, before, after)
  local stored = redis.call('GET', key)
  if not stored or stored == before then return after end
  local ok, now = pcall(cjson.decode, stored)
  if not ok or type(now) ~= 'table' then return after end
  local b, a = cjson.decode(before), cjson.decode(after)
  local changed = false
  for _, f in ipairs({"""
    + ", ".join(f"'{f}'" for f in ("ticket_open", "helpwave_ticket_id", "helpwave_ticket_planned"))
    + """}) do
    if a[f] == b[f] and now[f] ~= nil and now[f] ~= a[f] then
      a[f] = now[f]
      changed = true
    end
  end
  if changed then return cjson.encode(a) end
  return after
end
local existing = redis.call('HGET', KEYS[1], 'decision')
if existing then return existing end
local retention = tonumber(ARGV[7])
if ARGV[13] ~= '' and redis.call('HEXISTS', KEYS[1], 'raw') == 0 then
  redis.call('HSET', KEYS[1], 'raw', ARGV[13], 'received_at', ARGV[14], 'dry_run', ARGV[15],
             'conversation', ARGV[16])
  redis.call('EXPIRE', KEYS[1], retention)
end
redis.call('HSET', KEYS[1], 'decision', ARGV[1])
if redis.call('TYPE', KEYS[3]).ok == 'list' then redis.call('RENAME', KEYS[3], KEYS[6]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*',
           'd', ARGV[4], 'c', ARGV[10], 'e', ARGV[11], 'r', ARGV[12])
if KEYS[2] ~= '' then
  redis.call('HSET', KEYS[1], 'state_before', ARGV[2])
  redis.call('SET', KEYS[2], merged_state(KEYS[2], ARGV[2], ARGV[3]), 'EX', ARGV[9])
  local adds = tonumber(ARGV[17])
  for i = 18, 17 + 2 * adds, 2 do redis.call('ZADD', KEYS[5], ARGV[i + 1], ARGV[i]) end
  for i = 18 + 2 * adds, #ARGV do redis.call('ZREM', KEYS[5], ARGV[i]) end
  redis.call('LPUSH', KEYS[4], ARGV[4])
  local limit = tonumber(ARGV[6])
  local gone = redis.call('LRANGE', KEYS[4], limit, -1)
  for _, id in ipairs(gone) do redis.call('DEL', ARGV[8] .. id) end
  redis.call('LTRIM', KEYS[4], 0, limit - 1)
  redis.call('EXPIRE', KEYS[4], retention)
end
return false
"""
)

# Record an action's outcome once, together with what it teaches the state: ARGV[3] a JSON
# object of fields merged into the stored state ('' none), unless KEYS[3] (a lane, '' for
# none) holds more than the action's own item (later decisions projected past it).
COMPLETE_ACTION: Final = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' and (KEYS[3] == '' or redis.call('LLEN', KEYS[3]) <= 1) then
  local stored = redis.call('GET', KEYS[2])
  if stored then
    local state = cjson.decode(stored)
    for field, value in pairs(cjson.decode(ARGV[3])) do state[field] = value end
    redis.call('SET', KEYS[2], cjson.encode(state), 'KEEPTTL')
  end
end
return 1
"""

CREATE_RECORD: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'raw', ARGV[1], 'received_at', ARGV[2], 'dry_run', ARGV[3],
           'conversation', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

RELEASE_LOCK: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

EXTEND_LOCK: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Pop the head if it is ARGV[1]; an inbox left empty is no longer active (KEYS[2]). The
# finished delivery (KEYS[3]) keeps what the decision log needs for as long as it needs it:
# ARGV[3] is its new TTL ('' keeps the one it has), ARGV[4..] fields to drop.
POP_HEAD: Final = """
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then return false end
redis.call('LPOP', KEYS[1])
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[2]) end
if #ARGV > 3 then redis.call('HDEL', KEYS[3], unpack(ARGV, 4)) end
if ARGV[3] ~= '' then redis.call('EXPIRE', KEYS[3], ARGV[3]) end
return 1
"""
