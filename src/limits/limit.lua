-- tenantgate: check and charge the limits of a BATCH of requests (the checks
-- one replica made in one event-loop turn), each atomically and in arrival
-- order, after the concurrency slots released before them. Runs below the
-- protocol's Lua half (decodeBatch, encodeReply, BOUNDS, REJECTED), which
-- ./wire-lua.ts writes from ./wire.ts's LAYOUT; docs/limit-store.md explains
-- the store.
--
-- Each request is decided as if alone, after the ones before it: nothing is
-- charged unless every limit of that request admits it, and a later request
-- sees the charges of earlier ones. Requests of one shape (same limits)
-- charge the same amounts, so within a run the admitted ones are a prefix
-- and every refused one sees the same state: a run is decided in O(1).
-- Each key is read once per batch and written once at the end, so N requests
-- of one tenant cost little more than one. Redis's clock decides.
--
-- A shape whose limits are outside BOUNDS, or whose key holds something
-- that is not a limit's state, fails alone: its runs answer an error code
-- and charge nothing; the rest of the batch is decided as usual. Every
-- write at the end is one that cannot fail, so a batch is applied whole.
--
-- Concurrency is counted per replica: a hash per tenant with one field per
-- replica, "<count> <expiresAtMs>", rewritten by every batch that touches it
-- (and a renewal while the replica holds slots), so a crashed replica's
-- slots free themselves after the TTL.
--
-- Local credit: a run admitted whole may also reserve up to `want` more
-- requests' worth of every limit of its shape, only from the upper half of
-- each (after the grant every bucket holds half its burst, every quota is at
-- most half used, at most half the slots are taken), so a limit near its end
-- is decided here, request by request. Slots the replica reserved and has
-- not used are `lent` back to the batch: its own runs take them first, so
-- its unused credit never refuses its own requests.

local floor, ceil, min, max, type = math.floor, math.ceil, math.min, math.max, type
local find, sub, tonumber = string.find, string.sub, tonumber
local SAFE = 9007199254740991
local NONE, RATE, QUOTA, CONCURRENCY = REJECTED.none, REJECTED.rate, REJECTED.quota, REJECTED.concurrency

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
local batch = decodeBatch()
-- Past the deadline the replica has stopped waiting (the command timed out,
-- e.g. while Redis was stalled): charging now would charge what it refused.
if batch.deadlineMs > 0 and now > batch.deadlineMs then return encodeReply({ nowMs = now, expired = 1 }) end
local me = ARGV[1]

