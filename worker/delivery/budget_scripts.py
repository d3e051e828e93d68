"""The rate budget's two Lua scripts (`worker.delivery.ratelimit` explains the pacing).

RESERVE  KEYS[1] the budget hash; ARGV now, configured count and period, guard, ttl,
         probe_timeout, probe_poll, landing, n -> up to n slots taken one after another,
         each '0' (call now) or the seconds to wait, never under 1e-6 (nothing taken: the
         last one; it stops there). One call for n slots is exactly n calls for one.
OBSERVE  KEYS[1] the budget hash; ARGV now, status, limit, remaining, reset, retry_after,
         guard, ttl, fallback pause, same-reset tolerance, configured count and period: one
         answer's lesson; several answers' lessons one after another (12 each) are learnt
         in that order, exactly as that many calls would

The window's count (fields of the hash, reset at each window): `charged` slots taken for
it (those carried in included), `got` answers that carried its reset, `low` the lowest
remaining such an answer reported, `late` slots taken within `landing` of its end; at a
new window `out` is how many of the old window's calls were still unanswered and `carried`
how many of those were charged to the new one (`late` ones: they may land in it).
"""

from __future__ import annotations

from typing import Final

# What both scripts share: the budget left in the window, from the counts above.
# The provider had counted `limit - low` calls when it reported `low`; every call answered
# for the window was counted by then or before, so `low + got` bounds what the window had
# before our calls, and each call charged and not answered may still be counted.
_LEFT = """
local function fmt(x) return string.format('%.6f', x) end
local function budget_left(limit, low, got, charged)
  if low and low <= 0 then return 0 end
  return math.min(limit, (low or limit) + got) - charged
end
"""

RESERVE: Final = (
    _LEFT
    + """
local function reserve_one()
  local key = KEYS[1]
  local now = tonumber(ARGV[1])
  local count, period = tonumber(ARGV[2]), tonumber(ARGV[3])
  local guard, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
  local probe_timeout, poll, landing = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
  local f = redis.call('HMGET', key, 'tat', 'paused_until', 'limit', 'reset', 'window',
                       'ends', 'est', 'probe', 'answered', 'charged', 'got', 'low', 'late')
  local tat, paused = tonumber(f[1]) or 0, tonumber(f[2]) or 0
  local limit, reset = tonumber(f[3]), tonumber(f[4]) or 0
  local window = tonumber(f[5])
  local ends = math.min(tonumber(f[6]) or reset, reset)
  local est, probe = f[7] == '1', tonumber(f[8]) or 0
  local charged, got = tonumber(f[10]) or 0, tonumber(f[11]) or 0
  local low, late = tonumber(f[12]), tonumber(f[13]) or 0
  -- Until the first answer, and at each new window the provider has not yet confirmed, one
  -- call (the probe) goes first; the others wait for its answer (or `probe_timeout`).
  if f[9] ~= '1' then est = true end
  -- A wait is never 0 (which means "call now"), however close its end.
  local function wait(x) return fmt(math.max(x, 0.000001)) end
  if now < paused then return wait(paused - now) end
  if limit and reset > 0 and now >= ends + guard then
    -- A new window: calls taken late in the old one and not answered yet may land in it.
    local out = math.max(0, charged - got)
    charged, got, low = math.min(out, late), 0, nil
    if window then
      reset = reset + (math.floor((now - reset) / window) + 1) * window
    else
      reset = 0
    end
    ends, est, probe = reset, true, 0
    redis.call('HDEL', key, 'low')
    redis.call('HSET', key, 'gone', f[4], 'reset', fmt(reset), 'ends', fmt(ends), 'est', '1',
               'probe', '0', 'charged', charged, 'got', 0, 'late', 0, 'out', out,
               'carried', charged, 'left', limit - charged)
    late = 0
  end
  local left = nil
  if limit and reset > 0 then
    left = budget_left(limit, low, got, charged)
    if left <= 0 then return wait(ends + guard - now) end
  end
  if not limit and tat > now then return wait(tat - now) end
  if est then
    if probe > 0 and now < probe + probe_timeout then
      return wait(math.min(poll, probe + probe_timeout - now))
    end
    redis.call('HSET', key, 'probe', fmt(now))
  end
  if limit or est then
    charged = charged + 1
    if reset > 0 and now >= ends - landing then late = late + 1 end
    redis.call('HSET', key, 'charged', charged, 'late', late)
    if left then redis.call('HSET', key, 'left', left - 1) end
  end
  if not limit then
    -- The configured pace (GCRA): the next call no sooner than `period / count` from now.
    local interval = 0
    if count then interval = period / count end
    redis.call('HSET', key, 'tat', fmt(now + interval))
  end
  redis.call('EXPIRE', key, ttl)
  return '0'
end
local taken = {}
for _ = 1, tonumber(ARGV[9]) do
  local answer = reserve_one()
  table.insert(taken, answer)
  if answer ~= '0' then break end
end
return taken
"""
)

