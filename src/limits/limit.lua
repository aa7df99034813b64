-- tenantgate: check and charge every limit of one request, atomically.
-- All keys carry the same {tenant} hash tag, so Redis Cluster keeps them in one slot.
--
-- KEYS: the request's buckets, then its quotas, then (optionally) its concurrency set.
-- ARGV[1..3]: number of buckets, number of quotas, 1 if there is a concurrency set.
-- Then per bucket: perSecond, burst. Per quota: limit, cost, resetAt (epoch seconds).
-- Then, for concurrency: limit, leaseId, leaseTtlMs.
--
-- Returns { rejected (0 none, 1 rate, 2 quota, 3 concurrency), index (1-based), retryAfterMs,
--           nowMs, tokens x 1000 per bucket..., used per quota... }
-- Nothing is written unless every limit admits the request (no double charge).
-- Redis's clock decides, so replicas with skewed clocks agree.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nb, nq, nc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

local rejected, index, retry = 0, 0, 0
local tokens, used = {}, {}
local a, k = 4, 1

for i = 1, nb do
  local rate, burst = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  -- A bucket is one string "<tokens> <ms>": one GET here, one SET on charge.
  local state = redis.call('GET', KEYS[k])
  local tk, ts = burst, now
  if state then
    local sep = string.find(state, ' ', 1, true)
    tk, ts = tonumber(string.sub(state, 1, sep - 1)), tonumber(string.sub(state, sep + 1))
  end
  tk = math.min(burst, tk + math.max(0, now - ts) * rate / 1000)
  tokens[i] = tk
  if tk < 1 and rejected == 0 then
    rejected, index, retry = 1, i, math.ceil((1 - tk) * 1000 / rate)
  end
  a, k = a + 2, k + 1
end

for i = 1, nq do
  local limit, cost, resetAt = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local u = tonumber(redis.call('GET', KEYS[k]) or '0')
  used[i] = u
  if u + cost > limit and rejected == 0 then
    rejected, index, retry = 2, i, math.max(0, resetAt * 1000 - now)
  end
  a, k = a + 3, k + 1
end

if nc == 1 then
  local limit = tonumber(ARGV[a])
  redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', now)
  if redis.call('ZCARD', KEYS[k]) >= limit and rejected == 0 then
    rejected, index, retry = 3, 1, 1000
  end
end

if rejected == 0 then
  a, k = 4, 1
  for i = 1, nb do
    local rate, burst = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
    tokens[i] = tokens[i] - 1
    -- Expires when full again: a missing bucket means a full one.
    redis.call('SET', KEYS[k], string.format('%.6f %d', tokens[i], now), 'PX', math.ceil((burst - tokens[i]) * 1000 / rate) + 1000)
    a, k = a + 2, k + 1
  end
  for i = 1, nq do
    local cost, resetAt = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    used[i] = redis.call('INCRBY', KEYS[k], cost)
    -- The first charge of the period creates the counter: give it the period's end.
    if used[i] == cost then redis.call('EXPIREAT', KEYS[k], resetAt) end
    a, k = a + 3, k + 1
  end
  if nc == 1 then
    local ttl = tonumber(ARGV[a + 2])
    redis.call('ZADD', KEYS[k], now + ttl, ARGV[a + 1])
    redis.call('PEXPIRE', KEYS[k], ttl * 2)
  end
end

local out = { rejected, index, retry, now }
for i = 1, nb do out[#out + 1] = math.floor(tokens[i] * 1000) end
for i = 1, nq do out[#out + 1] = used[i] end
return out