local RATE_MIN, RATE_MAX, BURST_MAX, REFILL_MAX_S = BOUNDS.rateMin, BOUNDS.rateMax, BOUNDS.burstMax, BOUNDS.refillMaxS
-- An integer in [lo, hi] (false for nil, cjson's null, NaN).
local function int(x, lo, hi) return type(x) == 'number' and x >= lo and x <= hi and x == floor(x) end

local function validLimits(shape)
  local bs, qs, c = shape.b, shape.q, shape.c
  for i = 1, #bs do
    local rate, burst = bs[i].perSecond, bs[i].burst
    if not (type(rate) == 'number' and rate >= RATE_MIN and rate <= RATE_MAX and int(burst, 1, BURST_MAX) and burst / rate <= REFILL_MAX_S) then return false end
  end
  for i = 1, #qs do
    local q = qs[i]
    if not (int(q.limit, 0, BOUNDS.quotaMax) and int(q.cost, 1, BOUNDS.costMax) and int(q.resetAtS, 1, BOUNDS.resetAtMaxS)) then return false end
  end
  for i = 1, #c do
    if not (int(c[i].limit, 1, BOUNDS.concurrencyMax) and int(c[i].ttlMs, 1, BOUNDS.leaseTtlMaxMs)) then return false end
  end
  return true
end

-- key -> { tk, ts (nil tk: full), perSecond, burst, dirty, bad }: a bucket is one string "<tokens> <ms>".
local buckets = {}
-- key -> { used, charged, expireAt, bad }
local quotas = {}
-- key -> { others, mine, lent, ttl, touched, bad }
local hashes = {}

local shapes = batch.shapes
local reads = {}
for s = 1, #shapes do
  local shape = shapes[s]
  if validLimits(shape) then
    shape.err = NONE
    for i = 1, #shape.b do
      local key = shape.b[i].key
      if buckets[key] == nil then
        buckets[key] = { dirty = false }
        reads[#reads + 1] = key
      end
    end
    for i = 1, #shape.q do
      local key = shape.q[i].key
      if quotas[key] == nil then
        quotas[key] = { charged = 0 }
        reads[#reads + 1] = key
      end
    end
  else
    shape.err = REJECTED.invalid_limits
  end
end

-- Every bucket and quota in one read. A missing one is full (bucket) or 0
-- (quota); one of another type, or unparsable, is `bad`.
if #reads > 0 then
  local values = redis.call('MGET', unpack(reads))
  for i = 1, #reads do
    local key, v = reads[i], values[i]
    local b, q = buckets[key], quotas[key]
    if not v then
      if redis.call('EXISTS', key) == 1 then (b or q).bad = true elseif q then q.used = 0 end
    elseif b then
      local sep = find(v, ' ', 1, true)
      local tk, ts = sep and tonumber(sub(v, 1, sep - 1)), sep and tonumber(sub(v, sep + 1))
      if tk and ts then b.tk, b.ts = tk, ts else b.bad = true end
    else
      local used = tonumber(v)
      if int(used, 0, SAFE) then q.used = used else q.bad = true end
    end
  end
end

-- A concurrency hash: the live replicas' counts (expired or unparsable fields are dropped).
local function hashOf(key)
  local h = hashes[key]
  if h then return h end
  h = { others = 0, mine = 0, lent = 0, ttl = 0, touched = false, bad = false }
  hashes[key] = h
  local fields = redis.pcall('HGETALL', key)
  if fields.err then
    h.bad = true
    return h
  end
  local drop = nil
  for i = 1, #fields, 2 do
    local v = fields[i + 1]
    local sep = find(v, ' ', 1, true)
    local n, exp = sep and tonumber(sub(v, 1, sep - 1)), sep and tonumber(sub(v, sep + 1))
    if not (n and exp) or exp <= now then
      drop = drop or {}
      drop[#drop + 1] = fields[i]
    elseif fields[i] == me then
      h.mine = n
    else
      h.others = h.others + n
    end
  end
  if drop then redis.call('HDEL', key, unpack(drop)) end
  return h
end

for s = 1, #shapes do
  local shape = shapes[s]
  if shape.err == NONE then
    local bad = false
    for i = 1, #shape.c do bad = bad or hashOf(shape.c[i].key).bad end
    for i = 1, #shape.b do bad = bad or buckets[shape.b[i].key].bad end
    for i = 1, #shape.q do bad = bad or quotas[shape.q[i].key].bad end
    if bad then shape.err = REJECTED.unreadable_key end
  end
end

-- Releases (or this replica's exact count) first: they happened before this batch's checks.
local slotsIn = batch.slots
for i = 1, #slotsIn do
  local s = slotsIn[i]
  local h = hashOf(s.key)
  if not h.bad then
    if s.exact >= 0 then h.mine = s.exact else h.mine = max(0, h.mine - s.released) end
    -- Lent slots are part of this replica's count; any that Redis lost (its field expired) are gone.
    h.lent = min(s.lent, h.mine)
    h.ttl, h.touched = max(h.ttl, s.ttlMs), true
  end
end

-- Unused credit comes back (it was reserved before this batch's checks); its slots came back above.
local refunds = batch.refunds
for r = 1, #refunds do
  local shape, back = shapes[refunds[r].shape], refunds[r].n
  if shape.err == NONE then
    for i = 1, #shape.b do
      local spec = shape.b[i]
      local b = buckets[spec.key]
      -- A missing bucket is full: nothing to give back.
      if b.tk then
        b.tk = min(spec.burst, b.tk + max(0, now - b.ts) * spec.perSecond / 1000 + back)
        b.ts, b.perSecond, b.burst, b.dirty = now, spec.perSecond, spec.burst, true
      end
    end
    for i = 1, #shape.q do
      local spec = shape.q[i]
      local q = quotas[spec.key]
      -- A counter that expired (its period ended) has nothing to give back.
      local d = min(q.used, spec.cost * back)
      q.used, q.charged = q.used - d, q.charged - d
    end
  end
end

local function decide(shape, count, want, reply)
  -- How many of the run fit: each request takes one token per bucket, `cost` per quota and one slot.
  local admit = count
  local bs, qs, tokens, used = shape.b, shape.q, reply.tokens, reply.used
  for i = 1, #bs do
    local spec = bs[i]
    local b = buckets[spec.key]
    local tk = spec.burst
    if b.tk then tk = min(spec.burst, b.tk + max(0, now - b.ts) * spec.perSecond / 1000) end
    tokens[i] = tk
    admit = min(admit, max(0, floor(tk)))
  end
  for i = 1, #qs do
    local spec = qs[i]
    used[i] = quotas[spec.key].used
    admit = min(admit, max(0, floor((spec.limit - used[i]) / spec.cost)))
  end
  local cs, hs = shape.c, {}
  for i = 1, #cs do
    local h = hashOf(cs[i].key)
    hs[i] = h
    admit = min(admit, max(0, cs[i].limit - h.others - h.mine + h.lent))
  end

  -- The first refused request (if any) sees the state after `admit` charges:
  -- the first limit out of room refuses it, and every later one of the run.
  if admit < count then
    for i = 1, #bs do
      local left = tokens[i] - admit
      if left < 1 then
        reply.rejected, reply.index, reply.retryAfterMs = RATE, i, ceil((1 - left) * 1000 / bs[i].perSecond)
        break
      end
    end
    if reply.rejected == NONE then
      for i = 1, #qs do
        local spec = qs[i]
        if used[i] + spec.cost * (admit + 1) > spec.limit then
          reply.rejected, reply.index, reply.retryAfterMs = QUOTA, i, max(0, spec.resetAtS * 1000 - now)
          break
        end
      end
    end
    if reply.rejected == NONE then
      for i = 1, #cs do
        if hs[i].others + hs[i].mine - hs[i].lent + admit + 1 > cs[i].limit then
          reply.rejected, reply.index, reply.retryAfterMs = CONCURRENCY, i, 1000
          break
        end
      end
    end
  end

  -- Slots this run takes from what was lent first (per hash); only the rest are new.
  local fromLent = {}
  for i = 1, #cs do fromLent[i] = min(hs[i].lent, admit) end
  local granted = 0
  if want > 0 and admit == count then
    granted = want
    for i = 1, #bs do granted = min(granted, floor(tokens[i] - admit - bs[i].burst / 2)) end
    for i = 1, #qs do granted = min(granted, floor((qs[i].limit / 2 - used[i]) / qs[i].cost) - admit) end
    for i = 1, #cs do granted = min(granted, floor(cs[i].limit / 2) - hs[i].others - (hs[i].mine + admit - fromLent[i])) end
    if granted < 2 then granted = 0 end
  end
  reply.admitted, reply.granted = admit, granted

  -- Credit is charged like admitted requests.
  local charge = admit + granted
  if charge > 0 then
    for i = 1, #bs do
      local spec = bs[i]
      local b = buckets[spec.key]
      b.tk, b.ts, b.perSecond, b.burst, b.dirty = tokens[i] - charge, now, spec.perSecond, spec.burst, true
    end
    for i = 1, #qs do
      local spec = qs[i]
      local q = quotas[spec.key]
      -- The first charge of the period creates the counter: it gets the period's end.
      if q.used == 0 and q.expireAt == nil then q.expireAt = spec.resetAtS end
      q.used, q.charged = q.used + spec.cost * charge, q.charged + spec.cost * charge
    end
    for i = 1, #cs do
      local h = hs[i]
      h.lent, h.mine, h.ttl, h.touched = h.lent - fromLent[i], h.mine + charge - fromLent[i], max(h.ttl, cs[i].ttlMs), true
    end
  end
end

local runsIn, runs = batch.runs, {}
for i = 1, #runsIn do
  local run = runsIn[i]
  local shape = shapes[run.shape]
  local reply = { admitted = 0, rejected = shape.err, index = 0, retryAfterMs = 0, granted = 0, tokens = {}, used = {} }
  if shape.err == NONE then
    decide(shape, run.count, run.want, reply)
  else
    for j = 1, #shape.b do reply.tokens[j] = 0 end
    for j = 1, #shape.q do reply.used[j] = 0 end
  end
  runs[i] = reply
end

-- Write back what the batch charged, once per key.
for key, b in pairs(buckets) do
  if b.dirty then
    -- Expires when full again: a missing bucket means a full one.
    redis.call('SET', key, string.format('%.6f %d', b.tk, b.ts), 'PX', ceil((b.burst - b.tk) * 1000 / b.perSecond) + 1000)
  end
end
for key, q in pairs(quotas) do
  if q.charged ~= 0 then
    redis.call('INCRBY', key, q.charged)
    if q.expireAt then redis.call('EXPIREAT', key, q.expireAt) end
  end
end
for key, h in pairs(hashes) do
  if h.touched then
    if h.mine > 0 then
      redis.call('HSET', key, me, h.mine .. ' ' .. (now + h.ttl))
      redis.call('PEXPIRE', key, h.ttl * 2)
    else
      redis.call('HDEL', key, me)
    end
  end
end

local slots = {}
for i = 1, #slotsIn do
  local s = slotsIn[i]
  local h = hashes[s.key]
  slots[i] = { lentBack = h.bad and s.lent or h.lent }
end
return encodeReply({ nowMs = now, expired = 0, slots = slots, runs = runs })
