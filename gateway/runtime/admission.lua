-- Admission in one round trip: abuse block, rate limit, daily and monthly quota.
-- The in-process twin is gateway/runtime/ratelimit.py; the same tests hold both.
-- KEYS (one hash slot, tagged {subject}): 1 block, 2 soft-limit multiplier, 3 rate state,
--   4 quota key prefix (the script appends d:<day> and m:<yyyymm>; same slot by the tag).
-- ARGV: 1 algorithm, 2 rps, 3 burst, 4 quota_daily, 5 quota_monthly (0 = unlimited).
-- Returns {code, limit, remaining, reset_ms, retry_ms, window_ms}; code indexes
-- ratelimit.OUTCOMES: 0 ok, 1 rate_limited, 2 quota_daily, 3 quota_monthly, 4 blocked.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000

local block_ms = redis.call('PTTL', KEYS[1])
if block_ms > 0 then
  return {4, 0, 0, block_ms, block_ms, 0}
end

local algorithm = ARGV[1]
local rps = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local soft = redis.call('GET', KEYS[2])
if soft then
  local factor = tonumber(soft)
  rps = rps * factor
  burst = math.max(1, math.floor(burst * factor))
end
local window = burst / rps

-- Quota first: an exhausted quota is the longer wait, and the one worth reporting.
local day = math.floor(now / 86400)
local z = day + 719468
local era = math.floor(z / 146097)
local doe = z - era * 146097
local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
local year = yoe + era * 400
local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
local mp = math.floor((5 * doy + 2) / 153)
local month = mp < 10 and mp + 3 or mp - 9
if month <= 2 then year = year + 1 end
local ny, nm = year, month + 1
if nm == 13 then ny, nm = year + 1, 1 end
local y2 = ny
if nm <= 2 then y2 = y2 - 1 end
local era2 = math.floor(y2 / 400)
local yoe2 = y2 - era2 * 400
local mshift = nm > 2 and nm - 3 or nm + 9
local doy2 = math.floor((153 * mshift + 2) / 5)
local doe2 = yoe2 * 365 + math.floor(yoe2 / 4) - math.floor(yoe2 / 100) + doy2
local month_end = (era2 * 146097 + doe2 - 719468) * 86400
local day_end = (day + 1) * 86400

local quota_daily = tonumber(ARGV[4])
local quota_monthly = tonumber(ARGV[5])
local day_key = KEYS[4] .. 'd:' .. day
local month_key = KEYS[4] .. 'm:' .. (year * 100 + month)
if quota_daily > 0 then
  local used = tonumber(redis.call('GET', day_key) or '0')
  if used >= quota_daily then
    local wait = math.ceil((day_end - now) * 1000)
    return {2, quota_daily, 0, wait, wait, 86400000}
  end
end
if quota_monthly > 0 then
  local used = tonumber(redis.call('GET', month_key) or '0')
  if used >= quota_monthly then
    local wait = math.ceil((month_end - now) * 1000)
    return {3, quota_monthly, 0, wait, wait, 0}
  end
end

local allowed, remaining, reset, retry = false, 0, 0, 0
local ttl_ms = math.ceil(window * 2000) + 1000
if algorithm == 'sliding_window' then
  local current = math.floor(now / window)
  local elapsed = now - current * window
  local s = redis.call('HMGET', KEYS[3], 'w', 'c', 'p')
  local count, previous = 0, 0
  if s[1] then
    local w = tonumber(s[1])
    if w == current then
      count, previous = tonumber(s[2]), tonumber(s[3])
    elseif w == current - 1 then
      previous = tonumber(s[2])
    end
  end
  local function wait_for(p, c)
    local excess = p * (1 - elapsed / window) + c - (burst - 1)
    if excess <= 0 then return 0 end
    if p > 0 then
      local w = excess * window / p
      if w <= window - elapsed then return w end
    end
    local nxt = 0
    if c > 0 then nxt = math.max(0, window * (1 - (burst - 1) / c)) end
    return (window - elapsed) + nxt
  end
  local estimate = previous * (1 - elapsed / window) + count
  if estimate + 1 <= burst then
    allowed = true
    local left = burst - estimate - 1
    remaining = math.floor(left)
    if left < 1 then reset = wait_for(previous, count + 1) end
    redis.call('HSET', KEYS[3], 'w', current, 'c', count + 1, 'p', previous)
    redis.call('PEXPIRE', KEYS[3], ttl_ms)
  else
    reset = wait_for(previous, count)
    retry = reset
  end
elseif algorithm == 'leaky_bucket' then
  local interval = 1 / rps
  local tolerance = interval * burst
  local tat = tonumber(redis.call('GET', KEYS[3]) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - tolerance
  if now >= allow_at then
    allowed = true
    remaining = math.floor((now - allow_at) / interval + 1e-9)
    if remaining < 1 then reset = math.max(0, new_tat + interval - tolerance - now) end
    redis.call('SET', KEYS[3], string.format('%.6f', new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
  else
    reset = allow_at - now
    retry = reset
  end
else
  local s = redis.call('HMGET', KEYS[3], 't', 'ts')
  local tokens = burst
  if s[1] then
    tokens = math.min(burst, tonumber(s[1]) + math.max(0, now - tonumber(s[2])) * rps)
  end
  if tokens >= 1 then
    allowed = true
    local left = tokens - 1
    remaining = math.floor(left)
    if left < 1 then reset = (1 - left) / rps end
    redis.call('HSET', KEYS[3], 't', string.format('%.6f', left), 'ts', string.format('%.6f', now))
    redis.call('PEXPIRE', KEYS[3], ttl_ms)
  else
    reset = (1 - tokens) / rps
    retry = reset
  end
end

if not allowed then
  return {1, burst, 0, math.ceil(reset * 1000), math.ceil(retry * 1000), math.ceil(window * 1000)}
end
if quota_daily > 0 then
  if redis.call('INCR', day_key) == 1 then
    redis.call('PEXPIRE', day_key, math.ceil((day_end - now) * 1000) + 86400000)
  end
end
if quota_monthly > 0 then
  if redis.call('INCR', month_key) == 1 then
    redis.call('PEXPIRE', month_key, math.ceil((month_end - now) * 1000) + 86400000)
  end
end
return {0, burst, remaining, math.ceil(reset * 1000), 0, math.ceil(window * 1000)}
