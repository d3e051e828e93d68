"""The Lua scripts of `worker.storage.conversations` (each one atomic step of the store)."""

from __future__ import annotations

from typing import Final

# Store the decision once; a second caller gets the first decision back. The global log
# (KEYS[3], a stream capped near ARGV[5]; an old list log is moved to KEYS[6] for the
# upgrade) gets id, conversation, event, rules (ARGV[10..12]). With a conversation (KEYS[2]):
# its state (TTL ARGV[9]), waits (KEYS[5]: ARGV[13] adds with scores, then removals), and
# its log, whose record pushed out is deleted.
STORE_DECISION: Final = """
local existing = redis.call('HGET', KEYS[1], 'decision')
if existing then return existing end
redis.call('HSET', KEYS[1], 'decision', ARGV[1])
local retention = tonumber(ARGV[7])
if redis.call('TYPE', KEYS[3]).ok == 'list' then redis.call('RENAME', KEYS[3], KEYS[6]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*',
           'd', ARGV[4], 'c', ARGV[10], 'e', ARGV[11], 'r', ARGV[12])
if KEYS[2] ~= '' then
  redis.call('HSET', KEYS[1], 'state_before', ARGV[2])
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[9])
  local adds = tonumber(ARGV[13])
  for i = 14, 13 + 2 * adds, 2 do redis.call('ZADD', KEYS[5], ARGV[i + 1], ARGV[i]) end
  for i = 14 + 2 * adds, #ARGV do redis.call('ZREM', KEYS[5], ARGV[i]) end
  redis.call('LPUSH', KEYS[4], ARGV[4])
  local limit = tonumber(ARGV[6])
  local gone = redis.call('LRANGE', KEYS[4], limit, -1)
  for _, id in ipairs(gone) do redis.call('DEL', ARGV[8] .. id) end
  redis.call('LTRIM', KEYS[4], 0, limit - 1)
  redis.call('EXPIRE', KEYS[4], retention)
end
return false
"""

# Record an action's outcome once, together with the conversation state it leads to.
COMPLETE_ACTION: Final = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4]) end
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
