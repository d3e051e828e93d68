"""The Lua scripts of `worker.storage.drains` (each one atomic step of a drain).

Every script: KEYS 1 active, 2 ready, 3 wakes, 4 queue, 5 ready lanes, 6 active lanes (+ 7
the finished item's record for `ADVANCE`). ARGV 1 token, 2 lock ttl ms, 3 now, 4 delivery
prefix, 5 live and 6 dry state prefixes, 7 dry flag (the worker runs dry), 8 a wake message,
9 wakes ttl, 10 lock prefix, 11 inbox prefix, 12 lane prefix, 13 lane lock prefix, 14 the
lanes' TTL (STATE_RETENTION), then each script's own (15...).
"""

from __future__ import annotations

from typing import Final

from worker.storage.timers import TIMER_ITEM

SOLO_BATCH: Final = 32
"""At most this many events of no conversation are taken in one step (`take_ready`)."""
MANY_BATCH: Final = 8
"""At most this many other conversations are taken in one step (`take_ready`), ..."""
MANY_LEAVE: Final = 8
"""... and only while more than this many stay ready (a backlog)."""

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
-- a lane's head (member 'd:conv'): {delivery id, its record (flat), live state or ''}
local function open_lane(member)
  local item = redis.call('LINDEX', A[12] .. member, 0)
  if not item then return nil end
  local conv = string.sub(member, 3)
  return {item, redis.call('HGETALL', A[4] .. item), redis.call('GET', A[5] .. conv) or ''}
end
local function wakes() return tonumber(redis.call('GET', KEYS[3]) or '0') end
-- (A[8] is '' for a step the caller knows cannot wake anyone: never pushed then)
local function wake_if_ready()
  if A[8] == '' then return end
  if redis.call('LLEN', KEYS[2]) + redis.call('LLEN', KEYS[5]) > 0 and wakes() == 0 then
    redis.call('INCR', KEYS[3])
    redis.call('EXPIRE', KEYS[3], A[9])
    redis.call('LPUSH', KEYS[4], A[8])
  end
end
-- take a lane's lock and open its head; nil (lock let go) when held or empty
local function take_lane(member, token)
  local lock = A[13] .. member
  if not redis.call('SET', lock, token, 'NX', 'PX', A[2]) then return nil end
  local head = open_lane(member)
  if not head then
    redis.call('DEL', lock)
    redis.call('ZREM', KEYS[6], member)
    return nil
  end
  redis.call('ZADD', KEYS[6], A[3], member)
  return head
end
-- more conversations from the front of the ready list, taken with the first one (`conv`,
-- `head`), each locked and opened alike; held or finished ones are skipped as take_ready
-- skips them. Events of no conversation ('d:...') up to SOLO_BATCH; other conversations
-- up to MANY_BATCH, and only while more than MANY_LEAVE stay ready (a backlog: the other
-- drains are busy too), so a short queue still spreads over the drains.
local function take_batch(conv, head, token)
  local batch = {conv, head}
  local solo, many = 0, 0
  if string.sub(conv, 1, 2) == 'd:' then solo = 1 else many = 1 end
  for _ = 1, 2 * """
    + str(SOLO_BATCH)
    + """ do
    local nxt = redis.call('LINDEX', KEYS[2], 0)
    if not nxt then break end
    if string.sub(nxt, 1, 2) == 'd:' then
      if solo >= """
    + str(SOLO_BATCH)
    + """ then break end
    elseif many >= """
    + str(MANY_BATCH)
    + """ or redis.call('LLEN', KEYS[2]) <= """
    + str(MANY_LEAVE)
    + """ then
      break
    end
    redis.call('LPOP', KEYS[2])
    local lock = A[10] .. nxt
    if redis.call('SET', lock, token, 'NX', 'PX', A[2]) then
      local opened = open_head(nxt)
      if opened then
        redis.call('ZADD', KEYS[1], A[3], nxt)
        table.insert(batch, nxt)
        table.insert(batch, opened)
        if string.sub(nxt, 1, 2) == 'd:' then solo = solo + 1 else many = many + 1 end
      else
        redis.call('DEL', lock)
      end
    end
  end
  return batch
