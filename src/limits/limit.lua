-- tenantgate: check and charge the limits of a BATCH of requests (the checks
-- one replica made in one event-loop turn), each atomically and in arrival
-- order, after freeing the concurrency slots released in that turn.
-- In Redis Cluster a batch holds one {tenant} hash tag (one slot); a single
-- Redis takes any mix of tenants.
--
-- KEYS: every distinct key of the batch, once.
-- ARGV, in three sections (numbers are KEYS indexes where they name a key):
--   shapes:   count, then per shape (the limits a request checks; requests of one
--             tenant, key and route share one): nb, nq, nc,
--             per bucket: key, perSecond, burst;
--             per quota: key, limit, cost, resetAt (epoch seconds);
--             if nc == 1, concurrency: key, limit, leaseTtlMs
--   releases: count, then per concurrency set: key, n, n lease ids
--   requests: count, then per request: shape, and its leaseId if the shape has concurrency
--
-- Returns { nowMs, then per request: rejected (0 none, 1 rate, 2 quota, 3 concurrency),
--           index (1-based), retryAfterMs, tokens x 1000 per bucket..., used per quota... }
--
-- Each request is decided as if alone, after the ones before it: nothing is
-- charged unless every limit of that request admits it (a refused request
-- charges nothing), and a later request sees the charges of earlier ones.
-- Each key is read once per batch and written once at the end (the state in
-- between lives in the tables below), and a request's numbers are parsed once
-- per shape: on this Redis a redis.call costs ~2.5 µs and a tonumber ~0.1 µs,
-- so N requests of one tenant cost little more than one.
-- Redis's clock decides (one TIME per batch), so replicas with skewed clocks agree.

local tonumber, floor, ceil, min, max = tonumber, math.floor, math.ceil, math.min, math.max
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)

local shapes = {}
local a = 2
for s = 1, tonumber(ARGV[1]) do
  local nb, nq, nc = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  local shape = { nb = nb, nq = nq, b = {}, q = {} }
  for i = 1, nb do
    shape.b[i] = { key = KEYS[tonumber(ARGV[a])], rate = tonumber(ARGV[a + 1]), burst = tonumber(ARGV[a + 2]) }
    a = a + 3
  end
  for i = 1, nq do
    shape.q[i] = { key = KEYS[tonumber(ARGV[a])], limit = tonumber(ARGV[a + 1]), cost = tonumber(ARGV[a + 2]), resetAt = ARGV[a + 3] }
    a = a + 4
  end
  if nc == 1 then
    shape.c = { key = KEYS[tonumber(ARGV[a])], limit = tonumber(ARGV[a + 1]), ttl = tonumber(ARGV[a + 2]) }
    a = a + 3
  end
  shapes[s] = shape
end

-- Releases first: they happened before this turn's checks.
local groups = tonumber(ARGV[a])
a = a + 1
for _ = 1, groups do
  local n = tonumber(ARGV[a + 1])
  redis.call('ZREM', KEYS[tonumber(ARGV[a])], unpack(ARGV, a + 2, a + 1 + n))
  a = a + 2 + n
end

-- key -> { tk, ts, rate, burst, dirty }: a bucket is one string "<tokens> <ms>"; tk nil = full.
local buckets = {}
-- key -> { used, charged, expireAt }
local quotas = {}
-- key -> { count, adds = { score, member, ... }, ttl }
local sets = {}

local out = { now }
local n = #out
local count = tonumber(ARGV[a])
a = a + 1
for _ = 1, count do
  local shape = shapes[tonumber(ARGV[a])]
  a = a + 1
  local rejected, index, retry = 0, 0, 0
  local tokens, used = {}, {}

  for i = 1, shape.nb do
    local spec = shape.b[i]
    local b = buckets[spec.key]
    if b == nil then
      b = { dirty = false }
      local state = redis.call('GET', spec.key)
      if state then
        local sep = string.find(state, ' ', 1, true)
        b.tk, b.ts = tonumber(string.sub(state, 1, sep - 1)), tonumber(string.sub(state, sep + 1))
      end
      buckets[spec.key] = b
    end
    local tk = spec.burst
    if b.tk then tk = min(spec.burst, b.tk + max(0, now - b.ts) * spec.rate / 1000) end
    tokens[i] = tk
    if tk < 1 and rejected == 0 then
      rejected, index, retry = 1, i, ceil((1 - tk) * 1000 / spec.rate)
    end
  end

  for i = 1, shape.nq do
    local spec = shape.q[i]
    local q = quotas[spec.key]
    if q == nil then
      q = { used = tonumber(redis.call('GET', spec.key) or '0'), charged = 0 }
      quotas[spec.key] = q
    end
    used[i] = q.used
    if q.used + spec.cost > spec.limit and rejected == 0 then
      rejected, index, retry = 2, i, max(0, spec.resetAt * 1000 - now)
    end
  end

  local c, lease = shape.c, nil
  if c then
    lease = ARGV[a]
    a = a + 1
    local s = sets[c.key]
    if s == nil then
      redis.call('ZREMRANGEBYSCORE', c.key, '-inf', now)
      s = { count = redis.call('ZCARD', c.key), adds = {} }
      sets[c.key] = s
    end
    if s.count >= c.limit and rejected == 0 then
      rejected, index, retry = 3, 1, 1000
    end
  end

  if rejected == 0 then
    for i = 1, shape.nb do
      local spec = shape.b[i]
      local b = buckets[spec.key]
      tokens[i] = tokens[i] - 1
      b.tk, b.ts, b.rate, b.burst, b.dirty = tokens[i], now, spec.rate, spec.burst, true
    end
    for i = 1, shape.nq do
      local spec = shape.q[i]
      local q = quotas[spec.key]
      -- The first charge of the period creates the counter: it gets the period's end.
      if q.used == 0 and q.expireAt == nil then q.expireAt = spec.resetAt end
      q.used, q.charged = q.used + spec.cost, q.charged + spec.cost
      used[i] = q.used
    end
    if c then
      -- Lease ids are unique (replica id + counter), so each add is one more member.
      local s = sets[c.key]
      s.count, s.ttl = s.count + 1, c.ttl
      s.adds[#s.adds + 1] = now + c.ttl
      s.adds[#s.adds + 1] = lease
    end
  end

  out[n + 1], out[n + 2], out[n + 3] = rejected, index, retry
  n = n + 3
  for i = 1, shape.nb do
    n = n + 1
    out[n] = floor(tokens[i] * 1000)
  end
  for i = 1, shape.nq do
    n = n + 1
    out[n] = used[i]
  end
end

-- Write back what the batch charged, once per key.
for key, b in pairs(buckets) do
  if b.dirty then
    -- Expires when full again: a missing bucket means a full one.
    redis.call('SET', key, string.format('%.6f %d', b.tk, b.ts), 'PX', ceil((b.burst - b.tk) * 1000 / b.rate) + 1000)
  end
end
for key, q in pairs(quotas) do
  if q.charged > 0 then
    redis.call('INCRBY', key, q.charged)
    if q.expireAt then redis.call('EXPIREAT', key, q.expireAt) end
  end
end
for key, s in pairs(sets) do
  if #s.adds > 0 then
    redis.call('ZADD', key, unpack(s.adds))
    redis.call('PEXPIRE', key, s.ttl * 2)
  end
end
return out
