-- tenantgate: check and charge the limits of a BATCH of requests (the checks
-- one replica made in one event-loop turn), each atomically and in arrival
-- order, after applying the concurrency slots released in that turn.
-- In Redis Cluster a batch holds one {tenant} hash tag (one slot); a single
-- Redis takes any mix of tenants.
--
-- KEYS: every distinct key of the batch, once.
-- ARGV[1]: this replica's id (its field in every concurrency hash).
-- ARGV[2]: a JSON array of numbers (one argument, decoded by cjson in C: ~30
-- separate arguments cost the proxy ~20 us per batch in ioredis's argument
-- handling, and Redis a tonumber each), three sections one after the other,
-- numbers being KEYS indexes where they name a key:
--   shapes:   count, then per shape (the limits a request checks; requests of one
--             tenant, key and route share one): nb, nq, nc,
--             per bucket: key, perSecond, burst;
--             per quota: key, limit, cost, resetAt (epoch seconds);
--             if nc == 1, concurrency: key, limit, ttlMs
--   slots:    count, then per concurrency hash: key, released, held, ttlMs
--             (held = -1: apply `released` to this replica's count; held >= 0:
--             the replica's exact count, sent when no batch of it is in flight)
--   refunds:  count, then per refund: shape, n (local credit a replica did not
--             use: n requests' tokens and quota units go back; its slots come
--             back as a release in the slots section)
--   runs:     count, then per run (consecutive requests of one shape): shape,
--             n, want (local credit asked for: 0 none)
--
-- Returns { nowMs, then per run: admitted (the first `admitted` requests of the
--           run; the rest are refused), rejected (0 none, 1 rate, 2 quota,
--           3 concurrency), index (1-based), retryAfterMs, granted (credit),
--           tokens x 1000 per bucket and used per quota BEFORE the run }
--
-- Local credit (redis-store.ts): a run that is admitted whole may also reserve
-- up to `want` more requests' worth of every limit of its shape, which the
-- replica then admits without asking. Only from the upper half of each limit:
-- after the grant every bucket still holds half its burst, every quota is at
-- most half used and at most half the concurrency slots are taken, so a limit
-- near its end is decided here, request by request, as without credit.
--
-- Each request is decided as if alone, after the ones before it: nothing is
-- charged unless every limit of that request admits it (a refused request
-- charges nothing), and a later request sees the charges of earlier ones.
-- Requests of one shape charge the same amounts, so within a run the admitted
-- ones are a prefix and every refused one sees the same state: a run of n is
-- decided in O(1), and the client derives each request's numbers from the
-- state before the run. Each key is read once per batch (one MGET, one HGETALL
-- per concurrency hash) and written once at the end: on this Redis a
-- redis.call costs ~2.5 us, so N requests of one tenant cost little more than one.
-- Redis's clock decides (one TIME per batch), so replicas with skewed clocks agree.
--
-- Concurrency is counted per replica, not per request: a hash per tenant with
-- one field per replica, "<count> <expiresAtMs>". A replica's field expires
-- unless it writes it again (every batch that touches it, and a renewal every
-- third of the TTL while it holds slots), so a crashed replica's slots free
-- themselves after the TTL; live replicas' counts are summed.

local tonumber, floor, ceil, min, max = tonumber, math.floor, math.ceil, math.min, math.max
local find, sub = string.find, string.sub
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
local me = ARGV[1]
local nums = cjson.decode(ARGV[2])

-- key -> { tk, ts, rate, burst, dirty }: a bucket is one string "<tokens> <ms>"; tk nil = full.
local buckets = {}
-- key -> { used, charged, expireAt }
local quotas = {}
-- key -> { others, mine, ttl, touched }
local slots = {}
local reads = {}

local shapes = {}
local a = 2
for s = 1, nums[1] do
  local nb, nq, nc = nums[a], nums[a + 1], nums[a + 2]
  a = a + 3
  local shape = { nb = nb, nq = nq, b = {}, q = {} }
  for i = 1, nb do
    local key = KEYS[nums[a]]
    shape.b[i] = { key = key, rate = nums[a + 1], burst = nums[a + 2] }
    if buckets[key] == nil then
      buckets[key] = { dirty = false }
      reads[#reads + 1] = key
    end
    a = a + 3
  end
  for i = 1, nq do
    local key = KEYS[nums[a]]
    shape.q[i] = { key = key, limit = nums[a + 1], cost = nums[a + 2], resetAt = nums[a + 3] }
    if quotas[key] == nil then
      quotas[key] = { charged = 0 }
      reads[#reads + 1] = key
    end
    a = a + 4
  end
  if nc == 1 then
    shape.c = { key = KEYS[nums[a]], limit = nums[a + 1], ttl = nums[a + 2] }
    a = a + 3
  end
  shapes[s] = shape
end

-- Every bucket and quota of the batch in one read.
if #reads > 0 then
  local values = redis.call('MGET', unpack(reads))
  for i = 1, #reads do
    local key, state = reads[i], values[i]
    local b = buckets[key]
    if b then
      if state then
        local sep = find(state, ' ', 1, true)
        b.tk, b.ts = tonumber(sub(state, 1, sep - 1)), tonumber(sub(state, sep + 1))
      end
    else
      quotas[key].used = tonumber(state or '0')
    end
  end
end

-- A concurrency hash: the live replicas' counts (expired fields are dropped).
local function slotsOf(key)
  local s = slots[key]
  if s then return s end
  s = { others = 0, mine = 0, ttl = 0, touched = false }
  local fields = redis.call('HGETALL', key)
  local expired = nil
  for i = 1, #fields, 2 do
    local v = fields[i + 1]
    local sep = find(v, ' ', 1, true)
    local n, exp = tonumber(sub(v, 1, sep - 1)), tonumber(sub(v, sep + 1))
    if exp <= now then
      expired = expired or {}
      expired[#expired + 1] = fields[i]
    elseif fields[i] == me then
      s.mine = n
    else
      s.others = s.others + n
    end
  end
  if expired then redis.call('HDEL', key, unpack(expired)) end
  slots[key] = s
  return s
end

-- Releases (and exact counts) first: they happened before this turn's checks.
local updates = nums[a]
a = a + 1
for _ = 1, updates do
  local s = slotsOf(KEYS[nums[a]])
  local held = nums[a + 2]
  if held >= 0 then s.mine = held else s.mine = max(0, s.mine - nums[a + 1]) end
  s.ttl, s.touched = max(s.ttl, nums[a + 3]), true
  a = a + 4
end

-- Unused credit comes back (it was reserved before this turn's checks).
local refunds = nums[a]
a = a + 1
for _ = 1, refunds do
  local shape, back = shapes[nums[a]], nums[a + 1]
  a = a + 2
  for i = 1, shape.nb do
    local spec = shape.b[i]
    local b = buckets[spec.key]
    -- A missing bucket is full: nothing to give back.
    if b.tk then
      b.tk = min(spec.burst, b.tk + max(0, now - b.ts) * spec.rate / 1000 + back)
      b.ts, b.rate, b.burst, b.dirty = now, spec.rate, spec.burst, true
    end
  end
  for i = 1, shape.nq do
    local spec = shape.q[i]
    local q = quotas[spec.key]
    -- A missing counter (a period that ended) has nothing to give back.
    local d = min(q.used, spec.cost * back)
    q.used, q.charged = q.used - d, q.charged - d
  end
end

local out = { now }
local n = #out
local runs = nums[a]
a = a + 1
for _ = 1, runs do
  local shape, count, want = shapes[nums[a]], nums[a + 1], nums[a + 2]
  a = a + 3
  -- How many of the run fit: each request takes one token per bucket, `cost`
  -- per quota and one slot.
  local admit = count
  local tokens = {}
  for i = 1, shape.nb do
    local spec = shape.b[i]
    local b = buckets[spec.key]
    local tk = spec.burst
    if b.tk then tk = min(spec.burst, b.tk + max(0, now - b.ts) * spec.rate / 1000) end
    tokens[i] = tk
    admit = min(admit, max(0, floor(tk)))
  end
  for i = 1, shape.nq do
    local spec = shape.q[i]
    admit = min(admit, max(0, floor((spec.limit - quotas[spec.key].used) / spec.cost)))
  end
  local c = shape.c
  local s = nil
  if c then
    s = slotsOf(c.key)
    admit = min(admit, max(0, c.limit - s.others - s.mine))
  end

  -- The first refused request (if any) sees the state after `admit` charges:
  -- the first limit out of room refuses it, and every later one of the run.
  local rejected, index, retry = 0, 0, 0
  if admit < count then
    for i = 1, shape.nb do
      local left = tokens[i] - admit
      if left < 1 then
        rejected, index, retry = 1, i, ceil((1 - left) * 1000 / shape.b[i].rate)
        break
      end
    end
    if rejected == 0 then
      for i = 1, shape.nq do
        local spec = shape.q[i]
        if quotas[spec.key].used + spec.cost * (admit + 1) > spec.limit then
          rejected, index, retry = 2, i, max(0, spec.resetAt * 1000 - now)
          break
        end
      end
    end
    if rejected == 0 then rejected, index, retry = 3, 1, 1000 end
  end

  -- Credit, from the upper half of every limit only (see the header).
  local granted = 0
  if want > 0 and admit == count then
    granted = want
    for i = 1, shape.nb do
      granted = min(granted, floor(tokens[i] - admit - shape.b[i].burst / 2))
    end
    for i = 1, shape.nq do
      local spec = shape.q[i]
      granted = min(granted, floor((spec.limit / 2 - quotas[spec.key].used) / spec.cost) - admit)
    end
    if c then granted = min(granted, floor(c.limit / 2) - s.others - s.mine - admit) end
    if granted < 2 then granted = 0 end
  end

  out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = admit, rejected, index, retry, granted
  n = n + 5
  for i = 1, shape.nb do
    n = n + 1
    out[n] = floor(tokens[i] * 1000)
  end
  for i = 1, shape.nq do
    n = n + 1
    out[n] = quotas[shape.q[i].key].used
  end

  -- Credit is charged like admitted requests.
  admit = admit + granted
  if admit > 0 then
    for i = 1, shape.nb do
      local spec = shape.b[i]
      local b = buckets[spec.key]
      b.tk, b.ts, b.rate, b.burst, b.dirty = tokens[i] - admit, now, spec.rate, spec.burst, true
    end
    for i = 1, shape.nq do
      local spec = shape.q[i]
      local q = quotas[spec.key]
      -- The first charge of the period creates the counter: it gets the period's end.
      if q.used == 0 and q.expireAt == nil then q.expireAt = spec.resetAt end
      q.used, q.charged = q.used + spec.cost * admit, q.charged + spec.cost * admit
    end
    if s then s.mine, s.ttl, s.touched = s.mine + admit, max(s.ttl, c.ttl), true end
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
  if q.charged ~= 0 then
    redis.call('INCRBY', key, q.charged)
    if q.expireAt then redis.call('EXPIREAT', key, q.expireAt) end
  end
end
for key, s in pairs(slots) do
  if s.touched then
    if s.mine > 0 then
      redis.call('HSET', key, me, s.mine .. ' ' .. (now + s.ttl))
      redis.call('PEXPIRE', key, s.ttl * 2)
    else
      redis.call('HDEL', key, me)
    end
  end
end
return out