end
-- {}: nothing ready; {''}: only held or finished work popped; {'b', {conv, head, ...}}
-- for several conversations, or an event of no conversation (see take_batch);
-- {'l', lane, head} or {'c', conv, head}. Ready lanes first: their actions are decided already.
local function take_ready(token)
  for _ = 1, 50 do
    local member = redis.call('LPOP', KEYS[5])
    if member then
      local head = take_lane(member, token)
      if head then
        wake_if_ready()
        return {'l', member, head}
      end
    else
      local conv = redis.call('LPOP', KEYS[2])
      if not conv then return {} end
      local lock = A[10] .. conv
      if redis.call('SET', lock, token, 'NX', 'PX', A[2]) then
        local head = open_head(conv)
        if head then
          redis.call('ZADD', KEYS[1], A[3], conv)
          local batch = take_batch(conv, head, token)
          wake_if_ready()
          if #batch > 2 or string.sub(conv, 1, 2) == 'd:' then return {'b', batch} end
          return {'c', conv, head}
        end
        redis.call('DEL', lock)
      end
    end
  end
  return {''}
end
"""
)

# ARGV 15 conversation. false: locked by another drain; {}: empty; else the head.
BEGIN: Final = (
    _FUNCTIONS
    + """
local conv = A[15]
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

# ARGV 15 a lane member: take its lock and open its head; false when held or empty.
BEGIN_LANE: Final = (
    _FUNCTIONS
    + """
local head = take_lane(A[15], A[1])
if head then return head end
return false
"""
)

# ARGV 15 woken ('1': the drain's first call: one wake message is used up).
TAKE_READY: Final = (
    _FUNCTIONS
    + """
if A[15] == '1' and wakes() > 0 then redis.call('DECR', KEYS[3]) end
return take_ready(A[1])
"""
)

# KEYS 7 the finished item's record. ARGV 15 conversation, 16 item, 17 its record's new
# TTL ('' keeps it), 18 the next token ('': take none), 19 the delivery id handed to lanes,
# 20 their destination letters in order ('': none), 21... record fields to drop.
# Pop the item and push its delivery id onto each lane; a lane that was empty is made
# ready, except that when the inbox is left empty the drain takes the first such lane
# itself (its lock, with the drain's token). false: the lock is lost; {'head', head};
# {'lane', lane, lane head}; {'empty'}; {'taken', take_ready(...)}.
ADVANCE: Final = (
    _FUNCTIONS
    + """
local conv, item = A[15], A[16]
local lock, inbox = A[10] .. conv, A[11] .. conv
if redis.call('GET', lock) ~= A[1] then return false end
local fresh = {}
if redis.call('LINDEX', inbox, 0) == item then
  redis.call('LPOP', inbox)
  if #A > 20 then redis.call('HDEL', KEYS[7], unpack(A, 21)) end
  if A[17] ~= '' then redis.call('EXPIRE', KEYS[7], A[17]) end
  for i = 1, #A[20] do
    local member = string.sub(A[20], i, i) .. ':' .. conv
    local lane = A[12] .. member
    if redis.call('RPUSH', lane, A[19]) == 1 then table.insert(fresh, member) end
    redis.call('EXPIRE', lane, A[14])
  end
end
local head = open_head(conv)
local claimed = nil
if not head and #fresh > 0 then
  local lane_head = take_lane(fresh[1], A[1])
  if lane_head then claimed = {fresh[1], lane_head}; table.remove(fresh, 1) end
end
for _, member in ipairs(fresh) do redis.call('RPUSH', KEYS[5], member) end
if #fresh > 0 then wake_if_ready() end
if head then return {'head', head} end
redis.call('ZREM', KEYS[1], conv)
redis.call('DEL', lock)
if claimed then return {'lane', claimed[1], claimed[2]} end
if A[18] == '' then return {'empty'} end
return {'taken', take_ready(A[18])}
"""
)

