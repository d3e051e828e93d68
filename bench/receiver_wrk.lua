-- wrk script for bench/receiver.py: every request a distinct signed body.
-- Bodies are string.format(TEMPLATE, conversation, seq); signatures (one per seq, in order)
-- are pre-computed by bench/receiver.py, since computing HMAC-SHA256 in Lua is impractical.
-- Environment: BENCH_TEMPLATE_FILE, BENCH_SIGNATURES_FILE, BENCH_DELAY_MS (0 = closed loop).

local function read(path)
  local file = assert(io.open(path, "rb"))
  local text = file:read("*a")
  file:close()
  return text
end

local template = read(os.getenv("BENCH_TEMPLATE_FILE"))
local signatures = {}
for line in io.lines(os.getenv("BENCH_SIGNATURES_FILE")) do
  signatures[#signatures + 1] = line
end
local count = #signatures
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local seq = -1

request = function()
  seq = (seq + 1) % count
  local body = string.format(template, seq % 1000, seq)
  return wrk.format("POST", "/webhooks/awalchat", {
    ["Content-Type"] = "application/json",
    ["X-Awal-Signature-256"] = signatures[seq + 1],
  }, body)
end

if delay_ms > 0 then
  delay = function()
    return delay_ms
  end
end
