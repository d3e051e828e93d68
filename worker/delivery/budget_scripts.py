"""The rate budget's two Lua scripts (`worker.delivery.ratelimit` explains the pacing).

RESERVE  KEYS[1] the budget hash; ARGV now, configured count and period, guard, ttl,
         probe_timeout, probe_poll -> '0' (call now) or the seconds to wait (nothing taken)
OBSERVE  KEYS[1] the budget hash; ARGV now, status, limit, remaining, reset, retry_after,
         guard, ttl, fallback pause, same-reset tolerance, configured count and period
"""

from __future__ import annotations

from typing import Final

RESERVE: Final = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local count, period = tonumber(ARGV[2]), tonumber(ARGV[3])
local guard, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local probe_timeout, poll = tonumber(ARGV[6]), tonumber(ARGV[7])
local f = redis.call('HMGET', key, 'tat', 'paused_until', 'limit', 'reset', 'left', 'window',
                     'ends', 'est', 'probe', 'answered')
local tat, paused = tonumber(f[1]) or 0, tonumber(f[2]) or 0
local limit, reset = tonumber(f[3]), tonumber(f[4]) or 0
local left, window = tonumber(f[5]), tonumber(f[6])
local ends = math.min(tonumber(f[7]) or reset, reset)
local est, probe = f[8] == '1', tonumber(f[9]) or 0
-- Until the first answer, and at each new window the provider has not yet confirmed, one
-- call (the probe) goes first; the others wait for its answer (or `probe_timeout`).
if f[10] ~= '1' then est = true end
local function fmt(x) return string.format('%.6f', x) end
if now < paused then return fmt(paused - now) end
if limit and reset > 0 and now >= ends + guard then
  left = limit
  if window then
    reset = reset + (math.floor((now - reset) / window) + 1) * window
  else
    reset = 0
  end
  ends, est, probe = reset, true, 0
  redis.call('HSET', key, 'left', left, 'reset', fmt(reset), 'ends', fmt(ends), 'est', '1',
             'probe', '0')
end
if limit and reset > 0 and left and left <= 0 then return fmt(ends + guard - now) end
if est then
  if probe > 0 and now < probe + probe_timeout then
    return fmt(math.min(poll, probe + probe_timeout - now))
  end
  redis.call('HSET', key, 'probe', fmt(now))
end
if limit then
  -- Confirmed: the provider's own counter (mirrored in `left`) is the budget.
  if left then redis.call('HSET', key, 'left', left - 1) end
  redis.call('EXPIRE', key, ttl)
  return '0'
end
if tat > now then return fmt(tat - now) end
local interval = 0
if count then interval = period / count end
redis.call('HSET', key, 'tat', fmt(now + interval))
redis.call('EXPIRE', key, ttl)
return '0'
"""

OBSERVE: Final = """
local key = KEYS[1]
local now, status = tonumber(ARGV[1]), tonumber(ARGV[2])
local hlimit, hleft, hreset = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local retry_after, guard = tonumber(ARGV[6]), tonumber(ARGV[7])
local ttl, fallback, same = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local hint_count, hint_period = tonumber(ARGV[11]), tonumber(ARGV[12])
local f = redis.call('HMGET', key, 'paused_until', 'limit', 'reset', 'left', 'window',
                     'est', 'seen', 'first', 'ends', 'nohint')
local paused, limit, reset = tonumber(f[1]) or 0, tonumber(f[2]), tonumber(f[3]) or 0
local left, window, est, seen = tonumber(f[4]), tonumber(f[5]), f[6] == '1', tonumber(f[7]) or 0
local first, ends, nohint = tonumber(f[8]), tonumber(f[9]), f[10] == '1'
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
  if not stale then est = false end
end
if status == 429 then nohint = true end
-- The configured period bounds the window too while it agrees with the headers' limit and
-- no 429 has proved it wrong (learning from rounded resets alone can overestimate it).
local w = window
if hint_period and hint_count == limit and not nohint and (not w or hint_period < w) then
  w = hint_period
end
if reset > 0 and (not ends or not stale) then
  ends = reset
  if w and first and math.abs(reset - seen) <= same then
    ends = math.min(reset, first + w)
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
                'answered', '1',
                'est', est and '1' or '0', 'nohint', nohint and '1' or '0'}
if first then table.insert(fields, 'first'); table.insert(fields, fmt(first)) end
if ends then table.insert(fields, 'ends'); table.insert(fields, fmt(ends)) end
if limit then table.insert(fields, 'limit'); table.insert(fields, limit) end
if left then table.insert(fields, 'left'); table.insert(fields, left) end
if window then table.insert(fields, 'window'); table.insert(fields, fmt(window)) end
redis.call('HSET', key, (table.unpack or unpack)(fields))
redis.call('EXPIRE', key, ttl)
return 1
"""