# ARGV 15 lane, 16 the finished delivery id, 17 the next token ('': take none). Pop it and
# open the lane's next head, or let the lane go (and take the next ready work).
LANE_ADVANCE: Final = (
    _FUNCTIONS
    + """
local member, item = A[15], A[16]
local lock, lane = A[13] .. member, A[12] .. member
if redis.call('GET', lock) ~= A[1] then return false end
if redis.call('LINDEX', lane, 0) == item then redis.call('LPOP', lane) end
local head = open_lane(member)
if head then return {'head', head} end
redis.call('ZREM', KEYS[6], member)
redis.call('DEL', lock)
if A[17] == '' then return {'empty'} end
return {'taken', take_ready(A[17])}
"""
)

# KEYS: ready, wakes, queue, ready lanes. ARGV: a wake message, wakes ttl. Queue it when
# work is ready and no wake message waits; 1 if queued.
NUDGE: Final = """
if redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[4]) == 0 then return 0 end
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then return 0 end
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('LPUSH', KEYS[3], ARGV[1])
return 1
"""

# KEYS 7 the decision log, 8 its old list form. ARGV 15 the next token ('': take none),
# 16 the finished records' TTL, 17 the log's length, then per item 5: conversation (of no
# conversation), delivery id, decision, event, matched rules. Finish each whose lock is
# ours and whose head is the item, as `advance` would a quiet event of no conversation:
# store its decision and log entry (unless one was stored: then it is left for an ordinary
# drain), pop it, drop its body, expire its record; then let the conversation go (ready
# again if its inbox still holds something). {'empty', stored} or {'taken', stored,
# take_ready(...)}; stored: per item 1 when its decision was stored here, else 0.
FINISH_QUIET: Final = (
    _FUNCTIONS
    + """
if redis.call('TYPE', KEYS[7]).ok == 'list' then redis.call('RENAME', KEYS[7], KEYS[8]) end
local stored, again = {}, false
for i = 18, #A, 5 do
  local conv, item = A[i], A[i + 1]
  local lock, inbox, record = A[10] .. conv, A[11] .. conv, A[4] .. item
  local done = 0
  if redis.call('GET', lock) == A[1] then
    local fresh = redis.call('HEXISTS', record, 'decision') == 0
    if fresh and redis.call('LINDEX', inbox, 0) == item then
      redis.call('HSET', record, 'decision', A[i + 2])
      redis.call('XADD', KEYS[7], 'MAXLEN', '~', A[17], '*',
                 'd', item, 'c', '', 'e', A[i + 3], 'r', A[i + 4])
      redis.call('LPOP', inbox)
      redis.call('HDEL', record, 'raw')
      redis.call('EXPIRE', record, A[16])
      done = 1
    end
    if redis.call('LLEN', inbox) == 0 then
      redis.call('ZREM', KEYS[1], conv)
    else
      redis.call('RPUSH', KEYS[2], conv)
      again = true
    end
    redis.call('DEL', lock)
  end
  table.insert(stored, done)
end
if again then wake_if_ready() end
if A[15] == '' then return {'empty', stored} end
return {'taken', stored, take_ready(A[15])}
"""
)

# ARGV 15... per item: kind ('c' a conversation, 'l' a lane), its name. What a drain held
# when Redis failed under it, handed back: each lock still ours, or gone (expired, or lost
# in a failover), is let go and the item made ready again (a wake message queued), so it is
# taken again at once instead of by recovery; one another drain holds is left to it.
HAND_BACK: Final = (
    _FUNCTIONS
    + """
for i = 15, #A, 2 do
  local kind, name = A[i], A[i + 1]
  local lock = (kind == 'c' and A[10] or A[13]) .. name
  local holder = redis.call('GET', lock)
  if not holder or holder == A[1] then
    if holder then redis.call('DEL', lock) end
    redis.call('RPUSH', kind == 'c' and KEYS[2] or KEYS[5], name)
  end
end
wake_if_ready()
return 1
"""
)