OBSERVE: Final = (
    _LEFT
    + """
-- one answer's lesson (its 12 arguments, as ARGV below)
local function observe_one(ARGV)
  local key = KEYS[1]
  local now, status = tonumber(ARGV[1]), tonumber(ARGV[2])
  local hlimit, hleft, hreset = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
  local retry_after, guard = tonumber(ARGV[6]), tonumber(ARGV[7])
  local ttl, fallback, same = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
  local hint_count, hint_period = tonumber(ARGV[11]), tonumber(ARGV[12])
  local f = redis.call('HMGET', key, 'paused_until', 'limit', 'reset', 'window', 'est', 'seen',
                       'first', 'ends', 'nohint', 'charged', 'got', 'low', 'late', 'out',
                       'carried', 'gone')
  local paused, limit, reset = tonumber(f[1]) or 0, tonumber(f[2]), tonumber(f[3]) or 0
  local window, est, seen = tonumber(f[4]), f[5] == '1', tonumber(f[6]) or 0
  local first, ends, nohint = tonumber(f[7]), tonumber(f[8]), f[9] == '1'
  local charged, got, low = tonumber(f[10]) or 0, tonumber(f[11]) or 0, tonumber(f[12])
  local late, out, carried = tonumber(f[13]) or 0, tonumber(f[14]) or 0, tonumber(f[15]) or 0
  local gone = tonumber(f[16]) or 0  -- the reset of the last window known to have ended
  -- RESERVE began this window at the old one's end; its reset is a guess until answered
  local begun = est and gone > 0
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
    if hreset <= gone + same or (not begun and reset > 0 and hreset < reset - same) then
      -- Counted in an older window: one fewer of its calls can still land in this one.
      stale = true
      out = math.max(0, out - 1)
      if carried > out then charged, carried = math.max(0, charged - carried + out), out end
    elseif begun or (reset > 0 and hreset <= reset + same) then
      -- This window (its first answer, when RESERVE began it: the reset is the provider's)
      got = got + 1
      if hleft then low = math.min(low or hleft, hleft) end
      reset = hreset
    else
      -- A window we had not begun (or the first learnt): every call not answered yet, this
      -- one included, may be counted in it.
      out = math.max(0, charged - got)
      charged, carried, got, low, late = out, out, 1, hleft, 0
      if reset > 0 then gone = reset end
      reset = hreset
    end
    if not stale then est = false end
    -- An answered call not charged (taken before anything was learnt) is charged now.
    charged = math.max(charged, got)
  end
  if status == 429 then
    nohint = true
    if not stale then low = 0 end
  end
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
  end
  local fields = {'paused_until', fmt(paused), 'reset', fmt(reset), 'seen', fmt(seen),
                  'answered', '1', 'est', est and '1' or '0', 'nohint', nohint and '1' or '0',
                  'charged', charged, 'got', got, 'late', late, 'out', out, 'carried', carried,
                  'gone', fmt(gone)}
  local function put(name, value) table.insert(fields, name); table.insert(fields, value) end
  if first then put('first', fmt(first)) end
  if ends then put('ends', fmt(ends)) end
  if limit then put('limit', limit) end
  if low then put('low', low) else redis.call('HDEL', key, 'low') end
  if limit and reset > 0 then put('left', budget_left(limit, low, got, charged)) end
  if window then put('window', fmt(window)) end
  redis.call('HSET', key, (table.unpack or unpack)(fields))
  redis.call('EXPIRE', key, ttl)
  return 1
end
for i = 0, #ARGV / 12 - 1 do
  local lesson = {}
  for j = 1, 12 do lesson[j] = ARGV[i * 12 + j] end
  observe_one(lesson)
end
return 1
"""
)
